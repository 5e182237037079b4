package keys

import (
	"testing"
	"time"

	"github.com/quicprochat/qpc/actors/ratelimit"
)

func allow(t *testing.T, l *RequestLimiter, src [16]byte, now time.Time, wantOK bool, wantReason string) {
	t.Helper()
	ok, reason := l.Allow(src, now)
	if ok != wantOK || reason != wantReason {
		t.Fatalf("allow %x at %v: %v %q, want %v %q", src[:3], now.Sub(t0), ok, reason, wantOK, wantReason)
	}
}

func TestLimiterDefaults(t *testing.T) {
	got := NewRequestLimiter(LimiterConfig{}).Config()
	if got != DefaultLimiterConfig || got.PerRequester.Rate != 0.1 || got.Global.Rate != 1 {
		t.Fatalf("defaults %+v", got)
	}
}

func TestLimiterPerRequester(t *testing.T) {
	l := NewRequestLimiter(LimiterConfig{})
	a, b := addr(1), addr(2)
	for range 3 {
		allow(t, l, a, t0, true, "")
	}
	allow(t, l, a, t0, false, ReasonRequester)
	allow(t, l, b, t0, true, "") // another requester is not affected
	// 6 a minute: one more after 10 s.
	allow(t, l, a, t0.Add(9*time.Second), false, ReasonRequester)
	allow(t, l, a, t0.Add(10*time.Second), true, "")
	allow(t, l, a, t0.Add(10*time.Second), false, ReasonRequester)
	if s := l.Stats(); s.Allowed != 5 || s.RefusedRequester != 3 || s.RefusedGlobal != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLimiterGlobal(t *testing.T) {
	l := NewRequestLimiter(LimiterConfig{})
	for i := range 20 {
		allow(t, l, addr(i), t0, true, "")
	}
	x := addr(100)
	allow(t, l, x, t0, false, ReasonGlobal)
	allow(t, l, x, t0, false, ReasonGlobal)
	if l.Len() != 20 {
		t.Fatalf("a requester refused by the global budget is tracked: %d", l.Len())
	}
	// A refusal for the global budget cost x nothing: its whole burst of
	// 3 passes as the global bucket refills (one a second).
	for i := 1; i <= 3; i++ {
		allow(t, l, x, t0.Add(time.Duration(i)*time.Second), true, "")
	}
	allow(t, l, x, t0.Add(4*time.Second), false, ReasonRequester)
	// Over its own budget it says so, and spends no global token: another
	// requester gets the one that refilled.
	allow(t, l, addr(101), t0.Add(4*time.Second), true, "")
	if s := l.Stats(); s.RefusedGlobal != 2 || s.RefusedRequester != 1 || s.Allowed != 24 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLimiterBoundAndIdle(t *testing.T) {
	l := NewRequestLimiter(LimiterConfig{
		PerRequester:  ratelimit.Limit{Rate: 0.1, Burst: 3},
		Global:        ratelimit.Limit{Rate: 1000, Burst: 1000},
		MaxRequesters: 8,
	})
	for i := range 100 {
		allow(t, l, addr(i), t0, true, "")
		if l.Len() > 8 {
			t.Fatalf("%d tracked, at most 8", l.Len())
		}
	}
	if s := l.Stats(); s.Forgotten != 92 {
		t.Fatalf("forgotten %d", s.Forgotten)
	}
	// The most recent 8 are tracked: their spent token shows.
	for i := 92; i < 100; i++ {
		allow(t, l, addr(i), t0, true, "")
		allow(t, l, addr(i), t0, true, "")
		allow(t, l, addr(i), t0, false, ReasonRequester)
	}
	if l.Len() != 8 {
		t.Fatalf("len %d", l.Len())
	}
	// 30 s refills all three tokens: idle requesters are forgotten.
	if n := l.Prune(t0.Add(29 * time.Second)); n != 0 {
		t.Fatalf("pruned %d before they refilled", n)
	}
	if n := l.Prune(t0.Add(30 * time.Second)); n != 8 || l.Len() != 0 {
		t.Fatalf("pruned %d, len %d", n, l.Len())
	}
	// Allow forgets idle ones as it goes.
	allow(t, l, addr(1), t0.Add(time.Minute), true, "")
	allow(t, l, addr(2), t0.Add(2*time.Minute), true, "")
	if l.Len() != 1 {
		t.Fatalf("len %d: the idle requester was kept", l.Len())
	}
}

// TestLimiterFloodOfFreshIdentities: 10,000 fresh identities do not make
// the node refuse a known requester that has been quiet: once the global
// bucket has refilled, its next request is answered.
func TestLimiterFloodOfFreshIdentities(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   LimiterConfig
		every time.Duration // between the flood's requests
	}{
		{"defaults, a burst", LimiterConfig{}, time.Millisecond},
		// Spaced at the global rate, every fresh identity is answered and
		// tracked: the table is full and the known one is forgotten.
		{"defaults, at the global rate", LimiterConfig{}, time.Second},
		{"small table", LimiterConfig{MaxRequesters: 16}, 100 * time.Millisecond},
		{"no idle expiry", LimiterConfig{PerRequester: ratelimit.Limit{Rate: 1e-9, Burst: 3}, MaxRequesters: 64}, time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := NewRequestLimiter(c.cfg)
			known := addr(0xfffff)
			// The known requester spends its burst, then is quiet.
			for range 3 {
				allow(t, l, known, t0, true, "")
			}
			allow(t, l, known, t0, false, ReasonRequester)
			now := t0.Add(time.Second)
			answered := 0
			for i := range 10000 {
				if ok, _ := l.Allow(addr(i), now); ok {
					answered++
				}
				if l.Len() > l.Config().MaxRequesters {
					t.Fatalf("%d tracked, at most %d", l.Len(), l.Config().MaxRequesters)
				}
				now = now.Add(c.every)
			}
			if answered == 0 || answered == 10000 && c.every < time.Second {
				t.Fatalf("the flood got %d answers", answered)
			}
			// Wait for one global token, at most the time of one at the
			// global rate; the known requester's own bucket had the flood's
			// duration to refill at least one token in every case but the
			// one whose rate is all but zero, where it is forgotten.
			now = now.Add(time.Duration(float64(time.Second) / l.Config().Global.Rate))
			allow(t, l, known, now, true, "")
		})
	}
}
