package transports

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// FrameBudget bounds the bytes that the connections sharing it may hold in
// frames they are still reading. A FrameReader with a budget reserves the
// length of every frame above 64 KiB before it reads the body, and gives it
// back when ReadFrame returns; while the budget is used up it waits, without
// reading the stream (so the peer is slowed by flow control), until another
// frame finishes or its own frame's deadline passes. A reservation covers
// the whole frame, so a reader never holds part of the budget while waiting
// for more: peers stalled inside frames cannot deadlock each other, they
// only make the others wait until their frame timeout closes them.
//
// A reserved frame is allocated whole (the budget bounds it), so the
// memory held by partial frames never exceeds the budget.
//
// Frames of at most 64 KiB do not use the budget: each connection reads one
// frame at a time, so those are bounded by the number of links times 64 KiB.
//
// A FrameBudget is safe for concurrent use.
type FrameBudget struct {
	limit int64

	mu    sync.Mutex
	used  int64
	peak  int64
	waits uint64
	wake  chan struct{} // closed and replaced when bytes are released
}

// NewFrameBudget returns a budget of limit bytes, which must be at least
// the largest frame limit of the connections using it.
func NewFrameBudget(limit int64) *FrameBudget {
	return &FrameBudget{limit: limit, wake: make(chan struct{})}
}

// Limit is the budget's size in bytes.
func (b *FrameBudget) Limit() int64 { return b.limit }

// InUse is the bytes reserved now.
func (b *FrameBudget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Peak is the most bytes ever reserved at once.
func (b *FrameBudget) Peak() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// Waits counts reservations that had to wait for bytes to be released.
func (b *FrameBudget) Waits() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waits
}

// acquire reserves n bytes, waiting while they are not free. It fails with
// ErrFrameTimeout when deadline passes first (a zero deadline waits
// without limit) and with net.ErrClosed when done is closed.
func (b *FrameBudget) acquire(n int64, deadline time.Time, done <-chan struct{}) error {
	if n > b.limit {
		return &FrameTooLargeError{Size: uint64(n), Limit: int(b.limit)}
	}
	var timer *time.Timer
	var expired <-chan time.Time
	counted := false
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			b.peak = max(b.peak, b.used)
			b.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		if !counted {
			b.waits++
			counted = true
		}
		wake := b.wake
		b.mu.Unlock()
		if timer == nil && !deadline.IsZero() {
			timer = time.NewTimer(time.Until(deadline))
			expired = timer.C
		}
		select {
		case <-wake:
		case <-expired:
			return fmt.Errorf("%w: waited for %d bytes of the shared frame budget (%d bytes)", ErrFrameTimeout, n, b.limit)
		case <-done:
			if timer != nil {
				timer.Stop()
			}
			return net.ErrClosed
		}
	}
}

// release gives back n bytes reserved by acquire.
func (b *FrameBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}
