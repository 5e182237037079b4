package router

import (
	"testing"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/pq"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// The PQ mode applies only to a destination that announces it and whose
// route's first link is unconstrained: never over a radio.
func TestCorePQOnlyOverUnconstrainedLinks(t *testing.T) {
	w := newCoreWorld(t)
	peer, _ := crypto.NewIdentity(nil)
	seal, _ := crypto.SealingKeyFor(peer)
	a := messages.NewAnnounce(peer.PublicKey(), seal.Public(), messages.CapPQ, nil, w.now)
	if err := a.Sign(peer.Sign); err != nil {
		t.Fatal(err)
	}
	f, _ := messages.EncodeAnnounce(a)
	if _, _, err := w.core.HandleAnnounce(&messages.AnnounceHeard{Announce: a, Frame: f, From: peer.Address(), Link: "test"}, w.now); err != nil {
		t.Fatal(err)
	}
	if acts := w.core.PQAsk(peer.Address(), w.now); acts != nil {
		t.Fatalf("PQ off: %v", kinds(acts))
	}
	w.core.PQ = pq.KeyFor(w.self)
	w.core.Links.Up(peer.Address(), 1, transports.Constrained.String())
	if acts := w.core.PQAsk(peer.Address(), w.now); acts != nil {
		t.Fatalf("over a constrained link: %v", kinds(acts))
	}
	w.core.Links.Up(peer.Address(), 2, transports.Unconstrained.String())
	acts := w.core.PQAsk(peer.Address(), w.now)
	if len(acts) != 1 || acts[0].Kind != Forward {
		t.Fatalf("over an unconstrained link: %v", kinds(acts))
	}
	if again := w.core.PQAsk(peer.Address(), w.now); again != nil {
		t.Fatal("asked again at once")
	}
	if _, ok := w.core.PQTo(peer.Address()); ok {
		t.Fatal("a PQ key without its record")
	}
}
