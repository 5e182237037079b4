package discovery

import (
	"net/netip"
	"time"
)

// bucket is a token bucket: it holds up to burst tokens, refills at rate per
// second, and each admitted datagram takes one token.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b up to now and takes a token if there is one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*rate)
	}
	b.last = now
}

// sourceLimiter keeps one token bucket per source IP and one for all of
// them. Its table is bounded: when it is full, buckets that have refilled
// completely are forgotten (a new bucket starts full, so nothing is lost);
// if none has, a new source is refused until one does. Not safe for
// concurrent use: only the receive goroutine calls it.
type sourceLimiter struct {
	rate, burst         float64
	totalRate, totalMax float64
	maxSources          int

	sources   map[netip.Addr]*bucket
	total     bucket
	lastSweep time.Time
}

func newSourceLimiter(rate float64, burst int, totalRate float64, maxSources int, now time.Time) *sourceLimiter {
	return &sourceLimiter{
		rate: rate, burst: float64(burst),
		totalRate: totalRate, totalMax: max(totalRate, 1), // the total bucket holds one second's worth
		maxSources: maxSources,
		sources:    make(map[netip.Addr]*bucket),
		total:      bucket{tokens: max(totalRate, 1), last: now},
	}
}

// allow reports whether a datagram from src may be processed now.
func (l *sourceLimiter) allow(src netip.Addr, now time.Time) bool {
	b, ok := l.sources[src]
	if !ok {
		if len(l.sources) >= l.maxSources && !l.sweep(now) {
			return false
		}
		b = &bucket{tokens: l.burst, last: now}
		l.sources[src] = b
	}
	if !b.take(now, l.rate, l.burst) {
		return false
	}
	return l.total.take(now, l.totalRate, l.totalMax)
}

// sweep forgets the sources whose buckets are full again, at most once a
// second (so a flood of new sources cannot make every datagram a full scan).
// It reports whether there is room for a new source.
func (l *sourceLimiter) sweep(now time.Time) bool {
	if now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for src, b := range l.sources {
			b.refill(now, l.rate, l.burst)
			if b.tokens >= l.burst {
				delete(l.sources, src)
			}
		}
	}
	return len(l.sources) < l.maxSources
}
