package router

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func id(i int) [16]byte { return [16]byte{byte(i), byte(i >> 8), 0xdd} }

func TestDedup(t *testing.T) {
	d := NewDedup(3, time.Minute)
	steps := []struct {
		id   int
		at   int // seconds
		want bool
	}{
		{1, 0, false},
		{1, 1, true},   // flood copy
		{2, 2, false},  //
		{3, 3, false},  // full: 1, 2, 3
		{4, 4, false},  // evicts 1 early
		{1, 5, false},  // so 1 is new again (and evicts 2)
		{3, 6, true},   //
		{3, 63, false}, // 3 expired at 63 s
		{4, 63, true},  // 4 lives until 64 s
		{4, 64, false},
	}
	for i, s := range steps {
		if got := d.Seen(id(s.id), sec(s.at)); got != s.want {
			t.Fatalf("step %d: Seen(%d) at %ds = %v, want %v", i, s.id, s.at, got, s.want)
		}
		if d.Len() > 3 {
			t.Fatalf("step %d: Len %d above capacity 3", i, d.Len())
		}
	}
	if d.Evicted() != 2 {
		t.Fatalf("Evicted = %d, want 2", d.Evicted())
	}
}

func TestDedupDefaultsAndGrowth(t *testing.T) {
	d := NewDedup(0, 0)
	if d.max != DefaultDedupCapacity || d.ttl != DefaultDedupTTL {
		t.Fatalf("defaults: %d, %v", d.max, d.ttl)
	}
	if len(d.ring) > 64 {
		t.Fatalf("an idle Dedup holds %d slots", len(d.ring))
	}
	for i := range 1000 {
		d.Seen(id(i), t0)
	}
	if d.Len() != 1000 || d.Evicted() != 0 || !d.Seen(id(0), t0) || !d.Seen(id(999), t0) {
		t.Fatalf("after growth: Len %d, evicted %d", d.Len(), d.Evicted())
	}
}

// TestDedupMatchesSlowModel compares Dedup with a brute-force list of
// (id, first seen) under random traffic.
func TestDedupMatchesSlowModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			capacity, ttl := 1+rng.IntN(40), time.Duration(1+rng.IntN(30))*time.Second
			d := NewDedup(capacity, ttl)
			type rec struct {
				id [16]byte
				at time.Time
			}
			var model []rec // arrival order
			now := t0
			for step := range 20000 {
				now = now.Add(time.Duration(rng.IntN(500)) * time.Millisecond)
				x := id(rng.IntN(60))
				// Model: drop expired, then look up, then record.
				kept := model[:0]
				for _, r := range model {
					if now.Before(r.at.Add(ttl)) {
						kept = append(kept, r)
					}
				}
				model = kept
				want := false
				for _, r := range model {
					if r.id == x {
						want = true
					}
				}
				if !want {
					if len(model) == capacity {
						model = model[1:]
					}
					model = append(model, rec{x, now})
				}
				if got := d.Seen(x, now); got != want {
					t.Fatalf("step %d: Seen = %v, model %v", step, got, want)
				}
				if d.Len() != len(model) {
					t.Fatalf("step %d: Len %d, model %d", step, d.Len(), len(model))
				}
			}
		})
	}
}

func BenchmarkDedupSeen(b *testing.B) {
	d := NewDedup(1<<16, time.Minute)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		d.Seen([16]byte{byte(i), byte(i >> 8), byte(i >> 16)}, t0.Add(time.Duration(i)*time.Microsecond))
	}
}
