package clock

import (
	"testing"
	"time"
)

func TestManualFiresDueTimersOnly(t *testing.T) {
	c := NewManual(time.Unix(1000, 0))
	fired := make(chan int, 3)
	c.AfterFunc(time.Second, func() { fired <- 1 })
	c.AfterFunc(3*time.Second, func() { fired <- 3 })
	stopped := c.AfterFunc(2*time.Second, func() { fired <- 2 })
	if !stopped.Stop() {
		t.Fatal("Stop on a pending timer returned false")
	}
	c.Advance(2 * time.Second)
	if got := <-fired; got != 1 {
		t.Fatalf("fired %d, want 1", got)
	}
	if c.Pending() != 1 {
		t.Fatalf("pending = %d, want 1", c.Pending())
	}
	c.Advance(time.Second)
	if got := <-fired; got != 3 {
		t.Fatalf("fired %d, want 3", got)
	}
	if !c.Now().Equal(time.Unix(1003, 0)) {
		t.Fatalf("now = %v", c.Now())
	}
	select {
	case v := <-fired:
		t.Fatalf("stopped timer fired: %d", v)
	default:
	}
}

func TestManualNext(t *testing.T) {
	c := NewManual(time.Unix(100, 0))
	if _, ok := c.Next(); ok {
		t.Fatal("Next with no timers")
	}
	late := c.AfterFunc(3*time.Second, func() {})
	c.AfterFunc(5*time.Second, func() {})
	early := c.AfterFunc(time.Second, func() {})
	if n, ok := c.Next(); !ok || !n.Equal(time.Unix(101, 0)) {
		t.Fatalf("Next = %v %v, want 101 s", n, ok)
	}
	early.Stop()
	if n, _ := c.Next(); !n.Equal(time.Unix(103, 0)) {
		t.Fatalf("Next after Stop = %v, want 103 s", n)
	}
	late.Stop()
	c.Advance(5 * time.Second)
	if _, ok := c.Next(); ok {
		t.Fatal("Next after every timer fired")
	}
}
