package links

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/messages"
)

// goroutinesIn counts the goroutines whose stack has fn in it.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// waitGoroutines probes until exactly n goroutines run fn.
func waitGoroutines(t *testing.T, fn string, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for goroutinesIn(fn) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines in %s, want %d", what, goroutinesIn(fn), fn, n)
		}
		<-time.After(5 * time.Millisecond) // the next probe
	}
}

// A listener that panics is restarted as a fresh instance: one accept
// loop runs afterwards (the failed one's is cancelled, not left beside
// the new one), its links' slots under the inbound cap are freed, and new
// peers link through it.
func TestListenerRestartIsAFreshInstance(t *testing.T) {
	const loop = "links.(*listenerActor).accept"
	h := newHub(t, 2)
	for range 2 {
		h.dial(t)
	}
	h.waitLinks(t, 2)
	waitGoroutines(t, loop, 1, "before the fault")

	listener := actor.NewPID(h.pid.Address, h.pid.Id+"/listen-"+sanitize("mem://hub"))
	h.sys.Root.Send(listener, &failForTest{})
	// The links were the failed instance's children: they stop with it.
	h.waitLinks(t, 0)
	waitGoroutines(t, loop, 1, "after the restart")

	// Both slots are free again: two new peers link, under the cap of 2.
	for range 2 {
		h.dial(t)
	}
	h.waitLinks(t, 2)
	if v := testutil.ToFloat64(h.metrics.Refused.WithLabelValues("mem", "max_inbound_links")); v != 0 {
		t.Fatalf("%v links refused by the cap after the restart: the failed instance's slots were kept", v)
	}
}

// A transports manager that panics comes back linking: its links go
// (PeerDown for each, so the router forgets routes through them), and its
// listener accepts again without a second StartLinks from the node.
func TestManagerRestartListensAgain(t *testing.T) {
	h := newHub(t, 8)
	downs := make(chan *messages.PeerDown, 8)
	sub := h.sys.EventStream.Subscribe(func(ev any) {
		if d, ok := ev.(*messages.PeerDown); ok {
			downs <- d
		}
	})
	defer h.sys.EventStream.Unsubscribe(sub)
	h.dial(t)
	h.waitLinks(t, 1)

	h.sys.Root.Send(h.pid, &failForTest{})
	select {
	case d := <-downs:
		if d.Reason != "transports manager restarted" {
			t.Fatalf("PeerDown reason %q", d.Reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no PeerDown for the link of the failed manager")
	}
	h.waitLinks(t, 0)
	h.dial(t) // through the restarted manager's listener
	h.waitLinks(t, 1)
}
