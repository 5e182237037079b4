// Package probe is how tests wait: a condition checked again and again
// until it holds or a real-time deadline passes, never a fixed sleep. It
// is for state that nothing signals (a counter, a table another goroutine
// fills, another process); where something does signal (a channel, an
// event, a reply), wait on that instead.
//
// With a clock.Manual, AdvanceUntil moves the clock in steps until the
// condition holds, so timers on that clock (a group commit's gather, a
// retry, a GC tick) fire while the test waits.
package probe

import (
	"fmt"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
)

// interval is how often a condition is checked again.
const interval = time.Millisecond

// Wait checks cond until it holds (true) or within has passed (false).
func Wait(within time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return true
			}
		case <-deadline.C:
			return cond()
		}
	}
}

// Until checks cond until it holds, and fails tb with what (formatted
// with args) when it does not within the deadline.
func Until(tb testing.TB, within time.Duration, cond func() bool, what string, args ...any) {
	tb.Helper()
	if !Wait(within, cond) {
		tb.Fatalf("not within %v: %s", within, fmt.Sprintf(what, args...))
	}
}

// AdvanceUntil advances clk by step and checks cond, again and again,
// until cond holds; it fails tb when that takes longer than within in
// real time. It returns how far it moved the clock. Each step waits for
// the next check interval first, so the actors whose timers fired run
// before the clock moves on.
func AdvanceUntil(tb testing.TB, clk *clock.Manual, step, within time.Duration, cond func() bool, what string, args ...any) time.Duration {
	tb.Helper()
	var moved time.Duration
	ok := Wait(within, func() bool {
		if cond() {
			return true
		}
		clk.Advance(step)
		moved += step
		return false
	})
	if !ok {
		tb.Fatalf("not within %v (the clock moved %v): %s", within, moved, fmt.Sprintf(what, args...))
	}
	return moved
}
