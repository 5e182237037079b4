package links

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// Table is the transport manager's view of the node's links: which peers
// are connected over what, and which link to use for a frame. H is the
// handle a link is reached by (the link actor's PID in the node). It is
// plain state owned by the transports actor.
type Table[H any] struct {
	links map[uint64]tableEntry[H]
}

type tableEntry[H any] struct {
	info messages.LinkInfo
	h    H
}

// NewTable returns an empty table.
func NewTable[H any]() *Table[H] { return &Table[H]{links: make(map[uint64]tableEntry[H])} }

// Add records a link that came up.
func (t *Table[H]) Add(info messages.LinkInfo, h H) { t.links[info.ID] = tableEntry[H]{info, h} }

// Remove forgets a link; it reports the link's info if it was known.
func (t *Table[H]) Remove(id uint64) (messages.LinkInfo, bool) {
	e, ok := t.links[id]
	delete(t.links, id)
	return e.info, ok
}

// Len is the number of links.
func (t *Table[H]) Len() int { return len(t.links) }

// Connected reports whether any link reaches peer.
func (t *Table[H]) Connected(peer [16]byte) bool {
	for _, e := range t.links {
		if e.info.Peer == peer {
			return true
		}
	}
	return false
}

// Peers lists the connected peers, each once, in a stable order.
func (t *Table[H]) Peers() [][16]byte {
	seen := make(map[[16]byte]bool, len(t.links))
	var out [][16]byte
	for _, e := range t.links {
		if !seen[e.info.Peer] {
			seen[e.info.Peer] = true
			out = append(out, e.info.Peer)
		}
	}
	slices.SortFunc(out, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Pick chooses the link to peer for a frame of size bytes, by
// transports.SelectForSize (a link that carries the frame whole, then the
// fastest); among equals the oldest link wins, so traffic does not flap.
func (t *Table[H]) Pick(peer [16]byte, size int) (H, messages.LinkInfo, bool) {
	var cands []tableEntry[H]
	for _, e := range t.links {
		if e.info.Peer == peer {
			cands = append(cands, e)
		}
	}
	var zero H
	if len(cands) == 0 {
		return zero, messages.LinkInfo{}, false
	}
	slices.SortFunc(cands, func(a, b tableEntry[H]) int {
		if c := a.info.Since.Compare(b.info.Since); c != 0 {
			return c
		}
		return int(a.info.ID) - int(b.info.ID)
	})
	infos := make([]transports.Info, len(cands))
	for i, e := range cands {
		infos[i] = transports.Info{Name: e.info.Transport, MTU: e.info.MTU, MaxFrame: e.info.MaxFrame, Bitrate: e.info.Bitrate}
	}
	i, ok := transports.SelectForSize(infos, size)
	if !ok {
		return zero, messages.LinkInfo{}, false
	}
	return cands[i].h, cands[i].info, true
}

// List returns every link, oldest first.
func (t *Table[H]) List() []messages.LinkInfo {
	out := make([]messages.LinkInfo, 0, len(t.links))
	for _, e := range t.links {
		out = append(out, e.info)
	}
	slices.SortFunc(out, func(a, b messages.LinkInfo) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return int(a.ID) - int(b.ID)
	})
	return out
}

// CountByTransport counts links per transport name.
func (t *Table[H]) CountByTransport() map[string]int {
	m := make(map[string]int)
	for _, e := range t.links {
		m[e.info.Transport]++
	}
	return m
}

// Backoff is the re-dial delay: capped exponential with jitter. Attempt 0
// waits about Min, each further attempt doubles it, never above Max. With
// Jitter j the delay is drawn uniformly from [d·(1−j), d], so nodes that
// lost a relay together do not re-dial in lock step, and the bound Max
// always holds.
type Backoff struct {
	Min, Max time.Duration
	Jitter   float64        // 0..1
	Rand     func() float64 // [0,1); nil means math/rand/v2
}

// DefaultBackoff re-dials after 200 ms at first, up to 30 s.
var DefaultBackoff = Backoff{Min: 200 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.2}

// Delay is the wait before re-dial attempt n (0-based).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	j := min(max(b.Jitter, 0), 1)
	return d - time.Duration(float64(d)*j*r())
}
