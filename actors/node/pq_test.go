package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/mem"
)

// The post-quantum hybrid for 1:1 messages: between two nodes that both
// announce it over an unconstrained link, A fetches B's signed PQ key
// record and from then on seals to B with X-Wing (payload type
// sealed-pq); B opens it and answers with receipts as for any message.
// To a node that does not announce it, nothing is ever PQ-sealed.
func TestPQSealedOneToOne(t *testing.T) {
	net := mem.NewNetwork()
	var mu sync.Mutex
	types := map[string]map[messages.PayloadType]int{}
	tapFor := func(name string) func(*messages.InboundFrame) bool {
		types[name] = map[messages.PayloadType]int{}
		return func(f *messages.InboundFrame) bool {
			if e, err := messages.DecodeEnvelope(f.Data); err == nil {
				mu.Lock()
				types[name][e.PayloadType]++
				mu.Unlock()
			}
			return false
		}
	}
	ca := testConfig(t)
	ca.Transports.Listen = []string{"mem://a"}
	ca.Groups.PQ = true
	a, _ := startNode(t, ca, WithMemNetwork(net))
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = []string{"mem://a"}
	cb.Groups.PQ = true
	b, _ := startNode(t, cb, WithMemNetwork(net), WithInboundTap(tapFor("b")))
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = []string{"mem://a"}
	c, _ := startNode(t, cc, WithMemNetwork(net), WithInboundTap(tapFor("c")))
	if r := waitRoute(t, a, b.Address()); !r.Capabilities.Has(messages.CapPQ) {
		t.Fatalf("B's announce lacks the pq capability: %v", r.Capabilities)
	}
	waitRoute(t, a, c.Address())
	ctx := context.Background()
	seen := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return types[name][messages.PayloadSealedPQ]
	}
	i := 0
	send := func(n *Node) {
		i++
		text := fmt.Sprintf("text %d", i)
		if _, err := a.SendText(ctx, n.Address(), []byte(text)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-n.Deliveries():
			if string(m.Text) != text || m.From != a.Address() {
				t.Fatalf("got %+v", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q not delivered", text)
		}
	}
	// The first text goes classic and asks for B's record; once it is
	// here, texts go PQ.
	if !probe.Wait(20*time.Second, func() bool { send(b); return seen("b") > 0 }) {
		t.Fatal("no PQ-sealed message reached B")
	}
	for range 3 {
		send(c)
	}
	if n := seen("c"); n != 0 {
		t.Fatalf("C, which does not announce pq, got %d PQ-sealed messages", n)
	}
}
