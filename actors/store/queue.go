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
// fails. PeekAfter walks a long queue in batches. Apply writes many puts
// and acks in one transaction, so a busy store pays one fsync per batch
// rather than one per frame; a write transaction that changes nothing is
// rolled back and costs none. Time comes in as a parameter. The counts
// that Len, LenFor and Bytes report are kept in memory, rebuilt from the
// database at NewQueue. A Queue is safe for concurrent use; nothing else may write its
// buckets.
type Queue struct {
	db  *bolt.DB
	lim Limits

	// OnCommit, when set (before the Queue is used), is called after each
	// write transaction of the queue commits: one fsync each. Tests and
	// benchmarks count them with it.
	OnCommit func()

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
// destination) or ErrFull, and stores nothing then. It is Apply with one
// put.
func (q *Queue) Put(it Item, now time.Time) error {
	res, err := q.Apply([]Item{it}, nil, now)
	if err != nil {
		return err
	}
	return res.Errs[0]
}

// Applied is what Apply did.
type Applied struct {
	Stored int // puts stored
	Acked  int // frames the acks removed (an id put again and acked in one batch counts twice: both copies went)
	// Errs has one entry per put: nil when it was stored, else why it
	// was refused (ErrExpired, ErrTooLarge, ErrDuplicate or ErrFull).
	Errs []error
}

// Apply stores puts and removes the frames that acks name (each only
// if held for the ack's Dest) in one bbolt transaction: one fsync for the lot.
// Each put is checked as Put checks it, and a refused put, reported in
// Errs, does not stop the others. The acks are applied before the puts,
// so the room they free is open to them, and again after, so an id acked
// in the same batch as its put is not held afterwards, in whichever order
// the two came. err is non-nil only when the transaction failed (a disk
// error, a corrupt record); then nothing was applied and Applied is zero.
func (q *Queue) Apply(puts []Item, acks []Ack, now time.Time) (Applied, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var res Applied
	var d delta
	err := q.update(func(tx *bolt.Tx) error {
		res, d = Applied{Errs: make([]error, len(puts))}, delta{}
		ack := func() error {
			for _, a := range acks {
				ok, err := ackIn(tx, a.ID, &a.Dest, &d)
				if err != nil {
					return err
				}
				if ok {
					res.Acked++
				}
			}
			return nil
		}
		if err := ack(); err != nil {
			return err
		}
		for i, it := range puts {
			refused, err := q.putIn(tx, it, now, &d)
			if err != nil {
				return fmt.Errorf("put %x: %w", it.ID[:4], err)
			}
			if res.Errs[i] = refused; refused == nil {
				res.Stored++
			}
		}
		if res.Stored > 0 {
			if err := ack(); err != nil {
				return err
			}
		}
		return unchangedIf(res.Stored == 0 && res.Acked == 0)
	})
	if err != nil {
		return Applied{}, fmt.Errorf("store: apply %d puts and %d acks: %w", len(puts), len(acks), err)
	}
	q.apply(d)
	return res, nil
}

// putIn stores it inside tx, checked against what is held (the counts
// plus d, what tx has changed so far). refused says why it was not
// stored; err is a failure of the transaction.
func (q *Queue) putIn(tx *bolt.Tx, it Item, now time.Time, d *delta) (refused, err error) {
	if !it.Expiry.After(now) {
		return fmt.Errorf("%w: %x for %x", ErrExpired, it.ID[:4], it.Dest[:4]), nil
	}
	if len(it.Frame) > q.lim.MaxFrame {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(it.Frame), q.lim.MaxFrame), nil
	}
	ids := tx.Bucket(idsBucket)
	// A duplicate is reported as such even when full: it is held.
	if ids.Get(it.ID[:]) != nil {
		return fmt.Errorf("%w: %x", ErrDuplicate, it.ID[:4]), nil
	}
	held, total, size := q.counts[it.Dest]+d.counts[it.Dest], q.total+d.total, q.bytes+d.bytes
	switch {
	case held >= q.lim.PerDest:
		return fmt.Errorf("%w: %d frames held for %x (limit %d)", ErrFull, held, it.Dest[:4], q.lim.PerDest), nil
	case total >= q.lim.Total:
		return fmt.Errorf("%w: %d frames held (limit %d)", ErrFull, total, q.lim.Total), nil
	case size+int64(len(it.Frame)) > q.lim.TotalBytes:
		return fmt.Errorf("%w: %d bytes held, %d more would pass the limit %d", ErrFull, size, len(it.Frame), q.lim.TotalBytes), nil
	}
	frames := tx.Bucket(framesBucket)
	seq, err := frames.NextSequence()
	if err != nil {
		return nil, err
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
		return nil, err
	}
	if err := ids.Put(it.ID[:], fk); err != nil {
		return nil, err
	}
	if err := tx.Bucket(expiryBucket).Put(expiryKey(v[17:25], fk), nil); err != nil {
		return nil, err
	}
	d.add(it.Dest, len(it.Frame))
	return nil, nil
}

// ackIn removes the frame held under id inside tx, if it is held (and,
// when dest is not nil, held for *dest), and reports whether it did.
func ackIn(tx *bolt.Tx, id [16]byte, dest *[16]byte, d *delta) (bool, error) {
	fk := tx.Bucket(idsBucket).Get(id[:])
	if fk == nil || (dest != nil && !bytes.HasPrefix(fk, dest[:])) {
		return false, nil
	}
	if len(fk) != frameKeySize {
		return false, fmt.Errorf("%w: id %x has the frame key %x", ErrCorrupt, id[:4], fk)
	}
	fk = bytes.Clone(fk)
	v := tx.Bucket(framesBucket).Get(fk)
	if len(v) < frameHeader {
		return false, fmt.Errorf("%w: id %x points at a missing frame", ErrCorrupt, id[:4])
	}
	v = bytes.Clone(v)
	if err := deleteFrame(tx, fk, v); err != nil {
		return false, err
	}
	var to [16]byte
	copy(to[:], fk)
	d.remove(to, len(v)-frameHeader)
	return true, nil
}

// errUnchanged is what a write transaction's function returns when it
// wrote nothing: update rolls it back, which costs no fsync (an ack for an
// id not held is the common case on a relay).
var errUnchanged = errors.New("store: nothing to write")

// update runs fn in one write transaction and calls OnCommit once it has
// committed. fn returns errUnchanged when it wrote nothing; the
// transaction is rolled back then and update returns nil.
func (q *Queue) update(fn func(*bolt.Tx) error) error {
	err := q.db.Update(fn)
	switch {
	case errors.Is(err, errUnchanged):
		return nil
	case err == nil && q.OnCommit != nil:
		q.OnCommit()
	}
	return err
}

// unchangedIf is errUnchanged when nothing was written, else nil.
func unchangedIf(nothing bool) error {
	if nothing {
		return errUnchanged
	}
	return nil
}

func expiryKey(expiry, fk []byte) []byte {
	k := make([]byte, 0, expiryKeySize)
	return append(append(k, expiry...), fk...)
}

// delta is what a transaction changed in the counts, applied to them
// after it commits.
type delta struct {
	counts map[[16]byte]int
	total  int
	bytes  int64
}

func (d *delta) add(dest [16]byte, size int) { d.change(dest, 1, size) }

func (d *delta) remove(dest [16]byte, size int) { d.change(dest, -1, -size) }

func (d *delta) change(dest [16]byte, n, size int) {
	if d.counts == nil {
		d.counts = make(map[[16]byte]int)
	}
	d.counts[dest] += n
	d.total += n
	d.bytes += int64(size)
}

// apply adds what a committed transaction changed to the counts; q.mu is
// held.
func (q *Queue) apply(d delta) {
	for dest, n := range d.counts {
		if q.counts[dest] += n; q.counts[dest] <= 0 {
			delete(q.counts, dest)
		}
	}
	q.total += d.total
	q.bytes += d.bytes
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

// Peek returns up to max (all when max <= 0) unexpired frames for dest,
// oldest first, without removing them.
func (q *Queue) Peek(dest [16]byte, max int, now time.Time) ([]Item, error) {
	out, _, err := q.PeekAfter(dest, nil, max, now)
	return out, err
}

// PeekAfter is Peek that starts after the frame key after (from the
// oldest when after is nil), so a caller can walk a long queue in
// batches without reading it from the start each time. next is the key
// to pass as after for the following batch; it is nil when the batch
// reached the end of what dest holds now. Frames stored later queue
// behind every key handed out, so a walk that goes on until next is nil
// sees them too.
func (q *Queue) PeekAfter(dest [16]byte, after []byte, max int, now time.Time) (items []Item, next []byte, err error) {
	if after != nil && (len(after) != frameKeySize || !bytes.HasPrefix(after, dest[:])) {
		return nil, nil, fmt.Errorf("store: peek %x: %x is not one of its frame keys", dest[:4], after)
	}
	err = q.db.View(func(tx *bolt.Tx) error {
		var err error
		items, next, err = scan(tx, dest, after, max, now, nil)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: peek %x: %w", dest[:4], err)
	}
	return items, next, nil
}

// scan walks dest's frames in order from after (exclusive; from the
// start when nil), collecting up to max unexpired ones; next is the key
// of the last one collected when more frames follow it. With d it also
// deletes what it collected and the expired ones it met, and records
// that in d.
func scan(tx *bolt.Tx, dest [16]byte, after []byte, max int, now time.Time, d *delta) (out []Item, next []byte, err error) {
	var doomed [][2][]byte
	c := tx.Bucket(framesBucket).Cursor()
	var k, v []byte
	if after == nil {
		k, v = c.Seek(dest[:])
	} else if k, v = c.Seek(after); bytes.Equal(k, after) {
		k, v = c.Next()
	}
	var last []byte
	for ; k != nil && bytes.HasPrefix(k, dest[:]); k, v = c.Next() {
		if max > 0 && len(out) >= max {
			next = bytes.Clone(last)
			break
		}
		it, err := decodeFrame(k, v)
		if err != nil {
			return nil, nil, err
		}
		if it.Expiry.After(now) {
			out = append(out, it)
		}
		last = k
		if d != nil {
			doomed = append(doomed, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
		}
	}
	for _, x := range doomed {
		if err := deleteFrame(tx, x[0], x[1]); err != nil {
			return nil, nil, err
		}
		d.remove(dest, len(x[1])-frameHeader)
	}
	return out, next, nil
}

// Take returns up to max (all when max <= 0) unexpired frames for dest,
// oldest first, and removes them (and expired ones it passed) in the same
// transaction.
func (q *Queue) Take(dest [16]byte, max int, now time.Time) ([]Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Item
	var d delta
	err := q.update(func(tx *bolt.Tx) error {
		var err error
		d = delta{}
		if out, _, err = scan(tx, dest, nil, max, now, &d); err != nil {
			return err
		}
		return unchangedIf(d.counts == nil)
	})
	if err != nil {
		return nil, fmt.Errorf("store: take %x: %w", dest[:4], err)
	}
	q.apply(d)
	return out, nil
}

// Ack removes the frames with these ids held for dest (after they were
// delivered) and reports how many it removed; ids not held, or held for
// another destination, are skipped.
func (q *Queue) Ack(dest [16]byte, ids ...[16]byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var d delta
	n := 0
	err := q.update(func(tx *bolt.Tx) error {
		d, n = delta{}, 0
		for _, id := range ids {
			ok, err := ackIn(tx, id, &dest, &d)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return unchangedIf(n == 0)
	})
	if err != nil {
		return 0, fmt.Errorf("store: ack for %x: %w", dest[:4], err)
	}
	q.apply(d)
	return n, nil
}

// Expire removes every frame whose expiry is not after now and reports
// how many went.
func (q *Queue) Expire(now time.Time) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var d delta
	n := 0
	var limit [8]byte
	encodeTime(limit[:], now)
	err := q.update(func(tx *bolt.Tx) error {
		d, n = delta{}, 0
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
			d.remove(dest, len(v)-frameHeader)
			n++
		}
		return unchangedIf(n == 0)
	})
	if err != nil {
		return 0, fmt.Errorf("store: expire: %w", err)
	}
	q.apply(d)
	return n, nil
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
