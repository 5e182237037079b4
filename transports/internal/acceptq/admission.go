package acceptq

import (
	"container/list"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// Source is what the per-source limits count by: the IPv4 address, or the
// /64 prefix of an IPv6 address (one host usually holds a whole /64, so
// counting single IPv6 addresses would limit nothing). The zero Source
// stands for addresses that are not IP (tests, pipes): they share a bucket.
type Source = netip.Prefix

// SourceOf is the Source of a remote address.
func SourceOf(a net.Addr) Source {
	var ip netip.Addr
	switch x := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(x.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(x.IP)
	default:
		if a == nil {
			return Source{}
		}
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	case ip.Is6():
		p, _ := ip.WithZone("").Prefix(64)
		return p
	}
	return Source{}
}

// Limits of an admission. Zero values are replaced by the defaults.
type Limits struct {
	// MaxPending bounds the handshakes (plus upgraded connections waiting
	// for Accept) open to any source.
	MaxPending int
	// PerSource bounds those of one source.
	PerSource int
	// Reserved slots beyond MaxPending are open only to sources that
	// completed a handshake recently, so a flood from many sources does
	// not lock out the peers the node already knows.
	Reserved int
	// Remember is how many recently good sources are remembered.
	Remember int
}

// DefaultRemember is the size of the memory of good sources.
const DefaultRemember = 1024

// admission decides which raw connections may start a handshake. It is
// plain state behind a mutex: the accept loop admits, the handshake
// goroutines report their end.
type admission struct {
	lim Limits

	mu       sync.Mutex
	general  int // slots of MaxPending in use
	reserved int // reserved slots in use
	bySource map[Source]int
	good     *recentSet
}

// ticket is an admitted connection's hold on its slot.
type ticket struct {
	src      Source
	reserved bool
}

func newAdmission(l Limits) *admission {
	return &admission{lim: l, bySource: make(map[Source]int), good: newRecentSet(l.Remember)}
}

// refusal says why a connection was not admitted.
type refusal struct {
	src    Source
	reason string
}

func (r *refusal) Error() string { return fmt.Sprintf("%s (source %s)", r.reason, r.src) }

// admit takes a slot for a connection from src, or says why not.
func (a *admission) admit(src Source) (ticket, *refusal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := a.bySource[src]; n >= a.lim.PerSource {
		return ticket{}, &refusal{src, fmt.Sprintf("%d handshakes pending from this source, the limit", n)}
	}
	t := ticket{src: src}
	switch {
	case a.general < a.lim.MaxPending:
		a.general++
	case a.reserved < a.lim.Reserved && a.good.contains(src):
		a.reserved++
		t.reserved = true
	default:
		return ticket{}, &refusal{src, fmt.Sprintf("all %d handshake slots in use", a.lim.MaxPending)}
	}
	a.bySource[src]++
	return t, nil
}

// succeeded remembers that src completed a handshake.
func (a *admission) succeeded(src Source) {
	a.mu.Lock()
	a.good.add(src)
	a.mu.Unlock()
}

// release gives t's slot back.
func (a *admission) release(t ticket) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.reserved {
		a.reserved--
	} else {
		a.general--
	}
	if n := a.bySource[t.src] - 1; n > 0 {
		a.bySource[t.src] = n
	} else {
		delete(a.bySource, t.src)
	}
}

// Stats is a snapshot of an admission, for tests and metrics.
type Stats struct {
	Pending  int // slots of MaxPending in use
	Reserved int // reserved slots in use
	Sources  int // sources with a pending handshake
	Good     int // good sources remembered
}

func (a *admission) stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Stats{Pending: a.general, Reserved: a.reserved, Sources: len(a.bySource), Good: a.good.len()}
}

// recentSet is a bounded set that forgets its least recently added entry.
type recentSet struct {
	max   int
	order *list.List // front: most recent
	items map[Source]*list.Element
}

func newRecentSet(max int) *recentSet {
	return &recentSet{max: max, order: list.New(), items: make(map[Source]*list.Element)}
}

func (s *recentSet) add(src Source) {
	if e, ok := s.items[src]; ok {
		s.order.MoveToFront(e)
		return
	}
	s.items[src] = s.order.PushFront(src)
	if s.order.Len() > s.max {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.items, old.Value.(Source))
	}
}

func (s *recentSet) contains(src Source) bool { _, ok := s.items[src]; return ok }
func (s *recentSet) len() int                 { return len(s.items) }
