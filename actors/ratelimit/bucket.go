package ratelimit

import (
	"container/list"
	"fmt"
	"math"
	"time"
)

// Bucket is a token bucket: it holds at most Burst tokens, gains Rate
// tokens per second, and each admitted unit of work spends one. A new
// Bucket starts full at its first use. Time comes in as a parameter; a
// clock that steps backwards refills nothing until it has caught up.
//
// A Bucket is plain state owned by one goroutine (the limiter actor).
type Bucket struct {
	// Rate is the refill rate in tokens per second; zero or less never
	// refills, +Inf always admits up to Burst at once.
	Rate float64
	// Burst is the capacity; a Burst below 1 admits nothing.
	Burst int

	tokens  float64
	last    time.Time
	started bool
}

// Allow spends one token if there is one.
func (b *Bucket) Allow(now time.Time) bool { return b.AllowN(now, 1) }

// AllowN spends n tokens if there are n; otherwise it spends nothing.
func (b *Bucket) AllowN(now time.Time, n int) bool {
	b.refill(now)
	if n < 0 || float64(n) > b.tokens {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// Tokens is how many tokens are available at now.
func (b *Bucket) Tokens(now time.Time) float64 {
	b.refill(now)
	return b.tokens
}

// Full reports whether the bucket is back at Burst, so forgetting it
// loses nothing.
func (b *Bucket) Full(now time.Time) bool { return b.Tokens(now) >= float64(b.Burst) }

func (b *Bucket) refill(now time.Time) {
	burst := float64(b.Burst)
	if !b.started {
		b.started, b.tokens, b.last = true, burst, now
		return
	}
	if !now.After(b.last) {
		return
	}
	if b.Rate > 0 {
		b.tokens += b.Rate * now.Sub(b.last).Seconds()
	}
	b.tokens = math.Min(b.tokens, burst)
	b.last = now
}

// Class is the kind of work a frame asks for; each has its own bucket per
// peer.
type Class uint8

// Classes of admitted work.
const (
	ClassEnvelope   Class = iota // data envelopes to route or deliver
	ClassAnnounce                // signed announces (signature check, table update)
	ClassKeyPackage              // KeyPackage requests (key material handed out)
	ClassFAPP                    // FAPP frames (docs/fapp.md): announces, queries, responses, reservations, answers
	NumClasses                   // how many classes there are
)

func (c Class) String() string {
	switch c {
	case ClassEnvelope:
		return "envelope"
	case ClassAnnounce:
		return "announce"
	case ClassKeyPackage:
		return "keypackage"
	case ClassFAPP:
		return "fapp"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Limit is the rate and burst of one class.
type Limit struct {
	Rate  float64 // per second
	Burst int
}

// PerPeerConfig configures a PerPeer limiter.
type PerPeerConfig struct {
	// Limits by Class.
	Limits [NumClasses]Limit
	// MaxPeers bounds how many peers are tracked (default 4096); past it
	// the least recently seen peer is forgotten.
	MaxPeers int
}

// DefaultPerPeerConfig is a starting point sized for IP links; constrained
// (LoRa) profiles want lower rates.
var DefaultPerPeerConfig = PerPeerConfig{
	Limits: [NumClasses]Limit{
		ClassEnvelope:   {Rate: 20, Burst: 40},
		ClassAnnounce:   {Rate: 2, Burst: 10},
		ClassKeyPackage: {Rate: 0.5, Burst: 3},
		// FAPP: a search is one query and a few responses per neighbour;
		// a therapist's flood of announces is bounded per therapist in
		// actors/fapp besides.
		ClassFAPP: {Rate: 20, Burst: 60},
	},
	MaxPeers: 4096,
}

// PerPeer admits work per (peer, class): every peer has its own buckets,
// so a peer that floods only drains its own and others still pass. It owns
// the buckets of at most MaxPeers peers, kept in least-recently-seen order;
// a new peer beyond that evicts the least recently seen one, which most
// likely has refilled (forgetting a full bucket loses nothing; forgetting a
// partly spent one gives that peer a fresh burst).
//
// PerPeer is plain state owned by the ratelimit actor; it is not safe for
// concurrent use.
type PerPeer struct {
	cfg     PerPeerConfig
	peers   map[[16]byte]*list.Element // of *peerBuckets
	lru     *list.List                 // front: most recently seen
	evicted uint64
	refused [NumClasses]uint64
}

type peerBuckets struct {
	peer    [16]byte
	buckets [NumClasses]Bucket
}

// NewPerPeer returns an empty limiter.
func NewPerPeer(cfg PerPeerConfig) *PerPeer {
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultPerPeerConfig.MaxPeers
	}
	return &PerPeer{cfg: cfg, peers: make(map[[16]byte]*list.Element), lru: list.New()}
}

// Allow admits one unit of class c from peer at now.
func (p *PerPeer) Allow(peer [16]byte, c Class, now time.Time) bool {
	return p.AllowN(peer, c, now, 1)
}

// AllowN admits n units of class c from peer at now; an unknown class is
// refused.
func (p *PerPeer) AllowN(peer [16]byte, c Class, now time.Time, n int) bool {
	if c >= NumClasses {
		return false
	}
	pb := p.touch(peer)
	if pb.buckets[c].AllowN(now, n) {
		return true
	}
	p.refused[c]++
	return false
}

func (p *PerPeer) touch(peer [16]byte) *peerBuckets {
	if e, ok := p.peers[peer]; ok {
		p.lru.MoveToFront(e)
		return e.Value.(*peerBuckets)
	}
	var pb *peerBuckets
	if p.lru.Len() >= p.cfg.MaxPeers {
		// Reuse the evicted peer's memory.
		e := p.lru.Back()
		pb = e.Value.(*peerBuckets)
		delete(p.peers, pb.peer)
		p.lru.Remove(e)
		p.evicted++
	} else {
		pb = new(peerBuckets)
	}
	pb.peer = peer
	for c := range pb.buckets {
		pb.buckets[c] = Bucket{Rate: p.cfg.Limits[c].Rate, Burst: p.cfg.Limits[c].Burst}
	}
	p.peers[peer] = p.lru.PushFront(pb)
	return pb
}

// Forget drops peer's buckets (a link to it closed for good).
func (p *PerPeer) Forget(peer [16]byte) {
	if e, ok := p.peers[peer]; ok {
		p.lru.Remove(e)
		delete(p.peers, peer)
	}
}

// Prune forgets every peer whose buckets have all refilled by now: that
// loses nothing and frees memory. It reports how many went.
func (p *PerPeer) Prune(now time.Time) int {
	n := 0
	for e := p.lru.Back(); e != nil; {
		prev := e.Prev()
		pb := e.Value.(*peerBuckets)
		full := true
		for c := range pb.buckets {
			if !pb.buckets[c].Full(now) {
				full = false
				break
			}
		}
		if full {
			p.lru.Remove(e)
			delete(p.peers, pb.peer)
			n++
		}
		e = prev
	}
	return n
}

// Len is the number of peers tracked.
func (p *PerPeer) Len() int { return p.lru.Len() }

// Evicted counts peers forgotten because MaxPeers was reached.
func (p *PerPeer) Evicted() uint64 { return p.evicted }

// Refused counts refusals of class c.
func (p *PerPeer) Refused(c Class) uint64 {
	if c >= NumClasses {
		return 0
	}
	return p.refused[c]
}
