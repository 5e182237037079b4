package node

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig(t testing.TB) config.Config {
	t.Helper()
	c := config.Default()
	c.DataDir = t.TempDir()
	c.API.Addr = "127.0.0.1:0"
	c.Transports.Listen = []string{"tcp://127.0.0.1:0", "quic://127.0.0.1:0"}
	return c
}

func startNode(t testing.TB, c config.Config, opts ...Option) (*Node, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts = append([]Option{WithConfig(c), WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	n, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start: %v\n%s", err, logs)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n, logs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNodeStartServesAPIAndDelivers(t *testing.T) {
	n, _ := startNode(t, testConfig(t))
	base := "http://" + n.APIAddr()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d after Start returned", code)
	}
	var st api.Status
	if err := (&api.Client{Addr: n.APIAddr()}).Get(context.Background(), "/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Address != n.Address().String() || len(st.Address) != 32 {
		t.Fatalf("status address = %q, want %s", st.Address, n.Address())
	}
	if !st.Ready || len(st.Actors) != 9 {
		t.Fatalf("status = %+v, want ready with 9 actors", st)
	}
	for _, a := range st.Actors {
		if a.State != "running" {
			t.Fatalf("actor %s is %s", a.Name, a.State)
		}
	}

	// A signed announce handed in through the Go API goes through
	// admission, the announcer and the router into the routing table.
	peer, _ := crypto.NewIdentity(nil)
	if err := n.Inject("test", peer.Address(), announceFrame(t, peer)); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, n, peer.Address())
}

// announceFrame is a fresh signed announce of id.
func announceFrame(t testing.TB, id *crypto.Identity) []byte {
	t.Helper()
	seal, err := crypto.SealingKeyFor(id)
	if err != nil {
		t.Fatal(err)
	}
	a := messages.NewAnnounce(id.PublicKey(), seal.Public(), messages.CapRelay, nil, time.Now())
	if err := a.Sign(id.Sign); err != nil {
		t.Fatal(err)
	}
	b, err := messages.EncodeAnnounce(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitRoute probes n's routing table until addr is in it.
func waitRoute(t testing.TB, n *Node, addr crypto.Address) messages.RouteInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		rs, err := n.Routes(ctx)
		for _, r := range rs {
			if r.Address == addr {
				return r
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no route to %s on %s: %v %+v", addr.Short(), n.Address().Short(), err, rs)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitRouteGone probes until n has no route to addr.
func waitRouteGone(t testing.TB, n *Node, addr crypto.Address) {
	t.Helper()
	if !probe.Wait(20*time.Second, func() bool {
		rs, _ := n.Routes(context.Background())
		gone := true
		for _, r := range rs {
			gone = gone && r.Address != addr
		}
		return gone
	}) {
		t.Fatalf("%s still routes to %s", n.Address().Short(), addr.Short())
	}
}

// waitRestarted probes until the named actor has restarted restarts times
// and runs again, and the node is ready.
func waitRestarted(t *testing.T, n *Node, name string, restarts int, logs *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		st, a := actorStatus(t, ctx, n, name)
		if a.Restarts == restarts && a.State == "running" && st.Ready {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not restarted: %+v\n%s", name, st, logs)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestNodeShutdownPhasesAndRestartReusesIdentity(t *testing.T) {
	c := testConfig(t)
	n, logs := startNode(t, c)
	addr := n.Address()
	if err := n.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	<-n.Done()
	out := logs.String()
	last := -1
	for _, p := range []string{"Draining", "Persisting", "Cleanup", "Complete"} {
		i := strings.Index(out, "phase="+p)
		if i < 0 || i < last {
			t.Fatalf("phase %s missing or out of order in log:\n%s", p, out)
		}
		last = i
	}
	if !strings.Contains(out, "database closed") {
		t.Fatalf("database not closed:\n%s", out)
	}
	// The database lock is released: it opens at once.
	db, err := persist.Open(c.DBPath(), 100*time.Millisecond)
	if err != nil {
		t.Fatalf("database still locked after Stop: %v", err)
	}
	db.Close()
	if err := n.Inject("x", addr, nil); err == nil {
		t.Fatal("Inject after Stop succeeded")
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	n2, _ := startNode(t, c)
	if n2.Address() != addr {
		t.Fatalf("second start has address %s, want %s", n2.Address(), addr)
	}
}

func TestNodeRefusesSecondNodeOnSameDataDir(t *testing.T) {
	c := testConfig(t)
	startNode(t, c)
	n2, err := New(WithConfig(c), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	err = n2.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "locked by another running node") {
		t.Fatalf("second node on the same data dir: err = %v", err)
	}
	<-n2.Done()
}

func TestNodeRestartsPanickingActor(t *testing.T) {
	policy := RestartPolicy{Initial: time.Millisecond, Max: 10 * time.Millisecond, MaxRestarts: 5, Window: time.Minute}
	n, logs := startNode(t, testConfig(t), WithFaultInjection(), WithRestartPolicy(policy))
	if err := n.Fault("router", "test"); err != nil {
		t.Fatal(err)
	}
	// Probe until the router is back: restarted once and running.
	waitRestarted(t, n, "router", 1, logs)
	if got := testutil.ToFloat64(n.Metrics().ActorRestarts.WithLabelValues("router")); got != 1 {
		t.Fatalf("actor_restarts_total{actor=router} = %v", got)
	}
	if code, _ := get(t, "http://"+n.APIAddr()+"/healthz"); code != 200 {
		t.Fatalf("healthz after restart = %d", code)
	}
	// The restarted router still routes.
	peer, _ := crypto.NewIdentity(nil)
	if err := n.Inject("test", peer.Address(), announceFrame(t, peer)); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, n, peer.Address())
}

func TestNodeStopsActorThatFailsTooOften(t *testing.T) {
	policy := RestartPolicy{Initial: time.Millisecond, Max: time.Millisecond, MaxRestarts: 2, Window: time.Minute}
	n, logs := startNode(t, testConfig(t), WithFaultInjection(), WithRestartPolicy(policy))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		st, keys := actorStatus(t, ctx, n, "keys")
		if keys.State == "stopped" {
			if st.Ready {
				t.Fatal("node reports ready with a stopped actor")
			}
			break
		}
		if keys.State == "running" {
			_ = n.Fault("keys", "again")
		}
		select {
		case <-ctx.Done():
			t.Fatalf("keys not stopped: %+v\n%s", st, logs)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if code, _ := get(t, "http://"+n.APIAddr()+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with a stopped actor = %d", code)
	}
	if !strings.Contains(logs.String(), "failed too often") {
		t.Fatalf("no log of giving up:\n%s", logs)
	}
}

func TestFaultIgnoredWithoutFaultInjection(t *testing.T) {
	n, _ := startNode(t, testConfig(t))
	if err := n.Fault("router", "x"); err != nil {
		t.Fatal(err)
	}
	// The router handles messages in order: once it answers this request
	// the fault message has been processed (and ignored).
	if _, err := n.Routes(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(n.Metrics().ActorFailures.WithLabelValues("router")); got != 0 {
		t.Fatalf("router failed %v times without fault injection", got)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// http2Idle closes the default client's idle keep-alive connections.
func http2Idle() { http.DefaultClient.CloseIdleConnections() }

// actorStatus is the node's status and that of one of its actors.
func actorStatus(t *testing.T, ctx context.Context, n *Node, name string) (api.Status, api.ActorStatus) {
	t.Helper()
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.Actors {
		if a.Name == name {
			return st, a
		}
	}
	t.Fatalf("no actor %q in %+v", name, st.Actors)
	return st, api.ActorStatus{}
}

// While the node drains, /readyz answers 503 (a load balancer takes it
// out) and /healthz 200 (it is alive), instead of refusing connections.
func TestReadyzIs503WhileDraining(t *testing.T) {
	n, _ := startNode(t, testConfig(t))
	base := "http://" + n.APIAddr()
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d before the shutdown", code)
	}
	// The phase the shutdown coordinator reports first; the API is open
	// until the cleanup phase.
	n.onPhase(messages.PhaseDraining)
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining = %d %q, want 503", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz while draining = %d, want 200", code)
	}
}
