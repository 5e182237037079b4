package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a ')' in it; utime 250, stime 50.
	line := "1234 (qpc (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 10\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil || got != 3.0 {
		t.Fatalf("parseStatCPU = %v, %v; want 3.0", got, err)
	}
	if _, err := parseStatCPU([]byte("1234 (qpc) S 1")); err == nil {
		t.Fatal("short line accepted")
	}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		if _, err := parseStatCPU(b); err != nil {
			t.Fatalf("own /proc/self/stat: %v", err)
		}
	}
}

func TestAnalyzeExactlyOnce(t *testing.T) {
	const a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sent := []string{"m-000000", "m-000001", "m-000002", "m-000003"}
	entries := []inboxEntry{
		{Seq: 1, Text: "m-000000", From: a},
		{Seq: 2, Text: "m-000001", From: a},
		{Seq: 3, Text: "m-000001", From: a}, // duplicate
		{Seq: 4, Text: "m-000003", From: a},
		{Seq: 5, Text: "hello", From: a},                                     // not sent by the harness
		{Seq: 6, Text: "m-000003", From: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}, // from someone else
	}
	var r RunReport
	r.analyze(entries, sent, a)
	if r.Delivered != 3 || r.Duplicates != 1 || r.Missing != 1 || r.Unexpected != 2 || r.InboxEntries != 6 {
		t.Fatalf("analyze: %+v", r)
	}
	if !strings.Contains(strings.Join(r.Samples, "\n"), "missing: m-000002") {
		t.Fatalf("samples: %q", r.Samples)
	}

	good := RunReport{Requested: 2, Sent: 2, States: map[string]int{"delivered": 2}, StatesChecked: 2}
	good.analyze([]inboxEntry{{Text: "m-000000", From: a}, {Text: "m-000001", From: a}}, []string{"m-000000", "m-000001"}, a)
	if err := good.ZeroLoss(); err != nil {
		t.Fatalf("ZeroLoss of a clean run: %v", err)
	}
	bad := good
	bad.States = map[string]int{"delivered": 1, "sent": 1}
	if err := bad.ZeroLoss(); err == nil || !strings.Contains(err.Error(), "1 of 2 delivered") {
		t.Fatalf("ZeroLoss with a message not delivered: %v", err)
	}
	bad = good
	bad.StatesNote = "no endpoint"
	if bad.ZeroLoss() == nil {
		t.Fatal("ZeroLoss without states checked passed")
	}
}

func TestChaosPlan(t *testing.T) {
	plan := chaosPlan(Config{N: 600, KillRelay: 2, StopReceiver: true})
	want := []action{{200, "kill-relay"}, {300, "stop-receiver"}, {400, "kill-relay"}}
	if fmt.Sprint(plan) != fmt.Sprint(want) {
		t.Fatalf("plan %v, want %v", plan, want)
	}
	if p := chaosPlan(Config{N: 1, KillRelay: 3}); len(p) != 3 || p[0].at != 1 {
		t.Fatalf("tiny plan %v: every step needs at least one send", p)
	}
}

// TestSendRetries429: a 429 is waited out (Retry-After) and the same text
// sent again; an unknown destination is retried; a 500 is not.
func TestSendRetries429(t *testing.T) {
	var calls atomic.Int64
	var mu sync.Mutex
	var texts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ To, Text string }
		if err := decodeJSON(r, &body); err != nil {
			t.Error(err)
		}
		mu.Lock()
		texts = append(texts, body.Text)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch n := calls.Add(1); {
		case body.Text == "boom":
			w.WriteHeader(500)
			fmt.Fprint(w, `{"error":{"code":"failed","message":"disk on fire"}}`)
		case n == 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"error":{"code":"outbox_full","message":"outbox full"}}`)
		case n == 2:
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"code":"bad_request","message":"router: unknown destination (no announce heard from it)"}}`)
		default:
			fmt.Fprint(w, `{"id":"0123456789abcdef0123456789abcdef","status":"queued"}`)
		}
	}))
	defer srv.Close()
	ch := &chain{a: &node{api: newClient(strings.TrimPrefix(srv.URL, "http://"), 2)}, addrC: strings.Repeat("c", 32)}
	var n429, retries atomic.Int64
	start := time.Now()
	res, err := ch.sendOne(context.Background(), "m-000007", &n429, &retries)
	if err != nil || res.Status != "queued" || n429.Load() != 1 || retries.Load() != 1 {
		t.Fatalf("sendOne: %+v %v; 429s %d, retries %d", res, err, n429.Load(), retries.Load())
	}
	mu.Lock()
	sentTexts := strings.Join(texts, ",")
	mu.Unlock()
	if sentTexts != "m-000007,m-000007,m-000007" {
		t.Fatalf("texts sent: %v", sentTexts)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("retries took too long")
	}
	if _, err := ch.sendOne(context.Background(), "boom", &n429, &retries); statusOf(err) != 500 {
		t.Fatalf("a 500 was not returned as such: %v", err)
	}
}

func TestNotableCounters(t *testing.T) {
	m := `# HELP qpc_mesh_retransmits_total x
qpc_mesh_retransmits_total 12
qpc_mesh_envelopes_dropped_total{reason="duplicate"} 0
qpc_mesh_envelopes_dropped_total{reason="replay"} 3
qpc_actors_running 9
go_gc_duration_seconds{quantile="0"} 1e-05
`
	got := notableCounters(m)
	want := []string{"qpc_mesh_retransmits_total 12", `qpc_mesh_envelopes_dropped_total{reason="replay"} 3`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("notableCounters = %q, want %q", got, want)
	}
}

func decodeJSON(r *http.Request, v any) error { return json.NewDecoder(r.Body).Decode(v) }
