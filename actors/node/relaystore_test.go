package node

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/messages"
)

// Issue 9.6: store.relay means what it says. A relay with store.relay =
// false keeps nothing of other nodes' messages for a destination it cannot
// reach: the envelope is dropped and counted (store_relay_off), not held,
// and not lost: the sender's outbox retransmits it, and once the
// destination is back the retransmission is delivered, exactly once.
func TestRelayStoreOffDropsCountedAndSenderRecovers(t *testing.T) {
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	ca.Outbox.RetryBase = config.Duration(100 * time.Millisecond)
	ca.Outbox.RetryMax = config.Duration(300 * time.Millisecond)
	a, _ := startNode(t, ca)
	cb := testConfig(t)
	cb.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	cb.Transports.Peers = a.ListenAddrs()
	cb.Store.RelayForOthers = false
	b, _ := startNode(t, cb)
	// It does not announce a store it does not keep for others.
	if b.Capabilities().Has(messages.CapStore) || !b.Capabilities().Has(messages.CapRelay) || !a.Capabilities().Has(messages.CapStore) {
		t.Fatalf("capabilities: B %v, A %v", b.Capabilities().Names(), a.Capabilities().Names())
	}
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
	waitRouteGone(t, b, cAddr)
	res, err := a.SendText(context.Background(), cAddr, []byte("not held at B"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != router.StateSent { // A still has its route via B
		t.Fatalf("send: %s", res.Status)
	}
	// The first copy and a retransmission: both refused, counted, not held.
	waitCount(t, b.Metrics().Mesh.EnvelopesDropped.WithLabelValues(router.DropStoreRelayOff), 2, "envelopes B refused to hold")
	if put := testutil.ToFloat64(b.Metrics().Mesh.StoreEvents.WithLabelValues("put")); put != 0 {
		t.Fatalf("B held %v envelopes with store.relay = false", put)
	}

	c2, _ := startNode(t, cc, backoff)
	select {
	case m := <-c2.Deliveries():
		if string(m.Text) != "not held at B" || m.From != a.Address() {
			t.Fatalf("delivered %q from %s", m.Text, m.From)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the retransmission never reached C")
	}
	waitStates(t, a, map[[16]byte]string{res.ID: ""}, router.StateDelivered, 10*time.Second)
	if put := testutil.ToFloat64(b.Metrics().Mesh.StoreEvents.WithLabelValues("put")); put != 0 {
		t.Fatalf("B held %v envelopes with store.relay = false", put)
	}
}
