package discovery

import (
	"net"
	"net/netip"
	"slices"
	"sync"
)

// memNet is the in-memory twin of a multicast group: what one memConn
// sends, every memConn on the net reads, its sender included (as with
// IP_MULTICAST_LOOP), with the sender's address as source.
type memNet struct {
	mu    sync.Mutex
	conns []*memConn
}

type datagram struct {
	data []byte
	src  netip.AddrPort
}

type memConn struct {
	net    *memNet
	addr   netip.AddrPort
	in     chan datagram
	sent   chan []byte // a copy of everything sent, for the test to watch
	closed chan struct{}
	once   sync.Once
}

func (n *memNet) join(addr string) *memConn {
	c := &memConn{
		net:    n,
		addr:   netip.MustParseAddrPort(addr),
		in:     make(chan datagram, 1024),
		sent:   make(chan []byte, 1024),
		closed: make(chan struct{}),
	}
	n.mu.Lock()
	n.conns = append(n.conns, c)
	n.mu.Unlock()
	return c
}

func (c *memConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-c.in:
		return copy(b, d.data), d.src, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *memConn) Send(b []byte) error {
	c.net.mu.Lock()
	conns := slices.Clone(c.net.conns)
	c.net.mu.Unlock()
	for _, o := range conns {
		o.inject(b, c.addr)
	}
	c.sent <- slices.Clone(b)
	return nil
}

// inject delivers a datagram as if src had sent it.
func (c *memConn) inject(b []byte, src netip.AddrPort) {
	select {
	case c.in <- datagram{slices.Clone(b), src}:
	case <-c.closed:
	}
}

func (c *memConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
