package router

import (
	"testing"
	"time"

	"github.com/quicprochat/qpc/messages"
)

func TestFloodDelayWeighsTheSignal(t *testing.T) {
	slot := 300 * time.Millisecond
	radio := func(snr float64) messages.Signal {
		return messages.Signal{Radio: true, HasSNR: true, SNR: snr, Airtime: slot}
	}
	for _, c := range []struct {
		name     string
		sig      messages.Signal
		min, max time.Duration // the delay's range
	}{
		{"not a radio", messages.Signal{}, 0, IPJitter},
		{"weakest", radio(-30), 0, 4 * slot},
		{"strongest", radio(20), 2 * slot, 18 * slot},
		{"midway", radio(-5), slot, 11 * slot},
		{"not measured: midway", messages.Signal{Radio: true, Airtime: slot}, slot, 11 * slot},
	} {
		lo, hi := &Flood{Rand: func(int64) int64 { return 0 }}, &Flood{Rand: func(n int64) int64 { return n - 1 }}
		if d := lo.Delay(c.sig); d != c.min {
			t.Errorf("%s: shortest delay %s, want %s", c.name, d, c.min)
		}
		if d := hi.Delay(c.sig); d < c.max-time.Microsecond || d >= c.max {
			t.Errorf("%s: longest delay %s, want just under %s", c.name, d, c.max)
		}
	}
	// On average a weak receiver goes before a strong one.
	f := NewFlood()
	var weak, strong time.Duration
	for range 1000 {
		weak += f.Delay(radio(-15))
		strong += f.Delay(radio(8))
	}
	if weak >= strong {
		t.Fatalf("weak receivers wait %s on average, strong ones %s", weak/1000, strong/1000)
	}
}

func TestFloodSuppression(t *testing.T) {
	dest, a, b, c := [16]byte{1}, [16]byte{2}, [16]byte{3}, [16]byte{4}
	radio := messages.Signal{Radio: true, Airtime: time.Second}
	f := NewFlood()
	// Nothing known of the radio's neighbours: never suppressed.
	_, id := f.Schedule(dest, 7, a, radio)
	if s, ok := f.Fire(dest, id); !ok || s {
		t.Fatalf("suppressed %v ok %v without known neighbours", s, ok)
	}
	for _, p := range [][16]byte{dest, a, b, c} {
		f.RadioLink(p, true)
	}
	// Heard from a (the first copy) and b: c still lacks it.
	_, id = f.Schedule(dest, 7, a, radio)
	f.Heard(dest, 7, b, radio)
	f.Heard(dest, 6, c, radio)             // an older announce
	f.Heard(dest, 7, c, messages.Signal{}) // over TCP
	if s, ok := f.Fire(dest, id); !ok || s {
		t.Fatalf("suppressed %v ok %v while c lacks the announce", s, ok)
	}
	// Every neighbour but the origin sent it: nobody left to serve.
	_, id = f.Schedule(dest, 8, a, radio)
	f.Heard(dest, 8, b, radio)
	f.Heard(dest, 8, c, radio)
	if s, ok := f.Fire(dest, id); !ok || !s {
		t.Fatalf("suppressed %v ok %v with every neighbour served", s, ok)
	}
	if _, ok := f.Fire(dest, id); ok || f.Pending() != 0 {
		t.Fatal("fired twice")
	}
	// A link going down shrinks what is to serve.
	f.RadioLink(c, false)
	_, id = f.Schedule(dest, 9, a, radio)
	f.Heard(dest, 9, b, radio)
	if s, _ := f.Fire(dest, id); !s {
		t.Fatal("c's link is gone; still not suppressed")
	}
	// A newer announce replaces the pending one; the older timer sends
	// nothing. One heard over TCP is never suppressed.
	_, old := f.Schedule(dest, 10, a, radio)
	_, cur := f.Schedule(dest, 11, b, messages.Signal{})
	if _, ok := f.Fire(dest, old); ok {
		t.Fatal("the replaced re-broadcast fired")
	}
	f.Heard(dest, 11, a, radio)
	if s, ok := f.Fire(dest, cur); !ok || s {
		t.Fatalf("an announce heard over TCP: suppressed %v ok %v", s, ok)
	}
}

// In a dense neighbourhood, DenseCopies re-broadcasts heard suppress
// ours although some neighbours were not heard; with fewer neighbours
// (a bridge) they do not.
func TestFloodDenseCounter(t *testing.T) {
	dest := [16]byte{1}
	radio := messages.Signal{Radio: true, Airtime: time.Second}
	for _, c := range []struct {
		neighbours int
		want       bool
	}{{DenseNeighbours, true}, {DenseNeighbours - 1, false}} {
		f := NewFlood()
		for i := range c.neighbours {
			f.RadioLink([16]byte{byte(10 + i)}, true)
		}
		_, id := f.Schedule(dest, 1, [16]byte{10}, radio)
		for i := 1; i <= DenseCopies; i++ {
			f.Heard(dest, 1, [16]byte{byte(10 + i)}, radio)
		}
		if s, _ := f.Fire(dest, id); s != c.want {
			t.Errorf("%d neighbours, %d copies heard: suppressed %v, want %v", c.neighbours, DenseCopies, s, c.want)
		}
	}
}
