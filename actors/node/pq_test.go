package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/config"
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

// TestGroupPQOverRelay: three members with groups.pq on, over a relay
// (mem links: unconstrained). Once A holds B's and C's signed PQ key
// records, each of its commits injects a PSK sealed with X-Wing to each
// member: the group's epochs are post-quantum on all three (the API's
// "pq"), the members count PQ commits and Welcomes, and texts flow. A
// commit removing C stays PQ for the rest.
func TestGroupPQOverRelay(t *testing.T) {
	m := startGroupMesh(t, func(c *config.Config) { c.Groups.PQ = true })
	ctx := context.Background()
	// The router asks for the records the first time it is asked; wait
	// until A holds both (GroupAdd asks for the joiner's while it fetches
	// the KeyPackage, which is usually enough, but not a promise).
	if !probe.Wait(20*time.Second, func() bool {
		_, k := m.A.groupRoutes(ctx, []crypto.Address{m.B.Address(), m.C.Address()})
		return len(k) == 2
	}) {
		t.Fatal("A never held B's and C's PQ keys")
	}
	created, err := m.A.GroupCreate(ctx, "Chor")
	if err != nil {
		t.Fatal(err)
	}
	gid := created.Group
	for _, n := range []*Node{m.B, m.C} {
		g, err := m.A.GroupAdd(ctx, gid, n.Address().String(), 15*time.Second)
		if err != nil {
			t.Fatalf("add %s: %v", n.Address().Short(), err)
		}
		if !g.PQ {
			t.Fatalf("the commit adding %s is not PQ: %+v", n.Address().Short(), g)
		}
	}
	ga, _ := groupOf(t, m.A, gid)
	for name, n := range map[string]*Node{"B": m.B, "C": m.C} {
		if !probe.Wait(20*time.Second, func() bool { g, ok := groupOf(t, n, gid); return ok && g.Epoch == ga.Epoch }) {
			t.Fatalf("%s did not reach epoch %d", name, ga.Epoch)
		}
		if g, _ := groupOf(t, n, gid); !g.PQ {
			t.Fatalf("%s's epoch is not PQ: %+v", name, g)
		}
	}
	pqIn := func(n *Node, kind string) float64 {
		return testutil.ToFloat64(n.Metrics().Groups.Decryptions.WithLabelValues("mls-pq", kind))
	}
	if pqIn(m.B, "welcome") != 1 || pqIn(m.B, "commit") != 1 || pqIn(m.C, "welcome") != 1 {
		t.Fatalf("PQ decryptions: B welcome %v commit %v, C welcome %v; want 1 each", pqIn(m.B, "welcome"), pqIn(m.B, "commit"), pqIn(m.C, "welcome"))
	}
	var afterB, afterC uint64
	if _, err := m.A.GroupSend(ctx, gid, "nach dem Quantencomputer"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n     *Node
		after *uint64
	}{{m.B, &afterB}, {m.C, &afterC}} {
		if e := nextGroupText(t, c.n, c.after, gid); e.Text != "nach dem Quantencomputer" {
			t.Fatalf("got %+v", e)
		}
	}
	g, err := m.A.GroupRemove(ctx, gid, m.C.Address().String())
	if err != nil {
		t.Fatal(err)
	}
	if !g.PQ {
		t.Fatal("the commit removing C is not PQ")
	}
	if !probe.Wait(20*time.Second, func() bool { gb, _ := groupOf(t, m.B, gid); return gb.Epoch == g.Epoch && gb.PQ }) {
		t.Fatal("B did not take the PQ commit removing C")
	}
	if !probe.Wait(20*time.Second, func() bool { _, ok := groupOf(t, m.C, gid); return !ok }) {
		t.Fatal("C still in the group")
	}
}
