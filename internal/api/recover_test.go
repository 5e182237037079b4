package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/metrics"
)

// panickyBackend panics in InboxSince as bbolt does on a damaged page.
type panickyBackend struct{ fakeBackend }

func (p *panickyBackend) InboxSince(context.Context, uint64, time.Duration) (InboxResponse, error) {
	panic("page 62 already freed")
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPanicInHandlerMakesNodeNotReady: a node whose /v1/inbox handler
// panicked (bbolt on a damaged page) answered 200 on /readyz before; now
// the request gets a coded 500, the cause is logged at ERROR, and /readyz
// and /v1/status say not ready from then on.
func TestPanicInHandlerMakesNodeNotReady(t *testing.T) {
	m := metrics.New(metrics.Options{})
	logs := &lockedBuf{}
	b := &panickyBackend{fakeBackend{ready: true, reg: m}}
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m, Log: slog.New(slog.NewTextHandler(logs, nil))}, b)
	base := "http://" + s.Addr()
	if code, body := do(t, base+"/readyz", ""); code != 200 {
		t.Fatalf("/readyz before: %d %q", code, body)
	}
	code, body := do(t, base+"/v1/inbox", "")
	if code != 500 || !strings.Contains(body, `"internal"`) || !strings.Contains(body, "page 62 already freed") {
		t.Fatalf("/v1/inbox that panicked: %d %s", code, body)
	}
	if code, body := do(t, base+"/readyz", ""); code != 503 || !strings.Contains(body, "page 62 already freed") {
		t.Fatalf("/readyz after the panic: %d %q, want 503 naming the cause", code, body)
	}
	code, body = do(t, base+"/v1/status", "")
	var st Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Ready {
		t.Fatalf("/v1/status after the panic: %d %s, want ready false", code, body)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "page 62 already freed") || !strings.Contains(l, "path=/v1/inbox") {
		t.Fatalf("no ERROR line with the cause:\n%s", l)
	}
	// Other requests are still served.
	if code, _ := do(t, base+"/healthz", ""); code != 200 {
		t.Fatalf("/healthz after the panic: %d", code)
	}
}
