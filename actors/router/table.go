package router

import (
	"bytes"
	"container/heap"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// Errors of the routing table.
var (
	// ErrStale: the announce's sequence is older than the newest the table
	// has seen for that address (kept even after the route went).
	ErrStale = errors.New("router: stale announce sequence")
	// ErrBadRoute: a route that cannot be stored (zero address or next
	// hop, zero hops, or an address that is not its key's).
	ErrBadRoute = errors.New("router: bad route")
)

// Route is one path to a destination, as learned from a signed announce
// heard through a neighbour. A destination can have several paths (one per
// neighbour); Lookup returns the best.
type Route struct {
	Address      [16]byte
	SigningKey   [ed25519.PublicKeySize]byte // Ed25519; Address is derived from it
	SealingKey   [crypto.SealingKeySize]byte // X25519, what payloads are sealed to
	Capabilities messages.Capabilities
	// KeyPackage is the first 16 bytes of the announce's KeyPackage hash
	// (zero: none published).
	KeyPackage [16]byte `json:",omitempty"`
	// NextHop is the neighbour the announce came through; it equals
	// Address for a direct neighbour.
	NextHop [16]byte
	// Link names the link the announce arrived on ("tcp:…", "lora:…").
	Link string
	// Hops counts links to the destination: 1 for a direct neighbour.
	Hops uint8
	// Seq is the announce's sequence (its timestamp or counter); newer is
	// larger.
	Seq uint64
	// Refreshed is when this path was last accepted (set by Update).
	Refreshed time.Time
}

// Direct reports whether the destination is a neighbour.
func (r Route) Direct() bool { return r.NextHop == r.Address }

// SeqRecord is the newest sequence seen for an address that has no route
// any more; it keeps a replayed older announce out.
type SeqRecord struct {
	Address [16]byte
	Seq     uint64
	// Seen is the route's last refresh before it went; the oldest records
	// are forgotten first.
	Seen time.Time
	// MinHops is the fewest hops any path of announce Seq had here (0:
	// not known): a copy of the same announce arriving later with more
	// than MinHops+1 may have come back through this node (see Table,
	// feasibility), so it is refused.
	MinHops uint8 `json:",omitempty"`
}

// Snapshot is the table's persistent state: plain data the router actor
// hands to storage and back to Restore.
type Snapshot struct {
	Routes []Route     // every path, grouped by address, best first
	Seqs   []SeqRecord // sequences of addresses without routes
}

// TableConfig bounds and times a Table. Zero fields take the defaults.
type TableConfig struct {
	// MaxRoutes caps destinations (default 10000); a new destination past
	// it evicts the one refreshed least recently.
	MaxRoutes int
	// MaxPaths caps paths per destination (default 3); a better path
	// replaces the worst.
	MaxPaths int
	// TTL is how long a path lives without a refresh (default 10 minutes);
	// announces must come more often than that.
	TTL time.Duration
	// MaxSeqs caps the sequence records kept for addresses without routes
	// (default 4*MaxRoutes); the oldest go first.
	MaxSeqs int
}

// DefaultTableConfig is what zero TableConfig fields become.
var DefaultTableConfig = TableConfig{MaxRoutes: 10000, MaxPaths: 3, TTL: 10 * time.Minute}

func (c TableConfig) withDefaults() TableConfig {
	if c.MaxRoutes <= 0 {
		c.MaxRoutes = DefaultTableConfig.MaxRoutes
	}
	if c.MaxPaths <= 0 {
		c.MaxPaths = DefaultTableConfig.MaxPaths
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTableConfig.TTL
	}
	if c.MaxSeqs <= 0 {
		c.MaxSeqs = 4 * c.MaxRoutes
	}
	return c
}

// Change says what an accepted Update did.
type Change uint8

// Changes an Update reports.
const (
	// ChangeNone: nothing stored (a flood copy, or a path no better than
	// those kept).
	ChangeNone Change = iota
	// ChangeAdded: a destination without routes became reachable.
	ChangeAdded
	// ChangeBest: the best path to the destination changed, or a newer
	// sequence replaced it.
	ChangeBest
	// ChangeAlternate: a path other than the best was stored or improved.
	ChangeAlternate
)

func (c Change) String() string {
	switch c {
	case ChangeNone:
		return "none"
	case ChangeAdded:
		return "added"
	case ChangeBest:
		return "best"
	case ChangeAlternate:
		return "alternate"
	}
	return fmt.Sprintf("change(%d)", uint8(c))
}

// TableStats are the table's sizes and counters.
type TableStats struct {
	Routes, Paths, Seqs int
	Lookups, Misses     uint64
	Stale               uint64 // updates refused as stale
	Unfeasible          uint64 // equal-sequence paths refused or pruned as possible loops
	Evicted             uint64 // destinations evicted by MaxRoutes
	Expired             uint64 // paths expired by TTL
}

// Table is the routing table: for each destination address, up to MaxPaths
// paths (one per neighbour) that all carry the newest announce sequence
// seen, best first (fewest hops, then most recently refreshed). It also
// owns the newest sequence of every address that lost its routes (bounded
// by MaxSeqs), so an older announce replayed later is refused.
//
// Update rules, for an announce of address A with sequence s via
// neighbour N:
//   - s older than the newest known for A: refused (ErrStale).
//   - s newer: it replaces every path to A (they carry older news).
//   - s equal: a path via N is replaced if the new one has fewer hops; a
//     path via a new neighbour is added, or replaces the worst path if
//     MaxPaths are kept and it is better. An equal copy changes nothing,
//     and in particular does not refresh the path: only a newer announce
//     keeps a route alive, so a replayed copy cannot.
//
// Feasibility (loop freedom: the feasibility condition of DUAL and
// Babel, with hop counts as the metric): for the current sequence of A
// the table remembers the fewest hops h any of its paths had (minHops,
// its feasible distance, kept after the route went, in its SeqRecord).
// A neighbour passes on the announce with the hops it counted itself,
// never fewer than its own fewest; a path via it is kept only if that
// is less than h, that is if the path has at most h hops here. An
// equal-sequence copy with more is refused (a ChangeNone, counted in
// TableStats.Unfeasible; the neighbour's path kept before goes too:
// it is stale news), and kept paths a shorter copy made unfeasible are
// pruned. Around any loop the fewest hops would have to fall strictly
// at every node, so no loop forms, even from alternates that are stale
// (a neighbour that has since switched to a longer path through this
// node does not announce that). So when the best path goes (its
// neighbour's link went down, it expired), what is left never leads
// back through this node: if nothing is left the destination has no
// route (messages for it are stored) until its next announce, instead
// of a routing loop between neighbours until the hop limit.
//
// Table is plain state owned by the router actor; it is not safe for
// concurrent use.
type Table struct {
	cfg     TableConfig
	entries map[[16]byte]*tableEntry
	byFresh entryHeap // entries, least recently refreshed first
	seqs    map[[16]byte]*seqItem
	seqHeap seqHeap // sequence records, oldest first
	stats   TableStats
}

type tableEntry struct {
	addr         [16]byte
	signingKey   [ed25519.PublicKeySize]byte
	sealingKey   [crypto.SealingKeySize]byte
	capabilities messages.Capabilities
	seq          uint64
	paths        []path // best first
	minHops      uint8  // fewest hops of any path of seq (feasibility)
	fresh        time.Time
	hi           int
}

type path struct {
	nextHop   [16]byte
	link      string
	hops      uint8
	refreshed time.Time
}

type seqItem struct {
	rec SeqRecord
	hi  int
}

// NewTable returns an empty table.
func NewTable(cfg TableConfig) *Table {
	return &Table{
		cfg:     cfg.withDefaults(),
		entries: make(map[[16]byte]*tableEntry),
		seqs:    make(map[[16]byte]*seqItem),
	}
}

// short is an address's first 8 hex characters, for errors. (Formatting
// a[:4] of a parameter directly would move the whole Route to the heap.)
func short(a [16]byte) string { return hex.EncodeToString(a[:4]) }

func validRoute(r Route) error {
	switch {
	case r.Address == [16]byte{}:
		return fmt.Errorf("%w: zero address", ErrBadRoute)
	case r.NextHop == [16]byte{}:
		return fmt.Errorf("%w: %s: zero next hop", ErrBadRoute, short(r.Address))
	case r.Hops == 0:
		return fmt.Errorf("%w: %s: zero hops", ErrBadRoute, short(r.Address))
	case crypto.AddressOf(r.SigningKey[:]) != crypto.Address(r.Address):
		return fmt.Errorf("%w: %s is not the address of its signing key", ErrBadRoute, short(r.Address))
	}
	return nil
}

// better orders paths: fewer hops, then more recently refreshed, then by
// next hop so the order is total.
func better(a, b path) bool {
	if a.hops != b.hops {
		return a.hops < b.hops
	}
	if !a.refreshed.Equal(b.refreshed) {
		return a.refreshed.After(b.refreshed)
	}
	return bytes.Compare(a.nextHop[:], b.nextHop[:]) < 0
}

func comparePaths(a, b path) int {
	if better(a, b) {
		return -1
	}
	if better(b, a) {
		return 1
	}
	return 0
}

// Update applies an announce of r.Address heard via r.NextHop at now
// (r.Refreshed is ignored and set to now). See Table for the rules.
func (t *Table) Update(r Route, now time.Time) (Change, error) {
	if err := validRoute(r); err != nil {
		return ChangeNone, err
	}
	p := path{nextHop: r.NextHop, link: r.Link, hops: r.Hops, refreshed: now}
	e := t.entries[r.Address]
	if e == nil {
		minHops := r.Hops
		if s := t.seqs[r.Address]; s != nil {
			if r.Seq < s.rec.Seq {
				t.stats.Stale++
				return ChangeNone, fmt.Errorf("%w: %s seq %d, seen %d", ErrStale, short(r.Address), r.Seq, s.rec.Seq)
			}
			if r.Seq == s.rec.Seq && s.rec.MinHops > 0 {
				if !feasible(r.Hops, s.rec.MinHops) {
					// The route went; a copy of the same announce over a
					// longer path may be one that ran through this node.
					t.stats.Unfeasible++
					return ChangeNone, nil
				}
				minHops = min(minHops, s.rec.MinHops)
			}
			t.dropSeq(s)
		}
		if len(t.entries) >= t.cfg.MaxRoutes {
			t.stats.Evicted++
			t.kill(t.byFresh.items[0])
		}
		e = &tableEntry{addr: r.Address, minHops: minHops}
		e.setFields(r)
		e.paths = []path{p}
		e.fresh = now
		heap.Push(&t.byFresh, e)
		t.entries[r.Address] = e
		return ChangeAdded, nil
	}
	switch {
	case r.Seq < e.seq:
		t.stats.Stale++
		return ChangeNone, fmt.Errorf("%w: %s seq %d, have %d", ErrStale, short(r.Address), r.Seq, e.seq)
	case r.Seq > e.seq:
		e.setFields(r)
		e.paths = append(e.paths[:0], p)
		e.minHops = p.hops
		t.refreshed(e)
		return ChangeBest, nil
	}
	if !feasible(p.hops, e.minHops) {
		// Possibly back through this node; the neighbour's path kept
		// before is stale news too (it has a longer one now).
		t.stats.Unfeasible++
		i := slices.IndexFunc(e.paths, func(q path) bool { return q.nextHop == p.nextHop })
		switch {
		case i < 0:
		case len(e.paths) == 1:
			t.kill(e)
		default:
			e.paths = slices.Delete(e.paths, i, i+1)
			t.refreshed(e)
		}
		// ChangeNone even if the best path changed: the copy is no news
		// to pass on, and the destination stays reachable.
		return ChangeNone, nil
	}
	i := slices.IndexFunc(e.paths, func(q path) bool { return q.nextHop == p.nextHop })
	switch {
	case i >= 0 && p.hops < e.paths[i].hops:
		e.paths[i] = p
	case i >= 0:
		return ChangeNone, nil
	case len(e.paths) < t.cfg.MaxPaths:
		e.paths = append(e.paths, p)
	case better(p, e.paths[len(e.paths)-1]):
		e.paths[len(e.paths)-1] = p
	default:
		return ChangeNone, nil
	}
	oldBest := e.paths[0].nextHop
	if e.minHops == 0 || p.hops < e.minHops {
		// A shorter copy: this node now passes the announce on with fewer
		// hops, so paths longer than that plus one may lead back here.
		e.minHops = p.hops
		n := len(e.paths)
		e.paths = slices.DeleteFunc(e.paths, func(q path) bool { return !feasible(q.hops, e.minHops) })
		t.stats.Unfeasible += uint64(n - len(e.paths))
	}
	slices.SortFunc(e.paths, comparePaths)
	t.refreshed(e)
	if e.paths[0] == p || e.paths[0].nextHop != oldBest {
		return ChangeBest, nil
	}
	return ChangeAlternate, nil
}

// feasible reports whether a path of hops hops to a destination can
// not run back through this node, whose fewest hops to it for the same
// announce were minHops (see Table).
func feasible(hops, minHops uint8) bool { return minHops == 0 || hops <= minHops }

func (e *tableEntry) setFields(r Route) {
	e.signingKey, e.sealingKey, e.capabilities, e.seq = r.SigningKey, r.SealingKey, r.Capabilities, r.Seq
}

// refreshed recomputes e.fresh from its paths and fixes the heap.
func (t *Table) refreshed(e *tableEntry) {
	e.fresh = time.Time{}
	for _, p := range e.paths {
		if p.refreshed.After(e.fresh) {
			e.fresh = p.refreshed
		}
	}
	heap.Fix(&t.byFresh, e.hi)
}

// kill removes e and keeps its sequence.
func (t *Table) kill(e *tableEntry) {
	heap.Remove(&t.byFresh, e.hi)
	delete(t.entries, e.addr)
	t.keepSeq(SeqRecord{Address: e.addr, Seq: e.seq, Seen: e.fresh, MinHops: e.minHops})
}

func (t *Table) keepSeq(r SeqRecord) {
	if s := t.seqs[r.Address]; s != nil {
		switch {
		case r.Seq > s.rec.Seq:
			s.rec = r
			heap.Fix(&t.seqHeap, s.hi)
		case r.Seq == s.rec.Seq && r.MinHops > 0 && (s.rec.MinHops == 0 || r.MinHops < s.rec.MinHops):
			s.rec.MinHops = r.MinHops
		}
		return
	}
	if len(t.seqs) >= t.cfg.MaxSeqs {
		t.dropSeq(t.seqHeap.items[0])
	}
	s := &seqItem{rec: r}
	heap.Push(&t.seqHeap, s)
	t.seqs[r.Address] = s
}

// NoteSeq raises the newest sequence seen for addr to seq: a record
// written as announces arrived, applied over a restored snapshot that may
// be older (the node was killed after accepting newer announces). A route
// keeps its path and takes the newer sequence, so the announce it was
// replaced by, and anything older, is refused.
func (t *Table) NoteSeq(addr [16]byte, seq uint64, seen time.Time) {
	if e := t.entries[addr]; e != nil {
		if seq > e.seq {
			e.seq = seq
			e.minHops = 0 // not known for the newer announce
		}
		return
	}
	t.keepSeq(SeqRecord{Address: addr, Seq: seq, Seen: seen})
}

func (t *Table) dropSeq(s *seqItem) {
	heap.Remove(&t.seqHeap, s.hi)
	delete(t.seqs, s.rec.Address)
}

func (e *tableEntry) route(i int) Route {
	p := e.paths[i]
	return Route{
		Address: e.addr, SigningKey: e.signingKey, SealingKey: e.sealingKey, Capabilities: e.capabilities,
		NextHop: p.nextHop, Link: p.link, Hops: p.hops, Seq: e.seq, Refreshed: p.refreshed,
	}
}

// Lookup returns the best path to addr.
func (t *Table) Lookup(addr [16]byte) (Route, bool) {
	t.stats.Lookups++
	e := t.entries[addr]
	if e == nil {
		t.stats.Misses++
		return Route{}, false
	}
	return e.route(0), true
}

// LookupExcept returns the best path to addr whose next hop is not
// except: where a frame that came from except goes on to, never back to
// it (split horizon). ok is false when every path goes through except.
func (t *Table) LookupExcept(addr, except [16]byte) (Route, bool) {
	t.stats.Lookups++
	e := t.entries[addr]
	if e != nil {
		for i, p := range e.paths {
			if p.nextHop != except {
				return e.route(i), true
			}
		}
	}
	t.stats.Misses++
	return Route{}, false
}

// LookupByKey returns the best path to the node with Ed25519 key pub.
func (t *Table) LookupByKey(pub ed25519.PublicKey) (Route, bool) {
	if len(pub) != ed25519.PublicKeySize {
		t.stats.Lookups++
		t.stats.Misses++
		return Route{}, false
	}
	r, ok := t.Lookup(crypto.AddressOf(pub))
	if ok && !pub.Equal(ed25519.PublicKey(r.SigningKey[:])) {
		// Only a 128-bit address collision gets here.
		t.stats.Misses++
		return Route{}, false
	}
	return r, ok
}

// Paths returns every path to addr, best first.
func (t *Table) Paths(addr [16]byte) []Route {
	e := t.entries[addr]
	if e == nil {
		return nil
	}
	out := make([]Route, len(e.paths))
	for i := range e.paths {
		out[i] = e.route(i)
	}
	return out
}

// Seq returns the newest sequence seen for addr, whether or not it still
// has a route.
func (t *Table) Seq(addr [16]byte) (uint64, bool) {
	if e := t.entries[addr]; e != nil {
		return e.seq, true
	}
	if s := t.seqs[addr]; s != nil {
		return s.rec.Seq, true
	}
	return 0, false
}

// DestsVia lists the addresses whose best path goes through neighbor.
func (t *Table) DestsVia(neighbor [16]byte) [][16]byte {
	var out [][16]byte
	for a, e := range t.entries {
		if len(e.paths) > 0 && e.paths[0].nextHop == neighbor {
			out = append(out, a)
		}
	}
	return out
}

// NextHops lists the neighbours best paths go through, each once.
func (t *Table) NextHops() [][16]byte {
	seen := make(map[[16]byte]bool)
	var out [][16]byte
	for _, e := range t.entries {
		if len(e.paths) > 0 && !seen[e.paths[0].nextHop] {
			seen[e.paths[0].nextHop] = true
			out = append(out, e.paths[0].nextHop)
		}
	}
	return out
}

// RemoveVia drops every path through neighbor (its link went down) and
// returns the addresses left without any route, sorted.
func (t *Table) RemoveVia(neighbor [16]byte) [][16]byte {
	return t.filter(func(p path) bool { return p.nextHop != neighbor })
}

// Expire drops paths not refreshed within TTL of now and returns the
// addresses left without any route, sorted.
func (t *Table) Expire(now time.Time) [][16]byte {
	n := 0
	lost := t.filter(func(p path) bool {
		keep := now.Before(p.refreshed.Add(t.cfg.TTL))
		if !keep {
			n++
		}
		return keep
	})
	t.stats.Expired += uint64(n)
	return lost
}

func (t *Table) filter(keep func(path) bool) [][16]byte {
	var lost []*tableEntry
	for _, e := range t.entries {
		n := len(e.paths)
		e.paths = slices.DeleteFunc(e.paths, func(p path) bool { return !keep(p) })
		switch {
		case len(e.paths) == 0:
			lost = append(lost, e)
		case len(e.paths) != n:
			t.refreshed(e)
		}
	}
	// Kill in a fixed order so which sequence records survive MaxSeqs does
	// not depend on map order.
	slices.SortFunc(lost, func(a, b *tableEntry) int { return bytes.Compare(a.addr[:], b.addr[:]) })
	out := make([][16]byte, len(lost))
	for i, e := range lost {
		t.kill(e)
		out[i] = e.addr
	}
	return out
}

// Len is the number of destinations with a route.
func (t *Table) Len() int { return len(t.entries) }

// Stats returns sizes and counters.
func (t *Table) Stats() TableStats {
	s := t.stats
	s.Routes, s.Seqs = len(t.entries), len(t.seqs)
	for _, e := range t.entries {
		s.Paths += len(e.paths)
	}
	return s
}

// Snapshot copies the table's state, sorted by address.
func (t *Table) Snapshot() Snapshot {
	var s Snapshot
	addrs := make([][16]byte, 0, len(t.entries))
	for a := range t.entries {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	for _, a := range addrs {
		s.Routes = append(s.Routes, t.Paths(a)...)
	}
	for _, it := range t.seqs {
		s.Seqs = append(s.Seqs, it.rec)
	}
	slices.SortFunc(s.Seqs, func(a, b SeqRecord) int { return bytes.Compare(a.Address[:], b.Address[:]) })
	return s
}

// Restore replaces the table's contents with s (counters are kept). It
// checks every route first and changes nothing if one is bad. Paths to one
// address with an older sequence than its newest are dropped, and the caps
// apply as they would live.
func (t *Table) Restore(s Snapshot) error {
	for _, r := range s.Routes {
		if err := validRoute(r); err != nil {
			return fmt.Errorf("router: restore: %w", err)
		}
	}
	t.entries = make(map[[16]byte]*tableEntry)
	t.byFresh = entryHeap{}
	t.seqs = make(map[[16]byte]*seqItem)
	t.seqHeap = seqHeap{}
	for _, rec := range s.Seqs {
		t.keepSeq(rec)
	}
	// Oldest first, so that if MaxRoutes evicts, the stalest go.
	routes := slices.Clone(s.Routes)
	slices.SortStableFunc(routes, func(a, b Route) int { return a.Refreshed.Compare(b.Refreshed) })
	for _, r := range routes {
		t.restoreRoute(r)
	}
	return nil
}

func (t *Table) restoreRoute(r Route) {
	p := path{nextHop: r.NextHop, link: r.Link, hops: r.Hops, refreshed: r.Refreshed}
	e := t.entries[r.Address]
	if e == nil {
		if s := t.seqs[r.Address]; s != nil {
			if r.Seq < s.rec.Seq {
				return
			}
			t.dropSeq(s)
		}
		if len(t.entries) >= t.cfg.MaxRoutes {
			t.stats.Evicted++
			t.kill(t.byFresh.items[0])
		}
		e = &tableEntry{addr: r.Address, minHops: p.hops}
		e.setFields(r)
		e.paths = []path{p}
		e.fresh = p.refreshed
		heap.Push(&t.byFresh, e)
		t.entries[r.Address] = e
		return
	}
	switch {
	case r.Seq < e.seq:
		return
	case r.Seq > e.seq:
		e.setFields(r)
		e.paths = append(e.paths[:0], p)
	default:
		i := slices.IndexFunc(e.paths, func(q path) bool { return q.nextHop == p.nextHop })
		switch {
		case i >= 0:
			if better(p, e.paths[i]) {
				e.paths[i] = p
			}
		case len(e.paths) < t.cfg.MaxPaths:
			e.paths = append(e.paths, p)
		case better(p, e.paths[len(e.paths)-1]):
			e.paths[len(e.paths)-1] = p
		}
		slices.SortFunc(e.paths, comparePaths)
	}
	e.minHops = 0
	for _, q := range e.paths {
		if e.minHops == 0 || q.hops < e.minHops {
			e.minHops = q.hops
		}
	}
	t.refreshed(e)
}

// agedHeap orders items oldest first, ties by address: the stalest
// destination (entries, by last refresh) or the oldest sequence record (by
// when it was last seen) is evicted first. Items keep their index for
// heap.Fix and heap.Remove.
type agedHeap[T aged] struct{ items []T }

type aged interface {
	age() (time.Time, [16]byte)
	setIndex(int)
}

type (
	entryHeap = agedHeap[*tableEntry]
	seqHeap   = agedHeap[*seqItem]
)

func (e *tableEntry) age() (time.Time, [16]byte) { return e.fresh, e.addr }
func (e *tableEntry) setIndex(i int)             { e.hi = i }
func (s *seqItem) age() (time.Time, [16]byte)    { return s.rec.Seen, s.rec.Address }
func (s *seqItem) setIndex(i int)                { s.hi = i }

func (h *agedHeap[T]) Len() int { return len(h.items) }
func (h *agedHeap[T]) Less(i, j int) bool {
	at, aa := h.items[i].age()
	bt, ba := h.items[j].age()
	if c := at.Compare(bt); c != 0 {
		return c < 0
	}
	return bytes.Compare(aa[:], ba[:]) < 0
}
func (h *agedHeap[T]) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].setIndex(i)
	h.items[j].setIndex(j)
}
func (h *agedHeap[T]) Push(x any) {
	it := x.(T)
	it.setIndex(len(h.items))
	h.items = append(h.items, it)
}
func (h *agedHeap[T]) Pop() any {
	var zero T
	it := h.items[len(h.items)-1]
	h.items[len(h.items)-1] = zero
	h.items = h.items[:len(h.items)-1]
	return it
}
