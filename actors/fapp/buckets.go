package fapp

import (
	"time"

	"github.com/quicprochat/qpc/actors/ratelimit"
)

// buckets are token buckets by key, at most about 2×max of them, each
// lookup O(1) amortised: two generations of maps; a bucket used is moved
// into the current one, and when the current one holds max, the previous
// one (buckets not used for a whole generation) is dropped. A bucket
// dropped comes back full: it loses at most a generation's partial use,
// never more than its burst.
type buckets[K comparable] struct {
	max         int
	rate        float64 // tokens a second
	burst       int
	cur, prev   map[K]*ratelimit.Bucket
	generations int // how often the previous one was dropped (tests)
}

func newBuckets[K comparable](max int, rate float64, burst int) *buckets[K] {
	return &buckets[K]{max: max, rate: rate, burst: burst, cur: map[K]*ratelimit.Bucket{}, prev: map[K]*ratelimit.Bucket{}}
}

// get is k's bucket (made, full, when there is none).
func (b *buckets[K]) get(k K) *ratelimit.Bucket {
	if x := b.cur[k]; x != nil {
		return x
	}
	x := b.prev[k]
	if x != nil {
		delete(b.prev, k)
	} else {
		x = &ratelimit.Bucket{Rate: b.rate, Burst: b.burst}
	}
	if len(b.cur) >= b.max {
		b.prev, b.cur = b.cur, make(map[K]*ratelimit.Bucket, len(b.cur))
		b.generations++
	}
	b.cur[k] = x
	return x
}

// allow spends one of k's tokens.
func (b *buckets[K]) allow(k K, now time.Time) bool { return b.get(k).Allow(now) }

// peek is k's bucket if it has one (nothing is made or moved).
func (b *buckets[K]) peek(k K) *ratelimit.Bucket {
	if x := b.cur[k]; x != nil {
		return x
	}
	return b.prev[k]
}

func (b *buckets[K]) len() int { return len(b.cur) + len(b.prev) }
