package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// DefaultReplayBucket is the bbolt bucket a ReplayWindow uses when given
// none.
const DefaultReplayBucket = "replay"

// A ReplayWindow keeps one bbolt key per sender, in one bucket:
//
//	'w' || sender (16)  →  version (1) || highest (8) || until (8) || floor (8) || bitmap (Window/8)
//	'f' || sender (16)  →  version (1) || highest (8) || until (8)
//
// The first is a window, the second the floor of an evicted window; a
// sender has at most one of them. Integers are big-endian; until is the
// newest expiry accepted, in Unix seconds rounded up (signed); floor is 0
// when the window has none. The bitmap is Window/64 words of 8 bytes,
// big-endian, bit i%64 of word i/64 standing for the seqs s with
// s%Window == i. A window stored with another Window size is converted on
// load (see decodeReplayRecord).
const (
	replayKindWindow    byte = 'w'
	replayKindFloor     byte = 'f'
	replayKeySize            = 1 + AddressSize
	replayRecordVersion byte = 1
	replayFloorSize          = 1 + 8 + 8
	replayWindowHead         = 1 + 8 + 8 + 8
)

// replayKey is a record key: kind || sender.
type replayKey [replayKeySize]byte

func replayRecordKey(kind byte, addr Address) replayKey {
	var k replayKey
	k[0] = kind
	copy(k[1:], addr[:])
	return k
}

// replayRecord is a decoded record.
type replayRecord struct {
	kind    byte
	addr    Address
	highest uint64
	until   int64
	floor   uint64   // window only
	bits    []uint64 // window only
}

// decodeReplayRecord reads the record k → v. A window's bitmap goes into
// bits, whose length (in words) is the Window the caller uses; sizes are
// checked before anything is read. A window stored with another Window W'
// is converted so that no seq gets a more permissive answer than before:
// seqs in both windows keep their bits; when the window grows, the seqs
// added at its bottom (ErrTooOld before, answered with a receipt) are
// marked seen (ErrReplay, answered with a receipt); when it shrinks, the
// floor rises over the highest seq that falls out unaccepted, so that seq
// is ErrForgotten (no receipt) rather than ErrTooOld (a receipt for a
// message that may still be in flight).
func decodeReplayRecord(k, v []byte, bits []uint64) (replayRecord, error) {
	var r replayRecord
	if len(k) != replayKeySize || (k[0] != replayKindWindow && k[0] != replayKindFloor) {
		return r, fmt.Errorf("%w: record %x: not a replay window or floor key", ErrReplayStoreCorrupt, k)
	}
	r.kind = k[0]
	copy(r.addr[:], k[1:])
	what := "window"
	if r.kind == replayKindFloor {
		what = "floor"
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s record %x: %s", ErrReplayStoreCorrupt, what, k, fmt.Sprintf(format, a...))
	}
	if len(v) < 1 || v[0] != replayRecordVersion {
		if len(v) == 0 {
			return r, bad("empty value")
		}
		return r, bad("version %d, want %d", v[0], replayRecordVersion)
	}
	if r.kind == replayKindFloor {
		if len(v) != replayFloorSize {
			return r, bad("%d bytes, want %d", len(v), replayFloorSize)
		}
		r.highest = binary.BigEndian.Uint64(v[1:])
		r.until = int64(binary.BigEndian.Uint64(v[9:]))
		if r.highest == 0 {
			return r, bad("highest seq is 0")
		}
		return r, nil
	}
	n := len(v) - replayWindowHead // bitmap bytes
	if n <= 0 || n%8 != 0 || n*8 > ReplayMaxWindow {
		return r, bad("%d bytes, want %d plus a bitmap of a multiple of 8 bytes up to %d", len(v), replayWindowHead, ReplayMaxWindow/8)
	}
	if len(bits) == 0 {
		return r, bad("no bitmap to read into") // a bug of the caller, not of the record
	}
	r.highest = binary.BigEndian.Uint64(v[1:])
	r.until = int64(binary.BigEndian.Uint64(v[9:]))
	r.floor = binary.BigEndian.Uint64(v[17:])
	stored := v[replayWindowHead:]
	oldW := uint64(n) * 8
	oldBit := func(seq uint64) bool {
		i := seq % oldW
		return binary.BigEndian.Uint64(stored[i/64*8:])&(1<<(i%64)) != 0
	}
	switch {
	case r.highest == 0:
		return r, bad("highest seq is 0")
	case r.floor >= r.highest:
		return r, bad("floor %d not below the highest seq %d", r.floor, r.highest)
	case !oldBit(r.highest):
		return r, bad("highest seq %d not marked seen", r.highest)
	}
	r.bits = bits
	newW := uint64(len(bits)) * 64
	if newW == oldW {
		for i := range bits {
			bits[i] = binary.BigEndian.Uint64(stored[8*i:])
		}
		return r, nil
	}
	clear(bits)
	set := func(seq uint64) {
		i := seq % newW
		bits[i/64] |= 1 << (i % 64)
	}
	for d := uint64(0); d < min(oldW, newW) && d < r.highest; d++ {
		if s := r.highest - d; oldBit(s) {
			set(s)
		}
	}
	if newW > oldW {
		for d := oldW; d < newW && d < r.highest; d++ {
			set(r.highest - d)
		}
		return r, nil
	}
	for d := newW; d < oldW && d < r.highest; d++ {
		s := r.highest - d
		if s <= r.floor {
			break
		}
		if !oldBit(s) {
			r.floor = s
			break
		}
	}
	return r, nil
}

// appendReplayWindow appends s's record value to dst.
func appendReplayWindow(dst []byte, s *replayWin) []byte {
	dst = append(dst, replayRecordVersion)
	dst = binary.BigEndian.AppendUint64(dst, s.highest)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.until))
	dst = binary.BigEndian.AppendUint64(dst, s.floor)
	for _, x := range s.bits {
		dst = binary.BigEndian.AppendUint64(dst, x)
	}
	return dst
}

// appendReplayFloor appends f's record value to dst.
func appendReplayFloor(dst []byte, f *replayFloor) []byte {
	dst = append(dst, replayRecordVersion)
	dst = binary.BigEndian.AppendUint64(dst, f.highest)
	return binary.BigEndian.AppendUint64(dst, uint64(f.until))
}

// load reads the whole bucket, creating it if missing, then evicts down to
// the limits.
func (w *ReplayWindow) load() error {
	err := w.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(w.bucket)
		if b == nil {
			return errNoReplayBucket
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := w.install(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errNoReplayBucket) {
		err = w.db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(w.bucket)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("crypto: load replay window from bucket %q: %w", w.bucket, err)
	}
	// Without a clock every eviction here leaves a floor; GC removes the
	// ones already past.
	w.evict(math.MinInt64)
	return nil
}

var errNoReplayBucket = errors.New("no bucket")

// install decodes record k → v and holds it. v nil (a nested bucket) is
// corrupt; so is a sender with both a window and a floor, which Commit
// never writes.
func (w *ReplayWindow) install(k, v []byte) error {
	if v == nil {
		return fmt.Errorf("%w: record %x is a bucket", ErrReplayStoreCorrupt, k)
	}
	var bits []uint64
	if len(k) == replayKeySize && k[0] == replayKindWindow {
		bits = make([]uint64, w.words)
	}
	r, err := decodeReplayRecord(k, v, bits)
	if err != nil {
		return err
	}
	if w.wins[r.addr] != nil || w.floors[r.addr] != nil {
		return fmt.Errorf("%w: record %x: sender %s has both a window and a floor", ErrReplayStoreCorrupt, k, r.addr)
	}
	if r.kind == replayKindFloor {
		f := &replayFloor{addr: r.addr, highest: r.highest, until: r.until}
		w.floors[r.addr] = f
		w.fheap.push(f)
		return nil
	}
	s := &replayWin{replayFloor: replayFloor{addr: r.addr, highest: r.highest, until: r.until}, floor: r.floor, bits: r.bits}
	w.wins[r.addr] = s
	w.wheap.push(&s.replayFloor)
	return nil
}

// Commit writes every window and floor changed since the last commit
// (and deletes those that went) into tx, a writable transaction of the
// window's database, so that the caller commits them together with its
// own writes. After tx commits, call Committed; if tx (or Commit) failed,
// call Discard. Accepts made between Commit and Committed stay dirty for
// the next Commit. A memory-only window writes nothing.
func (w *ReplayWindow) Commit(tx *bolt.Tx) error {
	if w.db == nil {
		return nil
	}
	if w.broken != nil {
		return w.broken
	}
	b := tx.Bucket(w.bucket)
	if b == nil {
		return fmt.Errorf("crypto: replay window: commit: %w: bucket %q missing", ErrReplayStoreCorrupt, w.bucket)
	}
	return w.Prepare().Write(tx)
}

// ReplayWrites are the records a Prepare encoded: independent of the
// window's memory, so they may be written by another goroutine while the
// window goes on accepting.
type ReplayWrites struct {
	bucket []byte
	keys   [][]byte
	vals   [][]byte // nil: delete
}

// Len is the number of records.
func (r ReplayWrites) Len() int { return len(r.keys) }

// Write puts the records into tx (a transaction of the window's database).
func (r ReplayWrites) Write(tx *bolt.Tx) error {
	if len(r.keys) == 0 {
		return nil
	}
	b := tx.Bucket(r.bucket)
	if b == nil {
		return fmt.Errorf("crypto: replay window: commit: %w: bucket %q missing", ErrReplayStoreCorrupt, r.bucket)
	}
	for i, k := range r.keys {
		var err error
		if r.vals[i] != nil {
			err = b.Put(k, r.vals[i])
		} else {
			err = b.Delete(k)
		}
		if err != nil {
			return fmt.Errorf("crypto: replay window: commit record %x: %w", k, err)
		}
	}
	return nil
}

// Prepare encodes every window and floor changed since the last commit,
// as Commit would write them, for a transaction the caller runs later
// (on another goroutine, while this one goes on: group commit in a
// pipeline). The window may change meanwhile; after the transaction
// committed call Committed, if it failed Discard, before the next Prepare.
func (w *ReplayWindow) Prepare() ReplayWrites {
	out := ReplayWrites{bucket: w.bucket}
	if w.db == nil || w.broken != nil {
		return out
	}
	w.keys = w.keys[:0]
	size := 0
	for k := range w.dirty {
		w.keys = append(w.keys, k)
		size += replayKeySize
		if k[0] == replayKindWindow {
			size += replayWindowHead + 8*w.words
		} else {
			size += replayFloorSize
		}
	}
	slices.SortFunc(w.keys, func(a, b replayKey) int { return bytes.Compare(a[:], b[:]) })
	// bbolt wants keys and values valid until the transaction ends: one
	// arena per Prepare, owned by the writes.
	arena := make([]byte, 0, size)
	out.keys, out.vals = make([][]byte, 0, len(w.keys)), make([][]byte, 0, len(w.keys))
	for _, k := range w.keys {
		addr := Address(k[1:])
		i := len(arena)
		arena = append(arena, k[:]...)
		key := arena[i:len(arena):len(arena)]
		i = len(arena)
		var val []byte
		switch s, f := w.wins[addr], w.floors[addr]; {
		case k[0] == replayKindWindow && s != nil:
			arena = appendReplayWindow(arena, s)
			val = arena[i:len(arena):len(arena)]
		case k[0] == replayKindFloor && f != nil:
			arena = appendReplayFloor(arena, f)
			val = arena[i:len(arena):len(arena)]
		}
		out.keys, out.vals = append(out.keys, key), append(out.vals, val)
	}
	w.pendingGen = w.gen
	w.gen++
	return out
}

// Committed tells the window that the transaction of its last Commit
// committed: what that Commit wrote is clean.
func (w *ReplayWindow) Committed() {
	for k, g := range w.dirty {
		if g <= w.pendingGen {
			delete(w.dirty, k)
		}
	}
}

// Discard forgets every accept (and eviction, and GC) not yet committed,
// by reloading the changed senders from the database, so those messages
// can be accepted again. A memory-only window keeps its state. If the
// database cannot be read the window refuses everything with that error
// until a Discard succeeds.
func (w *ReplayWindow) Discard() error {
	if w.db == nil {
		return nil
	}
	for k := range w.dirty {
		addr := Address(k[1:])
		if s := w.wins[addr]; k[0] == replayKindWindow && s != nil {
			w.wheap.remove(s.idx)
			delete(w.wins, addr)
		}
		if f := w.floors[addr]; k[0] == replayKindFloor && f != nil {
			w.fheap.remove(f.idx)
			delete(w.floors, addr)
		}
	}
	err := w.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(w.bucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrReplayStoreCorrupt, w.bucket)
		}
		for k := range w.dirty {
			if v := b.Get(k[:]); v != nil {
				if err := w.install(k[:], v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		// The dirty keys stay, so a later Discard starts over.
		w.broken = fmt.Errorf("crypto: replay window unusable: discard: %w", err)
		return w.broken
	}
	w.broken = nil
	clear(w.dirty)
	w.gen++ // every mark is stale: the dirty map is empty
	w.evict(math.MinInt64)
	return nil
}

// CommitNow commits what is dirty in a transaction of its own, then calls
// Committed (or, if that failed, Discard). It is for callers without a
// transaction to share; memory-only windows do nothing.
func (w *ReplayWindow) CommitNow() error {
	if w.db == nil {
		return nil
	}
	if w.broken != nil {
		return w.broken
	}
	if len(w.dirty) == 0 {
		return nil
	}
	if err := w.db.Update(w.Commit); err != nil {
		err = fmt.Errorf("crypto: replay window: commit: %w", err)
		if derr := w.Discard(); derr != nil {
			return errors.Join(err, derr)
		}
		return err
	}
	w.Committed()
	return nil
}
