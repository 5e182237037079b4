package router

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Message states, as GET /v1/messages/{id} and `qpc outbox` show them.
const (
	StateQueued    = "queued"    // accepted and durable; not transmitted yet (no route, or the window is full)
	StateSent      = "sent"      // transmitted at least once; no receipt yet
	StateDelivered = "delivered" // the destination's signed receipt arrived
	StateFailed    = "failed"    // expired before a receipt came: Reason says why
)

// Errors of the outbox.
var (
	// ErrOutboxFull: MaxPending messages wait for receipts already; the
	// API answers 429 and the caller retries later.
	ErrOutboxFull = errors.New("router: outbox full")
	// ErrOutboxCorrupt: a stored outbox record could not be read.
	ErrOutboxCorrupt = errors.New("router: outbox record is corrupt")
)

// OutboxLimits bound the outbox. Zero fields take the defaults.
type OutboxLimits struct {
	// MaxPending caps messages accepted and not yet delivered or failed
	// (default 16384). Past it Add refuses with ErrOutboxFull.
	MaxPending int
	// Window is how far past the oldest unacknowledged message to one
	// destination the outbox may transmit, in sequence numbers (default
	// 1024). It must stay below the receivers' replay window (4096), so a
	// seq a receiver finds below its window was acknowledged or given up.
	Window int
	// RetryBase is the wait before the first retransmission (default 5 s);
	// each further one waits twice as long, up to RetryMax (default 5 min),
	// with ±25 % jitter.
	RetryBase, RetryMax time.Duration
	// MaxFinished caps the delivered and failed records kept for status
	// queries (default 65536); the oldest go first.
	MaxFinished int
}

// DefaultOutboxLimits are what zero OutboxLimits fields become.
var DefaultOutboxLimits = OutboxLimits{MaxPending: 16384, Window: 1024, RetryBase: 5 * time.Second, RetryMax: 5 * time.Minute, MaxFinished: 65536}

func (l OutboxLimits) withDefaults() OutboxLimits {
	d := DefaultOutboxLimits
	if l.MaxPending <= 0 {
		l.MaxPending = d.MaxPending
	}
	if l.Window <= 0 {
		l.Window = d.Window
	}
	if l.RetryBase <= 0 {
		l.RetryBase = d.RetryBase
	}
	if l.RetryMax < l.RetryBase {
		l.RetryMax = max(d.RetryMax, l.RetryBase)
	}
	if l.MaxFinished <= 0 {
		l.MaxFinished = d.MaxFinished
	}
	return l
}

// OutMsg is one message this node originated, as the outbox keeps it.
type OutMsg struct {
	ID        [16]byte
	To        [16]byte
	Seq       uint64
	State     string
	Attempts  int
	Created   time.Time
	Expiry    time.Time
	NextRetry time.Time // zero once finished
	LastSent  time.Time // the latest transmission (not persisted)
	Done      time.Time // when it was delivered or failed
	Reason    string    // why it failed
	Frame     []byte    // the signed envelope; dropped once finished

	hi  int    // position in the retry heap; -1 when not in it
	key uint64 // where the record is stored (see outboxMsgs); 0: not yet
}

// Finished reports whether the message is delivered or failed.
func (m *OutMsg) Finished() bool { return m.State == StateDelivered || m.State == StateFailed }

// Outbox is the durable record of the messages this node originated,
// kept until the destination's receipt arrives (delivered) or the message
// expires (failed), and retransmitted with backoff meanwhile. It is plain
// state owned by one goroutine (the router actor); changes are written by
// Commit inside the caller's bbolt transaction, together with the other
// writes of a batch.
//
// Per destination, messages are numbered 1, 2, 3, … (the envelope's Seq,
// never reused: the next number is persisted with the message), and only
// those with a Seq below the oldest unacknowledged one plus Window are
// transmitted: that keeps every receiver's replay window able to tell a
// retransmission from a new message.
type Outbox struct {
	lim OutboxLimits
	db  *bolt.DB

	msgs    map[[16]byte]*OutMsg
	dests   map[[16]byte]*destQueue
	retry   retryHeap
	pending int
	done    [][16]byte // finished ids, oldest first (for MaxFinished)

	// Records are stored under a local key counting up in the order the
	// messages were added, not under their random ids: a group commit of
	// messages added (or delivered) together then rewrites a few adjacent
	// B+tree pages instead of one page per message.
	nextKey  uint64
	dirty    map[uint64]*OutMsg // records to write; nil: delete the key
	legacy   [][]byte           // version-1 keys (the id) to delete once rewritten
	seqDirty map[[16]byte]bool
}

type destQueue struct {
	next uint64    // next seq to hand out
	q    []*OutMsg // unfinished messages in seq order
}

// lo is the oldest unacknowledged seq, or next when none is.
func (d *destQueue) lo() uint64 {
	for len(d.q) > 0 && d.q[0].Finished() {
		d.q = d.q[1:]
	}
	if len(d.q) == 0 {
		return d.next
	}
	return d.q[0].Seq
}

// Bucket names in the node's database.
var (
	outboxMsgs = []byte("outbox/msgs") // key(8, big-endian, in order of Add) → record (encodeOutMsg)
	outboxSeqs = []byte("outbox/seqs") // dest(16) → next seq (8, big-endian)
)

// OpenOutbox loads the outbox from db (nil: memory only, for tests and
// simulated nodes).
func OpenOutbox(db *bolt.DB, lim OutboxLimits) (*Outbox, error) {
	o := &Outbox{
		lim: lim.withDefaults(), db: db,
		msgs: make(map[[16]byte]*OutMsg), dests: make(map[[16]byte]*destQueue),
		nextKey: 1, dirty: make(map[uint64]*OutMsg), seqDirty: make(map[[16]byte]bool),
	}
	if db == nil {
		return o, nil
	}
	var loaded []*OutMsg
	err := db.Update(func(tx *bolt.Tx) error {
		mb, err := tx.CreateBucketIfNotExists(outboxMsgs)
		if err != nil {
			return err
		}
		sb, err := tx.CreateBucketIfNotExists(outboxSeqs)
		if err != nil {
			return err
		}
		if err := sb.ForEach(func(k, v []byte) error {
			if len(k) != 16 || len(v) != 8 {
				return fmt.Errorf("%w: sequence record %x", ErrOutboxCorrupt, k)
			}
			var d [16]byte
			copy(d[:], k)
			o.dest(d).next = binary.BigEndian.Uint64(v)
			return nil
		}); err != nil {
			return err
		}
		return mb.ForEach(func(k, v []byte) error {
			m, err := decodeOutMsg(k, v)
			if err != nil {
				return err
			}
			if m.key == 0 { // version 1, keyed by id: rewritten under a new key
				o.legacy = append(o.legacy, bytes.Clone(k))
			} else {
				o.nextKey = max(o.nextKey, m.key+1)
			}
			loaded = append(loaded, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("router: open outbox: %w", err)
	}
	sort.Slice(loaded, func(i, j int) bool {
		if loaded[i].To != loaded[j].To {
			return bytes.Compare(loaded[i].To[:], loaded[j].To[:]) < 0
		}
		return loaded[i].Seq < loaded[j].Seq
	})
	var finished []*OutMsg
	for _, m := range loaded {
		m.hi = -1
		if m.key == 0 {
			o.markDirty(m)
		}
		o.msgs[m.ID] = m
		if m.Finished() {
			finished = append(finished, m)
			continue
		}
		d := o.dest(m.To)
		d.q = append(d.q, m)
		if m.Seq >= d.next {
			d.next = m.Seq + 1
		}
		o.pending++
		heap.Push(&o.retry, m)
	}
	sort.Slice(finished, func(i, j int) bool { return finished[i].Done.Before(finished[j].Done) })
	for _, m := range finished {
		o.done = append(o.done, m.ID)
	}
	return o, nil
}

func (o *Outbox) dest(to [16]byte) *destQueue {
	d := o.dests[to]
	if d == nil {
		d = &destQueue{next: 1}
		o.dests[to] = d
	}
	return d
}

// Full reports whether Add would refuse.
func (o *Outbox) Full() bool { return o.pending >= o.lim.MaxPending }

// Pending is the number of messages waiting for a receipt or expiry.
func (o *Outbox) Pending() int { return o.pending }

// NextSeq hands out the next sequence number for a message to to.
func (o *Outbox) NextSeq(to [16]byte) uint64 {
	d := o.dest(to)
	s := d.next
	d.next++
	o.seqDirty[to] = true
	return s
}

// Add keeps a new message (its Seq from NextSeq) as queued. It refuses
// with ErrOutboxFull when MaxPending messages are pending.
func (o *Outbox) Add(m *OutMsg, now time.Time) error {
	if o.Full() {
		return fmt.Errorf("%w: %d messages wait for receipts (limit %d)", ErrOutboxFull, o.pending, o.lim.MaxPending)
	}
	m.State, m.Created, m.NextRetry, m.hi = StateQueued, now, now, -1
	o.msgs[m.ID] = m
	d := o.dest(m.To)
	d.q = append(d.q, m)
	o.pending++
	heap.Push(&o.retry, m)
	o.markDirty(m)
	return nil
}

// markDirty schedules m's record to be written by the next Prepare,
// giving it its storage key first if it has none.
func (o *Outbox) markDirty(m *OutMsg) {
	if m.key == 0 {
		m.key = o.nextKey
		o.nextKey++
	}
	o.dirty[m.key] = m
}

// Get returns a copy of the message's record.
func (o *Outbox) Get(id [16]byte) (OutMsg, bool) {
	m, ok := o.msgs[id]
	if !ok {
		return OutMsg{}, false
	}
	c := *m
	c.Frame = nil
	return c, true
}

// List returns copies of the pending messages, oldest first.
func (o *Outbox) List() []OutMsg {
	out := make([]OutMsg, 0, o.pending)
	for _, m := range o.msgs {
		if !m.Finished() {
			c := *m
			c.Frame = nil
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Seq < out[j].Seq
	})
	return out
}

// inWindow reports whether m may be transmitted now.
func (o *Outbox) inWindow(m *OutMsg) bool {
	return m.Seq < o.dests[m.To].lo()+uint64(o.lim.Window)
}

// Transmit reports whether m should go out now (it is pending and in the
// window) and, if so, counts the attempt and schedules the next one.
func (o *Outbox) Transmit(m *OutMsg, now time.Time) bool {
	if m.Finished() || !o.inWindow(m) {
		return false
	}
	m.Attempts++
	m.State = StateSent
	m.LastSent = now
	o.reschedule(m, now.Add(o.backoff(m.Attempts)))
	o.markDirty(m)
	return true
}

// Defer schedules m's next try without counting an attempt (no route now).
func (o *Outbox) Defer(m *OutMsg, now time.Time) {
	o.reschedule(m, now.Add(o.backoff(max(m.Attempts, 1))))
}

func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.lim.RetryBase
	for i := 1; i < attempts && d < o.lim.RetryMax; i++ {
		d *= 2
	}
	d = min(d, o.lim.RetryMax)
	// ±25 % jitter, so that messages sent together do not retry together.
	return d*3/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (o *Outbox) reschedule(m *OutMsg, at time.Time) {
	if at.After(m.Expiry) {
		at = m.Expiry // to be failed on time
	}
	m.NextRetry = at
	if m.hi >= 0 {
		heap.Fix(&o.retry, m.hi)
	} else {
		heap.Push(&o.retry, m)
	}
}

// Due pops the messages whose retry time has come (in time order) and the
// ones that expired: expired ones are marked failed; the caller offers each
// due one to Transmit (or Defer when there is no route).
func (o *Outbox) Due(now time.Time) (due, failed []*OutMsg) {
	for o.retry.Len() > 0 && !o.retry.items[0].NextRetry.After(now) {
		m := heap.Pop(&o.retry).(*OutMsg)
		if !now.Before(m.Expiry) {
			reason := "expired: no receipt after " + plural(m.Attempts, "attempt")
			if m.Attempts == 0 {
				reason = "expired: no route to the destination before the message expired"
			}
			d := o.dests[m.To]
			oldLim := d.lo() + uint64(o.lim.Window)
			o.finish(m, StateFailed, reason, now)
			failed = append(failed, m)
			// Giving up on the oldest lets later ones into the window:
			// they are due now rather than at their deferred retry.
			if newLim := d.lo() + uint64(o.lim.Window); newLim > oldLim {
				for _, q := range d.q {
					if q.Seq >= newLim {
						break
					}
					if q.Seq >= oldLim && !q.Finished() && q.NextRetry.After(now) {
						o.reschedule(q, now)
					}
				}
			}
			continue
		}
		due = append(due, m)
	}
	return due, failed
}

// NextDue is when Due will next have something, or zero.
func (o *Outbox) NextDue() time.Time {
	if o.retry.Len() == 0 {
		return time.Time{}
	}
	return o.retry.items[0].NextRetry
}

// Delivered records the receipt for id, signed by from. It returns the
// message (nil when id is unknown, from is not its destination, or it was
// delivered already) and the destination's messages that the receipt let
// into the window.
func (o *Outbox) Delivered(id, from [16]byte, now time.Time) (m *OutMsg, opened []*OutMsg) {
	m = o.msgs[id]
	if m == nil || m.To != from || m.State == StateDelivered {
		return nil, nil
	}
	d := o.dests[m.To]
	oldLim := d.lo() + uint64(o.lim.Window)
	wasPending := !m.Finished()
	o.finish(m, StateDelivered, "", now)
	if !wasPending {
		return m, nil // a late receipt for one given up: it did arrive
	}
	newLim := d.lo() + uint64(o.lim.Window)
	for _, q := range d.q {
		if q.Seq >= newLim {
			break
		}
		if q.Seq >= oldLim && !q.Finished() {
			opened = append(opened, q)
		}
	}
	return m, opened
}

// RouteUp makes to's pending messages due now: a path to it appeared (or
// it announced itself afresh, as after a restart). Messages sent within
// the last minResend are left to their schedule: their copies are still
// on their way (and a relay would drop a copy this soon as a loop's).
func (o *Outbox) RouteUp(to [16]byte, now time.Time, minResend time.Duration) {
	d := o.dests[to]
	if d == nil {
		return
	}
	for _, m := range d.q {
		if !m.Finished() && m.NextRetry.After(now) && now.Sub(m.LastSent) >= minResend {
			o.reschedule(m, now)
		}
	}
}

func (o *Outbox) finish(m *OutMsg, state, reason string, now time.Time) {
	if !m.Finished() {
		o.pending--
		o.done = append(o.done, m.ID)
	}
	m.State, m.Reason, m.Done, m.NextRetry, m.Frame = state, reason, now, time.Time{}, nil
	if m.hi >= 0 {
		heap.Remove(&o.retry, m.hi)
	}
	o.markDirty(m)
	for len(o.done) > o.lim.MaxFinished {
		old := o.msgs[o.done[0]]
		o.done = o.done[1:]
		delete(o.msgs, old.ID)
		o.dirty[old.key] = nil // gone: Prepare deletes its record
	}
}

// Dirty reports whether Commit has anything to write.
func (o *Outbox) Dirty() bool { return len(o.dirty) > 0 || len(o.seqDirty) > 0 || len(o.legacy) > 0 }

// Commit writes what changed since the last Commit into tx.
func (o *Outbox) Commit(tx *bolt.Tx) error {
	var w writes
	o.Prepare(&w)
	return w.apply(tx)
}

// Prepare encodes what changed since the last Prepare into w, for a
// transaction that may run later on another goroutine; the outbox goes on
// changing meanwhile.
func (o *Outbox) Prepare(w *writes) {
	if o.db == nil {
		o.clearDirty()
		return
	}
	keys := make([]uint64, 0, len(o.dirty))
	for k := range o.dirty {
		keys = append(keys, k)
	}
	slices.Sort(keys) // bbolt writes in key order touch each page once
	for _, k := range keys {
		kb := binary.BigEndian.AppendUint64(nil, k)
		if m := o.dirty[k]; m != nil {
			w.put(outboxMsgs, kb, encodeOutMsg(m))
		} else {
			w.del(outboxMsgs, kb)
		}
	}
	for _, k := range o.legacy {
		w.del(outboxMsgs, k)
	}
	o.legacy = nil
	for to := range o.seqDirty {
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, o.dests[to].next)
		w.put(outboxSeqs, bytes.Clone(to[:]), v)
	}
	o.clearDirty()
}

func (o *Outbox) clearDirty() {
	clear(o.dirty)
	clear(o.seqDirty)
}

// Record layout, version 2, big-endian, under an 8-byte key:
//
//	version(1) state(1) attempts(4) to(16) seq(8) created(8) expiry(8)
//	next(8) done(8) reason_len(2) id(16) reason frame
//
// Times are Unix nanoseconds (0: zero time). Version 1 (before
// 2026-12-02) was stored under the id as key, without the id in the
// record and with 8 unused bytes where version 2 begins the id; it is
// still read, and rewritten as version 2 at the next commit.
const (
	outRecordHeadV1 = 1 + 1 + 4 + 16 + 8 + 4*8 + 2 + 8
	outRecordHead   = 1 + 1 + 4 + 16 + 8 + 4*8 + 2 + 16
)

var stateCodes = []string{"", StateQueued, StateSent, StateDelivered, StateFailed}

func encodeOutMsg(m *OutMsg) []byte {
	b := make([]byte, outRecordHead, outRecordHead+len(m.Reason)+len(m.Frame))
	b[0] = 2
	for i, s := range stateCodes {
		if s == m.State {
			b[1] = byte(i)
		}
	}
	binary.BigEndian.PutUint32(b[2:], uint32(m.Attempts))
	copy(b[6:], m.To[:])
	binary.BigEndian.PutUint64(b[22:], m.Seq)
	for i, t := range []time.Time{m.Created, m.Expiry, m.NextRetry, m.Done} {
		var n int64
		if !t.IsZero() {
			n = t.UnixNano()
		}
		binary.BigEndian.PutUint64(b[30+8*i:], uint64(n))
	}
	binary.BigEndian.PutUint16(b[62:], uint16(len(m.Reason)))
	copy(b[64:], m.ID[:])
	b = append(b, m.Reason...)
	return append(b, m.Frame...)
}

func decodeOutMsg(k, v []byte) (*OutMsg, error) {
	head := outRecordHead
	switch {
	case len(k) == 8 && len(v) > 0 && v[0] == 2:
	case len(k) == 16 && len(v) > 0 && v[0] == 1:
		head = outRecordHeadV1
	default:
		return nil, fmt.Errorf("%w: %x (%d bytes)", ErrOutboxCorrupt, k, len(v))
	}
	if len(v) < head || int(v[1]) == 0 || int(v[1]) >= len(stateCodes) {
		return nil, fmt.Errorf("%w: %x (%d bytes)", ErrOutboxCorrupt, k, len(v))
	}
	m := &OutMsg{State: stateCodes[v[1]], Attempts: int(binary.BigEndian.Uint32(v[2:])), Seq: binary.BigEndian.Uint64(v[22:]), hi: -1}
	if head == outRecordHeadV1 {
		copy(m.ID[:], k)
	} else {
		m.key = binary.BigEndian.Uint64(k)
		copy(m.ID[:], v[64:80])
		if m.key == 0 {
			return nil, fmt.Errorf("%w: key 0", ErrOutboxCorrupt)
		}
	}
	copy(m.To[:], v[6:22])
	var ts [4]time.Time
	for i := range ts {
		if n := int64(binary.BigEndian.Uint64(v[30+8*i:])); n != 0 {
			ts[i] = time.Unix(0, n)
		}
	}
	m.Created, m.Expiry, m.NextRetry, m.Done = ts[0], ts[1], ts[2], ts[3]
	rl := int(binary.BigEndian.Uint16(v[62:]))
	if len(v) < head+rl {
		return nil, fmt.Errorf("%w: %x: reason of %d bytes in a record of %d", ErrOutboxCorrupt, k, rl, len(v))
	}
	m.Reason = string(v[head : head+rl])
	if f := v[head+rl:]; len(f) > 0 {
		m.Frame = bytes.Clone(f)
	}
	if !m.Finished() && len(m.Frame) == 0 {
		return nil, fmt.Errorf("%w: %x: pending message without its frame", ErrOutboxCorrupt, k)
	}
	return m, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// retryHeap orders pending messages by NextRetry.
type retryHeap struct{ items []*OutMsg }

func (h *retryHeap) Len() int           { return len(h.items) }
func (h *retryHeap) Less(i, j int) bool { return h.items[i].NextRetry.Before(h.items[j].NextRetry) }
func (h *retryHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].hi, h.items[j].hi = i, j
}
func (h *retryHeap) Push(x any) {
	m := x.(*OutMsg)
	m.hi = len(h.items)
	h.items = append(h.items, m)
}
func (h *retryHeap) Pop() any {
	m := h.items[len(h.items)-1]
	h.items[len(h.items)-1] = nil
	h.items = h.items[:len(h.items)-1]
	m.hi = -1
	return m
}
