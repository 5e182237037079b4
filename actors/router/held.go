package router

import "time"

// Held keeps envelopes from senders whose announce has not arrived yet:
// an envelope can overtake its sender's announce, which travels through
// the announcer. They wait, bounded in number (Max) and age (MaxAge),
// until the announce makes the sender's key known (Take) or they fall
// out. It is plain state owned by the router actor.
type Held struct {
	Max    int           // frames held at most (default 256)
	MaxAge time.Duration // how long one waits at most (default 30 s)

	by map[[16]byte][]HeldFrame
	n  int
}

// HeldFrame is one envelope waiting for its sender's key.
type HeldFrame struct {
	Frame []byte
	From  [16]byte // the neighbour it came from
	At    time.Time
}

// Add keeps frame from the unknown sender src. It first forgets frames
// older than MaxAge; it returns how many frames went unrouted (aged out,
// plus this one if the buffer is full): the caller counts them.
func (h *Held) Add(src [16]byte, frame []byte, from [16]byte, now time.Time) (dropped int) {
	if h.by == nil {
		h.by = make(map[[16]byte][]HeldFrame)
	}
	dropped = h.Expire(now)
	maxN := h.Max
	if maxN <= 0 {
		maxN = 256
	}
	if h.n >= maxN {
		return dropped + 1
	}
	h.by[src] = append(h.by[src], HeldFrame{Frame: frame, From: from, At: now})
	h.n++
	return dropped
}

// Expire forgets the frames that have waited MaxAge or longer and
// returns how many: the caller counts them as unrouted. The router calls
// it before Take, so a frame older than MaxAge is never released, and at
// its GC tick, so frames do not outstay MaxAge when no other comes.
func (h *Held) Expire(now time.Time) (dropped int) {
	maxAge := h.MaxAge
	if maxAge <= 0 {
		maxAge = 30 * time.Second
	}
	for a, fs := range h.by {
		kept := fs[:0]
		for _, f := range fs {
			if now.Sub(f.At) < maxAge {
				kept = append(kept, f)
			} else {
				h.n--
				dropped++
			}
		}
		if len(kept) == 0 {
			delete(h.by, a)
		} else {
			h.by[a] = kept
		}
	}
	return dropped
}

// Take returns and forgets the frames held for src, oldest first.
func (h *Held) Take(src [16]byte) []HeldFrame {
	fs := h.by[src]
	if len(fs) == 0 {
		return nil
	}
	delete(h.by, src)
	h.n -= len(fs)
	return fs
}

// Len is the number of frames held.
func (h *Held) Len() int { return h.n }
