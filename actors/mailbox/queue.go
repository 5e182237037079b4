package mailbox

// Queue is the prioritized, bounded queue behind PriorityShedding, as a plain
// type: no actors, no goroutines, no locks (the mailbox holds a mutex around
// it). The zero value is not usable; call NewQueue.
//
// Layout. Prioritized messages wait in one FIFO per priority. A message
// without a priority ("exempt": lifecycle and control messages such as
// *actor.PoisonPill) is an ordering barrier: it closes the current segment
// of FIFOs and opens a new one. Pop serves the first segment, highest
// priority first, then its barrier, then moves on. With no exempt messages
// queued, which is the normal case, there is one segment.
//
// Shedding choice: when the queue is full, the NEWEST message of the lowest
// priority present is shed (tail drop within the class). Reasons:
//   - It makes one rule out of two: the incoming message is the newest of
//     its class, so "shed the incoming one if nothing lower is queued" is
//     the same rule.
//   - Frames of one message (fragments) and one peer's stream stay in order
//     and their prefix is sent; a gap at the end is what receivers and the
//     store's retry handle best, where a gap at the start wastes everything
//     sent after it.
//   - The sender of the newest message learns right away (OnShed) and can
//     keep it in the store to retry, rather than losing a frame it believed
//     had been queued long ago.
//
// Dropping the oldest would favour freshness (an announce superseded by a
// newer one); announces are Control and rarely shed, so we keep order.
type Queue struct {
	maxMessages int
	maxBytes    int // 0: no byte bound

	// segs[0] is served first; the last segment never has a barrier, and
	// there is always at least one.
	segs []*segment

	n, bytes         int                // everything queued, exempt messages included
	prioN, prioBytes int                // prioritized messages only: what the bounds limit
	classN           [numPriorities]int // prioritized messages per class
	classBytes       [numPriorities]int
}

type segment struct {
	class      [numPriorities]ring[entry]
	barrier    entry
	hasBarrier bool
}

type entry struct {
	msg  any
	size int
}

// Shed is a message the queue dropped to stay within its bounds.
type Shed struct {
	Msg      any
	Priority Priority
}

// NewQueue makes a queue that holds at most maxMessages (at least 1)
// prioritized messages and, if maxBytes > 0, at most maxBytes bytes of them.
// Exempt messages come on top.
func NewQueue(maxMessages, maxBytes int) *Queue {
	return &Queue{maxMessages: max(maxMessages, 1), maxBytes: max(maxBytes, 0), segs: []*segment{{}}}
}

// Len is the number of queued messages, exempt ones included: the depth.
func (q *Queue) Len() int { return q.n }

// Bytes is the total size of the queued messages, exempt ones included.
func (q *Queue) Bytes() int { return q.bytes }

// LenPriority is the number of queued messages of priority p.
func (q *Queue) LenPriority(p Priority) int { return q.classN[clamp(p)] }

// Push queues msg with priority p and size bytes (negative counts as 0). If
// that would break a bound, it sheds: queued messages of lower priority,
// newest first, as few as make room; or, when the messages of lower
// priority cannot make room, msg itself. It reports whether msg was queued,
// and returns what it shed, in the order shed (nil when nothing was). When
// msg is not queued, shed holds msg alone and the queue is unchanged.
func (q *Queue) Push(msg any, p Priority, size int) (queued bool, shed []Shed) {
	p = clamp(p)
	size = max(size, 0)
	needN := q.prioN + 1 - q.maxMessages
	needB := 0
	if q.maxBytes > 0 {
		needB = q.prioBytes + size - q.maxBytes
	}
	if needN > 0 || needB > 0 {
		lowerN, lowerB := 0, 0
		for c := range int(p) {
			lowerN += q.classN[c]
			lowerB += q.classBytes[c]
		}
		if lowerN < needN || lowerB < needB {
			return false, []Shed{{Msg: msg, Priority: p}}
		}
		for needN > 0 || needB > 0 {
			e, c := q.popNewestLowest()
			shed = append(shed, Shed{Msg: e.msg, Priority: c})
			needN--
			needB -= e.size
		}
	}
	q.segs[len(q.segs)-1].class[p].pushBack(entry{msg, size})
	q.account(p, 1, size)
	return true, shed
}

// PushExempt queues a message without a priority. It is never shed, and it
// does not count against the bounds (so it never makes another message be
// shed); it waits for everything queued before it, and everything queued
// after it waits for it.
func (q *Queue) PushExempt(msg any, size int) {
	size = max(size, 0)
	last := q.segs[len(q.segs)-1]
	last.barrier, last.hasBarrier = entry{msg, size}, true
	q.segs = append(q.segs, &segment{})
	q.n++
	q.bytes += size
}

// Pop removes and returns the next message to deliver; ok is false when
// the queue is empty.
func (q *Queue) Pop() (msg any, ok bool) {
	s := q.segs[0]
	for c := numPriorities - 1; c >= 0; c-- {
		if e, ok := s.class[c].popFront(); ok {
			q.account(Priority(c), -1, -e.size)
			return e.msg, true
		}
	}
	if !s.hasBarrier {
		return nil, false // the only segment, and empty
	}
	// The first segment is done: deliver its barrier and move on.
	e := s.barrier
	q.segs[0] = nil
	q.segs = append(q.segs[:0], q.segs[1:]...)
	q.n--
	q.bytes -= e.size
	return e.msg, true
}

// popNewestLowest removes the newest message of the lowest non-empty class.
// The caller has checked that one exists.
func (q *Queue) popNewestLowest() (entry, Priority) {
	c := 0
	for q.classN[c] == 0 {
		c++
	}
	for i := len(q.segs) - 1; ; i-- {
		if e, ok := q.segs[i].class[c].popBack(); ok {
			q.account(Priority(c), -1, -e.size)
			return e, Priority(c)
		}
	}
}

func (q *Queue) account(p Priority, dn, db int) {
	q.n += dn
	q.bytes += db
	q.prioN += dn
	q.prioBytes += db
	q.classN[p] += dn
	q.classBytes[p] += db
}

// ring is a growable FIFO that can also drop from its back.
type ring[T any] struct {
	buf  []T
	head int // index of the front element
	n    int
}

func (r *ring[T]) pushBack(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

func (r *ring[T]) popFront() (T, bool) {
	var zero T
	if r.n == 0 {
		return zero, false
	}
	v := r.buf[r.head]
	r.buf[r.head] = zero // let the GC have it
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return v, true
}

func (r *ring[T]) popBack() (T, bool) {
	var zero T
	if r.n == 0 {
		return zero, false
	}
	i := (r.head + r.n - 1) % len(r.buf)
	v := r.buf[i]
	r.buf[i] = zero
	r.n--
	return v, true
}

func (r *ring[T]) grow() {
	buf := make([]T, max(2*len(r.buf), 8))
	for i := range r.n {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}
