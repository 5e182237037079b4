package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors of the replay window. Check and Accept return these values
// themselves, not wrapped, so that refusing a message costs no allocation;
// compare with errors.Is all the same.
var (
	// ErrReplay: this seq from this sender was accepted before and is still
	// inside the sender's window. Answer with its receipt again.
	ErrReplay = errors.New("crypto: replayed message")
	// ErrTooOld: seq is below the sender's window (seq+Window <= the
	// highest seq accepted from it). The sender keeps fewer than Window
	// messages in flight to us, so this one was accepted before or given
	// up by its sender: answer with a receipt.
	ErrTooOld = errors.New("crypto: sequence number below the replay window")
	// ErrForgotten: seq is at or below the floor that an evicted window of
	// this sender left behind, so whether it was delivered is no longer
	// known. Refuse it and send no receipt.
	ErrForgotten = errors.New("crypto: sequence number at or below a forgotten replay window")
	// ErrNoSequence: seq is 0, which means "no sequence number"; the
	// window never accepts it.
	ErrNoSequence = errors.New("crypto: message has no sequence number")
	// ErrExpired: the message's expiry is not after now.
	ErrExpired = errors.New("crypto: message expired")
	// ErrExpiryTooFar: the expiry is more than ReplayLimits.MaxTTL ahead.
	ErrExpiryTooFar = errors.New("crypto: message expiry too far ahead")
	// ErrReplayStoreCorrupt: a persisted replay record could not be read;
	// the error names the record.
	ErrReplayStoreCorrupt = errors.New("crypto: replay store is corrupt")
)

// ReplayMaxWindow is the largest ReplayLimits.Window, in sequence numbers
// (8 KiB of bitmap per sender). A stored record claiming a larger window is
// corrupt.
const ReplayMaxWindow = 1 << 16

// ReplayLimits bound a ReplayWindow. Zero fields take the defaults.
type ReplayLimits struct {
	// Window is how many sequence numbers are tracked per sender, a
	// multiple of 64 up to ReplayMaxWindow (default 4096). Senders must
	// keep fewer than Window messages in flight per destination.
	Window int
	// MaxSenders caps the sender windows kept (default 65536).
	MaxSenders int
	// MaxFloors caps the floors of evicted windows kept (default 1<<20).
	MaxFloors int
	// MaxTTL refuses an expiry further ahead than now+MaxTTL
	// (ErrExpiryTooFar); it bounds how long any window or floor is kept
	// (default 8 days). Set it to the largest envelope lifetime the mesh
	// allows.
	MaxTTL time.Duration
}

// DefaultReplayLimits are what zero ReplayLimits fields become.
var DefaultReplayLimits = ReplayLimits{Window: 4096, MaxSenders: 1 << 16, MaxFloors: 1 << 20, MaxTTL: 8 * 24 * time.Hour}

// withDefaults fills zero fields and checks the rest.
func (l ReplayLimits) withDefaults() (ReplayLimits, error) {
	d := DefaultReplayLimits
	if l.Window == 0 {
		l.Window = d.Window
	}
	if l.MaxSenders == 0 {
		l.MaxSenders = d.MaxSenders
	}
	if l.MaxFloors == 0 {
		l.MaxFloors = d.MaxFloors
	}
	if l.MaxTTL == 0 {
		l.MaxTTL = d.MaxTTL
	}
	switch {
	case l.Window < 0 || l.Window%64 != 0 || l.Window > ReplayMaxWindow:
		return l, fmt.Errorf("crypto: replay limits: Window is %d, want a positive multiple of 64 up to %d", l.Window, ReplayMaxWindow)
	case l.MaxSenders < 0:
		return l, fmt.Errorf("crypto: replay limits: MaxSenders is %d, want a positive number (0: default %d)", l.MaxSenders, d.MaxSenders)
	case l.MaxFloors < 0:
		return l, fmt.Errorf("crypto: replay limits: MaxFloors is %d, want a positive number (0: default %d)", l.MaxFloors, d.MaxFloors)
	case l.MaxTTL < 0:
		return l, fmt.Errorf("crypto: replay limits: MaxTTL is %s, want a positive duration (0: default %s)", l.MaxTTL, d.MaxTTL)
	}
	return l, nil
}

// ReplayWindow accepts each (sender, seq) at most once, where seq is the
// signed per-(source, destination) sequence number of an envelope. For
// every sender it keeps the highest seq accepted and a bitmap of the
// Window numbers up to it (the sliding window of RFC 6479, as in
// WireGuard), so an honest burst or reordering within Window is accepted in
// full, and what one sender sends never refuses another's messages.
//
// The verdicts, in order: seq 0 is ErrNoSequence; an expiry not after now
// is ErrExpired, one more than MaxTTL ahead ErrExpiryTooFar; a seq above the
// sender's highest is new; one at or below the sender's floor (see below)
// is ErrForgotten; one Window or more below the highest is ErrTooOld; one
// whose bit is set is ErrReplay; any other is new.
//
// Memory: a sender's window costs about Window/8 bytes plus 120 (about
// 630 bytes with the defaults, so 65536 senders take about 40 MiB); a
// floor about 95 bytes (1<<20 floors about 95 MiB). TestReplayWindowMemory
// checks these figures. On disk a window is Window/8+42 bytes, a floor 34.
//
// Eviction. When more than MaxSenders windows are held, the one whose
// newest accepted expiry ("until") is soonest goes. If until has passed,
// nothing it could refuse is still valid and it is simply forgotten;
// otherwise it leaves a floor {highest, until}: that sender's seqs at or
// below highest are ErrForgotten until then, and a seq above it starts a
// fresh window that carries the floor. So a flood of fresh identities
// costs the honest senders at most their windows, never their new
// messages; a retransmission of a message not yet delivered whose seq is
// at or below such a floor is refused without a receipt, and its sender
// reports it failed at its expiry. Floors beyond MaxFloors are dropped soonest-until first; that
// is the one case in which a replay could be accepted again, and it takes
// a sustained Sybil attack of more than MaxSenders+MaxFloors live
// identities within MaxTTL.
//
// Persistence. Accept changes only memory and marks the sender dirty;
// Commit writes every dirty window and floor into the caller's bbolt
// transaction, so the replay window commits together with the inbox and
// store writes of the same batch (one fsync). After the transaction
// commits call Committed; if it failed, Discard, which reloads the dirty
// senders from the database, so the uncommitted accepts are forgotten and
// those messages can be accepted again when they are retransmitted.
// Receipts must wait for the commit.
//
// Time comes in as a parameter. A ReplayWindow is owned by one goroutine
// (the router's actor) and has no lock: it is not safe for concurrent use.
type ReplayWindow struct {
	lim    ReplayLimits
	window uint64 // lim.Window
	words  int    // lim.Window / 64

	wins   map[Address]*replayWin
	floors map[Address]*replayFloor
	wheap  replayHeap // every window's replayFloor, soonest until first
	fheap  replayHeap // every floor, soonest until first

	// Persistence; db nil: memory only, and nothing below is used.
	db     *bolt.DB
	bucket []byte
	// dirty maps each record key changed since it was last committed to
	// the generation in which it changed. Commit writes them all and
	// starts a new generation; Committed forgets those of committed
	// generations, so changes made between Commit and Committed stay dirty.
	dirty      map[replayKey]uint64
	gen        uint64 // current generation, from 1
	pendingGen uint64 // newest generation written by Commit
	keys       []replayKey
	broken     error // a Discard failed: the window refuses everything until one succeeds

	// Spares of evicted entries, reused for the next new one so that a
	// flood of fresh identities costs no allocation.
	spare      *replayWin
	spareFloor *replayFloor
}

// replayFloor is a floor left by an evicted window, and the head of every
// window: the heaps order both by (until, addr).
type replayFloor struct {
	addr    Address
	highest uint64 // highest seq accepted from addr
	until   int64  // newest expiry accepted from addr, Unix seconds rounded up
	idx     int    // position in its heap
}

// replayWin is one sender's window.
type replayWin struct {
	replayFloor
	floor uint64   // seqs at or below it are ErrForgotten; 0: none
	mark  uint64   // generation in which it was last marked dirty
	bits  []uint64 // bit seq%Window (bit i%64 of word i/64) set: seq accepted
}

// NewReplayWindow loads the window from the bucket named bucket
// (DefaultReplayBucket when empty) of db, creating the bucket if missing;
// db nil keeps the window in memory only. A stored record that cannot be
// read is ErrReplayStoreCorrupt. If the database holds more windows or
// floors than lim allows, the excess is evicted as Accept would (windows
// leave floors), and written at the next Commit.
func NewReplayWindow(db *bolt.DB, bucket string, lim ReplayLimits) (*ReplayWindow, error) {
	lim, err := lim.withDefaults()
	if err != nil {
		return nil, err
	}
	if bucket == "" {
		bucket = DefaultReplayBucket
	}
	w := &ReplayWindow{
		lim:    lim,
		window: uint64(lim.Window),
		words:  lim.Window / 64,
		wins:   make(map[Address]*replayWin),
		floors: make(map[Address]*replayFloor),
		gen:    1,
	}
	if db == nil {
		return w, nil
	}
	w.db, w.bucket, w.dirty = db, []byte(bucket), make(map[replayKey]uint64)
	if err := w.load(); err != nil {
		return nil, err
	}
	return w, nil
}

// verdict is Check; it also returns the sender's window or floor.
func (w *ReplayWindow) verdict(now time.Time, sender Address, seq uint64, expiry time.Time) (*replayWin, *replayFloor, error) {
	if w.broken != nil {
		return nil, nil, w.broken
	}
	if seq == 0 {
		return nil, nil, ErrNoSequence
	}
	if !expiry.After(now) {
		return nil, nil, ErrExpired
	}
	if expiry.Sub(now) > w.lim.MaxTTL {
		return nil, nil, ErrExpiryTooFar
	}
	if s := w.wins[sender]; s != nil {
		switch {
		case seq > s.highest:
		case seq <= s.floor:
			return nil, nil, ErrForgotten
		case s.highest-seq >= w.window:
			return nil, nil, ErrTooOld
		case s.has(seq, w.window):
			return nil, nil, ErrReplay
		}
		return s, nil, nil
	}
	if f := w.floors[sender]; f != nil {
		if seq <= f.highest {
			return nil, nil, ErrForgotten
		}
		return nil, f, nil
	}
	return nil, nil, nil
}

// Check reports what Accept would say, changing nothing: nil, or one of
// the errors above (checked in this order: ErrNoSequence, ErrExpired,
// ErrExpiryTooFar, then the sender's window), or the error of a failed
// Discard. Use it to refuse a replay before spending work on decryption.
func (w *ReplayWindow) Check(now time.Time, sender Address, seq uint64, expiry time.Time) error {
	_, _, err := w.verdict(now, sender, seq, expiry)
	return err
}

// Accept is Check, and on nil records seq from sender as seen (in memory
// only; see Commit) and marks the sender dirty. Call it only after the
// message authenticated and decrypted: an accepted seq is never accepted
// again, so accepting a forgery would refuse the real message.
func (w *ReplayWindow) Accept(now time.Time, sender Address, seq uint64, expiry time.Time) error {
	s, f, err := w.verdict(now, sender, seq, expiry)
	if err != nil {
		return err
	}
	until := ceilUnix(expiry)
	if s != nil {
		if seq > s.highest {
			s.advance(seq, w.window)
		} else {
			s.set(seq, w.window)
		}
		if until > s.until {
			s.until = until
			w.wheap.fix(s.idx)
		}
		w.markWin(s)
		return nil
	}
	s = w.newWin(sender)
	s.highest, s.until = seq, until
	if f != nil {
		s.floor = f.highest
		s.until = max(until, f.until)
		w.dropFloor(f)
	}
	s.set(seq, w.window)
	w.wins[sender] = s
	w.wheap.push(&s.replayFloor)
	w.markWin(s)
	w.evict(now.Unix())
	return nil
}

// GC forgets the windows and floors whose newest accepted expiry is not
// after now: nothing they could refuse is still valid. The deletions go
// out at the next Commit. It returns how many went.
func (w *ReplayWindow) GC(now time.Time) int {
	// until is rounded up to a second, so until <= now.Unix() means
	// every expiry it covers is <= now.
	t := now.Unix()
	n := 0
	for len(w.wheap) > 0 && w.wheap[0].until <= t {
		w.dropWin(w.wins[w.wheap[0].addr])
		n++
	}
	for len(w.fheap) > 0 && w.fheap[0].until <= t {
		w.dropFloor(w.fheap[0])
		n++
	}
	return n
}

// Len is the number of sender windows held.
func (w *ReplayWindow) Len() int { return len(w.wins) }

// Dirty reports whether Commit has anything to write.
func (w *ReplayWindow) Dirty() bool { return len(w.dirty) > 0 }

// Floors is the number of floors of evicted windows held.
func (w *ReplayWindow) Floors() int { return len(w.floors) }

// evict enforces MaxSenders and MaxFloors. A window whose until is at or
// before now (Unix seconds) leaves no floor.
func (w *ReplayWindow) evict(now int64) {
	for len(w.wins) > w.lim.MaxSenders {
		s := w.wins[w.wheap[0].addr]
		addr, highest, until := s.addr, s.highest, s.until
		w.dropWin(s)
		if until > now {
			w.addFloor(addr, highest, until)
		}
	}
	for len(w.floors) > w.lim.MaxFloors {
		w.dropFloor(w.fheap[0])
	}
}

// newWin returns an empty window for addr, not yet held.
func (w *ReplayWindow) newWin(addr Address) *replayWin {
	s := w.spare
	if s == nil {
		s = &replayWin{bits: make([]uint64, w.words)}
	} else {
		w.spare = nil
		clear(s.bits)
		s.floor, s.mark = 0, 0
	}
	s.addr = addr
	return s
}

// dropWin forgets window s and marks its record for deletion.
func (w *ReplayWindow) dropWin(s *replayWin) {
	w.wheap.remove(s.idx)
	delete(w.wins, s.addr)
	w.markKey(replayKindWindow, s.addr)
	w.spare = s
}

// addFloor holds a floor for addr, which must have neither window nor floor.
func (w *ReplayWindow) addFloor(addr Address, highest uint64, until int64) {
	f := w.spareFloor
	if f == nil {
		f = new(replayFloor)
	}
	w.spareFloor = nil
	f.addr, f.highest, f.until = addr, highest, until
	w.floors[addr] = f
	w.fheap.push(f)
	w.markKey(replayKindFloor, addr)
}

// dropFloor forgets floor f and marks its record for deletion.
func (w *ReplayWindow) dropFloor(f *replayFloor) {
	w.fheap.remove(f.idx)
	delete(w.floors, f.addr)
	w.markKey(replayKindFloor, f.addr)
	w.spareFloor = f
}

// markWin marks s dirty, touching the dirty map once per generation.
func (w *ReplayWindow) markWin(s *replayWin) {
	if w.db != nil && s.mark != w.gen {
		s.mark = w.gen
		w.dirty[replayRecordKey(replayKindWindow, s.addr)] = w.gen
	}
}

func (w *ReplayWindow) markKey(kind byte, addr Address) {
	if w.db != nil {
		w.dirty[replayRecordKey(kind, addr)] = w.gen
	}
}

// has reports whether seq's bit is set.
func (s *replayWin) has(seq, window uint64) bool {
	i := seq % window
	return s.bits[i/64]&(1<<(i%64)) != 0
}

func (s *replayWin) set(seq, window uint64) {
	i := seq % window
	s.bits[i/64] |= 1 << (i % 64)
}

// advance moves the window up to seq > s.highest: the bits of the seqs in
// between (which now stand for numbers Window higher) are cleared.
func (s *replayWin) advance(seq, window uint64) {
	if n := seq - s.highest; n >= window {
		clear(s.bits)
	} else {
		clearBits(s.bits, (s.highest+1)%window, n, window)
	}
	s.highest = seq
	s.set(seq, window)
}

// clearBits clears n < window bits of the circular bitmap bits, starting
// at bit index i. window is a multiple of 64, so words never straddle the
// wrap.
func clearBits(bits []uint64, i, n, window uint64) {
	for n > 0 {
		off := i % 64
		k := min(64-off, n)
		bits[i/64] &^= (^uint64(0) >> (64 - k)) << off
		n -= k
		if i += k; i == window {
			i = 0
		}
	}
}

// ceilUnix is t in Unix seconds, rounded up.
func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// replayHeap is a min-heap of floors (and window heads) by (until, addr),
// so eviction is O(log n) and deterministic. Each element knows its index.
type replayHeap []*replayFloor

func (h replayHeap) less(i, j int) bool {
	if h[i].until != h[j].until {
		return h[i].until < h[j].until
	}
	return bytes.Compare(h[i].addr[:], h[j].addr[:]) < 0
}

func (h replayHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h replayHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h replayHeap) down(i int) bool {
	i0 := i
	for {
		c := 2*i + 1
		if c >= len(h) || c < 0 {
			break
		}
		if r := c + 1; r < len(h) && h.less(r, c) {
			c = r
		}
		if !h.less(c, i) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > i0
}

func (h *replayHeap) push(f *replayFloor) {
	f.idx = len(*h)
	*h = append(*h, f)
	h.up(f.idx)
}

// remove takes out the element at index i.
func (h *replayHeap) remove(i int) {
	n := len(*h) - 1
	if i != n {
		h.swap(i, n)
	}
	(*h)[n] = nil
	*h = (*h)[:n]
	if i != n {
		h.fix(i)
	}
}

// fix restores the order after the element at i changed its key.
func (h replayHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}
