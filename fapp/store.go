package fapp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
)

// Limits bound a Store. Zero fields take the defaults.
type Limits struct {
	// MaxSlots is the number of slots held in all (default 65536).
	MaxSlots int
	// MaxTherapists is the number of therapists held, including those
	// whose announce expired and of whom only the sequence number is
	// remembered (default 8192).
	MaxTherapists int
	// MaxTTL is how far in the future an announce may expire (default 7
	// days). It is also how long a therapist's highest sequence number is
	// remembered after its last announce, so an older announce cannot be
	// replayed once the newer one expired.
	MaxTTL time.Duration
}

// DefaultLimits are what zero Limits fields become.
var DefaultLimits = Limits{MaxSlots: 65536, MaxTherapists: 8192, MaxTTL: 7 * 24 * time.Hour}

func (l Limits) withDefaults() Limits {
	if l.MaxSlots <= 0 {
		l.MaxSlots = DefaultLimits.MaxSlots
	}
	if l.MaxTherapists <= 0 {
		l.MaxTherapists = DefaultLimits.MaxTherapists
	}
	if l.MaxTTL <= 0 {
		l.MaxTTL = DefaultLimits.MaxTTL
	}
	return l
}

// Outcome is what Insert did with an announce.
type Outcome uint8

// Insert outcomes.
const (
	Added     Outcome = 1 // the first announce held from this therapist
	Replaced  Outcome = 2 // a newer sequence replaced the therapist's set
	Duplicate Outcome = 3 // the announce held already (the same signed content)
)

func (o Outcome) String() string {
	switch o {
	case Added:
		return "added"
	case Replaced:
		return "replaced"
	case Duplicate:
		return "duplicate"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// DamagedRecord is a stored record that did not decode or verify at Open.
// It stays in the database untouched (until a new announce of the same
// therapist replaces it); Err wraps ErrDamagedRecord.
type DamagedRecord struct {
	Key []byte
	Err error
}

// storeBucket holds one record per therapist:
//
//	address (16) → 2 (1) ‖ keep-until unix seconds (8) ‖ seq (8) ‖ via (16) ‖ frame
//
// frame is the signed SlotAnnounce as received, or empty once it expired
// (then the record only remembers seq until keep-until); via is the
// neighbour that introduced the therapist (zero: the node itself, or a
// record of version 1, which has no via and still decodes).
var storeBucket = []byte("fapp/announces")

const (
	recordVersion1 = 1
	recordVersion  = 2
	recordHeader1  = 1 + 8 + 8
	recordHeader   = recordHeader1 + 16
)

// StoreBucket is the Store's bucket in the node's database.
var StoreBucket = storeBucket

type entry struct {
	addr      crypto.Address
	via       [16]byte // the neighbour that introduced the therapist
	seq       uint64
	keepUntil time.Time
	ann       *SlotAnnounce // nil once expired
	frame     []byte
	tbs       [32]byte // SHA-256 of the signing bytes: what "the same announce" means
}

func (e *entry) cost() int {
	if e.ann == nil {
		return 0
	}
	return len(e.ann.Slots)
}

// Store is a node's cache of SlotAnnounces, one per therapist, in bbolt.
//
//   - Insert verifies an announce (signature, Approbation binding, expiry
//     within MaxTTL) before anything changes, and keeps per therapist only
//     the highest sequence: the same announce again is a Duplicate, a
//     lower sequence ErrStale, the same sequence with other content
//     ErrSeqConflict.
//   - Announces expire on the injected clock: Query skips them at once and
//     Expire removes them; the sequence number is remembered MaxTTL longer.
//   - Capacity is fair across therapists: one therapist holds at most one
//     set of at most MaxSlotsPerAnnounce slots, however often it
//     announces, and when the store is full a newcomer may push out only a
//     therapist holding strictly more slots than it brings (the largest
//     first); otherwise it is refused with ErrStoreFull. So the store
//     tends to equal shares, and no one can take others' places by
//     flooding: announcing again only replaces the flooder's own set.
//     At MaxTherapists, only therapists remembered without slots make
//     room: established therapists are not pushed out by new identities.
//     A therapist whose new, larger set does not fit loses its old set
//     (it is stale) and its new sequence is remembered.
//   - Every change is one bbolt transaction, written before memory
//     changes; Open reads everything back. A record that does not decode
//     or verify is reported (Damaged) and left alone; the rest is served.
//
// A Store is safe for concurrent use. Nothing else may write its bucket.
type Store struct {
	db  *bolt.DB
	clk clock.Clock
	lim Limits

	mu      sync.Mutex
	entries map[crypto.Address]*entry
	slots   int
	damaged []DamagedRecord
	// groups: the entries by the neighbour that introduced them, for
	// capacity fair across neighbours.
	groups map[[16]byte]*group
}

// group is what one introducing neighbour holds.
type group struct {
	entries map[crypto.Address]*entry
	slots   int
	tombs   int // entries remembered without slots
}

// addLocked puts e into entries and its group (replacing nothing).
func (s *Store) addLocked(e *entry) {
	s.entries[e.addr] = e
	s.slots += e.cost()
	g := s.groups[e.via]
	if g == nil {
		g = &group{entries: map[crypto.Address]*entry{}}
		s.groups[e.via] = g
	}
	g.entries[e.addr] = e
	g.slots += e.cost()
	if e.ann == nil {
		g.tombs++
	}
}

// removeLocked takes e out of entries and its group.
func (s *Store) removeLocked(e *entry) {
	if s.entries[e.addr] != e {
		return
	}
	delete(s.entries, e.addr)
	s.slots -= e.cost()
	if g := s.groups[e.via]; g != nil {
		delete(g.entries, e.addr)
		g.slots -= e.cost()
		if e.ann == nil {
			g.tombs--
		}
		if len(g.entries) == 0 {
			delete(s.groups, e.via)
		}
	}
}

// Open opens the store in db (creating its bucket) and reads what it
// holds.
func Open(db *bolt.DB, clk clock.Clock, lim Limits) (*Store, error) {
	if clk == nil {
		clk = clock.Real{}
	}
	s := &Store{db: db, clk: clk, lim: lim.withDefaults(), entries: map[crypto.Address]*entry{}, groups: map[[16]byte]*group{}}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(storeBucket)
		if err != nil {
			return fmt.Errorf("fapp: bucket %s: %w", storeBucket, err)
		}
		return b.ForEach(func(k, v []byte) error {
			e, err := decodeRecord(k, v)
			if err != nil {
				s.damaged = append(s.damaged, DamagedRecord{Key: append([]byte(nil), k...), Err: err})
				return nil
			}
			s.addLocked(e)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Damaged lists the records Open could not read.
func (s *Store) Damaged() []DamagedRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DamagedRecord(nil), s.damaged...)
}

func encodeRecord(e *entry) []byte {
	v := make([]byte, recordHeader, recordHeader+len(e.frame))
	v[0] = recordVersion
	binary.BigEndian.PutUint64(v[1:], uint64(e.keepUntil.Unix()))
	binary.BigEndian.PutUint64(v[9:], e.seq)
	copy(v[recordHeader1:], e.via[:])
	return append(v, e.frame...)
}

func decodeRecord(k, v []byte) (*entry, error) {
	if len(k) != crypto.AddressSize {
		return nil, fmt.Errorf("%w: key %x is not a %d-byte address", ErrDamagedRecord, k, crypto.AddressSize)
	}
	header := recordHeader
	switch {
	case len(v) >= recordHeader1 && v[0] == recordVersion1:
		header = recordHeader1
	case len(v) >= recordHeader && v[0] == recordVersion:
	default:
		return nil, fmt.Errorf("%w: record %x of %d bytes, version %d", ErrDamagedRecord, k, len(v), firstByte(v))
	}
	e := &entry{seq: binary.BigEndian.Uint64(v[9:])}
	copy(e.addr[:], k)
	if header == recordHeader {
		copy(e.via[:], v[recordHeader1:recordHeader])
	}
	e.keepUntil = time.Unix(int64(binary.BigEndian.Uint64(v[1:])), 0)
	if len(v) == header {
		return e, nil
	}
	frame := append([]byte(nil), v[header:]...)
	a, err := DecodeSlotAnnounce(frame)
	if err != nil {
		return nil, fmt.Errorf("%w: record %x: %w", ErrDamagedRecord, k, err)
	}
	if a.Therapist() != e.addr || a.Seq != e.seq {
		return nil, fmt.Errorf("%w: record %x holds the announce of %s seq %d", ErrDamagedRecord, k, a.Therapist().Short(), a.Seq)
	}
	if e.tbs, err = tbsHash(&a); err != nil {
		return nil, fmt.Errorf("%w: record %x: %w", ErrDamagedRecord, k, err)
	}
	e.ann, e.frame = &a, frame
	return e, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

func tbsHash(a *SlotAnnounce) ([32]byte, error) {
	tbs, err := a.SigningBytes()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(tbs), nil
}

// Insert checks an announce frame and caches it (see Store), as the
// node's own (InsertFrom with a zero neighbour).
func (s *Store) Insert(frame []byte) (Outcome, error) { return s.InsertFrom(frame, [16]byte{}) }

// InsertFrom checks an announce frame that came from neighbour via and
// caches it (see Store); a therapist new to the store is counted against
// via's share when the store is full. Errors: the decoder's
// (messages.ErrTooLarge, ErrMalformed, ErrBadSignature, ..., ErrUnbound),
// ErrExpired, ErrTTLTooLong, ErrStale, ErrSeqConflict, ErrStoreFull, or a
// database error. A Duplicate is not an error: the caller need not
// forward it again.
func (s *Store) InsertFrom(frame []byte, via [16]byte) (Outcome, error) {
	a, err := DecodeSlotAnnounce(frame)
	if err != nil {
		return 0, err
	}
	now := s.clk.Now()
	if exp := a.ExpiresAt(); !exp.After(now) {
		return 0, fmt.Errorf("%w: %s seq %d expired at %s", ErrExpired, a.Therapist().Short(), a.Seq, exp.UTC().Format(time.RFC3339))
	} else if exp.After(now.Add(s.lim.MaxTTL)) {
		return 0, fmt.Errorf("%w: %s seq %d expires at %s, more than %s from now", ErrTTLTooLong, a.Therapist().Short(), a.Seq, exp.UTC().Format(time.RFC3339), s.lim.MaxTTL)
	}
	h, err := tbsHash(&a)
	if err != nil {
		return 0, err
	}
	addr := a.Therapist()

	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.entries[addr]
	outcome := Added
	if old != nil {
		switch {
		case a.Seq < old.seq:
			return 0, fmt.Errorf("%w: %s seq %d, holding %d", ErrStale, addr.Short(), a.Seq, old.seq)
		case a.Seq == old.seq && old.ann != nil && old.tbs == h:
			return Duplicate, nil
		case a.Seq == old.seq:
			return 0, fmt.Errorf("%w: %s seq %d", ErrSeqConflict, addr.Short(), a.Seq)
		}
		outcome = Replaced
		// The therapist stays counted with the neighbour that introduced
		// it: relaying someone's newer set takes over no one's share.
		via = old.via
	}
	victims, err := s.makeRoomLocked(addr, via, old, len(a.Slots))
	if err != nil {
		if old != nil && old.ann != nil {
			// The therapist's new set does not fit, but its old one is
			// stale: drop it and remember the new sequence, so slots it
			// has given away are not answered any more.
			if derr := s.dropSetLocked(old, a.Seq, now); derr != nil {
				return 0, derr
			}
		}
		return 0, err
	}
	e := &entry{addr: addr, via: via, seq: a.Seq, keepUntil: now.Add(s.lim.MaxTTL), ann: &a, frame: append([]byte(nil), frame...), tbs: h}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(storeBucket)
		if b == nil {
			return fmt.Errorf("fapp: bucket %s missing", storeBucket)
		}
		for _, v := range victims {
			if err := b.Delete(v.addr[:]); err != nil {
				return err
			}
		}
		return b.Put(addr[:], encodeRecord(e))
	})
	if err != nil {
		return 0, fmt.Errorf("fapp: store announce: %w", err)
	}
	for _, v := range victims {
		s.removeLocked(v)
	}
	if old != nil {
		s.removeLocked(old)
	}
	s.addLocked(e)
	return outcome, nil
}

// makeRoomLocked picks the entries to remove so that a set of cost slots
// from addr, introduced by via (replacing old, if any), fits. It changes
// nothing.
//
// Capacity is shared fairly across the neighbours that introduced the
// therapists: the victim comes from the neighbour holding the most (slots
// when slots are short, entries when therapists are), via itself on a
// tie, so a neighbour flooding fresh identities churns only its own. From
// another neighbour's share the largest set goes (slots) or the oldest
// remembered-only therapist, else the set expiring first (therapists).
// From via's own share the rules are those of a single source: only a set
// strictly larger than cost (the largest first) or a remembered-only
// therapist (the oldest) makes room; else ErrStoreFull.
func (s *Store) makeRoomLocked(addr crypto.Address, via [16]byte, old *entry, cost int) ([]*entry, error) {
	slots := s.slots + cost
	count := len(s.entries)
	if old != nil {
		slots -= old.cost()
	} else {
		count++
	}
	if slots <= s.lim.MaxSlots && count <= s.lim.MaxTherapists {
		return nil, nil
	}
	full := func() error {
		return fmt.Errorf("%w: %d slots of %d, %d therapists of %d; %s brings %d slots and neither its neighbour's share nor a larger one can make room",
			ErrStoreFull, s.slots, s.lim.MaxSlots, len(s.entries), s.lim.MaxTherapists, addr.Short(), cost)
	}
	taken := map[crypto.Address]bool{addr: true}
	// share is what each neighbour holds with the victims so far taken
	// out and the newcomer counted in.
	gSlots := func(v [16]byte) int {
		n := 0
		if g := s.groups[v]; g != nil {
			n = g.slots
		}
		if v == via {
			n += cost
			if old != nil {
				n -= old.cost()
			}
		}
		return n
	}
	gCount := func(v [16]byte) int {
		n := 0
		if g := s.groups[v]; g != nil {
			n = len(g.entries)
		}
		if v == via && old == nil {
			n++
		}
		return n
	}
	lostSlots := map[[16]byte]int{}
	lostCount := map[[16]byte]int{}
	// most is the neighbour holding the most by f (via on a tie).
	most := func(f func([16]byte) int, lost map[[16]byte]int) [16]byte {
		best, bestN := via, f(via)-lost[via]
		for v := range s.groups {
			if n := f(v) - lost[v]; n > bestN {
				best, bestN = v, n
			}
		}
		return best
	}
	var victims []*entry
	take := func(e *entry) {
		victims = append(victims, e)
		taken[e.addr] = true
		slots -= e.cost()
		count--
		lostSlots[e.via] += e.cost()
		lostCount[e.via]++
	}
	for slots > s.lim.MaxSlots {
		v := most(gSlots, lostSlots)
		var pick *entry
		if g := s.groups[v]; g != nil {
			for _, e := range g.entries {
				if taken[e.addr] || e.ann == nil {
					continue
				}
				if pick == nil || bigger(e, pick) {
					pick = e
				}
			}
		}
		if pick == nil || (v == via && pick.cost() <= cost) {
			return nil, full()
		}
		take(pick)
	}
	for count > s.lim.MaxTherapists {
		v := most(gCount, lostCount)
		var pick *entry
		if g := s.groups[v]; g != nil && (g.tombs > 0 || v != via) {
			for _, e := range g.entries {
				if taken[e.addr] || (v == via && e.ann != nil) {
					continue
				}
				if pick == nil || sooner(e, pick) {
					pick = e
				}
			}
		}
		if pick == nil {
			return nil, full()
		}
		take(pick)
	}
	return victims, nil
}

// bigger orders sets to push out for slots: the largest, then the one
// expiring first, then by address.
func bigger(a, b *entry) bool {
	if a.cost() != b.cost() {
		return a.cost() > b.cost()
	}
	if !a.ann.ExpiresAt().Equal(b.ann.ExpiresAt()) {
		return a.ann.ExpiresAt().Before(b.ann.ExpiresAt())
	}
	return bytes.Compare(a.addr[:], b.addr[:]) < 0
}

// sooner orders entries to push out for the therapist count:
// remembered-only ones first (the oldest), then sets expiring first.
func sooner(a, b *entry) bool {
	if (a.ann == nil) != (b.ann == nil) {
		return a.ann == nil
	}
	if a.ann == nil {
		if !a.keepUntil.Equal(b.keepUntil) {
			return a.keepUntil.Before(b.keepUntil)
		}
	} else if !a.ann.ExpiresAt().Equal(b.ann.ExpiresAt()) {
		return a.ann.ExpiresAt().Before(b.ann.ExpiresAt())
	}
	return bytes.Compare(a.addr[:], b.addr[:]) < 0
}

// dropSetLocked turns e into a remembered-only entry with sequence seq.
func (s *Store) dropSetLocked(e *entry, seq uint64, now time.Time) error {
	t := &entry{addr: e.addr, via: e.via, seq: seq, keepUntil: now.Add(s.lim.MaxTTL)}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(storeBucket)
		if b == nil {
			return fmt.Errorf("fapp: bucket %s missing", storeBucket)
		}
		return b.Put(e.addr[:], encodeRecord(t))
	})
	if err != nil {
		return fmt.Errorf("fapp: store announce: %w", err)
	}
	s.removeLocked(e)
	s.addLocked(t)
	return nil
}

// Expire removes the announces that expired by now (their therapists'
// sequence numbers are kept until MaxTTL after their last announce) and
// forgets therapists whose time is up, in one transaction. It reports how
// many announces expired and how many therapists were forgotten.
func (s *Store) Expire() (expired, forgotten int, err error) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var exp, gone []*entry
	for _, e := range s.entries {
		switch {
		case e.ann == nil && !e.keepUntil.After(now):
			gone = append(gone, e)
		case e.ann != nil && !e.ann.ExpiresAt().After(now):
			exp = append(exp, e)
		}
	}
	if len(exp) == 0 && len(gone) == 0 {
		return 0, 0, nil
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(storeBucket)
		if b == nil {
			return fmt.Errorf("fapp: bucket %s missing", storeBucket)
		}
		for _, e := range gone {
			if err := b.Delete(e.addr[:]); err != nil {
				return err
			}
		}
		for _, e := range exp {
			t := *e
			t.ann, t.frame = nil, nil
			if err := b.Put(e.addr[:], encodeRecord(&t)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("fapp: expire: %w", err)
	}
	for _, e := range gone {
		s.removeLocked(e)
	}
	for _, e := range exp {
		s.removeLocked(e)
		e.ann, e.frame = nil, nil
		s.addLocked(e)
	}
	return len(exp), len(gone), nil
}

// Query returns the slots that match f, of announces not expired, that
// have not started yet, sorted by start time, at most f.Limit().
func (s *Store) Query(f Filter) []Result {
	now := s.clk.Now()
	if f.From.Before(now) {
		f.From = now
	}
	lim := f.Limit()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Only the first lim results in result order are kept while scanning
	// (a bounded heap): a broad filter over a full store matches
	// thousands of slots, and sorting them all to keep 20 was most of a
	// query's time.
	top := topResults{lim: lim}
	for _, e := range s.entries {
		a := e.ann
		if a == nil || !a.ExpiresAt().After(now) || !f.MatchesPLZ(a.PLZ) {
			continue
		}
		for i := range a.Slots {
			if sl := &a.Slots[i]; f.Matches(a.PLZ, *sl) {
				top.offer(Result{ID: SlotID{Therapist: e.addr, Slot: sl.ID}, Slot: *sl, Announce: a, Frame: e.frame})
			}
		}
	}
	return top.sorted()
}

// topResults keeps the lim first results offered, in result order
// (resultLess): a max-heap whose root is the last of those kept.
type topResults struct {
	lim int
	h   []Result
}

func (t *topResults) offer(r Result) {
	if len(t.h) < t.lim {
		t.h = append(t.h, r)
		t.up(len(t.h) - 1)
		return
	}
	if t.lim == 0 || !resultLess(&r, &t.h[0]) {
		return
	}
	t.h[0] = r
	t.down(0)
}

func (t *topResults) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !resultLess(&t.h[p], &t.h[i]) {
			return
		}
		t.h[p], t.h[i] = t.h[i], t.h[p]
		i = p
	}
}

func (t *topResults) down(i int) {
	for {
		l, big := 2*i+1, i
		if l < len(t.h) && resultLess(&t.h[big], &t.h[l]) {
			big = l
		}
		if r := l + 1; r < len(t.h) && resultLess(&t.h[big], &t.h[r]) {
			big = r
		}
		if big == i {
			return
		}
		t.h[i], t.h[big] = t.h[big], t.h[i]
		i = big
	}
}

func (t *topResults) sorted() []Result {
	SortResults(t.h)
	return t.h
}

// Answer is what a relay sends back for a query: the announces (frames)
// holding the first matching slots, in result order, at most
// MaxResponseAnnounces of them, and the results they cover.
func (s *Store) Answer(q *SlotQuery) ([][]byte, []Result) {
	rs := s.Query(q.Filter())
	return AnnouncesOf(rs)
}

// AnnouncesOf picks the distinct announces of results, in order, up to
// MaxResponseAnnounces, and the results they cover.
func AnnouncesOf(rs []Result) ([][]byte, []Result) {
	var frames [][]byte
	idx := map[crypto.Address]bool{}
	var kept []Result
	for _, r := range rs {
		if !idx[r.ID.Therapist] {
			if len(frames) == MaxResponseAnnounces {
				continue
			}
			idx[r.ID.Therapist] = true
			frames = append(frames, r.Frame)
		}
		kept = append(kept, r)
	}
	return frames, kept
}

// Get returns the announce held from therapist.
func (s *Store) Get(therapist crypto.Address) (*SlotAnnounce, []byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[therapist]
	if e == nil || e.ann == nil || !e.ann.ExpiresAt().After(s.clk.Now()) {
		return nil, nil, false
	}
	return e.ann, e.frame, true
}

// Seq is the highest sequence number accepted from therapist (0: none).
func (s *Store) Seq(therapist crypto.Address) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[therapist]; e != nil {
		return e.seq
	}
	return 0
}

// Len is the number of announces held (not counting remembered-only
// therapists).
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.entries {
		if e.ann != nil {
			n++
		}
	}
	return n
}

// Slots is the number of slots held.
func (s *Store) Slots() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slots
}
