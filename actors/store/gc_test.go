package store

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
)

// The store collects expired frames on its GC tick, every GCInterval of
// its clock and not in between: a frame past its expiry is still held
// until the next tick, which drops it and counts it, and the tick after
// drops the next one.
func TestActorGCExpiresOnItsInterval(t *testing.T) {
	db, err := persist.Open(filepath.Join(t.TempDir(), "qpc.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	defer sys.Shutdown()
	router := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	clk := clock.NewManual(t0)
	mesh := metrics.New(metrics.Options{}).Mesh
	const interval = time.Minute
	pid := sys.Root.Spawn(New(Config{
		DB: db, Limits: Limits{PerDest: 10, Total: 10}, GCInterval: interval, Router: router,
		Clock: clk, Metrics: mesh, Log: slog.New(slog.DiscardHandler),
	}))
	defer func() { sys.Root.StopFuture(pid).Wait() }()
	// The GC timer is the only one on the clock.
	armed := func() { probe.Until(t, deadline, func() bool { return clk.Pending() == 1 }, "the GC timer armed") }
	armed()
	dest := [16]byte{7}
	expiries := []time.Time{t0.Add(30 * time.Second), t0.Add(90 * time.Second)}
	for i, e := range expiries {
		sys.Root.Send(pid, &messages.StoreFrame{Dest: dest, ID: [16]byte{byte(i + 1)}, Frame: []byte{byte(i + 1)}, Expiry: e})
	}
	persisted := func() {
		if _, err := sys.Root.RequestFuture(pid, &messages.Persist{}, deadline).Result(); err != nil {
			t.Fatal(err)
		}
	}
	persisted()
	expired := mesh.StoreEvents.WithLabelValues("expired")
	check := func(when string, held, gone float64) {
		t.Helper()
		if got, exp := testutil.ToFloat64(mesh.Stored), testutil.ToFloat64(expired); got != held || exp != gone {
			t.Fatalf("%s: %v held, %v expired; want %v and %v", when, got, exp, held, gone)
		}
	}
	check("stored", 2, 0)
	for tick, held := range []float64{1, 0} {
		// A millisecond before the tick: the frame whose expiry passed is
		// still held.
		clk.Advance(interval - time.Millisecond)
		if clk.Pending() != 1 {
			t.Fatalf("tick %d: the GC timer fired before its interval", tick+1)
		}
		persisted()
		check("before the tick", held+1, float64(tick))
		clk.Advance(time.Millisecond)
		// Fired: off the clock's list, or handled and armed again already.
		if clk.Pending() != 0 && testutil.ToFloat64(expired) == float64(tick) {
			t.Fatalf("tick %d: the GC timer did not fire at its interval", tick+1)
		}
		armed() // the tick was handled: the next one is armed
		check("after the tick", held, float64(tick+1))
	}
}
