package router

import "time"

// Dedup remembers the ids of recently seen envelopes so that flood copies
// arriving over several neighbours are handled once. It owns a bounded set:
// each id is kept for TTL after it was first seen, and at most Capacity
// ids are kept; past that the oldest is forgotten early (a copy arriving
// after that is handled again, which hop limits bound).
//
// Ids are kept in a ring in arrival order, which with one TTL is also
// expiry order, so both expiry and eviction take from its head.
//
// Dedup is plain state owned by the router actor; it is not safe for
// concurrent use.
type Dedup struct {
	ttl     time.Duration
	max     int
	ring    []dedupSlot // grows by doubling up to max: idle nodes stay small
	head, n int
	ids     map[[16]byte]struct{}
	evicted uint64
}

type dedupSlot struct {
	id      [16]byte
	expires time.Time
}

// DefaultDedupCapacity and DefaultDedupTTL size a Dedup when given zero.
const (
	DefaultDedupCapacity = 1 << 16
	DefaultDedupTTL      = 10 * time.Minute
)

// NewDedup returns an empty set of at most capacity ids kept for ttl.
func NewDedup(capacity int, ttl time.Duration) *Dedup {
	if capacity <= 0 {
		capacity = DefaultDedupCapacity
	}
	if ttl <= 0 {
		ttl = DefaultDedupTTL
	}
	return &Dedup{ttl: ttl, max: capacity, ring: make([]dedupSlot, min(capacity, 64)), ids: make(map[[16]byte]struct{})}
}

// Seen reports whether id was seen within TTL before now; if not, it
// records id as seen at now.
func (d *Dedup) Seen(id [16]byte, now time.Time) bool {
	for d.n > 0 && !now.Before(d.ring[d.head].expires) {
		d.pop()
	}
	if _, ok := d.ids[id]; ok {
		return true
	}
	if d.n == len(d.ring) {
		if len(d.ring) < d.max {
			d.grow()
		} else {
			d.pop()
			d.evicted++
		}
	}
	d.ring[(d.head+d.n)%len(d.ring)] = dedupSlot{id: id, expires: now.Add(d.ttl)}
	d.n++
	d.ids[id] = struct{}{}
	return false
}

func (d *Dedup) grow() {
	ring := make([]dedupSlot, min(2*len(d.ring), d.max))
	for i := range d.n {
		ring[i] = d.ring[(d.head+i)%len(d.ring)]
	}
	d.ring, d.head = ring, 0
}

func (d *Dedup) pop() {
	delete(d.ids, d.ring[d.head].id)
	d.ring[d.head] = dedupSlot{}
	d.head = (d.head + 1) % len(d.ring)
	d.n--
}

// Len is the number of ids remembered (expired ones go at the next Seen).
func (d *Dedup) Len() int { return d.n }

// Evicted counts ids forgotten before their TTL because the set was full.
func (d *Dedup) Evicted() uint64 { return d.evicted }
