// Package api is the admin HTTP API of a node: /healthz, /readyz, /metrics
// and JSON under /v1/. It also has the small client the CLI uses. The JSON
// types here are a user-facing contract: add fields, never rename them.
package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/metrics"
)

// Status is the body of GET /v1/status.
type Status struct {
	Address   string        `json:"address"`
	PublicKey string        `json:"public_key"`
	Version   string        `json:"version"`
	Profile   string        `json:"profile"`
	Caps      []string      `json:"capabilities"`
	StartedAt time.Time     `json:"started_at"`
	Uptime    string        `json:"uptime"`
	UptimeSec float64       `json:"uptime_seconds"`
	Phase     string        `json:"phase"`
	Ready     bool          `json:"ready"`
	Listeners []Listener    `json:"listeners"`
	Radios    []Radio       `json:"radios"`
	Links     []Link        `json:"links"`
	Peers     []Peer        `json:"peers"`
	Actors    []ActorStatus `json:"actors"`
}

// Listener is a bound transport listener.
type Listener struct {
	Transport string `json:"transport"`
	Addr      string `json:"addr"`
}

// Radio is one LoRa radio of the node (a lora+serial modem or a
// lora+mock radio). State is up or down: a serial modem that went away
// (unplugged, reset) is down until it is re-opened, which the node tries
// with back-off (NextAttempt) while LastError says why it is down or why
// the last attempt failed. TxPower is the power the modem took (its
// echo; for a mock radio the one asked), TxPowerLimit the region's limit
// in the radio's sub-band.
type Radio struct {
	Channel      string     `json:"channel"` // device path or mock channel
	Transport    string     `json:"transport"`
	State        string     `json:"state"`
	Since        time.Time  `json:"since"`
	Frequency    uint32     `json:"frequency_hz"`
	Bandwidth    int        `json:"bandwidth_hz"`
	SF           int        `json:"sf"`
	CR           string     `json:"cr"`
	TxPower      int        `json:"tx_power_dbm"`
	TxPowerLimit int        `json:"tx_power_limit_dbm"`
	SubBand      string     `json:"sub_band"`
	Region       string     `json:"region"`
	Firmware     string     `json:"firmware,omitempty"`
	Reopens      uint64     `json:"reopens"`
	Failures     uint64     `json:"reopen_failures"`
	LastError    string     `json:"last_error,omitempty"`
	NextAttempt  *time.Time `json:"next_attempt,omitempty"`
}

// ReadyDetailer is implemented by a Backend with more to say on /readyz
// than ready or not: one line per degraded part (a LoRa radio that is
// down), printed after the verdict. They do not change the status code.
type ReadyDetailer interface {
	ReadyDetail(ctx context.Context) []string
}

// Link is a connected peer.
type Link struct {
	Peer      string    `json:"peer"`
	Transport string    `json:"transport"`
	Remote    string    `json:"remote"`
	Direction string    `json:"direction"` // inbound or outbound
	Class     string    `json:"class"`     // capability class of the link
	Since     time.Time `json:"since"`
}

// Peer is a configured peer (transports.peers) and how dialing it goes.
// State is pending (not dialled yet), dialling, up, down (its link just
// ended), backoff (waiting for NextAttempt after a failure or a lost
// link), stopped (the node is shutting down) or given_up (LastError says
// why). LastError stays after the peer is up again, as history.
type Peer struct {
	URI         string     `json:"uri"`
	State       string     `json:"state"`
	Since       time.Time  `json:"since"`
	Attempts    int        `json:"attempts"`
	Failures    int        `json:"failures"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	Peer        string     `json:"peer,omitempty"`
}

// ActorStatus is one top-level actor.
type ActorStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
}

// SendRequest is the body of POST /v1/send: one message, or with
// Messages set, up to MaxSendBatch at once (one group commit for all).
type SendRequest struct {
	To       string        `json:"to,omitempty"`
	Text     string        `json:"text,omitempty"`
	Messages []SendRequest `json:"messages,omitempty"`
}

// MaxSendBatch is how many messages one POST /v1/send may carry.
const MaxSendBatch = 256

// SendBatchResponse answers a POST /v1/send with messages: one result per
// message, in order. A refused message has Error set (code outbox_full:
// send it again after Retry-After; bad_request: it will not go).
type SendBatchResponse struct {
	Results []SendResult `json:"results"`
}

// SendResult is one message's answer in a batch.
type SendResult struct {
	ID     string `json:"id,omitempty"`
	Status string `json:"status,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// SendResponse answers POST /v1/send once the message is durable in the
// node's outbox. Status is its state then: queued (no route yet, or the
// window to the destination is full) or sent; follow it with
// GET /v1/messages/{id}.
type SendResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// Message is one of this node's messages in GET /v1/messages/{id} and
// GET /v1/outbox. State is queued → sent → delivered (the destination's
// signed receipt arrived) or failed (Reason says why).
type Message struct {
	ID        string     `json:"id"`
	To        string     `json:"to"`
	State     string     `json:"state"`
	Attempts  int        `json:"attempts"`
	Seq       uint64     `json:"seq"`
	Created   time.Time  `json:"created_at"`
	Expiry    time.Time  `json:"expires_at"`
	NextRetry *time.Time `json:"next_retry,omitempty"`
	Done      *time.Time `json:"done_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// OutboxResponse answers GET /v1/outbox: the messages still waiting.
type OutboxResponse struct {
	Pending  int       `json:"pending"`
	Messages []Message `json:"messages"`
}

// InboxEntry is one delivered message in GET /v1/inbox. Text is the
// message as its sender sent it: UTF-8 when Encoding is "utf-8" (JSON
// escapes what needs escaping, control characters included), and the
// bytes in standard base64 when Encoding is "base64" (they were not
// UTF-8; nothing is replaced).
type InboxEntry struct {
	Seq      uint64    `json:"seq"`
	ID       string    `json:"id"`
	From     string    `json:"from"`
	Text     string    `json:"text"`
	Encoding string    `json:"encoding"`
	At       time.Time `json:"at"`
	Hops     int       `json:"hops"`
	// Group is the group id (32 hex digits) of a group message; empty for
	// a 1:1 message. From is then the member that sent it.
	Group string `json:"group,omitempty"`
	// Damaged is set, and every field but Seq empty, for an entry the
	// node holds but cannot read (a damaged page, a record not written by
	// this version): it says why. The record stays in qpc.db (`qpc db
	// check`, `qpc db salvage`); it is listed so that a reader sees it and
	// moves past it instead of stopping there.
	Damaged string `json:"damaged,omitempty"`
}

// Text encodings of InboxEntry.
const (
	EncodingUTF8   = "utf-8"
	EncodingBase64 = "base64"
)

// InboxResponse answers GET /v1/inbox?after=SEQ&wait=DURATION.
type InboxResponse struct {
	Messages []InboxEntry `json:"messages"`
	Last     uint64       `json:"last"` // pass as after= to get only newer ones
}

// Route is one destination in GET /v1/routes.
type Route struct {
	Address      string    `json:"address"`
	NextHop      string    `json:"next_hop"`
	Hops         int       `json:"hops"`
	Link         string    `json:"link"`
	Capabilities []string  `json:"capabilities"`
	Refreshed    time.Time `json:"refreshed"`
}

// TraceHop is one hop in GET /v1/trace.
type TraceHop struct {
	Hop     int     `json:"hop"`
	Address string  `json:"address"`
	RTTms   float64 `json:"rtt_ms"`
}

// TraceResponse answers GET /v1/trace?to=ADDR.
type TraceResponse struct {
	To      string     `json:"to"`
	Reached bool       `json:"reached"`
	Hops    []TraceHop `json:"hops"`
}

// Backend is what the API asks the node.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	Ready(ctx context.Context) bool
	Gatherer() prometheus.Gatherer
	SendMessage(ctx context.Context, req SendRequest) (SendResponse, error)
	SendMessages(ctx context.Context, reqs []SendRequest) (SendBatchResponse, error)
	MessageState(ctx context.Context, id string) (Message, error)
	Outbox(ctx context.Context) (OutboxResponse, error)
	InboxSince(ctx context.Context, after uint64, wait time.Duration) (InboxResponse, error)
	// InboxDelete removes message seq (NotFound when there is none);
	// InboxClear removes all and says how many.
	InboxDelete(ctx context.Context, seq uint64) error
	InboxClear(ctx context.Context) (int, error)
	RouteTable(ctx context.Context) ([]Route, error)
	TraceTo(ctx context.Context, to string, timeout time.Duration) (TraceResponse, error)
}

// BadRequest is an error caused by the request (400 with code bad_request).
type BadRequest struct{ Err error }

func (e *BadRequest) Error() string { return e.Err.Error() }
func (e *BadRequest) Unwrap() error { return e.Err }

// NotFound is an error for something the node does not know (404).
type NotFound struct{ Err error }

func (e *NotFound) Error() string { return e.Err.Error() }
func (e *NotFound) Unwrap() error { return e.Err }

// Unavailable is a refusal because the node is going away (503): another
// node, or this one after its restart, may take the request.
type Unavailable struct{ Err error }

func (e *Unavailable) Error() string { return e.Err.Error() }
func (e *Unavailable) Unwrap() error { return e.Err }

// TooLarge is a request over a size limit (413 with code too_large); the
// message says the limit in bytes.
type TooLarge struct{ Err error }

func (e *TooLarge) Error() string { return e.Err.Error() }
func (e *TooLarge) Unwrap() error { return e.Err }

// Busy is a refusal for now (429 with Retry-After): the caller should try
// again later.
type Busy struct {
	Code       string
	Err        error
	RetryAfter time.Duration
}

func (e *Busy) Error() string { return e.Err.Error() }
func (e *Busy) Unwrap() error { return e.Err }

// Error is the coded JSON error body: {"error":{"code":..,"message":..}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"-"`
	// RetryAfter is the server's Retry-After on a 429 (client side).
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return fmt.Sprintf("api: %s (%s)", e.Message, e.Code) }

// ErrTokenRequired: a non-loopback listen address without a token.
var ErrTokenRequired = errors.New("api: a bearer token is required when the admin API listens on a non-loopback address")

// Server serves the admin API.
type Server struct {
	backend Backend
	token   string
	log     *slog.Logger
	reqs    *prometheus.CounterVec
	srv     *http.Server
	ln      net.Listener
	done    chan error
	hosts   hostPolicy
	// writeTimeout is WriteTimeout unless a test set Options.writeTimeout.
	writeTimeout time.Duration
	// panicked is the cause of the first panic in a request handler
	// (recoverPanics): the node is not ready from then on.
	panicked atomic.Pointer[string]
}

// Options for New.
type Options struct {
	Addr  string
	Token string
	// AllowedHosts are Host names served besides the listen address and
	// the loopback names (api.allowed_hosts): "name" on any port,
	// "name:port" on that port, "*" any Host at all.
	AllowedHosts []string
	writeTimeout time.Duration // tests
	Log          *slog.Logger
	Metrics      *metrics.Node
}

// Listen binds the API. It refuses a non-loopback address without a token.
func Listen(o Options, b Backend) (*Server, error) {
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("api: listen address %q: %w", o.Addr, err)
	}
	if !config.IsLoopbackHost(host) && o.Token == "" {
		return nil, fmt.Errorf("%w (api.addr = %s)", ErrTokenRequired, o.Addr)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("api: listen %s: %w", o.Addr, err)
	}
	s := &Server{backend: b, token: o.Token, log: o.Log, ln: ln, done: make(chan error, 1)}
	_, bound, _ := net.SplitHostPort(ln.Addr().String())
	s.hosts = newHostPolicy(net.JoinHostPort(host, bound), o.AllowedHosts)
	s.writeTimeout = WriteTimeout
	if o.writeTimeout > 0 {
		s.writeTimeout = o.writeTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics != nil {
		s.reqs = o.Metrics.APIRequests
	}
	// No server-wide WriteTimeout: long polls wait up to 5 minutes; guard
	// gives each request its own write deadline instead.
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout, IdleTimeout: IdleTimeout}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, waiting for requests in flight until ctx ends;
// what is still open then (a client that connected and never sent its
// request, a request that outlived the deadline) is cut, not waited for.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.log.Warn("admin API connections still open at the shutdown deadline; closing them", "err", err)
		err = s.srv.Close()
	}
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Handler is the API's routes with the token check in front.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if cause := s.Panicked(); cause != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: a request handler panicked:", cause)
			return
		}
		var detail []string
		if d, ok := s.backend.(ReadyDetailer); ok {
			detail = d.ReadyDetail(r.Context())
		}
		if !s.backend.Ready(r.Context()) {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready")
		} else {
			fmt.Fprintln(w, "ready")
		}
		for _, line := range detail {
			fmt.Fprintln(w, line)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.backend.Gatherer(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.backend.Status(r.Context())
		if err != nil {
			writeError(w, &Error{Code: "unavailable", Message: err.Error(), Status: http.StatusServiceUnavailable})
			return
		}
		if s.Panicked() != "" {
			st.Ready = false
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		fams, err := metrics.Snapshot(s.backend.Gatherer())
		if err != nil {
			writeError(w, &Error{Code: "internal", Message: err.Error(), Status: http.StatusInternalServerError})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"metrics": fams})
	})
	mux.HandleFunc("POST /v1/send", func(w http.ResponseWriter, r *http.Request) {
		var req SendRequest
		if e := decodeBody(r, &req, `{"to": ADDRESS, "text": TEXT}`); e != nil {
			writeError(w, e)
			return
		}
		if req.Messages != nil {
			if len(req.Messages) == 0 || len(req.Messages) > MaxSendBatch || req.To != "" || req.Text != "" {
				writeError(w, &Error{Code: "bad_request", Message: fmt.Sprintf("messages takes 1 to %d {\"to\", \"text\"} objects, and then no to or text beside it", MaxSendBatch), Status: http.StatusBadRequest})
				return
			}
			res, err := s.backend.SendMessages(r.Context(), req.Messages)
			if err != nil {
				writeBackendError(w, err)
				return
			}
			for _, rr := range res.Results {
				if rr.Error != nil && rr.Error.Code == "outbox_full" {
					w.Header().Set("Retry-After", "1")
					break
				}
			}
			writeJSON(w, http.StatusOK, res)
			return
		}
		res, err := s.backend.SendMessage(r.Context(), req)
		if err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.backend.MessageState(r.Context(), r.PathValue("id"))
		if err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/outbox", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.backend.Outbox(r.Context())
		if err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/inbox", func(w http.ResponseWriter, r *http.Request) {
		after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		if err != nil && r.URL.Query().Get("after") != "" {
			writeError(w, &Error{Code: "bad_request", Message: "after must be a message number", Status: http.StatusBadRequest})
			return
		}
		var wait time.Duration
		if v := r.URL.Query().Get("wait"); v != "" {
			if wait, err = time.ParseDuration(v); err != nil || wait < 0 || wait > 5*time.Minute {
				writeError(w, &Error{Code: "bad_request", Message: "wait must be a duration up to 5m", Status: http.StatusBadRequest})
				return
			}
		}
		s.allowWait(w, wait)
		res, err := s.backend.InboxSince(r.Context(), after, wait)
		if err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("DELETE /v1/inbox/{seq}", func(w http.ResponseWriter, r *http.Request) {
		seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
		if err != nil {
			writeError(w, &Error{Code: "bad_request", Message: "the message number must be a whole number", Status: http.StatusBadRequest})
			return
		}
		if err := s.backend.InboxDelete(r.Context(), seq); err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"deleted": 1})
	})
	mux.HandleFunc("DELETE /v1/inbox", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.backend.InboxClear(r.Context())
		if err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"deleted": n})
	})
	mux.HandleFunc("GET /v1/routes", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.backend.RouteTable(r.Context())
		if err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"routes": res})
	})
	mux.HandleFunc("GET /v1/trace", func(w http.ResponseWriter, r *http.Request) {
		timeout := 10 * time.Second
		if v := r.URL.Query().Get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > time.Minute {
				writeError(w, &Error{Code: "bad_request", Message: "timeout must be a duration up to 1m", Status: http.StatusBadRequest})
				return
			}
			timeout = d
		}
		s.allowWait(w, timeout)
		res, err := s.backend.TraceTo(r.Context(), r.URL.Query().Get("to"), timeout)
		if err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	// Go's profiler, behind the same token as everything else: what an
	// operator needs to see where a busy node spends its time
	// (go tool pprof http://127.0.0.1:7780/debug/pprof/profile?seconds=10).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", s.pprofWait(pprof.Profile, 30*time.Second))
	mux.HandleFunc("GET /debug/pprof/trace", s.pprofWait(pprof.Trace, time.Second))
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	// An endpoint asked with a method it does not serve is 405 with Allow,
	// not "no such endpoint" (the catch-all below would answer that).
	for path, methods := range map[string][]string{
		"/healthz": {"GET"}, "/readyz": {"GET"}, "/metrics": {"GET"}, "/v1/status": {"GET"}, "/v1/stats": {"GET"},
		"/v1/send": {"POST"}, "/v1/messages/{id}": {"GET"}, "/v1/outbox": {"GET"}, "/v1/inbox": {"GET", "DELETE"},
		"/v1/inbox/{seq}": {"DELETE"}, "/v1/routes": {"GET"}, "/v1/trace": {"GET"},
	} {
		mux.HandleFunc(path, methodNotAllowed(methods))
	}
	s.fappRoutes(mux)
	s.groupsRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{Code: "not_found", Message: "no such endpoint: " + r.Method + " " + r.URL.Path, Status: http.StatusNotFound})
	})
	return s.count(s.recoverPanics(s.guard(s.auth(mux))))
}

// methodNotAllowed answers a request for an endpoint that serves only
// methods: 405 method_not_allowed, with Allow (a GET endpoint serves HEAD
// too).
func methodNotAllowed(methods []string) http.HandlerFunc {
	var allow []string
	for _, m := range methods {
		allow = append(allow, m)
		if m == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, &Error{Code: "method_not_allowed", Message: r.Method + " " + r.URL.Path + ": use " + strings.Join(methods, " or "), Status: http.StatusMethodNotAllowed})
	}
}

func (s *Server) auth(next http.Handler) http.Handler {
	if s.token == "" {
		return next
	}
	want := []byte("Bearer " + s.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			// Liveness probes carry no token, and "ok" tells nothing.
			next.ServeHTTP(w, r)
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qpc"`)
			writeError(w, &Error{Code: "unauthorized", Message: "missing or wrong bearer token", Status: http.StatusUnauthorized})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) count(next http.Handler) http.Handler {
	if s.reqs == nil {
		return next
	}
	known := map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/v1/status": true, "/v1/stats": true,
		"/v1/send": true, "/v1/inbox": true, "/v1/routes": true, "/v1/trace": true, "/v1/outbox": true}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		path := r.URL.Path
		switch {
		case strings.HasPrefix(path, "/v1/messages/"):
			path = "/v1/messages/{id}"
		case strings.HasPrefix(path, "/v1/fapp/"):
			path = fappMetricPath(path)
		case strings.HasPrefix(path, "/v1/groups"):
			path = groupsMetricPath(path)
		case !known[path]:
			path = "other" // bound the label's cardinality
		}
		s.reqs.WithLabelValues(path, strconv.Itoa(rec.code)).Inc()
	})
}

func writeBackendError(w http.ResponseWriter, err error) {
	var br *BadRequest
	if errors.As(err, &br) {
		writeError(w, &Error{Code: "bad_request", Message: err.Error(), Status: http.StatusBadRequest})
		return
	}
	var nf *NotFound
	if errors.As(err, &nf) {
		writeError(w, &Error{Code: "not_found", Message: err.Error(), Status: http.StatusNotFound})
		return
	}
	var un *Unavailable
	if errors.As(err, &un) {
		writeError(w, &Error{Code: "unavailable", Message: err.Error(), Status: http.StatusServiceUnavailable})
		return
	}
	var tl *TooLarge
	if errors.As(err, &tl) {
		writeError(w, &Error{Code: "too_large", Message: err.Error(), Status: http.StatusRequestEntityTooLarge})
		return
	}
	var busy *Busy
	if errors.As(err, &busy) {
		secs := max(int((busy.RetryAfter+time.Second-1)/time.Second), 1)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, &Error{Code: busy.Code, Message: err.Error(), Status: http.StatusTooManyRequests})
		return
	}
	writeError(w, &Error{Code: "failed", Message: err.Error(), Status: http.StatusInternalServerError})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// Compact, one value and a newline: the inbox can answer with a
	// thousand messages, and indenting them costs the node more than
	// encoding them (pipe through jq to read it).
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}

// Client talks to a node's admin API (the CLI's side).
type Client struct {
	Addr  string // host:port or a full http:// URL
	Token string
	HTTP  *http.Client
}

// Get fetches path and decodes JSON into v. A non-2xx answer is an *Error.
func (c *Client) Get(ctx context.Context, path string, v any) error {
	return c.Do(ctx, http.MethodGet, path, nil, v)
}

// Post sends body as JSON to path and decodes the answer into v.
func (c *Client) Post(ctx context.Context, path string, body, v any) error {
	return c.Do(ctx, http.MethodPost, path, body, v)
}

// Do makes one request; body (if not nil) is sent as JSON. An address
// on all interfaces (0.0.0.0:7780, [::]:7780, :7780), a node's listen
// address but nowhere to send to, is reached through loopback.
func (c *Client) Do(ctx context.Context, method, path string, body, v any) error {
	base := c.Addr
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	base = loopbackForWildcard(base)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{} // bounded by ctx; long polls need more than a fixed timeout
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("api: is a node running at %s? %w", c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var body struct {
			Error *Error `json:"error"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) == nil && body.Error != nil {
			body.Error.Status = resp.StatusCode
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				body.Error.RetryAfter = time.Duration(s) * time.Second
			}
			return body.Error
		}
		return &Error{Code: "http_" + strconv.Itoa(resp.StatusCode), Message: resp.Status, Status: resp.StatusCode}
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("api: decode %s: %w", path, err)
	}
	return nil
}

// loopbackForWildcard replaces an unspecified host in base (a URL) with
// the loopback address of its family.
func loopbackForWildcard(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	host := u.Hostname()
	ip, perr := netip.ParseAddr(host)
	switch {
	case host == "":
		host = "127.0.0.1"
	case perr == nil && ip.IsUnspecified() && ip.Is4():
		host = "127.0.0.1"
	case perr == nil && ip.IsUnspecified():
		host = "::1"
	default:
		return base
	}
	u.Host = net.JoinHostPort(host, u.Port())
	return u.String()
}
