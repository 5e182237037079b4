package fapp

import (
	"bytes"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
)

// Frames lists the live announces, those expiring last first, at most
// max, and leaves out expired ones.
func TestStoreFrames(t *testing.T) {
	db, _ := tempDB(t)
	clk := clock.NewManual(t0)
	s := openStore(t, db, clk, Limits{})
	short := publish(t, newPractice(t, "A", "80331"), t0.Add(time.Hour), testSlot(1, 2))
	long := publish(t, newPractice(t, "B", "80331"), t0.Add(3*time.Hour), testSlot(1, 2))
	mid := publish(t, newPractice(t, "C", "80331"), t0.Add(2*time.Hour), testSlot(1, 2))
	for _, f := range [][]byte{short, long, mid} {
		if _, err := s.Insert(f); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Frames(0)
	if len(got) != 3 || !bytes.Equal(got[0], long) || !bytes.Equal(got[1], mid) || !bytes.Equal(got[2], short) {
		t.Fatalf("Frames(0) = %d frames, not in the order long, mid, short", len(got))
	}
	if got := s.Frames(2); len(got) != 2 || !bytes.Equal(got[1], mid) {
		t.Fatalf("Frames(2) = %d frames", len(got))
	}
	clk.Advance(90 * time.Minute)
	if got := s.Frames(0); len(got) != 2 {
		t.Fatalf("after A's expiry Frames(0) = %d frames, want 2", len(got))
	}
}
