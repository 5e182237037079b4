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
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
)

// interval is how often a condition is checked again.
const interval = time.Millisecond

// Wait checks cond until it holds (true) or within has passed (false).
func Wait(within time.Duration, cond func() bool) bool { return WaitEvery(within, interval, cond) }

// WaitEvery is Wait checking every every: for a check that costs (another
// process asked), so the probe does not become the load.
func WaitEvery(within, every time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(every)
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

// Parked waits until one goroutine is parked (waiting on a channel, a
// select, a lock, a condition or network I/O, not running or runnable)
// in a call whose stack shows every one of frames (function names as the
// runtime prints them, e.g. "transporttest.blockedRead(" and
// "ReadFrame("), and found so in two looks a check interval apart. A
// test that closes something to unblock a call waits with it until the
// call is provably blocked, so the close cannot come first. It fails tb
// when no such goroutine shows within the deadline, with the stacks.
func Parked(tb testing.TB, within time.Duration, frames ...string) {
	tb.Helper()
	ParkedFor(tb, within, 0, frames...)
}

// ParkedFor is Parked for a call that may park for a moment and go on (a
// write waiting for a send loop): the same goroutine must be found parked
// in every look for at least stable.
func ParkedFor(tb testing.TB, within, stable time.Duration, frames ...string) {
	tb.Helper()
	var last string // the goroutine id found parked in the last look
	var since time.Time
	if Wait(within, func() bool {
		id := parkedIn(frames)
		if id == "" || id != last {
			last, since = id, time.Now()
			return false
		}
		return time.Since(since) >= stable
	}) {
		return
	}
	buf := make([]byte, 1<<20)
	tb.Fatalf("no goroutine parked in %v for %v within %v:\n%s", frames, stable, within, buf[:runtime.Stack(buf, true)])
}

// parkedIn returns the id of a goroutine parked with all of frames on its
// stack, or "".
func parkedIn(frames []string) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
next:
	for _, g := range strings.Split(string(buf), "\n\n") {
		// "goroutine 42 [chan receive, 2 minutes]:"
		head, _, _ := strings.Cut(g, "\n")
		id, state, ok := strings.Cut(strings.TrimPrefix(head, "goroutine "), " [")
		if !ok {
			continue
		}
		state, _, _ = strings.Cut(strings.TrimSuffix(state, "]:"), ",")
		switch state {
		case "running", "runnable", "syscall", "preempted", "GC assist wait":
			continue
		}
		for _, f := range frames {
			if !strings.Contains(g, f) {
				continue next
			}
		}
		return id
	}
	return ""
}
