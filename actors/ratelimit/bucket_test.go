package ratelimit

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestBucket(t *testing.T) {
	type step struct {
		ms   int // time since t0
		n    int
		want bool
	}
	cases := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"starts full, then empty", 1, 3, []step{{0, 1, true}, {0, 1, true}, {0, 1, true}, {0, 1, false}}},
		{"refills at rate", 10, 1, []step{{0, 1, true}, {50, 1, false}, {100, 1, true}, {150, 1, false}, {200, 1, true}}},
		{"refill capped at burst", 100, 2, []step{{0, 2, true}, {10_000, 1, true}, {10_000, 1, true}, {10_000, 1, false}}},
		{"AllowN all or nothing", 1, 5, []step{{0, 4, true}, {0, 2, false}, {0, 1, true}, {0, 1, false}}},
		{"AllowN above burst never passes", 1000, 5, []step{{0, 6, false}, {60_000, 6, false}, {60_000, 5, true}}},
		{"fractional refill accrues", 0.5, 1, []step{{0, 1, true}, {1000, 1, false}, {2000, 1, true}}},
		{"zero rate never refills", 0, 2, []step{{0, 2, true}, {3_600_000, 1, false}}},
		{"burst zero admits nothing", 10, 0, []step{{0, 1, false}, {1000, 1, false}}},
		{"infinite rate", math.Inf(1), 2, []step{{0, 2, true}, {0, 1, false}, {1, 2, true}}},
		{"clock steps back: no refill", 1, 1, []step{{5000, 1, true}, {1000, 1, false}, {5500, 1, false}, {6000, 1, true}}},
		{"negative n refused", 1, 1, []step{{0, -1, false}, {0, 1, true}}},
		{"zero n passes", 1, 1, []step{{0, 1, true}, {0, 0, true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := Bucket{Rate: c.rate, Burst: c.burst}
			for i, s := range c.steps {
				if got := b.AllowN(at(s.ms), s.n); got != s.want {
					t.Fatalf("step %d (t=%dms n=%d): %v, want %v (tokens %.3f)", i, s.ms, s.n, got, s.want, b.Tokens(at(s.ms)))
				}
			}
		})
	}
}

func peer(b byte) [16]byte { return [16]byte{b} }

var testCfg = PerPeerConfig{
	Limits: [NumClasses]Limit{
		ClassEnvelope:   {Rate: 10, Burst: 10},
		ClassAnnounce:   {Rate: 1, Burst: 2},
		ClassKeyPackage: {Rate: 0.1, Burst: 1},
	},
	MaxPeers: 16,
}

// TestFloodingPeerDoesNotStarveOthers: one peer sends at 100 times its
// rate for 10 seconds while another sends at its rate; every one of the
// polite peer's envelopes passes and the flooder gets no more than its
// burst plus its rate.
func TestFloodingPeerDoesNotStarveOthers(t *testing.T) {
	p := NewPerPeer(testCfg)
	flooder, polite := peer(1), peer(2)
	var floodPassed, floodSent int
	for ms := 0; ms < 10_000; ms++ {
		now := at(ms)
		// Flooder: 1000/s = 1 per millisecond, 100x its 10/s.
		floodSent++
		if p.Allow(flooder, ClassEnvelope, now) {
			floodPassed++
		}
		// Polite peer: 10/s, exactly its rate.
		if ms%100 == 0 && !p.Allow(polite, ClassEnvelope, now) {
			t.Fatalf("polite peer refused at %dms", ms)
		}
	}
	if floodPassed > 10+10*10 {
		t.Fatalf("flooder passed %d of %d, more than burst+rate*10s = 110", floodPassed, floodSent)
	}
	if floodPassed < 100 {
		t.Fatalf("flooder passed only %d; its own rate (10/s) should still pass", floodPassed)
	}
	if got := p.Refused(ClassEnvelope); got != uint64(floodSent-floodPassed) {
		t.Fatalf("Refused(envelope) = %d, want %d", got, floodSent-floodPassed)
	}
}

func TestClassesAreSeparate(t *testing.T) {
	p := NewPerPeer(testCfg)
	a := peer(1)
	for p.Allow(a, ClassAnnounce, t0) {
	}
	if !p.Allow(a, ClassEnvelope, t0) || !p.Allow(a, ClassKeyPackage, t0) {
		t.Fatal("spent announces blocked other classes")
	}
	if p.Allow(a, ClassKeyPackage, t0) {
		t.Fatal("second KeyPackage request within burst 1 passed")
	}
	if p.Allow(a, NumClasses, t0) || p.Allow(a, Class(200), t0) {
		t.Fatal("unknown class admitted")
	}
	if ClassKeyPackage.String() != "keypackage" || Class(9).String() != "class(9)" {
		t.Fatal("Class.String")
	}
}

func TestPerPeerStaysBounded(t *testing.T) {
	p := NewPerPeer(testCfg)
	victim := peer(0)
	// The victim spends its burst.
	for p.Allow(victim, ClassAnnounce, t0) {
	}
	// 1000 other addresses pass through; memory stays at MaxPeers.
	for i := 1; i <= 1000; i++ {
		p.Allow([16]byte{byte(i), byte(i >> 8), 1}, ClassEnvelope, at(i))
		if p.Len() > testCfg.MaxPeers {
			t.Fatalf("tracking %d peers, cap %d", p.Len(), testCfg.MaxPeers)
		}
	}
	if p.Evicted() != 1000+1-uint64(testCfg.MaxPeers) {
		t.Fatalf("Evicted = %d", p.Evicted())
	}
	// The least recently seen went first: the victim was forgotten and
	// comes back with a fresh bucket.
	if !p.Allow(victim, ClassAnnounce, at(1000)) {
		t.Fatal("evicted peer did not start fresh")
	}
}

func TestRecentlySeenPeerIsKept(t *testing.T) {
	cfg := testCfg
	cfg.MaxPeers = 2
	p := NewPerPeer(cfg)
	a, b, c := peer(1), peer(2), peer(3)
	p.Allow(a, ClassKeyPackage, t0) // a spends its only KeyPackage token
	p.Allow(b, ClassEnvelope, t0)
	p.Allow(a, ClassEnvelope, t0) // a is now the most recent
	p.Allow(c, ClassEnvelope, t0) // evicts b, not a
	if p.Allow(a, ClassKeyPackage, t0) {
		t.Fatal("a was evicted although b was seen less recently")
	}
}

func TestPruneAndForget(t *testing.T) {
	p := NewPerPeer(testCfg)
	p.Allow(peer(1), ClassEnvelope, t0)   // spends 1 of 10 at 10/s: full again after 100ms
	p.Allow(peer(2), ClassKeyPackage, t0) // spends 1 of 1 at 0.1/s: full again after 10s
	p.Allow(peer(3), ClassEnvelope, t0)
	p.Forget(peer(3))
	p.Forget(peer(9))
	if p.Len() != 2 {
		t.Fatalf("Len = %d after Forget, want 2", p.Len())
	}
	if n := p.Prune(at(50)); n != 0 {
		t.Fatalf("Prune at 50ms dropped %d, want 0", n)
	}
	if n := p.Prune(at(100)); n != 1 || p.Len() != 1 {
		t.Fatalf("Prune at 100ms dropped %d (Len %d), want 1 (1)", n, p.Len())
	}
	if n := p.Prune(at(10_000)); n != 1 || p.Len() != 0 {
		t.Fatalf("Prune at 10s dropped %d (Len %d), want 1 (0)", n, p.Len())
	}
}

func BenchmarkPerPeerAllow(b *testing.B) {
	p := NewPerPeer(DefaultPerPeerConfig)
	var peers [][16]byte
	for i := range 1000 {
		peers = append(peers, [16]byte{byte(i), byte(i >> 8)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		p.Allow(peers[i%len(peers)], ClassEnvelope, at(i))
	}
}
