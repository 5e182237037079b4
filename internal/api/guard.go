package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// What the admin API accepts from a client, and for how long it waits on
// one. A browser may be made to send requests to 127.0.0.1 by any page it
// shows; guard refuses those that do not come from the node's own pages.
const (
	// MaxBodySize is the largest request body (413 beyond it). The longest
	// text a message carries fits with every byte escaped by JSON.
	MaxBodySize = 1 << 20
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading a whole request, body included: a client
	// that trickles its body is cut off then.
	ReadTimeout = 10 * time.Second
	// WriteTimeout bounds writing an answer, counted from the end of the
	// wait the request asked for (a long poll's wait, a trace's timeout, a
	// profile's seconds), so a client that stops reading is cut off.
	WriteTimeout = 60 * time.Second
	// IdleTimeout closes a kept-alive connection that sends nothing.
	IdleTimeout = 2 * time.Minute
)

// hostPolicy decides which Host headers the API answers: the listen
// address, a loopback name (localhost, 127.0.0.1, [::1]) with the listen
// port, the node's IP literals with that port when it listens on all
// interfaces, and the names of api.allowed_hosts. A page that got a
// browser to send its requests here through a name of its own (DNS
// rebinding) carries that name in Host and is refused.
type hostPolicy struct {
	port       string
	listenHost string // lower case, without brackets; "" on a wildcard address
	wildcard   bool
	any        bool            // "*": every Host
	names      map[string]bool // allowed on any port
	hostPorts  map[string]bool // "name:port"
}

func newHostPolicy(listen string, allowed []string) hostPolicy {
	p := hostPolicy{names: map[string]bool{}, hostPorts: map[string]bool{}}
	host, port, _ := net.SplitHostPort(listen)
	p.port = port
	host = normHost(host)
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		p.wildcard = true
	} else {
		p.listenHost = host
	}
	for _, a := range allowed {
		if a == "*" {
			p.any = true
			continue
		}
		h, port := splitHost(a)
		if port == "" {
			p.names[h] = true
		} else {
			p.hostPorts[net.JoinHostPort(h, port)] = true
		}
	}
	return p
}

// normHost lowers a host name and drops a final dot and IPv6 brackets.
func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")), ".")
}

// splitHost splits a Host header (name, name:port, [v6], [v6]:port) into
// a normalized host and the port ("" when none is given).
func splitHost(h string) (host, port string) {
	if hh, pp, err := net.SplitHostPort(h); err == nil {
		return normHost(hh), pp
	}
	return normHost(h), ""
}

func (p hostPolicy) allows(hostHeader string) bool {
	if p.any {
		return true
	}
	host, port := splitHost(hostHeader)
	if host == "" {
		return false
	}
	if p.names[host] {
		return true
	}
	if port == "" {
		port = "80" // what a browser leaves out of http:// URLs
	}
	if p.hostPorts[net.JoinHostPort(host, port)] {
		return true
	}
	if port != p.port {
		return false
	}
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	case p.listenHost:
		return true
	}
	if p.wildcard {
		// An IP literal is no rebinding: a page whose origin is this
		// address is the node's own.
		_, err := netip.ParseAddr(host)
		return err == nil
	}
	return false
}

// served lists what Host may be, for the refusal's message.
func (p hostPolicy) served() string {
	var out []string
	if p.listenHost != "" && p.listenHost != "localhost" && p.listenHost != "127.0.0.1" && p.listenHost != "::1" {
		out = append(out, net.JoinHostPort(p.listenHost, p.port))
	}
	if p.wildcard {
		out = append(out, "an IP address of this host:"+p.port)
	}
	out = append(out, "localhost:"+p.port, "127.0.0.1:"+p.port, "[::1]:"+p.port)
	for n := range p.names {
		out = append(out, n)
	}
	for hp := range p.hostPorts {
		out = append(out, hp)
	}
	return strings.Join(out, ", ")
}

// guard refuses, before anything else looks at a request: a Host the
// node does not answer to (403 host_not_allowed), an Origin that is not
// the node's own (403 cross_origin), a body that is not JSON (415
// unsupported_media_type) or is over MaxBodySize (413 too_large, decided
// from Content-Length before reading). It gives every request the write
// deadline WriteTimeout; handlers that wait extend it (allowWait).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hosts.allows(r.Host) {
			writeError(w, &Error{Code: "host_not_allowed", Status: http.StatusForbidden, Message: fmt.Sprintf(
				"Host %q is not an address of this node's admin API (%s); add it to api.allowed_hosts to serve it", r.Host, s.hosts.served())})
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
			writeError(w, &Error{Code: "cross_origin", Status: http.StatusForbidden, Message: fmt.Sprintf(
				"Origin %q is not this node's own (http://%s): cross-origin requests are refused", o, r.Host)})
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if ct := r.Header.Get("Content-Type"); r.ContentLength != 0 || ct != "" {
				if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
					if ct == "" {
						ct = "none"
					}
					writeError(w, &Error{Code: "unsupported_media_type", Status: http.StatusUnsupportedMediaType, Message: fmt.Sprintf(
						"a %s body must be Content-Type: application/json (got %s)", r.Method, ct)})
					return
				}
			}
		}
		if r.ContentLength > MaxBodySize {
			writeError(w, tooLarge(r.ContentLength))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.writeTimeout))
		next.ServeHTTP(w, r)
	})
}

func tooLarge(n int64) *Error {
	what := "the request body is over"
	if n > 0 {
		what = "a request body of " + strconv.FormatInt(n, 10) + " bytes is over"
	}
	return &Error{Code: "too_large", Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("%s the limit of %d bytes", what, MaxBodySize)}
}

// sameOrigin reports whether origin (scheme://host[:port]) names the host
// the request was sent to: the node's own page.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.User != nil {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

// allowWait extends the request's write deadline by d: the handler
// answers only after waiting that long.
func (s *Server) allowWait(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + s.writeTimeout))
}

// decodeBody reads r's body as exactly one JSON value into v: what
// follows it is refused, and so is a body that is not UTF-8 (the JSON
// decoder would replace what is not with U+FFFD, and a text would be sent
// other than it was given). The error is the coded answer.
func decodeBody(r *http.Request, v any, what string) *Error {
	body, err := io.ReadAll(r.Body) // at most MaxBodySize (guard)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge(r.ContentLength)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &Error{Code: "request_timeout", Status: http.StatusRequestTimeout, Message: fmt.Sprintf("the request did not arrive within %s", ReadTimeout)}
	case err != nil:
		return &Error{Code: "bad_request", Status: http.StatusBadRequest, Message: "reading the body: " + err.Error()}
	}
	if !utf8.Valid(body) {
		at := 0
		for at < len(body) {
			c, size := utf8.DecodeRune(body[at:])
			if c == utf8.RuneError && size == 1 {
				break
			}
			at += size
		}
		return &Error{Code: "bad_request", Status: http.StatusBadRequest, Message: fmt.Sprintf(
			"body must be JSON %s: it is not valid UTF-8 (byte %d); a text is sent as UTF-8", what, at)}
	}
	if at, ok := loneSurrogate(body); ok {
		return &Error{Code: "bad_request", Status: http.StatusBadRequest, Message: fmt.Sprintf(
			"body must be JSON %s: the escape at byte %d is half of a UTF-16 surrogate pair, which stands for no character; a text is sent as UTF-8", what, at)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return &Error{Code: "bad_request", Status: http.StatusBadRequest, Message: "body must be JSON " + what + ": " + err.Error()}
	}
	if _, terr := dec.Token(); terr != io.EOF {
		return &Error{Code: "bad_request", Status: http.StatusBadRequest, Message: "body must be one JSON value " + what + ", with nothing after it"}
	}
	return nil
}

// loneSurrogate finds a \uD800–\uDFFF escape in a JSON text that is not
// a high surrogate followed at once by a low one: the JSON decoder would
// turn it into U+FFFD, and a text would be sent other than it was given.
// It reports the offset of the first such escape.
func loneSurrogate(body []byte) (int, bool) {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range body[i+2 : i+6] {
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case 'A' <= c && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // an escape of one character (\\, \", \n, ...): skip it whole
			continue
		}
		switch {
		case 0xD800 <= r && r <= 0xDBFF:
			if lo, ok := hex4(i + 6); ok && 0xDC00 <= lo && lo <= 0xDFFF {
				i += 11 // the pair
				continue
			}
			return i, true
		case 0xDC00 <= r && r <= 0xDFFF:
			return i, true
		}
		i += 5
	}
	return 0, false
}

// pprofWait lets a profile or trace run for its seconds (default def).
func (s *Server) pprofWait(h http.HandlerFunc, def time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d := def
		if s, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64); err == nil && s > 0 {
			d = time.Duration(s * float64(time.Second))
		}
		s.allowWait(w, d)
		h(w, r)
	}
}
