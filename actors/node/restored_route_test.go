package node

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/internal/config"
)

// A relay that restarts has its routes back from disk before its
// neighbours have linked again, and hands them on, so a message for a
// neighbour still away reaches it already. It must be held there until
// the neighbour's link is up, not forwarded into no link: found by
// test/TestRelayRestartRoutesComeBack, where such a message waited for
// its sender's retransmission (5 s) instead of going on at once. A's
// retransmissions are an hour apart here, so only the first copy counts.
func TestRestartedRelayHoldsForNeighbourNotBackYet(t *testing.T) {
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	ca.Outbox.RetryBase = config.Duration(time.Hour)
	ca.Outbox.RetryMax = config.Duration(time.Hour)
	a, _ := startNode(t, ca)
	cb := testConfig(t)
	cb.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	cb.Transports.Peers = a.ListenAddrs()
	backoff := WithDialBackoff(linksBackoffFast)
	b, _ := startNode(t, cb, backoff)
	cb.Transports.Listen = b.ListenAddrs()
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = b.ListenAddrs()
	c, _ := startNode(t, cc, backoff)
	waitRoute(t, a, c.Address())
	waitTableWritten(t, b, c.Address())
	cAddr := c.Address()

	// B goes with C still linked (its table on disk has the route to C),
	// then C goes too.
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitRouteGone(t, a, cAddr)
	b2, _ := startNode(t, cb, backoff)
	waitRoute(t, a, cAddr) // from B's table on disk; C is still away
	res, err := a.SendText(context.Background(), cAddr, []byte("for C, not back yet"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != router.StateSent {
		t.Fatalf("send: %s", res.Status)
	}
	waitCount(t, b2.Metrics().Mesh.StoreEvents.WithLabelValues("put"), 1, "envelopes B holds for C")
	if n := testutil.ToFloat64(b2.Metrics().Links.NoLink); n != 0 {
		t.Fatalf("B forwarded %v frames into no link", n)
	}

	c2, _ := startNode(t, cc, backoff)
	select {
	case m := <-c2.Deliveries():
		if string(m.Text) != "for C, not back yet" {
			t.Fatalf("delivered %q", m.Text)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the message B held never reached C")
	}
	waitStates(t, a, map[[16]byte]string{res.ID: ""}, router.StateDelivered, 10*time.Second)
	if n := testutil.ToFloat64(a.Metrics().Mesh.Retransmits); n != 0 {
		t.Fatalf("A retransmitted %v times", n)
	}
}
