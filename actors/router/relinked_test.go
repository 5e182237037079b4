package router

import (
	"testing"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// TestCoreRelinkedNeighbourGetsItsRouteBack: a neighbour's link is cut
// and comes back; its announce, sent again on the new link, arrives
// while the old link's route is still there (it changes nothing), then
// the old link's PeerDown takes the route away. The new link's PeerUp
// restores the route from the neighbour's own announce kept from before
// (found by test/e2e TestNetnsLineNetemAndLinkCut: no route until the
// neighbour's next periodic announce). Not from an announce older than
// the max age, nor from one relayed by another node.
func TestCoreRelinkedNeighbourGetsItsRouteBack(t *testing.T) {
	w := newCoreWorld(t)
	nb := w.via.Address()
	w.learn(w.via, nb, 1) // the same announce again over the new link: no change
	if lost := w.core.Table.RemoveVia(nb); len(lost) == 0 {
		t.Fatal("the old link's PeerDown left the neighbour's route")
	}
	if _, ok := w.core.Table.Lookup(nb); ok {
		t.Fatal("route to the neighbour after RemoveVia")
	}
	link := messages.LinkInfo{ID: 2, Peer: nb, Transport: "tcp", Remote: "10.0.0.2:7701"}
	if _, ok := w.core.Relinked(link, w.now.Add(time.Minute), 30*time.Minute); !ok {
		t.Fatal("the new link's PeerUp restored no route")
	}
	r, ok := w.core.Table.Lookup(nb)
	if !ok || r.NextHop != nb || r.Hops != 1 {
		t.Fatalf("restored route %+v (found %v), want direct, 1 hop", r, ok)
	}
	// With a route already there, nothing to do.
	if _, ok := w.core.Relinked(link, w.now.Add(time.Minute), 30*time.Minute); ok {
		t.Fatal("Relinked changed a table that had the route")
	}

	// Too old: the announce is not brought back to life.
	w.core.Table.RemoveVia(nb)
	if _, ok := w.core.Relinked(link, w.now.Add(31*time.Minute), 30*time.Minute); ok {
		t.Fatal("a route restored from an announce older than the max age")
	}

	// dst's announce came relayed through via (hop count 1): a link to
	// dst itself does not restore a route from it.
	w.core.Table.RemoveVia(nb)
	dl := messages.LinkInfo{ID: 3, Peer: w.dst.Address(), Transport: "tcp"}
	if _, ok := w.core.Relinked(dl, w.now, 30*time.Minute); ok {
		t.Fatal("a route restored from an announce another node relayed")
	}
}
