package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quicprochat/qpc/internal/metrics"
)

type fakeBackend struct {
	ready bool
	full  bool // the outbox is full: sends are refused for now
	reg   *metrics.Node
}

func (f *fakeBackend) Status(context.Context) (Status, error) {
	return Status{Address: "00112233445566778899aabbccddeeff", Ready: f.ready}, nil
}
func (f *fakeBackend) Ready(context.Context) bool    { return f.ready }
func (f *fakeBackend) Gatherer() prometheus.Gatherer { return f.reg.Registry }
func (f *fakeBackend) SendMessage(_ context.Context, r SendRequest) (SendResponse, error) {
	if r.To == "" {
		return SendResponse{}, &BadRequest{Err: errors.New("to is required")}
	}
	if f.full {
		return SendResponse{}, &Busy{Code: "outbox_full", Err: errors.New("outbox full"), RetryAfter: 1500 * time.Millisecond}
	}
	return SendResponse{ID: "id", Status: "sent"}, nil
}
func (f *fakeBackend) SendMessages(_ context.Context, rs []SendRequest) (SendBatchResponse, error) {
	out := SendBatchResponse{}
	for i, r := range rs {
		switch {
		case r.To == "":
			out.Results = append(out.Results, SendResult{Error: &Error{Code: "bad_request", Message: "to is required"}})
		case f.full && i > 0:
			out.Results = append(out.Results, SendResult{Error: &Error{Code: "outbox_full", Message: "outbox full"}})
		default:
			out.Results = append(out.Results, SendResult{ID: fmt.Sprint("id", i), Status: "sent"})
		}
	}
	return out, nil
}
func (f *fakeBackend) MessageState(_ context.Context, id string) (Message, error) {
	if id != "id" {
		return Message{}, &NotFound{Err: errors.New("no such message")}
	}
	return Message{ID: "id", State: "delivered", Attempts: 1}, nil
}
func (f *fakeBackend) Outbox(context.Context) (OutboxResponse, error) {
	return OutboxResponse{Messages: []Message{}}, nil
}
func (f *fakeBackend) InboxSince(context.Context, uint64, time.Duration) (InboxResponse, error) {
	return InboxResponse{}, nil
}
func (f *fakeBackend) InboxDelete(_ context.Context, seq uint64) error {
	if seq != 1 {
		return &NotFound{Err: errors.New("no such message")}
	}
	return nil
}
func (f *fakeBackend) InboxClear(context.Context) (int, error)     { return 3, nil }
func (f *fakeBackend) RouteTable(context.Context) ([]Route, error) { return nil, nil }
func (f *fakeBackend) TraceTo(context.Context, string, time.Duration) (TraceResponse, error) {
	return TraceResponse{}, nil
}

func listen(t *testing.T, o Options, b Backend) *Server {
	t.Helper()
	s, err := Listen(o, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func do(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNonLoopbackRequiresToken(t *testing.T) {
	b := &fakeBackend{reg: metrics.New(metrics.Options{})}
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		if _, err := Listen(Options{Addr: addr}, b); !errors.Is(err, ErrTokenRequired) {
			t.Fatalf("Listen(%s) without token: err = %v, want ErrTokenRequired", addr, err)
		}
	}
}

func TestTokenRejectsRequestsWithout(t *testing.T) {
	m := metrics.New(metrics.Options{})
	b := &fakeBackend{ready: true, reg: m}
	s := listen(t, Options{Addr: "0.0.0.0:0", Token: "s3cret", Metrics: m}, b)
	port := s.Addr()[strings.LastIndexByte(s.Addr(), ':'):]
	base := "http://127.0.0.1" + port
	// Liveness needs no token (probes carry none; "ok" tells nothing).
	if code, body := do(t, base+"/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("/healthz without token: %d %q", code, body)
	}
	for _, path := range []string{"/readyz", "/metrics", "/v1/status", "/v1/stats", "/debug/pprof/"} {
		if code, body := do(t, base+path, ""); code != http.StatusUnauthorized || !strings.Contains(body, `"unauthorized"`) {
			t.Errorf("%s without token: %d %s", path, code, body)
		}
		if code, _ := do(t, base+path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d", path, code)
		}
		if code, _ := do(t, base+path, "s3cret"); code != http.StatusOK {
			t.Errorf("%s with the token: %d", path, code)
		}
	}
	c := &Client{Addr: base, Token: "s3cret"}
	var st Status
	if err := c.Get(context.Background(), "/v1/status", &st); err != nil || st.Address == "" {
		t.Fatalf("client with token: %v %+v", err, st)
	}
	var apiErr *Error
	err := (&Client{Addr: base}).Get(context.Background(), "/v1/status", &st)
	if !errors.As(err, &apiErr) || apiErr.Code != "unauthorized" || apiErr.Status != 401 {
		t.Fatalf("client without token: %v", err)
	}
}

func TestReadyzAndUnknownPath(t *testing.T) {
	m := metrics.New(metrics.Options{})
	b := &fakeBackend{reg: m}
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, b)
	base := "http://" + s.Addr()
	if code, _ := do(t, base+"/readyz", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while not ready = %d", code)
	}
	b.ready = true
	if code, _ := do(t, base+"/readyz", ""); code != http.StatusOK {
		t.Fatalf("readyz when ready = %d", code)
	}
	if code, body := do(t, base+"/v1/nope", ""); code != http.StatusNotFound || !strings.Contains(body, "not_found") {
		t.Fatalf("unknown path: %d %s", code, body)
	}
	if code, body := do(t, base+"/v1/stats", ""); code != 200 || !strings.Contains(body, "qpc_api_requests_total") {
		t.Fatalf("stats: %d %s", code, body)
	}
}

func TestSendValidation(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	c := &Client{Addr: s.Addr()}
	var res SendResponse
	if err := c.Post(context.Background(), "/v1/send", SendRequest{To: "x", Text: "hi"}, &res); err != nil || res.Status != "sent" {
		t.Fatalf("send: %v %+v", err, res)
	}
	var apiErr *Error
	err := c.Post(context.Background(), "/v1/send", SendRequest{Text: "hi"}, &res)
	if !errors.As(err, &apiErr) || apiErr.Code != "bad_request" || apiErr.Status != 400 {
		t.Fatalf("send without to: %v", err)
	}
	if code, _ := do(t, "http://"+s.Addr()+"/v1/inbox?wait=forever", ""); code != 400 {
		t.Fatalf("bad wait: %d", code)
	}
}

// A full outbox is 429 with Retry-After (whole seconds, rounded up), so a
// client backs off instead of losing the message.
func TestSendOutboxFullIs429(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m, full: true})
	c := &Client{Addr: s.Addr()}
	var apiErr *Error
	err := c.Post(context.Background(), "/v1/send", SendRequest{To: "x", Text: "hi"}, &SendResponse{})
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.Code != "outbox_full" || apiErr.RetryAfter != 2*time.Second {
		t.Fatalf("full outbox: %v (%+v)", err, apiErr)
	}
}

func TestMessageState(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	c := &Client{Addr: s.Addr()}
	var msg Message
	if err := c.Get(context.Background(), "/v1/messages/id", &msg); err != nil || msg.State != "delivered" {
		t.Fatalf("message: %v %+v", err, msg)
	}
	var apiErr *Error
	if err := c.Get(context.Background(), "/v1/messages/other", &msg); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("unknown message: %v", err)
	}
	var ob OutboxResponse
	if err := c.Get(context.Background(), "/v1/outbox", &ob); err != nil || ob.Messages == nil {
		t.Fatalf("outbox: %v %+v", err, ob)
	}
}

// The profiler is served, behind the token like everything else.
func TestPprofBehindToken(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Token: "secret", Metrics: m}, &fakeBackend{reg: m})
	if code, _ := do(t, "http://"+s.Addr()+"/debug/pprof/", ""); code != http.StatusUnauthorized {
		t.Fatalf("pprof without the token: %d", code)
	}
	if code, body := do(t, "http://"+s.Addr()+"/debug/pprof/", "secret"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof index: %d %.80s", code, body)
	}
}

// A batch send answers per message; a full outbox sets Retry-After.
func TestSendBatch(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m, full: true})
	c := &Client{Addr: s.Addr()}
	var res SendBatchResponse
	req := SendRequest{Messages: []SendRequest{{To: "a", Text: "1"}, {To: "b", Text: "2"}, {Text: "3"}}}
	if err := c.Post(context.Background(), "/v1/send", req, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 3 || res.Results[0].ID != "id0" || res.Results[1].Error.Code != "outbox_full" || res.Results[2].Error.Code != "bad_request" {
		t.Fatalf("results %+v", res.Results)
	}
	var apiErr *Error
	for _, bad := range []SendRequest{{Messages: []SendRequest{}}, {To: "a", Messages: []SendRequest{{To: "b"}}}, {Messages: make([]SendRequest, MaxSendBatch+1)}} {
		if err := c.Post(context.Background(), "/v1/send", bad, &res); !errors.As(err, &apiErr) || apiErr.Status != 400 {
			t.Fatalf("bad batch %d: %v", len(bad.Messages), err)
		}
	}
}

func TestSendWithAnotherMethodIs405(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	resp, err := http.Get("http://" + s.Addr() + "/v1/send")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET /v1/send: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestInboxDeleteAndClear(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	c := &Client{Addr: s.Addr()}
	var res map[string]int
	if err := c.Do(context.Background(), http.MethodDelete, "/v1/inbox/1", nil, &res); err != nil || res["deleted"] != 1 {
		t.Fatalf("delete 1: %v %v", res, err)
	}
	var apiErr *Error
	if err := c.Do(context.Background(), http.MethodDelete, "/v1/inbox/2", nil, &res); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("delete 2: %v", err)
	}
	if err := c.Do(context.Background(), http.MethodDelete, "/v1/inbox/x", nil, &res); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Fatalf("delete x: %v", err)
	}
	if err := c.Do(context.Background(), http.MethodDelete, "/v1/inbox", nil, &res); err != nil || res["deleted"] != 3 {
		t.Fatalf("clear: %v %v", res, err)
	}
}

// Every endpoint asked with a method it does not serve is 405 with Allow
// and a message naming the method to use, not 404 "no such endpoint"
// (issue 11 item 3: only /v1/send did; the others fell through to the
// catch-all).
func TestWrongMethodIs405WithAllow(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	for _, tc := range []struct{ method, path, allow, use string }{
		{"GET", "/v1/send", "POST", "use POST"},
		{"POST", "/v1/outbox", "GET, HEAD", "use GET"},
		{"DELETE", "/v1/messages/id", "GET, HEAD", "use GET"},
		{"PUT", "/v1/inbox", "GET, HEAD, DELETE", "use GET or DELETE"},
		{"GET", "/v1/inbox/1", "DELETE", "use DELETE"},
		{"POST", "/v1/trace", "GET, HEAD", "use GET"},
		{"POST", "/v1/routes", "GET, HEAD", "use GET"},
		{"POST", "/v1/status", "GET, HEAD", "use GET"},
		{"POST", "/healthz", "GET, HEAD", "use GET"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+s.Addr()+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := tc.method + " " + tc.path + ": " + tc.use
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow || errorCode(b) != "method_not_allowed" || !strings.Contains(string(b), want) {
			t.Errorf("%s %s: %d Allow %q %s; want 405 Allow %q saying %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), b, tc.allow, want)
		}
	}
	// The right method still reaches its handler, HEAD a GET endpoint's.
	for _, r := range [][2]string{{"GET", "/v1/outbox"}, {"HEAD", "/v1/outbox"}, {"DELETE", "/v1/inbox/1"}, {"GET", "/v1/inbox"}} {
		if code, _, body := raw(t, s.Addr(), r[0], r[1], "", nil, ""); code != http.StatusOK {
			t.Errorf("%s %s: %d %s", r[0], r[1], code, body)
		}
	}
}
