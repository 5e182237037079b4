package store

import (
	"slices"
	"testing"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// Frames a pass handed back can still be lost on the way out (a link
// queue full of the pass sheds data); they stay held. So while frames
// stay held after a pass, another pass follows on the clock, after
// RedrainBase and then twice as long each time, and none once every
// frame is acked. (Found by TestRelayStoreDrainsAcrossReceiverCrashes
// under load: 677 held frames and no pass for 30 s.)
func TestActorRedrainsWhatStaysHeld(t *testing.T) {
	d := dest(1)
	h := newHarness(t, Limits{}, fillN(t, d, 10))
	h.fromProbe(&messages.RouteUp{Dest: d})
	if got := slices.Concat(h.batchesOf(d, 10)...); !slices.Equal(got, seq(0, 10)) {
		t.Fatalf("first pass %v", got)
	}
	// Frames 0..4 arrive (their receipts come back); 5..9 were lost.
	var acks []any
	for i := range 5 {
		acks = append(acks, &messages.StoreAck{ID: numbered(d, i).ID, Dest: d})
	}
	h.fromProbe(acks...)
	h.quiet(d) // nothing before the clock moves
	h.clk.Advance(RedrainBase - time.Millisecond)
	h.quiet(d)
	h.clk.Advance(time.Millisecond)
	if got := slices.Concat(h.batchesOf(d, 5)...); !slices.Equal(got, seq(5, 10)) {
		t.Fatalf("second pass %v, want the five still held", got)
	}
	// The next one waits twice as long.
	h.clk.Advance(2*RedrainBase - time.Millisecond)
	h.quiet(d)
	h.clk.Advance(time.Millisecond)
	if got := slices.Concat(h.batchesOf(d, 5)...); !slices.Equal(got, seq(5, 10)) {
		t.Fatalf("third pass %v", got)
	}
	// All acked: the pass that follows finds nothing and no other is armed.
	acks = acks[:0]
	for i := 5; i < 10; i++ {
		acks = append(acks, &messages.StoreAck{ID: numbered(d, i).ID, Dest: d})
	}
	h.fromProbe(acks...)
	h.clk.Advance(RedrainMax)
	h.quiet(d)
	h.clk.Advance(RedrainMax)
	h.quiet(d)
}
