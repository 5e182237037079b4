package store

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/messages"
)

// A store that is full refuses: past PerDest for one destination and past
// Total for all, each refusal counted once as
// qpc_mesh_store_events_total{event="refused"}, and not stored; a
// duplicate is not a refusal, and a frame over MaxFrame is. A receipt
// frees room, and the next frame is stored.
func TestActorRefusesWhenFull(t *testing.T) {
	h := newHarness(t, Limits{PerDest: 2, Total: 3, MaxFrame: 64}, nil)
	a, b := dest(1), dest(2)
	send := func(it Item) {
		h.sys.Root.Send(h.store, &messages.StoreFrame{Dest: it.Dest, ID: it.ID, Frame: it.Frame, Expiry: it.Expiry})
	}
	drain := func() {
		t.Helper()
		if _, err := h.sys.Root.RequestFuture(h.store, &messages.Drain{}, deadline).Result(); err != nil {
			t.Fatal(err)
		}
	}
	ev := h.mesh.StoreEvents
	check := func(what string, put, refused, stored float64) {
		t.Helper()
		if got := testutil.ToFloat64(ev.WithLabelValues("put")); got != put {
			t.Fatalf("%s: put %v, want %v", what, got, put)
		}
		if got := testutil.ToFloat64(ev.WithLabelValues("refused")); got != refused {
			t.Fatalf("%s: refused %v, want %v", what, got, refused)
		}
		if got := testutil.ToFloat64(h.mesh.Stored); got != stored {
			t.Fatalf("%s: stored %v, want %v", what, got, stored)
		}
	}
	for i := range 3 { // the third is over PerDest
		send(numbered(a, i))
	}
	send(numbered(a, 0))       // a duplicate: not a refusal
	for i := 10; i < 12; i++ { // the second is over Total
		send(numbered(b, i))
	}
	big := numbered(b, 20)
	big.Frame = make([]byte, 65)
	send(big)
	drain()
	check("full", 3, 3, 3)

	// A receipt for one of a's frees a place: b's next frame is stored.
	h.sys.Root.Send(h.store, &messages.StoreAck{ID: numbered(a, 0).ID, Dest: a})
	send(numbered(b, 11))
	drain()
	check("after a receipt", 4, 3, 3)
}
