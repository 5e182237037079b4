package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/metrics"
)

// raw makes one request with the given method, Host, headers and body and
// returns the status, the error code of a JSON error body, and the body.
func raw(t *testing.T, addr, method, path, host string, hdr map[string]string, body string) (int, string, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, errorCode(b), string(b)
}

func errorCode(b []byte) string {
	s := string(b)
	i := strings.Index(s, `"code":"`)
	if i < 0 {
		return ""
	}
	s = s[i+len(`"code":"`):]
	return s[:strings.IndexByte(s, '"')]
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// A page on another site must not reach the API through a name of its
// own that resolves to 127.0.0.1 (DNS rebinding): a Host that is not the
// listen address or a loopback name with its port is refused, on every
// path, before anything else is looked at.
func TestForeignHostRefused(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m, ready: true})
	p := port(s.Addr())
	for _, host := range []string{"evil.example:" + p, "evil.example", "localhost:1", "127.0.0.1", "127.0.0.2:" + p, "localhost.evil.example:" + p} {
		for _, path := range []string{"/v1/inbox", "/v1/status", "/metrics", "/readyz"} {
			if code, ecode, body := raw(t, s.Addr(), "GET", path, host, nil, ""); code != http.StatusForbidden || ecode != "host_not_allowed" {
				t.Errorf("GET %s with Host %q: %d %s", path, host, code, body)
			}
		}
	}
	_, _, body := raw(t, s.Addr(), "GET", "/v1/status", "evil.example:"+p, nil, "")
	if !strings.Contains(body, "api.allowed_hosts") {
		t.Errorf("the refusal does not say how to allow a host: %s", body)
	}
	for _, host := range []string{"127.0.0.1:" + p, "localhost:" + p, "LOCALHOST:" + p, "[::1]:" + p, "localhost.:" + p} {
		if code, _, body := raw(t, s.Addr(), "GET", "/v1/status", host, nil, ""); code != http.StatusOK {
			t.Errorf("GET /v1/status with Host %q: %d %s", host, code, body)
		}
	}
}

// Hosts named in api.allowed_hosts are served: a name alone on any port
// (a reverse proxy's), a name with a port on that port only. On a
// wildcard listen address the node's IP literals are its listen address.
func TestAllowedHostsAndWildcardListen(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m, AllowedHosts: []string{"node.example", "Other.Example:8443"}}, &fakeBackend{reg: m})
	p := port(s.Addr())
	for host, want := range map[string]int{
		"node.example": 200, "node.example:" + p: 200, "NODE.example:443": 200,
		"other.example:8443": 200, "other.example:" + p: 403, "other.example": 403, "evil.example:" + p: 403,
	} {
		if code, _, body := raw(t, s.Addr(), "GET", "/v1/outbox", host, nil, ""); code != want {
			t.Errorf("Host %q: %d, want %d: %s", host, code, want, body)
		}
	}

	w := listen(t, Options{Addr: "0.0.0.0:0", Token: "tok", Metrics: m}, &fakeBackend{reg: m})
	wp := port(w.Addr())
	auth := map[string]string{"Authorization": "Bearer tok"}
	for host, want := range map[string]int{
		"127.0.0.1:" + wp: 200, "192.0.2.7:" + wp: 200, "[2001:db8::1]:" + wp: 200, "localhost:" + wp: 200,
		"192.0.2.7:1": 403, "relay.example:" + wp: 403,
	} {
		if code, _, body := raw(t, "127.0.0.1:"+wp, "GET", "/v1/outbox", host, auth, ""); code != want {
			t.Errorf("wildcard listen, Host %q: %d, want %d: %s", host, code, want, body)
		}
	}
}

// A cross-origin request (another site's page, a sandboxed frame's
// "null") is refused; the node's own origin (the web console it will
// serve) is not.
func TestCrossOriginRefused(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	send := `{"to": "x", "text": "hi"}`
	js := func(origin string) map[string]string {
		return map[string]string{"Content-Type": "application/json", "Origin": origin}
	}
	for _, origin := range []string{"http://evil.example", "null", "http://localhost:1", "https://evil.example:" + port(s.Addr())} {
		if code, ecode, body := raw(t, s.Addr(), "POST", "/v1/send", "", js(origin), send); code != http.StatusForbidden || ecode != "cross_origin" {
			t.Errorf("POST /v1/send from %s: %d %s", origin, code, body)
		}
		if code, ecode, _ := raw(t, s.Addr(), "GET", "/v1/inbox", "", js(origin), ""); code != http.StatusForbidden || ecode != "cross_origin" {
			t.Errorf("GET /v1/inbox from %s: %d", origin, code)
		}
		if code, _, _ := raw(t, s.Addr(), "DELETE", "/v1/inbox", "", js(origin), ""); code != http.StatusForbidden {
			t.Errorf("DELETE /v1/inbox from %s: %d", origin, code)
		}
	}
	own := "http://" + s.Addr()
	if code, _, body := raw(t, s.Addr(), "POST", "/v1/send", "", js(own), send); code != http.StatusOK {
		t.Errorf("POST /v1/send from the node's own origin %s: %d %s", own, code, body)
	}
	if code, _, body := raw(t, s.Addr(), "GET", "/v1/inbox", "localhost:"+port(s.Addr()), js("http://localhost:"+port(s.Addr())), ""); code != http.StatusOK {
		t.Errorf("GET /v1/inbox from its own origin by the name localhost: %d %s", code, body)
	}
}

// A POST or DELETE with a body is JSON: a form or text/plain (what a page
// may send another site without asking) is 415.
func TestBodyMustBeJSON(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	send := `{"to": "x", "text": "hi"}`
	for _, ct := range []string{"text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonx"} {
		hdr := map[string]string{"Content-Type": ct}
		if code, ecode, body := raw(t, s.Addr(), "POST", "/v1/send", "", hdr, send); code != http.StatusUnsupportedMediaType || ecode != "unsupported_media_type" {
			t.Errorf("POST /v1/send as %q: %d %s", ct, code, body)
		}
		if code, _, _ := raw(t, s.Addr(), "DELETE", "/v1/inbox/1", "", hdr, "{}"); code != http.StatusUnsupportedMediaType {
			t.Errorf("DELETE with a %q body: %d", ct, code)
		}
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON"} {
		if code, _, body := raw(t, s.Addr(), "POST", "/v1/send", "", map[string]string{"Content-Type": ct}, send); code != http.StatusOK {
			t.Errorf("POST /v1/send as %q: %d %s", ct, code, body)
		}
	}
	// No body: no type needed.
	if code, _, body := raw(t, s.Addr(), "DELETE", "/v1/inbox/1", "", nil, ""); code != http.StatusOK {
		t.Errorf("DELETE without a body: %d %s", code, body)
	}
}

// One JSON value per body: what follows it is refused, not ignored.
func TestTrailingGarbageRefused(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	js := map[string]string{"Content-Type": "application/json"}
	for _, body := range []string{`{"to": "x", "text": "hi"} garbage`, `{"to": "x", "text": "hi"}{"to": "y", "text": "again"}`, `{"to": "x", "text": "hi"}]`, `{"to": "x", "text": "hi"} 1`} {
		if code, ecode, res := raw(t, s.Addr(), "POST", "/v1/send", "", js, body); code != http.StatusBadRequest || ecode != "bad_request" {
			t.Errorf("POST %q: %d %s", body, code, res)
		}
	}
	if code, _, res := raw(t, s.Addr(), "POST", "/v1/send", "", js, "{\"to\": \"x\", \"text\": \"hi\"}\n \t\n"); code != http.StatusOK {
		t.Errorf("trailing white space: %d %s", code, res)
	}
}

// A body that is not UTF-8 is refused: the JSON decoder would replace the
// bad bytes with U+FFFD and the text would go out other than it was
// given (issue 11 item 3: it was sent so).
func TestBodyNotUTF8Refused(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	js := map[string]string{"Content-Type": "application/json"}
	for _, body := range []string{"{\"to\": \"x\", \"text\": \"caf\xe9\"}", "{\"messages\": [{\"to\": \"x\", \"text\": \"\xff\"}]}", "{\"to\": \"x\", \"text\": \"\xed\xa0\x80\"}"} {
		if code, ecode, res := raw(t, s.Addr(), "POST", "/v1/send", "", js, body); code != http.StatusBadRequest || ecode != "bad_request" || !strings.Contains(res, "not valid UTF-8 (byte ") {
			t.Errorf("POST %q: %d %s", body, code, res)
		}
	}
	if code, _, res := raw(t, s.Addr(), "POST", "/v1/send", "", js, `{"to": "x", "text": "café \ufffd ☃"}`); code != http.StatusOK {
		t.Errorf("UTF-8 text: %d %s", code, res)
	}
	// Escapes of half a surrogate pair stand for no character: the JSON
	// decoder would send U+FFFD in their place.
	for _, body := range []string{`{"to": "x", "text": "a\ud800b"}`, `{"to": "x", "text": "\udc00"}`, `{"to": "x", "text": "\uD83D\u0041"}`, `{"messages": [{"to": "x", "text": "\ud83d"}]}`} {
		if code, ecode, res := raw(t, s.Addr(), "POST", "/v1/send", "", js, body); code != http.StatusBadRequest || ecode != "bad_request" || !strings.Contains(res, "surrogate") {
			t.Errorf("POST %s: %d %s", body, code, res)
		}
	}
	// A pair is a character, and an escaped backslash is no escape.
	for _, body := range []string{`{"to": "x", "text": "\ud83d\ude00"}`, `{"to": "x", "text": "\\ud800"}`, `{"to": "x", "text": "\u00e9\n\"\\"}`} {
		if code, _, res := raw(t, s.Addr(), "POST", "/v1/send", "", js, body); code != http.StatusOK {
			t.Errorf("POST %s: %d %s", body, code, res)
		}
	}
}

// A body over the limit is 413 with the limit in bytes, decided from
// Content-Length before a byte of it is read; a chunked one when it
// passes the limit. A text of any length a message may carry fits.
func TestBodyOverLimitIs413(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	// Announce a huge body and send none of it: the answer comes at once.
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /v1/send HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", s.Addr(), 100<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || errorCode(b) != "too_large" || !strings.Contains(string(b), fmt.Sprint(MaxBodySize)) {
		t.Fatalf("100 MiB announced: %d %s", resp.StatusCode, b)
	}
	// Chunked (no length given): refused once it passes the limit.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"to": "x", "text": "`))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for i := 0; i <= MaxBodySize/len(chunk)+1; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://"+s.Addr()+"/v1/send", pr)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	pr.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), fmt.Sprint(MaxBodySize)) {
		t.Fatalf("chunked over the limit: %d %s", resp.StatusCode, b)
	}
	// The longest text, every byte escaped by JSON, is within the limit.
	text := strings.Repeat("\x01", 65360)
	c := &Client{Addr: s.Addr()}
	var res SendResponse
	if err := c.Post(context.Background(), "/v1/send", SendRequest{To: "x", Text: text}, &res); err != nil {
		t.Fatalf("a text of 65360 control characters: %v", err)
	}
}

// A client that trickles its request (slowloris) is cut off: headers
// within ReadHeaderTimeout, the whole request within ReadTimeout.
func TestTrickledBodyCutOff(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /v1/send HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", s.Addr())
	// One byte a second until the server hangs up (or 15 s).
	closed := make(chan time.Duration, 1)
	var answer []byte
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			answer = append(answer, buf[:n]...)
			if err != nil {
				closed <- time.Since(start)
				return
			}
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	limit := time.After(15 * time.Second)
	for {
		select {
		case d := <-closed:
			t.Logf("a body trickled at 1 byte/s: connection closed after %.1fs", d.Seconds())
			if d > ReadTimeout+2*time.Second {
				t.Fatalf("closed after %s, ReadTimeout is %s", d, ReadTimeout)
			}
			if !strings.HasPrefix(string(answer), "HTTP/1.1 408") || !strings.Contains(string(answer), `"request_timeout"`) {
				t.Fatalf("answered %q, want 408 request_timeout", answer)
			}
			return
		case <-tick.C:
			conn.Write([]byte(" ")) // white space before the JSON: the decoder waits for more
		case <-limit:
			t.Fatal("a body trickled at 1 byte/s is still open after 15 s")
		}
	}
}

// The client reaches a node listening on all interfaces through loopback
// (so its Host is one the node serves), and sends JSON as JSON.
func TestClientToWildcardListen(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "0.0.0.0:0", Token: "tok", Metrics: m}, &fakeBackend{reg: m})
	for _, addr := range []string{"0.0.0.0:" + port(s.Addr()), ":" + port(s.Addr()), "http://0.0.0.0:" + port(s.Addr())} {
		c := &Client{Addr: addr, Token: "tok"}
		var res SendResponse
		if err := c.Post(context.Background(), "/v1/send", SendRequest{To: "x", Text: "hi"}, &res); err != nil {
			t.Errorf("client at %s: %v", addr, err)
		}
	}
}

// slowInbox answers a long poll when its wait is over.
type slowInbox struct{ *fakeBackend }

func (s slowInbox) InboxSince(ctx context.Context, after uint64, wait time.Duration) (InboxResponse, error) {
	select {
	case <-time.After(wait): // the long poll's own wait, as the node's
	case <-ctx.Done():
		return InboxResponse{}, ctx.Err()
	}
	return InboxResponse{Messages: []InboxEntry{}, Last: after}, nil
}

// The write deadline counts from the end of what the request asked to
// wait: a long poll (and a profile) longer than WriteTimeout is answered.
func TestLongPollOutlastsWriteTimeout(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m, writeTimeout: 100 * time.Millisecond}, slowInbox{&fakeBackend{reg: m}})
	c := &Client{Addr: s.Addr()}
	var res InboxResponse
	if err := c.Get(context.Background(), "/v1/inbox?after=7&wait=700ms", &res); err != nil || res.Last != 7 {
		t.Fatalf("long poll of 700ms with a write timeout of 100ms: %+v %v", res, err)
	}
	if code, body := do(t, "http://"+s.Addr()+"/debug/pprof/profile?seconds=1", ""); code != 200 {
		t.Fatalf("profile of 1s with a write timeout of 100ms: %d %.200s", code, body)
	}
}
