package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/router"
)

// TestStoreAndForwardAcrossRelayRestart is acceptance 2 of the mesh issue:
// C is offline, A sends 100 messages, the relay B holds them and is
// restarted while holding them, C comes back: all 100 arrive exactly once,
// and the receipts empty B's store.
func TestStoreAndForwardAcrossRelayRestart(t *testing.T) {
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	a, _ := startNode(t, ca)
	cb := testConfig(t)
	cb.Transports.Listen = []string{"quic://127.0.0.1:0"}
	cb.Transports.Peers = a.ListenAddrs()
	b, _ := startNode(t, cb)
	cb.Transports.Listen = b.ListenAddrs() // the same port after the restart
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = b.ListenAddrs()
	backoff := WithDialBackoff(linksBackoffFast)
	c, _ := startNode(t, cc, backoff)
	waitRoute(t, a, c.Address())
	cAddr := c.Address()

	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// B notices C is gone and forgets the route through it.
	waitRouteGone(t, b, cAddr)

	const n = 100
	for i := range n {
		res, err := a.SendText(context.Background(), cAddr, []byte(fmt.Sprintf("message %03d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != router.StateSent { // A still has a route via B
			t.Fatalf("message %d: %s", i, res.Status)
		}
	}
	waitCount(t, b.Metrics().Mesh.StoreEvents.WithLabelValues("put"), n, "envelopes stored at B")

	// Restart B while it holds them.
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2, _ := startNode(t, cb)
	if got := testutil.ToFloat64(b2.Metrics().Mesh.Stored); got != n {
		t.Fatalf("B holds %v envelopes after its restart, want %d", got, n)
	}

	// C comes back.
	c2, _ := startNode(t, cc, backoff)
	seen := map[string]int{}
	for len(seen) < n {
		select {
		case m := <-c2.Deliveries():
			seen[string(m.Text)]++
			if m.From != a.Address() {
				t.Fatalf("from %v", m.From)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("C got %d of %d messages", len(seen), n)
		}
	}
	for text, k := range seen {
		if k != 1 {
			t.Fatalf("%q delivered %d times", text, k)
		}
	}
	// Receipts travel back through B, which drops its copies.
	waitCount(t, b2.Metrics().Mesh.StoreEvents.WithLabelValues("delivered"), n, "held envelopes acknowledged at B")
	if got := testutil.ToFloat64(b2.Metrics().Mesh.Stored); got != 0 {
		t.Fatalf("B still holds %v", got)
	}
	waitCount(t, a.Metrics().Mesh.Receipts, n, "receipts at A")
	// Nothing more arrives: exactly once.
	select {
	case m := <-c2.Deliveries():
		t.Fatalf("extra delivery %q", m.Text)
	case <-time.After(200 * time.Millisecond):
	}
}
