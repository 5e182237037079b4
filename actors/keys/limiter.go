package keys

import (
	"container/list"
	"time"

	"github.com/quicprochat/qpc/actors/ratelimit"
)

// Reasons RequestLimiter.Allow refuses with.
const (
	ReasonRequester = "requester" // the requester spent its own budget
	ReasonGlobal    = "global"    // the node's budget for all requesters is spent
)

// LimiterConfig bounds the KeyPackage requests this node answers. Zero
// fields take the defaults of DefaultLimiterConfig.
type LimiterConfig struct {
	PerRequester ratelimit.Limit // per source address (6 a minute, burst 3)
	Global       ratelimit.Limit // for all sources together (60 a minute, burst 20)
	// MaxRequesters bounds how many sources are tracked (4096); past it
	// the least recently seen is forgotten.
	MaxRequesters int
}

// DefaultLimiterConfig is the limiter a node runs with unless told
// otherwise.
var DefaultLimiterConfig = LimiterConfig{
	PerRequester:  ratelimit.Limit{Rate: 6.0 / 60, Burst: 3},
	Global:        ratelimit.Limit{Rate: 60.0 / 60, Burst: 20},
	MaxRequesters: 4096,
}

// LimiterStats counts what the limiter did.
type LimiterStats struct {
	Allowed          uint64
	RefusedRequester uint64 // refused for the requester's own budget
	RefusedGlobal    uint64 // refused for the node's budget
	// Forgotten counts requesters dropped because MaxRequesters were
	// tracked (idle ones, whose buckets refilled, are not counted).
	Forgotten uint64
}

type requester struct {
	src    [16]byte
	bucket ratelimit.Bucket
}

// RequestLimiter admits the KeyPackage requests this node answers: each
// source has its own token bucket and all share a global one. A request
// spends a token from both or from neither, so a request the global
// budget refuses costs its requester nothing, and a source is tracked only
// once it was answered (a flood the global budget refuses does not fill
// the table). A source whose bucket has refilled is idle and forgotten
// (that loses nothing); when MaxRequesters are tracked the least recently
// seen is forgotten, and comes back with a fresh burst: a flood of fresh
// identities can make the node forget a known requester, never refuse it
// beyond the global budget.
//
// Time comes in as a parameter. RequestLimiter is plain state owned by the
// keys actor; it is not safe for concurrent use.
type RequestLimiter struct {
	cfg    LimiterConfig
	global ratelimit.Bucket
	srcs   map[[16]byte]*list.Element // Value is *requester
	lru    *list.List                 // front: most recently seen
	stats  LimiterStats
}

// NewRequestLimiter returns a limiter with every bucket full.
func NewRequestLimiter(cfg LimiterConfig) *RequestLimiter {
	d := DefaultLimiterConfig
	if cfg.PerRequester.Burst <= 0 {
		cfg.PerRequester = d.PerRequester
	}
	if cfg.Global.Burst <= 0 {
		cfg.Global = d.Global
	}
	if cfg.MaxRequesters <= 0 {
		cfg.MaxRequesters = d.MaxRequesters
	}
	return &RequestLimiter{
		cfg:    cfg,
		global: ratelimit.Bucket{Rate: cfg.Global.Rate, Burst: cfg.Global.Burst},
		srcs:   make(map[[16]byte]*list.Element),
		lru:    list.New(),
	}
}

// Config is the limiter's configuration with its defaults filled in.
func (l *RequestLimiter) Config() LimiterConfig { return l.cfg }

// Allow reports whether a KeyPackage request from src at now is answered,
// and if not whose budget refused it (ReasonRequester or ReasonGlobal).
func (l *RequestLimiter) Allow(src [16]byte, now time.Time) (ok bool, reason string) {
	l.expireIdle(now, 2)
	el, known := l.srcs[src]
	if known {
		r := el.Value.(*requester)
		l.lru.MoveToFront(el)
		if r.bucket.Tokens(now) < 1 {
			l.stats.RefusedRequester++
			return false, ReasonRequester
		}
	}
	// An unknown source has a full bucket: it passes its own check.
	if !l.global.Allow(now) {
		l.stats.RefusedGlobal++
		return false, ReasonGlobal
	}
	if !known {
		el = l.track(src)
	}
	el.Value.(*requester).bucket.Allow(now)
	l.stats.Allowed++
	return true, ""
}

// track starts a full bucket for src, forgetting the least recently seen
// source when MaxRequesters are tracked.
func (l *RequestLimiter) track(src [16]byte) *list.Element {
	var r *requester
	if l.lru.Len() >= l.cfg.MaxRequesters {
		back := l.lru.Back()
		r = back.Value.(*requester)
		l.lru.Remove(back)
		delete(l.srcs, r.src)
		l.stats.Forgotten++
	} else {
		r = new(requester)
	}
	*r = requester{src: src, bucket: ratelimit.Bucket{Rate: l.cfg.PerRequester.Rate, Burst: l.cfg.PerRequester.Burst}}
	el := l.lru.PushFront(r)
	l.srcs[src] = el
	return el
}

// expireIdle forgets up to n least recently seen sources whose buckets
// have refilled.
func (l *RequestLimiter) expireIdle(now time.Time, n int) {
	done := 0
	for el := l.lru.Back(); el != nil && done < n; {
		r := el.Value.(*requester)
		if !r.bucket.Full(now) {
			break
		}
		prev := el.Prev()
		l.lru.Remove(el)
		delete(l.srcs, r.src)
		done++
		el = prev
	}
}

// Prune forgets the idle sources (those whose buckets have refilled) from
// the least recently seen on, and reports how many went. Allow forgets a
// few on each call as well.
func (l *RequestLimiter) Prune(now time.Time) int {
	n := 0
	for el := l.lru.Back(); el != nil; {
		prev := el.Prev()
		if r := el.Value.(*requester); r.bucket.Full(now) {
			l.lru.Remove(el)
			delete(l.srcs, r.src)
			n++
		}
		el = prev
	}
	return n
}

// Len is the number of sources tracked.
func (l *RequestLimiter) Len() int { return l.lru.Len() }

// Stats returns the counters.
func (l *RequestLimiter) Stats() LimiterStats { return l.stats }
