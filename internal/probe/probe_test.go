package probe

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
)

func TestWait(t *testing.T) {
	var n atomic.Int32
	if !Wait(10*time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("a condition that holds on the third check did not")
	}
	if Wait(5*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds did")
	}
}

// AdvanceUntil moves the clock until a timer on it has fired, in steps.
func TestAdvanceUntil(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	fired := make(chan struct{})
	clk.AfterFunc(time.Second, func() { close(fired) })
	done := func() bool {
		select {
		case <-fired:
			return true
		default:
			return false
		}
	}
	moved := AdvanceUntil(t, clk, 100*time.Millisecond, 10*time.Second, done, "the timer at 1 s")
	if moved < time.Second || !clk.Now().Equal(time.Unix(1000, 0).Add(moved)) {
		t.Fatalf("moved %v, now %v", moved, clk.Now())
	}
}
