package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func TestRestartBackoffDoublesCapsAndGivesUp(t *testing.T) {
	p := RestartPolicy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, MaxRestarts: 5, Window: time.Minute}
	h := newRestartHistory(p)
	now := time.Unix(0, 0)
	want := []time.Duration{10, 20, 40, 50, 50}
	for i, w := range want {
		d, giveUp := h.Fail("router", now.Add(time.Duration(i)*time.Second))
		if giveUp || d != w*time.Millisecond {
			t.Fatalf("failure %d: delay %v giveUp %v, want %v", i+1, d, giveUp, w*time.Millisecond)
		}
	}
	if _, giveUp := h.Fail("router", now.Add(5*time.Second)); !giveUp {
		t.Fatal("sixth failure within the window did not give up")
	}
	// Another child has its own history.
	if d, giveUp := h.Fail("store", now); giveUp || d != 10*time.Millisecond {
		t.Fatalf("store: %v %v", d, giveUp)
	}
}

func TestRestartHistoryForgetsOutsideWindow(t *testing.T) {
	p := RestartPolicy{Initial: 10 * time.Millisecond, Max: time.Second, MaxRestarts: 2, Window: time.Minute}
	h := newRestartHistory(p)
	now := time.Unix(0, 0)
	h.Fail("a", now)
	h.Fail("a", now.Add(time.Second))
	d, giveUp := h.Fail("a", now.Add(2*time.Minute))
	if giveUp || d != 10*time.Millisecond {
		t.Fatalf("after the window: delay %v giveUp %v, want a fresh 10ms", d, giveUp)
	}
}

func TestDecide(t *testing.T) {
	if Decide("boom") != actor.RestartDirective {
		t.Fatal("string panic not restarted")
	}
	if Decide(fmt.Errorf("disk: %w", ErrFatal)) != actor.StopDirective {
		t.Fatal("fatal error not stopped")
	}
}
