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
