package router

import (
	"slices"
	"testing"

	"github.com/quicprochat/qpc/messages"
)

// A best path through a neighbour that has not linked again since the
// restart (Unlinked) holds the envelope instead of forwarding it into no
// link; the store's copy stays with the store; once the neighbour is
// linked, both go on.
func TestCoreHoldsForUnlinkedNextHop(t *testing.T) {
	w := newCoreWorld(t)
	w.core.Unlinked = map[[16]byte]bool{w.via.Address(): true}
	env := w.envelope(w.src, w.dst.Address(), 8, messages.PayloadSealed, make([]byte, 80))
	if acts := w.core.HandleEnvelope(env, w.src.Address(), w.now); len(acts) != 1 || acts[0].Kind != Store || acts[0].Dest != w.dst.Address() {
		t.Fatalf("next hop not linked yet: %+v", acts)
	}
	if acts := w.core.HandleStored(env, w.dst.Address()); len(acts) != 0 {
		t.Fatalf("stored frame with the next hop not linked yet: %+v", acts)
	}
	// Other next hops are not affected.
	direct := w.envelope(w.via, w.src.Address(), 8, messages.PayloadSealed, make([]byte, 80))
	if acts := w.core.HandleEnvelope(direct, w.via.Address(), w.now); len(acts) != 1 || acts[0].Kind != Forward || acts[0].NextHop != w.src.Address() {
		t.Fatalf("to a linked neighbour: %+v", acts)
	}

	delete(w.core.Unlinked, w.via.Address())
	if acts := w.core.HandleStored(env, w.dst.Address()); len(acts) != 1 || acts[0].Kind != Forward || acts[0].NextHop != w.via.Address() {
		t.Fatalf("stored frame once the next hop is linked: %+v", acts)
	}
}

func TestTableDestsViaAndNextHops(t *testing.T) {
	w := newCoreWorld(t) // src and via are neighbours; dst is behind via
	via := w.core.Table.DestsVia(w.via.Address())
	slices.SortFunc(via, func(a, b [16]byte) int { return slices.Compare(a[:], b[:]) })
	want := [][16]byte{w.via.Address(), w.dst.Address()}
	slices.SortFunc(want, func(a, b [16]byte) int { return slices.Compare(a[:], b[:]) })
	if !slices.Equal(via, want) {
		t.Fatalf("DestsVia(via) = %x, want %x", via, want)
	}
	hops := w.core.Table.NextHops()
	if len(hops) != 2 || !slices.Contains(hops, [16]byte(w.via.Address())) || !slices.Contains(hops, [16]byte(w.src.Address())) {
		t.Fatalf("NextHops = %x", hops)
	}
}
