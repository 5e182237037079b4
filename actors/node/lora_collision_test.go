package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
)

// collidingIdentities returns two identities whose addresses share their
// first two bytes (the LoRa link's hint): fixed seeds tried in order, the
// birthday bound makes it a few hundred keys.
func collidingIdentities(t *testing.T) (*crypto.Identity, *crypto.Identity) {
	t.Helper()
	seen := map[link.Hint]*crypto.Identity{}
	seed := make([]byte, 32)
	seed[31] = 0xC0
	for i := range 1 << 16 {
		seed[0], seed[1], seed[2] = byte(i), byte(i>>8), byte(i>>16)
		id, err := crypto.IdentityFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		h := link.HintOf(id.Address())
		if other, ok := seen[h]; ok {
			return other, id
		}
		seen[h] = id
	}
	t.Fatal("no two keys with one hint")
	return nil, nil
}

// Two LoRa neighbours whose addresses share the 2-byte hint are both
// reachable, from a third node and from each other (issue 12 item 2,
// acceptance 3): the link MAC tells their packets apart, where the old
// link ignored the second one heard.
func TestLoRaHintCollidingNeighboursReachable(t *testing.T) {
	radio := link.NewMockNetwork(lora.MediumOptions{})
	idB, idC := collidingIdentities(t)
	start := func(id *crypto.Identity) *Node {
		c := testConfig(t)
		c.Transports.Listen = []string{"lora+mock://collide?sf=7"}
		opts := []Option{WithLoRaMock(radio)}
		if id != nil {
			opts = append(opts, WithIdentity(id))
		}
		n, _ := startNode(t, c, opts...)
		return n
	}
	a, b, c := start(nil), start(idB), start(idC)
	if link.HintOf(b.Address()) != link.HintOf(c.Address()) {
		t.Fatal("B and C do not share a hint")
	}
	nodes := map[string]*Node{"A": a, "B": b, "C": c}
	for from, n := range nodes {
		for to, m := range nodes {
			if from != to {
				waitLink(t, n, m.Address(), "lora")
				waitRoute(t, n, m.Address())
			}
		}
	}
	for from, n := range nodes {
		for to, m := range nodes {
			if from == to {
				continue
			}
			text := fmt.Sprintf("from %s to %s", from, to)
			if _, err := n.SendText(context.Background(), m.Address(), []byte(text)); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-m.Deliveries():
				if string(d.Text) != text || d.From != n.Address() {
					t.Fatalf("%s got %q from %x, want %q", to, d.Text, d.From[:4], text)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s's message did not reach %s", from, to)
			}
		}
	}
}
