package announcer

import (
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
)

// fault makes the test's middleware panic inside the announcer.
type fault struct{}

// An announcer that panics and is restarted keeps its sequence: the next
// announce is newer than the last one sent even when no time passed (a
// receiver would refuse an equal one as a duplicate); the failed
// instance's timer and event subscription go with it, so the interval
// still brings one announce, not two.
func TestAnnouncerRestartKeepsSequenceAndOneTimer(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	clk := clock.NewManual(time.UnixMilli(1_800_000_000_000))
	sent := make(chan []byte, 16)
	links := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *messages.BroadcastFrame:
			sent <- m.Data
		case *messages.SendFrame:
			sent <- m.Data
		}
	}))
	id, _ := crypto.NewIdentity(nil)
	interval := time.Minute
	props := New(Config{
		Identity: id, SealPub: make([]byte, 32), Caps: messages.CapRelay, Clock: clk, Interval: interval,
		MaxAge: time.Hour, MaxHops: 8, Links: links, Metrics: metrics.New(metrics.Options{}).Mesh, Log: slog.New(slog.DiscardHandler),
	}).Configure(actor.WithReceiverMiddleware(func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			if _, ok := env.Message.(*fault); ok {
				panic("test fault")
			}
			next(c, env)
		}
	}))
	pid := sys.Root.Spawn(props)

	next := func(what string) messages.Announce {
		t.Helper()
		select {
		case f := <-sent:
			a, err := messages.DecodeAnnounce(f)
			if err != nil {
				t.Fatal(err)
			}
			return a
		case <-time.After(10 * time.Second):
			t.Fatalf("no announce: %s", what)
		}
		return messages.Announce{}
	}
	// The periodic one; then the clock stands still.
	advanceUntilPending(t, clk, 1)
	clk.Advance(interval * 2)
	first := next("the first interval")
	subs := sys.EventStream.Length() // with the announcer's, which it made at start

	sys.Root.Send(pid, &fault{})
	// Answered by the instance started after the fault (the mailbox holds
	// the request until the restart is done).
	if _, err := sys.Root.RequestFuture(pid, &messages.Persist{}, 10*time.Second).Result(); err != nil {
		t.Fatal(err)
	}
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d timers armed after the restart, want 1 (the failed instance's timer still runs)", n)
	}
	if n := sys.EventStream.Length(); n != subs {
		t.Fatalf("event stream subscriptions %d after the restart, want %d", n, subs)
	}
	// A neighbour comes up: it gets the restarted instance's announce,
	// signed at the same instant as the last one.
	sys.EventStream.Publish(&messages.PeerUp{Node: id.Address(), Link: messages.LinkInfo{Peer: [16]byte{7}}})
	again := next("to the new neighbour")
	if again.UnixMilli <= first.UnixMilli {
		t.Fatalf("announce after the restart at %d ms, the last one before at %d: a receiver refuses it", again.UnixMilli, first.UnixMilli)
	}
	if len(again.KeyPackageHash) != 0 {
		t.Fatalf("KeyPackage hash %x announced before one was set", again.KeyPackageHash)
	}

	// A new KeyPackage: announced at once, and kept by the instance a
	// restart brings.
	kp := [16]byte{1, 2, 3}
	sys.Root.Send(pid, &messages.SetKeyPackageHash{Hash: kp})
	if a := next("with the KeyPackage hash"); string(a.KeyPackageHash) != string(kp[:]) {
		t.Fatalf("announce carries KeyPackage hash %x, want %x", a.KeyPackageHash, kp)
	}
	sys.Root.Send(pid, &fault{})
	if _, err := sys.Root.RequestFuture(pid, &messages.Persist{}, 10*time.Second).Result(); err != nil {
		t.Fatal(err)
	}
	sys.EventStream.Publish(&messages.PeerUp{Node: id.Address(), Link: messages.LinkInfo{Peer: [16]byte{8}}})
	if a := next("after a restart"); string(a.KeyPackageHash) != string(kp[:]) {
		t.Fatalf("after a restart the announce carries KeyPackage hash %x, want %x", a.KeyPackageHash, kp)
	}
}

// advanceUntilPending waits until the manual clock has n timers armed
// (the actor arms them on its own goroutine).
func advanceUntilPending(t *testing.T, clk *clock.Manual, n int) {
	t.Helper()
	probe.Until(t, 10*time.Second, func() bool { return clk.Pending() >= n }, "%d timers armed, want %d", clk.Pending(), n)
}

// The announcer re-announces every Interval ±10 % on its clock: the timer
// never fires before 90 % of the interval nor after 110 %, each tick
// broadcasts an announce signed at the tick's time, and the waits differ
// (the jitter keeps neighbours from announcing in step).
func TestAnnouncerTicksAtIntervalWithJitter(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	clk := clock.NewManual(time.UnixMilli(1_800_000_000_000))
	sent := make(chan *messages.BroadcastFrame, 16)
	links := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*messages.BroadcastFrame); ok {
			sent <- m
		}
	}))
	id, _ := crypto.NewIdentity(nil)
	const interval = 10 * time.Minute
	mesh := metrics.New(metrics.Options{}).Mesh
	sys.Root.Spawn(New(Config{
		Identity: id, SealPub: make([]byte, 32), Caps: messages.CapRelay, Clock: clk, Interval: interval,
		MaxAge: time.Hour, MaxHops: 8, Links: links, Metrics: mesh, Log: slog.New(slog.DiscardHandler),
	}))
	// The announcer's timer is the only one on the clock. It has fired in
	// the last Advance when Pending is 0 (Advance takes it off the list
	// before it returns) or, if the tick was handled and the timer armed
	// again already, when the tick's count went up (the handler counts
	// before it arms the next timer).
	advanceUntilPending(t, clk, 1)
	fired := func(tick int) bool {
		return clk.Pending() == 0 || testutil.ToFloat64(mesh.AnnouncesSent) > float64(tick)
	}
	const step = time.Second
	waits := map[time.Duration]bool{}
	last := clk.Now()
	for tick := range 20 {
		for !fired(tick) {
			if clk.Now().Sub(last) > interval*11/10 {
				t.Fatalf("tick %d: no announce %v after the last", tick, clk.Now().Sub(last))
			}
			clk.Advance(step)
		}
		at, wait := clk.Now(), clk.Now().Sub(last)
		// The timer fired within the last step.
		if wait < interval*9/10 || wait-step >= interval*11/10 {
			t.Fatalf("tick %d came %v after the last, want %v ±10 %%", tick, wait, interval)
		}
		var f *messages.BroadcastFrame
		select {
		case f = <-sent:
		case <-time.After(10 * time.Second):
			t.Fatalf("tick %d: the timer fired but nothing was broadcast", tick)
		}
		a, err := messages.DecodeAnnounce(f.Data)
		if err != nil || f.Priority != messages.Control {
			t.Fatalf("tick %d: %v, priority %v", tick, err, f.Priority)
		}
		if !a.SentAt().Equal(at) {
			t.Fatalf("tick %d: announce signed at %v, the tick was at %v", tick, a.SentAt(), at)
		}
		advanceUntilPending(t, clk, 1) // armed again, from the tick's time
		waits[wait] = true
		last = at
	}
	if len(waits) < 5 {
		t.Fatalf("20 waits took %d distinct values (%v): no jitter", len(waits), waits)
	}
	if got := testutil.ToFloat64(mesh.AnnouncesSent); got != 20 {
		t.Fatalf("announces sent %v, want 20", got)
	}
}
