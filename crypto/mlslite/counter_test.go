package mlslite

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// TestCounterRestart: a sender that crashes at random points and resumes
// from the high water it last stored never hands out a counter twice,
// provided it stored the high water whenever Next said persist before
// using the counter.
func TestCounterRestart(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	used := map[uint32]bool{}
	var stored uint32 // the durable high water
	c := NewCounter()
	persists := 0
	for range 5000 {
		if rng.IntN(50) == 0 { // crash: everything in memory is lost
			c = RestoreCounter(stored)
			continue
		}
		n, persist, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if persist {
			persists++
			if rng.IntN(10) == 0 { // the write failed: the frame is not sent
				c = RestoreCounter(stored)
				continue
			}
			stored = c.HighWater()
		}
		if n >= stored {
			t.Fatalf("counter %d handed out at or above the stored high water %d", n, stored)
		}
		if used[n] {
			t.Fatalf("counter %d used twice", n)
		}
		used[n] = true
	}
	if persists > 5000/CounterReserve+150 {
		t.Fatalf("%d durable writes for 5000 counters", persists)
	}
}

func TestCounterSequence(t *testing.T) {
	c := NewCounter()
	for i := range uint32(2*CounterReserve + 1) {
		n, persist, err := c.Next()
		if err != nil || n != i || persist != (i%CounterReserve == 0) {
			t.Fatalf("Next %d: %d %v %v", i, n, persist, err)
		}
	}
	if c.HighWater() != 3*CounterReserve {
		t.Fatalf("high water %d", c.HighWater())
	}
	r := RestoreCounter(c.HighWater())
	if n, persist, _ := r.Next(); n != 3*CounterReserve || !persist {
		t.Fatalf("after restore: %d %v", n, persist)
	}
}

func TestCounterExhausted(t *testing.T) {
	c := RestoreCounter(math.MaxUint32 - 2)
	for _, want := range []uint32{math.MaxUint32 - 2, math.MaxUint32 - 1} {
		n, persist, err := c.Next()
		if err != nil || n != want {
			t.Fatalf("Next: %d %v %v, want %d", n, persist, err, want)
		}
	}
	if c.HighWater() != math.MaxUint32 {
		t.Fatalf("high water %d", c.HighWater())
	}
	for range 2 {
		if _, _, err := c.Next(); !errors.Is(err, ErrCounterExhausted) {
			t.Fatalf("at the end: %v", err)
		}
	}
	r := RestoreCounter(math.MaxUint32)
	if _, _, err := r.Next(); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("restored at the end: %v", err)
	}
}
