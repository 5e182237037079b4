package crypto

import (
	"container/heap"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Errors of the replay window.
var (
	// ErrReplay: this (sender, message id) was accepted before, or may have
	// been (it is at or below a floor left by eviction; see ReplayWindow).
	ErrReplay = errors.New("crypto: replayed message")
	// ErrExpired: the message's expiry has passed.
	ErrExpired = errors.New("crypto: message expired")
	// ErrExpiryTooFar: the expiry is further ahead than ReplayLimits.MaxTTL.
	ErrExpiryTooFar = errors.New("crypto: message expiry too far ahead")
	// ErrReplayStoreCorrupt: a persisted replay record could not be read.
	ErrReplayStoreCorrupt = errors.New("crypto: replay store is corrupt")
)

// ReplayKind tells what a ReplayEntry records.
type ReplayKind uint8

// Kinds of replay records.
const (
	// ReplaySeen: message ID from Sender was accepted; remember until Expiry.
	ReplaySeen ReplayKind = iota + 1
	// ReplaySenderFloor: Sender's floor; ID is zero.
	ReplaySenderFloor
	// ReplayGlobalFloor: the window-wide floor; Sender and ID are zero.
	ReplayGlobalFloor
)

// ReplayEntry is one persisted record of a ReplayWindow. A store keys
// records by (Kind, Sender, ID); a put with an existing key replaces it.
type ReplayEntry struct {
	Kind   ReplayKind
	Sender Address
	ID     [16]byte
	Expiry time.Time
}

// ReplayStore persists a ReplayWindow so that it survives restart. The
// window calls it with its own lock held, one call at a time.
type ReplayStore interface {
	// Load calls fn once for every stored record, in any order.
	Load(fn func(ReplayEntry)) error
	// Commit stores put and removes del atomically: after a crash either
	// all of it happened or none of it. Keys in put and del are distinct.
	Commit(put, del []ReplayEntry) error
}

// ReplayLimits bound a ReplayWindow. Zero fields take the defaults.
type ReplayLimits struct {
	// PerSender caps the ids remembered for one sender (default 1024).
	PerSender int
	// Total caps the ids remembered over all senders (default 65536).
	Total int
	// MaxTTL refuses a message whose expiry is more than this ahead of now
	// (ErrExpiryTooFar); it bounds how long anything is remembered
	// (default 7 days). Set it to the largest envelope lifetime the mesh
	// allows.
	MaxTTL time.Duration
}

// DefaultReplayLimits are what zero ReplayLimits fields become.
var DefaultReplayLimits = ReplayLimits{PerSender: 1024, Total: 1 << 16, MaxTTL: 7 * 24 * time.Hour}

func (l ReplayLimits) withDefaults() ReplayLimits {
	if l.PerSender <= 0 {
		l.PerSender = DefaultReplayLimits.PerSender
	}
	if l.Total <= 0 {
		l.Total = DefaultReplayLimits.Total
	}
	if l.MaxTTL <= 0 {
		l.MaxTTL = DefaultReplayLimits.MaxTTL
	}
	return l
}

// ReplayWindow accepts each (sender, message id) once. It owns the set of
// ids seen per sender, each remembered until its message's expiry, and
// writes every change through its ReplayStore before reporting success, so
// a restart (a new window over the same store) still refuses what was
// accepted before.
//
// Memory is bounded: at most PerSender ids per sender and Total overall.
// When a cap is hit the soonest-expiring id is evicted, and the window
// raises a floor to that id's expiry (the sender's floor for the per-sender
// cap, the global floor for the total cap). A message whose expiry is at or
// below a floor is refused as a possible replay, because it could be the
// evicted one. Evicting the soonest-expiring id keeps floors close to now,
// so only messages about to expire anyway are refused. Floors are
// persisted too, and a floor that falls behind now is dropped.
//
// The guarantee, with an authenticated expiry (the envelope signature
// covers it): a message is accepted at most once. Expiries further ahead
// than MaxTTL are refused, so a sender cannot raise a floor far ahead.
//
// Time comes in as a parameter. A ReplayWindow is safe for concurrent use.
type ReplayWindow struct {
	mu      sync.Mutex
	store   ReplayStore
	lim     ReplayLimits
	senders map[Address]*replaySender
	all     replayHeap // every remembered id, soonest expiry first
	floor   time.Time  // global floor; zero when none
	broken  error      // set when the store cannot be read back after a failed commit
}

type replaySender struct {
	ids   map[[16]byte]*replayItem
	heap  replayHeap // this sender's ids, soonest expiry first
	floor time.Time
}

type replayItem struct {
	sender Address
	id     [16]byte
	expiry time.Time
	gi, si int // positions in the global and sender heaps
}

// NewReplayWindow loads the window from store (nil: kept in memory only)
// and enforces lim on what it loaded.
func NewReplayWindow(store ReplayStore, lim ReplayLimits) (*ReplayWindow, error) {
	if store == nil {
		store = NewMemReplayStore()
	}
	w := &ReplayWindow{store: store, lim: lim.withDefaults()}
	ch, err := w.loadLocked()
	if err != nil {
		return nil, err
	}
	if err := w.commitLocked(ch); err != nil {
		return nil, err
	}
	return w, nil
}

// Accept records that sender's message id, expiring at expiry, arrived at
// now. It returns nil exactly once per message: ErrReplay for a duplicate
// (or one below a floor), ErrExpired when expiry is not after now,
// ErrExpiryTooFar past MaxTTL, or a store error (the message was not
// recorded and must be dropped). Expired ids are collected on the way.
func (w *ReplayWindow) Accept(now time.Time, sender Address, id [16]byte, expiry time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken != nil {
		return w.broken
	}
	if !expiry.After(now) {
		return fmt.Errorf("%w: from %s, expired %s ago", ErrExpired, sender.Short(), now.Sub(expiry))
	}
	if expiry.Sub(now) > w.lim.MaxTTL {
		return fmt.Errorf("%w: from %s, expires in %s, at most %s", ErrExpiryTooFar, sender.Short(), expiry.Sub(now), w.lim.MaxTTL)
	}
	ch := newReplayChanges()
	w.gcLocked(now, ch)
	s := w.senders[sender]
	if s != nil {
		if _, dup := s.ids[id]; dup {
			return w.refuse(ch, fmt.Errorf("%w: from %s", ErrReplay, sender.Short()))
		}
		if !expiry.After(s.floor) {
			return w.refuse(ch, fmt.Errorf("%w: from %s, expiry at or below the sender's window floor", ErrReplay, sender.Short()))
		}
	}
	if !expiry.After(w.floor) {
		return w.refuse(ch, fmt.Errorf("%w: from %s, expiry at or below the window floor", ErrReplay, sender.Short()))
	}
	w.insertLocked(&replayItem{sender: sender, id: id, expiry: expiry}, ch)
	if err := w.commitLocked(ch); err != nil {
		return err
	}
	return nil
}

// refuse still commits the garbage collection done on the way.
func (w *ReplayWindow) refuse(ch *replayChanges, err error) error {
	if cerr := w.commitLocked(ch); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

// GC forgets ids that expired by now (and floors no longer needed); it
// reports how many ids went. Accept does this on the way, so GC is for idle periods.
func (w *ReplayWindow) GC(now time.Time) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken != nil {
		return 0, w.broken
	}
	ch := newReplayChanges()
	n := w.gcLocked(now, ch)
	return n, w.commitLocked(ch)
}

// Len is the number of ids remembered.
func (w *ReplayWindow) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.Len()
}

// LenFor is the number of ids remembered for sender.
func (w *ReplayWindow) LenFor(sender Address) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.senders[sender]; s != nil {
		return len(s.ids)
	}
	return 0
}

// insertLocked adds it and evicts down to the caps.
func (w *ReplayWindow) insertLocked(it *replayItem, ch *replayChanges) {
	s := w.senders[it.sender]
	if s == nil {
		s = &replaySender{ids: make(map[[16]byte]*replayItem), heap: replayHeap{sender: true}}
		w.senders[it.sender] = s
	}
	s.ids[it.id] = it
	heap.Push(&s.heap, it)
	heap.Push(&w.all, it)
	ch.putSeen(it)
	if len(s.ids) > w.lim.PerSender {
		v := s.heap.items[0]
		w.removeLocked(v, ch)
		if v.expiry.After(s.floor) {
			s.floor = v.expiry
		}
		ch.put(ReplayEntry{Kind: ReplaySenderFloor, Sender: v.sender, Expiry: s.floor})
	}
	for w.all.Len() > w.lim.Total {
		v := w.all.items[0]
		w.removeLocked(v, ch)
		if v.expiry.After(w.floor) {
			w.floor = v.expiry
		}
		ch.put(ReplayEntry{Kind: ReplayGlobalFloor, Expiry: w.floor})
	}
}

// removeLocked forgets it; a sender left with no ids is dropped with its
// floor. That is safe: a sender's floor is never above its remaining ids'
// expiries, so once the last one is gone the floor is either behind now
// or below the global floor, which total-cap eviction raised past it.
func (w *ReplayWindow) removeLocked(it *replayItem, ch *replayChanges) {
	s := w.senders[it.sender]
	heap.Remove(&w.all, it.gi)
	heap.Remove(&s.heap, it.si)
	delete(s.ids, it.id)
	ch.delSeen(it)
	if len(s.ids) == 0 {
		delete(w.senders, it.sender)
		if !s.floor.IsZero() {
			ch.del(ReplayEntry{Kind: ReplaySenderFloor, Sender: it.sender})
		}
	}
}

func (w *ReplayWindow) gcLocked(now time.Time, ch *replayChanges) int {
	n := 0
	for w.all.Len() > 0 && !w.all.items[0].expiry.After(now) {
		w.removeLocked(w.all.items[0], ch)
		n++
	}
	// A sender floor behind now is harmless (anything at or below it is
	// expired anyway) and goes with the sender's last id; only the global
	// floor is dropped here.
	if !w.floor.IsZero() && !w.floor.After(now) {
		w.floor = time.Time{}
		ch.del(ReplayEntry{Kind: ReplayGlobalFloor})
	}
	return n
}

// loadLocked rebuilds the in-memory window from the store and enforces the
// limits (they may be lower than when the records were written).
func (w *ReplayWindow) loadLocked() (*replayChanges, error) {
	w.senders = make(map[Address]*replaySender)
	w.all = replayHeap{}
	w.floor = time.Time{}
	var seen []ReplayEntry
	floors := make(map[Address]time.Time)
	var bad error
	err := w.store.Load(func(e ReplayEntry) {
		switch e.Kind {
		case ReplaySeen:
			seen = append(seen, e)
		case ReplaySenderFloor:
			floors[e.Sender] = e.Expiry
		case ReplayGlobalFloor:
			w.floor = e.Expiry
		default:
			bad = fmt.Errorf("%w: record of kind %d", ErrReplayStoreCorrupt, e.Kind)
		}
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("crypto: load replay window: %w", err)
	}
	// Insert soonest-expiring last so that, if the limits shrank, eviction
	// behaves as it would have live; order does not change the outcome.
	sort.Slice(seen, func(i, j int) bool { return seen[i].Expiry.After(seen[j].Expiry) })
	ch := newReplayChanges()
	for _, e := range seen {
		if s := w.senders[e.Sender]; s != nil {
			if _, dup := s.ids[e.ID]; dup {
				continue
			}
		}
		w.insertLocked(&replayItem{sender: e.Sender, id: e.ID, expiry: e.Expiry}, ch)
		// Already stored: drop the put, but keep a delete if the cap
		// evicted it straight away.
		if k := (replayKey{ReplaySeen, e.Sender, e.ID}); ch.m[k] != nil {
			delete(ch.m, k)
		}
	}
	for a, f := range floors {
		if s := w.senders[a]; s != nil {
			if f.After(s.floor) {
				s.floor = f
			}
			continue
		}
		// A floor without ids is no longer needed (see removeLocked).
		ch.del(ReplayEntry{Kind: ReplaySenderFloor, Sender: a})
	}
	// Floors raised while enforcing the caps must be written; floors only
	// loaded need not be rewritten, but rewriting them is harmless.
	for a, s := range w.senders {
		if !s.floor.IsZero() {
			ch.put(ReplayEntry{Kind: ReplaySenderFloor, Sender: a, Expiry: s.floor})
		}
	}
	return ch, nil
}

// commitLocked writes ch; if the store refuses, the in-memory window is
// rebuilt from the store, which stays the truth.
func (w *ReplayWindow) commitLocked(ch *replayChanges) error {
	if len(ch.m) == 0 {
		return nil
	}
	put, del := ch.split()
	err := w.store.Commit(put, del)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("crypto: replay window: commit: %w", err)
	if _, lerr := w.loadLocked(); lerr != nil {
		w.broken = fmt.Errorf("crypto: replay window unusable: %w", errors.Join(err, lerr))
		return w.broken
	}
	return err
}

type replayKey struct {
	kind   ReplayKind
	sender Address
	id     [16]byte
}

// replayChanges coalesces one operation's writes by key: the last put or
// delete of a key wins.
type replayChanges struct {
	m map[replayKey]*ReplayEntry // nil value: delete
}

func newReplayChanges() *replayChanges {
	return &replayChanges{m: make(map[replayKey]*ReplayEntry)}
}

func (c *replayChanges) put(e ReplayEntry) { c.m[replayKey{e.Kind, e.Sender, e.ID}] = &e }
func (c *replayChanges) del(e ReplayEntry) { c.m[replayKey{e.Kind, e.Sender, e.ID}] = nil }
func (c *replayChanges) putSeen(it *replayItem) {
	c.put(ReplayEntry{Kind: ReplaySeen, Sender: it.sender, ID: it.id, Expiry: it.expiry})
}
func (c *replayChanges) delSeen(it *replayItem) {
	c.del(ReplayEntry{Kind: ReplaySeen, Sender: it.sender, ID: it.id})
}

func (c *replayChanges) split() (put, del []ReplayEntry) {
	for k, e := range c.m {
		if e != nil {
			put = append(put, *e)
		} else {
			del = append(del, ReplayEntry{Kind: k.kind, Sender: k.sender, ID: k.id})
		}
	}
	return put, del
}

// replayHeap orders items by (expiry, sender, id), so eviction is
// deterministic; sender selects which index field it maintains.
type replayHeap struct {
	items  []*replayItem
	sender bool
}

func (h *replayHeap) Len() int { return len(h.items) }
func (h *replayHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if c := a.expiry.Compare(b.expiry); c != 0 {
		return c < 0
	}
	if a.sender != b.sender {
		return string(a.sender[:]) < string(b.sender[:])
	}
	return string(a.id[:]) < string(b.id[:])
}
func (h *replayHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.setIndex(i)
	h.setIndex(j)
}
func (h *replayHeap) setIndex(i int) {
	if h.sender {
		h.items[i].si = i
	} else {
		h.items[i].gi = i
	}
}
func (h *replayHeap) Push(x any) {
	h.items = append(h.items, x.(*replayItem))
	h.setIndex(len(h.items) - 1)
}
func (h *replayHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items[len(h.items)-1] = nil
	h.items = h.items[:len(h.items)-1]
	return it
}

// MemReplayStore is an in-memory ReplayStore: for tests and for simulated
// nodes that need no disk. Keeping one value and building a new window on
// it models a restart. It is safe for concurrent use.
type MemReplayStore struct {
	mu sync.Mutex
	m  map[replayKey]ReplayEntry
}

// NewMemReplayStore returns an empty store.
func NewMemReplayStore() *MemReplayStore {
	return &MemReplayStore{m: make(map[replayKey]ReplayEntry)}
}

// Load implements ReplayStore.
func (s *MemReplayStore) Load(fn func(ReplayEntry)) error {
	s.mu.Lock()
	entries := make([]ReplayEntry, 0, len(s.m))
	for _, e := range s.m {
		entries = append(entries, e)
	}
	s.mu.Unlock()
	for _, e := range entries {
		fn(e)
	}
	return nil
}

// Commit implements ReplayStore.
func (s *MemReplayStore) Commit(put, del []ReplayEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range del {
		delete(s.m, replayKey{e.Kind, e.Sender, e.ID})
	}
	for _, e := range put {
		s.m[replayKey{e.Kind, e.Sender, e.ID}] = e
	}
	return nil
}

// Len is the number of stored records (ids and floors).
func (s *MemReplayStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
