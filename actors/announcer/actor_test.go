package announcer

import (
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
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
}

// advanceUntilPending waits until the manual clock has n timers armed
// (the actor arms them on its own goroutine).
func advanceUntilPending(t *testing.T, clk *clock.Manual, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for clk.Pending() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers armed, want %d", clk.Pending(), n)
		}
		<-time.After(time.Millisecond) // polling the clock's timer list
	}
}
