package mlslite

import "math"

// CounterReserve is how many counters a Counter reserves at a time: one
// durable write per CounterReserve messages, and at most CounterReserve
// counters skipped by a restart.
const CounterReserve = 256

// A Counter hands out one sender's message counters of one epoch, so that
// no (sender, epoch, counter), and so no AES-GCM nonce, is ever used
// twice, across restarts too.
//
// Reserve ahead: the Counter keeps a high water, one more than the
// largest counter it may hand out before it must reserve again. When Next
// reaches it, Next moves it CounterReserve further and returns persist =
// true; the caller must then write HighWater() durably (fsync) before it
// sends the frame sealed with that counter. If the write fails it must not
// send the frame and must go on from RestoreCounter(the high water last
// written), as after a crash. After a restart, RestoreCounter(the stored
// high water) resumes at the high water: every counter handed out before
// the crash was below it, since none was used before its reservation was
// on disk. A restart skips the unused rest of the reservation, at most
// CounterReserve counters.
//
// The counter space is 0 … 2^32−2 (2^32−1 is never handed out: it is the
// largest high water). When it is used up Next returns
// ErrCounterExhausted: the group must move to a new epoch, which starts a
// new Counter at 0 under new keys.
//
// A Counter is a value owned by one sender goroutine; it has no lock.
type Counter struct {
	next uint64 // next counter to hand out
	high uint64 // reserved up to, exclusive; ≤ math.MaxUint32
}

// NewCounter is the Counter of a fresh epoch: it starts at 0 and reserves
// on the first Next. It equals RestoreCounter(0).
func NewCounter() Counter { return Counter{} }

// RestoreCounter resumes a Counter from the high water last written
// durably (HighWater when Next returned persist = true): the next counter
// is highWater, above everything handed out before.
func RestoreCounter(highWater uint32) Counter {
	return Counter{next: uint64(highWater), high: uint64(highWater)}
}

// Next returns the next counter. persist = true means: write HighWater()
// durably before sending the frame sealed with n. At the end of the
// counter space it returns ErrCounterExhausted and changes nothing.
func (c *Counter) Next() (n uint32, persist bool, err error) {
	if c.next >= math.MaxUint32 {
		return 0, false, ErrCounterExhausted
	}
	if c.next >= c.high {
		c.high = min(c.next+CounterReserve, math.MaxUint32)
		persist = true
	}
	n = uint32(c.next)
	c.next++
	return n, persist, nil
}

// HighWater is one more than the largest counter this Counter may hand
// out without another reservation: what to store durably when Next says
// persist, and to give RestoreCounter after a restart.
func (c *Counter) HighWater() uint32 { return uint32(c.high) }
