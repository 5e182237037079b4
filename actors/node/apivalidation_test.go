package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
)

// apiCall makes one raw request to the admin API (body as given, not
// encoded) and returns the status, the Allow header and the body.
func apiCall(t *testing.T, base, method, path, contentType string, body []byte) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Allow"), b
}

// outboxLen is what GET /v1/outbox says is pending.
func outboxLen(t *testing.T, n *Node) int {
	t.Helper()
	var ob api.OutboxResponse
	if err := (&api.Client{Addr: n.APIAddr()}).Get(context.Background(), "/v1/outbox", &ob); err != nil {
		t.Fatal(err)
	}
	if ob.Pending != len(ob.Messages) {
		t.Fatalf("outbox: pending %d with %d messages listed", ob.Pending, len(ob.Messages))
	}
	return ob.Pending
}

// The node's own request validation (apibackend.go) through the real
// HTTP server of a started node (issue 11 item 3; the api package's
// tests use a fake backend). Each bad request gets its status code and a
// coded JSON error whose message says what is wrong, and nothing is
// queued: the outbox is as it was.
func TestAPIRefusesBadRequestsAndQueuesNothing(t *testing.T) {
	n, _ := startNode(t, testConfig(t))
	peer, _ := crypto.NewIdentity(nil) // announced, not linked: a send to it is queued
	if err := n.Inject("test", peer.Address(), announceFrame(t, peer)); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, n, peer.Address())
	stranger, _ := crypto.NewIdentity(nil) // never announced
	to, self, unknown := peer.Address().String(), n.Address().String(), stranger.Address().String()
	send := func(to, text string) []byte {
		b, _ := json.Marshal(api.SendRequest{To: to, Text: text})
		return b
	}
	batch := func(k int) []byte {
		b, _ := json.Marshal(api.SendRequest{Messages: make([]api.SendRequest, k)})
		return b
	}
	const jsonCT = "application/json"
	overLimit := fmt.Sprintf("text of %d bytes, at most %d bytes", MaxTextSize+1, MaxTextSize)

	for _, tc := range []struct {
		name, method, path, ct string
		body                   []byte
		status                 int
		code, says             string
	}{
		// POST /v1/send
		{"bad address", "POST", "/v1/send", jsonCT, send("xyz", "hi"), 400, "bad_request", `"xyz" has 3 characters, want 32 hex characters`},
		{"address not hex", "POST", "/v1/send", jsonCT, send(strings.Repeat("z", 32), "hi"), 400, "bad_request", "bad address"},
		{"no address", "POST", "/v1/send", jsonCT, []byte(`{"text":"hi"}`), 400, "bad_request", "bad address"},
		{"empty text", "POST", "/v1/send", jsonCT, send(to, ""), 400, "bad_request", "text is empty"},
		{"text over the limit", "POST", "/v1/send", jsonCT, send(to, strings.Repeat("x", MaxTextSize+1)), 413, "too_large", overLimit},
		{"text not UTF-8", "POST", "/v1/send", jsonCT, []byte(`{"to":"` + to + `","text":"caf` + "\xe9" + `"}`), 400, "bad_request", "not valid UTF-8"},
		{"our own address", "POST", "/v1/send", jsonCT, send(self, "hi"), 400, "bad_request", "is this node's own address"},
		{"unknown destination", "POST", "/v1/send", jsonCT, send(unknown, "hi"), 400, "bad_request", "unknown destination"},
		{"malformed JSON", "POST", "/v1/send", jsonCT, []byte(`{"to":`), 400, "bad_request", "body must be JSON"},
		{"a JSON value of another type", "POST", "/v1/send", jsonCT, []byte(`{"to":5,"text":"hi"}`), 400, "bad_request", "body must be JSON"},
		{"something after the JSON", "POST", "/v1/send", jsonCT, append(send(to, "hi"), []byte(` {}`)...), 400, "bad_request", "with nothing after it"},
		{"not JSON", "POST", "/v1/send", "text/plain", []byte("hi"), 415, "unsupported_media_type", "must be Content-Type: application/json"},
		{"a body over 1 MiB", "POST", "/v1/send", jsonCT, send(to, strings.Repeat("x", api.MaxBodySize)), 413, "too_large", fmt.Sprintf("the limit of %d bytes", api.MaxBodySize)},
		// POST /v1/send with messages
		{"batch over the limit", "POST", "/v1/send", jsonCT, batch(api.MaxSendBatch + 1), 400, "bad_request", "messages takes 1 to 256"},
		{"empty batch", "POST", "/v1/send", jsonCT, []byte(`{"messages":[]}`), 400, "bad_request", "messages takes 1 to 256"},
		{"batch with a to beside it", "POST", "/v1/send", jsonCT, []byte(`{"to":"` + to + `","messages":[{"to":"` + to + `","text":"hi"}]}`), 400, "bad_request", "no to or text beside it"},
		// Wrong methods
		{"GET /v1/send", "GET", "/v1/send", "", nil, 405, "method_not_allowed", "GET /v1/send: use POST"},
		{"POST /v1/outbox", "POST", "/v1/outbox", jsonCT, []byte(`{}`), 405, "method_not_allowed", "POST /v1/outbox: use GET"},
		{"POST /v1/messages/{id}", "POST", "/v1/messages/" + unknown, "", nil, 405, "method_not_allowed", "use GET"},
		{"PUT /v1/inbox", "PUT", "/v1/inbox", "", nil, 405, "method_not_allowed", "use GET or DELETE"},
		{"POST /v1/trace", "POST", "/v1/trace?to=" + to, "", nil, 405, "method_not_allowed", "use GET"},
		// GET /v1/messages/{id}
		{"message id not an id", "GET", "/v1/messages/nope", "", nil, 400, "bad_request", "message id"},
		{"unknown message id", "GET", "/v1/messages/" + unknown, "", nil, 404, "not_found", "no message " + unknown + " in the outbox"},
		// The inbox
		{"inbox after not a number", "GET", "/v1/inbox?after=x", "", nil, 400, "bad_request", "after must be a message number"},
		{"inbox wait not a duration", "GET", "/v1/inbox?wait=forever", "", nil, 400, "bad_request", "wait must be a duration up to 5m"},
		{"inbox wait over 5m", "GET", "/v1/inbox?wait=6m", "", nil, 400, "bad_request", "wait must be a duration up to 5m"},
		{"inbox delete not a number", "DELETE", "/v1/inbox/x", "", nil, 400, "bad_request", "must be a whole number"},
		{"inbox delete unknown", "DELETE", "/v1/inbox/99", "", nil, 404, "not_found", "no message #99 in the inbox"},
		// GET /v1/trace
		{"trace without to", "GET", "/v1/trace", "", nil, 400, "bad_request", "bad address"},
		{"trace to a bad address", "GET", "/v1/trace?to=xyz", "", nil, 400, "bad_request", "bad address"},
		{"trace to an unknown destination", "GET", "/v1/trace?to=" + unknown, "", nil, 400, "bad_request", "unknown destination"},
		{"trace to our own address", "GET", "/v1/trace?to=" + self, "", nil, 400, "bad_request", self + " is this node's own address"},
		{"trace timeout not a duration", "GET", "/v1/trace?to=" + to + "&timeout=soon", "", nil, 400, "bad_request", "timeout must be a duration up to 1m"},
		{"trace timeout over 1m", "GET", "/v1/trace?to=" + to + "&timeout=2m", "", nil, 400, "bad_request", "timeout must be a duration up to 1m"},
		// No such endpoint
		{"unknown path", "GET", "/v1/nope", "", nil, 404, "not_found", "no such endpoint: GET /v1/nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := outboxLen(t, n)
			status, allow, body := apiCall(t, "http://"+n.APIAddr(), tc.method, tc.path, tc.ct, tc.body)
			var e struct {
				Error *api.Error `json:"error"`
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || e.Error == nil {
				t.Fatalf("%d %s: not a coded JSON error: %v", status, body, err)
			}
			if status != tc.status || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.says) {
				t.Fatalf("%d %s %q, want %d %s saying %q", status, e.Error.Code, e.Error.Message, tc.status, tc.code, tc.says)
			}
			if status == 405 && allow == "" {
				t.Fatal("405 without Allow")
			}
			if got := outboxLen(t, n); got != before {
				t.Fatalf("%d messages in the outbox after a refused request, %d before", got, before)
			}
		})
	}

	// In a batch each message is answered on its own: the bad ones are
	// refused with their code and reason, none of them is queued.
	var res api.SendBatchResponse
	bad := []api.SendRequest{
		{To: "xyz", Text: "hi"}, {To: to}, {To: to, Text: strings.Repeat("x", MaxTextSize+1)},
		{To: self, Text: "hi"}, {To: unknown, Text: "hi"},
	}
	want := []struct{ code, says string }{
		{"bad_request", "bad address"}, {"bad_request", "text is empty"}, {"too_large", overLimit},
		{"bad_request", "is this node's own address"}, {"bad_request", "unknown destination"},
	}
	if err := (&api.Client{Addr: n.APIAddr()}).Post(context.Background(), "/v1/send", api.SendRequest{Messages: bad}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != len(bad) {
		t.Fatalf("%d results for %d messages", len(res.Results), len(bad))
	}
	for i, w := range want {
		r := res.Results[i]
		if r.ID != "" || r.Error == nil || r.Error.Code != w.code || !strings.Contains(r.Error.Message, w.says) {
			t.Errorf("batch message %d: %+v %+v, want %s saying %q", i, r, r.Error, w.code, w.says)
		}
	}
	if got := outboxLen(t, n); got != 0 {
		t.Fatalf("%d messages in the outbox after a batch of refused messages", got)
	}
	if got := testutil.ToFloat64(n.Metrics().Mesh.Messages.WithLabelValues("accepted")); got != 0 {
		t.Fatalf("messages accepted: %v, want 0", got)
	}

	// The check can see a queued message: a good send beside a bad one
	// queues exactly one.
	res = api.SendBatchResponse{}
	if err := (&api.Client{Addr: n.APIAddr()}).Post(context.Background(), "/v1/send", api.SendRequest{Messages: []api.SendRequest{{To: to, Text: "hi"}, {To: self, Text: "hi"}}}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Results[0].Error != nil || res.Results[0].ID == "" || res.Results[1].Error == nil {
		t.Fatalf("good and bad: %+v", res.Results)
	}
	if got := outboxLen(t, n); got != 1 {
		t.Fatalf("%d messages in the outbox after one good send, want 1", got)
	}
}
