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

//go:noinline
func parkedOnChannel(c chan struct{}) { <-c }

// Parked finds a goroutine blocked in a named call, and only once it is
// blocked there.
func TestParked(t *testing.T) {
	c := make(chan struct{})
	done := make(chan struct{})
	go func() { parkedOnChannel(c); close(done) }()
	Parked(t, 10*time.Second, "probe.parkedOnChannel(")
	if parkedIn([]string{"probe.parkedOnChannel(", "no such frame"}) != "" {
		t.Fatal("found a goroutine with a frame it does not have")
	}
	close(c)
	<-done
	if parkedIn([]string{"probe.parkedOnChannel("}) != "" {
		t.Fatal("found a goroutine that returned")
	}
}
