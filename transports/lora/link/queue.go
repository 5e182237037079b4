package link

import (
	"bytes"

	"github.com/quicprochat/qpc/messages"
)

// numPriorities is the number of messages.Priority values (Bulk, Data,
// Control).
const numPriorities = int(messages.Control) + 1

// outFrame is one frame waiting for the radio.
type outFrame struct {
	c    *conn // nil: a broadcast (Transport.Broadcast)
	data []byte
	prio messages.Priority
	// An announce (by its frame tag): its destination and sequence, for
	// the announce share and for collapsing queued announces.
	ann     bool
	annDest [16]byte
	annSeq  uint64
	annHops uint8
	// annHeard: the peers heard broadcasting the same announce while
	// this one waited (suppress).
	annHeard map[[16]byte]bool
}

// outQueue is the radio's outbound queue: one FIFO per priority, bounded
// in frames and bytes for all of them together. Its shedding rule is the
// one of actors/mailbox.Queue, so the node has one policy: when a push
// would break a bound, the newest frames of the lowest priority below the
// pushed frame's are dropped, as few as make room; when lower frames
// cannot make room, nothing is dropped and the push fails (WriteFrame
// then waits for room). One exception keeps every frame sendable: an
// empty queue takes a frame of any size.
//
// It is plain state under the transport's lock.
type outQueue struct {
	maxN, maxB int
	q          [numPriorities][]*outFrame
	n, b       int
}

func clampPriority(p messages.Priority) messages.Priority {
	return min(p, messages.Control)
}

// push queues f or reports that it does not fit; shed are the frames it
// dropped to make room.
func (q *outQueue) push(f *outFrame) (ok bool, shed []*outFrame) {
	size := len(f.data)
	needN := q.n + 1 - q.maxN
	needB := q.b + size - q.maxB
	if q.n > 0 && (needN > 0 || needB > 0) {
		lowerN, lowerB := 0, 0
		for p := range int(f.prio) {
			for _, g := range q.q[p] {
				lowerN++
				lowerB += len(g.data)
			}
		}
		if lowerN < needN || lowerB < needB {
			return false, nil
		}
		for needN > 0 || needB > 0 {
			g := q.popNewestLowest()
			shed = append(shed, g)
			needN--
			needB -= len(g.data)
		}
	}
	q.q[f.prio] = append(q.q[f.prio], f)
	q.n++
	q.b += size
	return true, shed
}

// hasCopy reports whether a frame with f's bytes for f's connection is
// queued already.
func (q *outQueue) hasCopy(f *outFrame) bool {
	for _, fs := range q.q {
		for _, g := range fs {
			if g.c == f.c && bytes.Equal(g.data, f.data) {
				return true
			}
		}
	}
	return false
}

func (q *outQueue) popNewestLowest() *outFrame {
	for p := range q.q {
		if l := len(q.q[p]); l > 0 {
			g := q.q[p][l-1]
			q.q[p][l-1] = nil
			q.q[p] = q.q[p][:l-1]
			q.n--
			q.b -= len(g.data)
			return g
		}
	}
	return nil
}

// peek is the frame pop would return, or nil.
func (q *outQueue) peek() *outFrame {
	for p := numPriorities - 1; p >= 0; p-- {
		if len(q.q[p]) > 0 {
			return q.q[p][0]
		}
	}
	return nil
}

// pop takes the oldest frame of the highest priority, or nil.
func (q *outQueue) pop() *outFrame {
	for p := numPriorities - 1; p >= 0; p-- {
		if len(q.q[p]) > 0 {
			f := q.q[p][0]
			q.q[p][0] = nil
			q.q[p] = q.q[p][1:]
			q.n--
			q.b -= len(f.data)
			return f
		}
	}
	return nil
}

// collapse replaces the data of a queued announce for the same
// destination and target (the same connection, or both broadcasts) with
// f's, when f is an announce at least as new; it reports whether f was
// absorbed so (also when the queued one is newer: f is dropped then). The
// queued frame keeps its place, so a destination announcing often is not
// sent later for it.
func (q *outQueue) collapse(f *outFrame) bool {
	if !f.ann {
		return false
	}
	for p := range q.q {
		for _, g := range q.q[p] {
			if !g.ann || g.c != f.c || g.annDest != f.annDest {
				continue
			}
			if f.annSeq >= g.annSeq {
				q.b += len(f.data) - len(g.data)
				g.data, g.annSeq = f.data, f.annSeq
			}
			return true
		}
	}
	return false
}

// suppress notes that the peer from broadcast dest's announce seq: the
// queued broadcast announces of dest of that sequence or older count it
// as served, and those for which every peer of peers (but dest itself)
// is served are dropped; it returns how many it dropped. (The link's
// half of the managed flood, the rule of router.Flood: a broadcast only
// serves the neighbours that lack it.)
func (q *outQueue) suppress(dest [16]byte, seq uint64, from [16]byte, peers [][16]byte) int {
	dropped := 0
	for p := range q.q {
		kept := q.q[p][:0]
		for _, f := range q.q[p] {
			if f.c == nil && f.ann && f.annDest == dest && f.annSeq <= seq {
				if f.annHeard == nil {
					f.annHeard = map[[16]byte]bool{}
				}
				f.annHeard[from] = true
				if served(f.annHeard, peers, dest) {
					dropped++
					q.n--
					q.b -= len(f.data)
					continue
				}
			}
			kept = append(kept, f)
		}
		clear(q.q[p][len(kept):])
		q.q[p] = kept
	}
	return dropped
}

// served reports whether every peer but dest is in heard.
func served(heard map[[16]byte]bool, peers [][16]byte, dest [16]byte) bool {
	for _, p := range peers {
		if p != dest && !heard[p] {
			return false
		}
	}
	return true
}

// peekSkip is the frame to send next: the oldest of the highest
// priority, passing over announces when skipAnn (the announce share is
// used up); when that is an announce, the node's own announces (hops 0)
// go before the others, which keep their order: a relay whose queue is
// full of announces for far destinations still tells its neighbours about
// itself first, and no destination starves. Nil when none.
func (q *outQueue) peekSkip(skipAnn bool) *outFrame {
	for p := numPriorities - 1; p >= 0; p-- {
		var best *outFrame
		for _, f := range q.q[p] {
			switch {
			case f.ann && skipAnn:
			case !f.ann && best == nil:
				return f
			case f.ann && (best == nil || f.annHops == 0 && best.annHops > 0):
				best = f
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

// take removes f from the queue; it reports whether f was queued.
func (q *outQueue) take(f *outFrame) bool {
	l := q.q[f.prio]
	for i, g := range l {
		if g == f {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			q.q[f.prio] = l[:len(l)-1]
			q.n--
			q.b -= len(f.data)
			return true
		}
	}
	return false
}

// removeConn drops every frame of c and returns how many it dropped.
func (q *outQueue) removeConn(c *conn) int {
	dropped := 0
	for p := range q.q {
		kept := q.q[p][:0]
		for _, f := range q.q[p] {
			if f.c == c {
				dropped++
				q.n--
				q.b -= len(f.data)
				continue
			}
			kept = append(kept, f)
		}
		clear(q.q[p][len(kept):])
		q.q[p] = kept
	}
	return dropped
}
