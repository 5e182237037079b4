package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors of the queue.
var (
	// ErrFull: a cap (per destination, total frames or total bytes) would
	// be exceeded; nothing already held is dropped to make room.
	ErrFull = errors.New("store: queue full")
	// ErrDuplicate: a frame with this id is already held.
	ErrDuplicate = errors.New("store: duplicate frame id")
	// ErrExpired: the frame's expiry is not after now.
	ErrExpired = errors.New("store: frame expired")
	// ErrTooLarge: the frame is larger than Limits.MaxFrame.
	ErrTooLarge = errors.New("store: frame too large")
	// ErrCorrupt: a stored record could not be read.
	ErrCorrupt = errors.New("store: queue database is corrupt")
)

// Bucket names in the node's database.
var (
	framesBucket = []byte("store/frames") // dest(16) || seq(8) → version(1) || id(16) || expiry(8) || frame
	idsBucket    = []byte("store/ids")    // id(16) → dest(16) || seq(8)
	expiryBucket = []byte("store/expiry") // expiry(8) || dest(16) || seq(8) → empty
)

const (
	recordVersion = 1
	frameKeySize  = 16 + 8
	frameHeader   = 1 + 16 + 8
	expiryKeySize = 8 + frameKeySize
)

// Limits bound a Queue. Zero fields take the defaults.
type Limits struct {
	PerDest    int   // frames held for one destination (default 256)
	Total      int   // frames held in all (default 16384)
	TotalBytes int64 // frame bytes held in all (default 64 MiB)
	MaxFrame   int   // largest frame accepted (default 64 KiB)
}

// DefaultLimits are what zero Limits fields become.
var DefaultLimits = Limits{PerDest: 256, Total: 16384, TotalBytes: 64 << 20, MaxFrame: 64 << 10}

func (l Limits) withDefaults() Limits {
	if l.PerDest <= 0 {
		l.PerDest = DefaultLimits.PerDest
	}
	if l.Total <= 0 {
		l.Total = DefaultLimits.Total
	}
	if l.TotalBytes <= 0 {
		l.TotalBytes = DefaultLimits.TotalBytes
	}
	if l.MaxFrame <= 0 {
		l.MaxFrame = DefaultLimits.MaxFrame
	}
	return l
}

// Item is one held frame.
type Item struct {
	Dest   [16]byte
	ID     [16]byte
	Frame  []byte
	Expiry time.Time
}

// Queue is the store-and-forward queue: frames held for destinations that
// are unreachable, in bbolt, each destination's in arrival order. It owns
// the buckets store/frames, store/ids and store/expiry of the node's
// database; every operation is one bbolt transaction, so a crash leaves
// either all of it or none of it.
//
// When a cap is reached Put refuses with ErrFull rather than dropping
// frames already held: what the queue accepted it keeps until it is
// delivered (Ack, Take) or expires. The sender's node still has the frame
// and learns it was not stored.
//
// Delivery is Peek, send, then Ack of the ids that went out; Take is Peek
// and Ack in one step for callers that accept losing a frame if the send
// fails. Time comes in as a parameter. The counts that Len, LenFor and
// Bytes report are kept in memory, rebuilt from the database at
// NewQueue. A Queue is safe for concurrent use; nothing else may write its
// buckets.
type Queue struct {
	db  *bolt.DB
	lim Limits

	mu     sync.Mutex
	counts map[[16]byte]int
	total  int
	bytes  int64
}

// NewQueue opens the queue in db (creating its buckets) and counts what it
// holds.
func NewQueue(db *bolt.DB, lim Limits) (*Queue, error) {
	q := &Queue{db: db, lim: lim.withDefaults(), counts: make(map[[16]byte]int)}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{framesBucket, idsBucket, expiryBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("store: bucket %s: %w", name, err)
			}
		}
		return tx.Bucket(framesBucket).ForEach(func(k, v []byte) error {
			if _, err := decodeFrame(k, v); err != nil {
				return err
			}
			var dest [16]byte
			copy(dest[:], k)
			q.counts[dest]++
			q.total++
			q.bytes += int64(len(v) - frameHeader)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

func decodeFrame(k, v []byte) (Item, error) {
	var it Item
	if len(k) != frameKeySize || len(v) < frameHeader || v[0] != recordVersion {
		return it, fmt.Errorf("%w: frame record %x (%d bytes)", ErrCorrupt, k, len(v))
	}
	copy(it.Dest[:], k)
	copy(it.ID[:], v[1:])
	it.Expiry = decodeTime(v[17:])
	it.Frame = bytes.Clone(v[frameHeader:])
	return it, nil
}

// Times are stored as big-endian Unix nanoseconds, clamped at zero so the
// expiry index sorts; the queue never holds frames that expired before
// 1970.
func encodeTime(b []byte, t time.Time) {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	binary.BigEndian.PutUint64(b, uint64(n))
}

func decodeTime(b []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(b))) }

// Put stores it at the end of its destination's queue. It fails with
// ErrExpired, ErrTooLarge, ErrDuplicate (the id is held already, for any
// destination) or ErrFull, and stores nothing then.
func (q *Queue) Put(it Item, now time.Time) error {
	if !it.Expiry.After(now) {
		return fmt.Errorf("%w: %x for %x", ErrExpired, it.ID[:4], it.Dest[:4])
	}
	if len(it.Frame) > q.lim.MaxFrame {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(it.Frame), q.lim.MaxFrame)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	err := q.db.Update(func(tx *bolt.Tx) error {
		ids := tx.Bucket(idsBucket)
		// A duplicate is reported as such even when full: it is held.
		if ids.Get(it.ID[:]) != nil {
			return fmt.Errorf("%w: %x", ErrDuplicate, it.ID[:4])
		}
		switch {
		case q.counts[it.Dest] >= q.lim.PerDest:
			return fmt.Errorf("%w: %d frames held for %x (limit %d)", ErrFull, q.counts[it.Dest], it.Dest[:4], q.lim.PerDest)
		case q.total >= q.lim.Total:
			return fmt.Errorf("%w: %d frames held (limit %d)", ErrFull, q.total, q.lim.Total)
		case q.bytes+int64(len(it.Frame)) > q.lim.TotalBytes:
			return fmt.Errorf("%w: %d bytes held, %d more would pass the limit %d", ErrFull, q.bytes, len(it.Frame), q.lim.TotalBytes)
		}
		frames := tx.Bucket(framesBucket)
		seq, err := frames.NextSequence()
		if err != nil {
			return err
		}
		fk := make([]byte, frameKeySize)
		copy(fk, it.Dest[:])
		binary.BigEndian.PutUint64(fk[16:], seq)
		v := make([]byte, frameHeader+len(it.Frame))
		v[0] = recordVersion
		copy(v[1:], it.ID[:])
		encodeTime(v[17:], it.Expiry)
		copy(v[frameHeader:], it.Frame)
		if err := frames.Put(fk, v); err != nil {
			return err
		}
		if err := ids.Put(it.ID[:], fk); err != nil {
			return err
		}
		return tx.Bucket(expiryBucket).Put(expiryKey(v[17:25], fk), nil)
	})
	if err != nil {
		if errors.Is(err, ErrDuplicate) || errors.Is(err, ErrFull) {
			return err
		}
		return fmt.Errorf("store: put %x: %w", it.ID[:4], err)
	}
	q.counts[it.Dest]++
	q.total++
	q.bytes += int64(len(it.Frame))
	return nil
}

func expiryKey(expiry, fk []byte) []byte {
	k := make([]byte, 0, expiryKeySize)
	return append(append(k, expiry...), fk...)
}

// removed is what a transaction deleted, applied to the counts after it
// commits.
type removed struct {
	dest  [16]byte
	bytes int
}

// deleteFrame removes the record at fk (with value v) and its index
// entries.
func deleteFrame(tx *bolt.Tx, fk, v []byte) error {
	if err := tx.Bucket(idsBucket).Delete(v[1:17]); err != nil {
		return err
	}
	if err := tx.Bucket(expiryBucket).Delete(expiryKey(v[17:25], fk)); err != nil {
		return err
	}
	return tx.Bucket(framesBucket).Delete(fk)
}

func (q *Queue) applyRemoved(rs []removed) {
	for _, r := range rs {
		if q.counts[r.dest]--; q.counts[r.dest] <= 0 {
			delete(q.counts, r.dest)
		}
		q.total--
		q.bytes -= int64(r.bytes)
	}
}

// Peek returns up to max (all when max <= 0) unexpired frames for dest,
// oldest first, without removing them.
func (q *Queue) Peek(dest [16]byte, max int, now time.Time) ([]Item, error) {
	var out []Item
	err := q.db.View(func(tx *bolt.Tx) error {
		var err error
		out, _, err = scan(tx, dest, max, now, false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: peek %x: %w", dest[:4], err)
	}
	return out, nil
}

// scan walks dest's frames in order, collecting up to max unexpired ones;
// with del it also deletes what it collected and the expired ones it met.
func scan(tx *bolt.Tx, dest [16]byte, max int, now time.Time, del bool) ([]Item, []removed, error) {
	var out []Item
	var gone []removed
	var doomed [][2][]byte
	c := tx.Bucket(framesBucket).Cursor()
	for k, v := c.Seek(dest[:]); k != nil && bytes.HasPrefix(k, dest[:]); k, v = c.Next() {
		if max > 0 && len(out) >= max {
			break
		}
		it, err := decodeFrame(k, v)
		if err != nil {
			return nil, nil, err
		}
		expired := !it.Expiry.After(now)
		if !expired {
			out = append(out, it)
		}
		if del {
			doomed = append(doomed, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
			gone = append(gone, removed{dest, len(it.Frame)})
		}
	}
	for _, d := range doomed {
		if err := deleteFrame(tx, d[0], d[1]); err != nil {
			return nil, nil, err
		}
	}
	return out, gone, nil
}

// Take returns up to max (all when max <= 0) unexpired frames for dest,
// oldest first, and removes them (and expired ones it passed) in the same
// transaction.
func (q *Queue) Take(dest [16]byte, max int, now time.Time) ([]Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Item
	var gone []removed
	err := q.db.Update(func(tx *bolt.Tx) error {
		var err error
		out, gone, err = scan(tx, dest, max, now, true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: take %x: %w", dest[:4], err)
	}
	q.applyRemoved(gone)
	return out, nil
}

// Ack removes the frames with these ids held for dest (after they were
// delivered) and reports how many it removed; ids not held, or held for
// another destination, are skipped.
func (q *Queue) Ack(dest [16]byte, ids ...[16]byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var gone []removed
	err := q.db.Update(func(tx *bolt.Tx) error {
		idx, frames := tx.Bucket(idsBucket), tx.Bucket(framesBucket)
		for _, id := range ids {
			fk := idx.Get(id[:])
			if fk == nil || !bytes.HasPrefix(fk, dest[:]) {
				continue
			}
			fk = bytes.Clone(fk)
			v := frames.Get(fk)
			if len(v) < frameHeader {
				return fmt.Errorf("%w: id %x points at a missing frame", ErrCorrupt, id[:4])
			}
			v = bytes.Clone(v)
			if err := deleteFrame(tx, fk, v); err != nil {
				return err
			}
			gone = append(gone, removed{dest, len(v) - frameHeader})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: ack for %x: %w", dest[:4], err)
	}
	q.applyRemoved(gone)
	return len(gone), nil
}

// Expire removes every frame whose expiry is not after now and reports
// how many went.
func (q *Queue) Expire(now time.Time) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var gone []removed
	var limit [8]byte
	encodeTime(limit[:], now)
	err := q.db.Update(func(tx *bolt.Tx) error {
		frames := tx.Bucket(framesBucket)
		var doomed [][]byte
		c := tx.Bucket(expiryBucket).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit[:]) <= 0; k, _ = c.Next() {
			if len(k) != expiryKeySize {
				return fmt.Errorf("%w: expiry key %x", ErrCorrupt, k)
			}
			doomed = append(doomed, bytes.Clone(k[8:]))
		}
		for _, fk := range doomed {
			v := frames.Get(fk)
			if len(v) < frameHeader {
				return fmt.Errorf("%w: expiry index points at a missing frame %x", ErrCorrupt, fk)
			}
			v = bytes.Clone(v)
			if err := deleteFrame(tx, fk, v); err != nil {
				return err
			}
			var dest [16]byte
			copy(dest[:], fk)
			gone = append(gone, removed{dest, len(v) - frameHeader})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: expire: %w", err)
	}
	q.applyRemoved(gone)
	return len(gone), nil
}

// Len is the number of frames held.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

// LenFor is the number of frames held for dest.
func (q *Queue) LenFor(dest [16]byte) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.counts[dest]
}

// Bytes is the total size of the frames held.
func (q *Queue) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Destinations lists the destinations that have frames held, in no
// particular order.
func (q *Queue) Destinations() [][16]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([][16]byte, 0, len(q.counts))
	for d := range q.counts {
		out = append(out, d)
	}
	return out
}
