package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"golang.org/x/net/ipv4"
)

// Conn is the seam between a Service and the network. ListenMulticast makes
// the real one; tests use an in-memory twin.
type Conn interface {
	// ReadFrom reads one datagram into b and returns its length and source.
	// A datagram longer than b is truncated (the Service reads with a buffer
	// one byte longer than the largest beacon, so it notices). After Close,
	// ReadFrom returns an error matching net.ErrClosed.
	ReadFrom(b []byte) (n int, src netip.AddrPort, err error)
	// Send sends b to the group, once on every interface in use. It returns
	// the errors of the interfaces it could not send on, joined.
	Send(b []byte) error
	// Close releases the socket; it is safe to call more than once.
	Close() error
}

// MulticastConfig chooses the group and interfaces for ListenMulticast.
type MulticastConfig struct {
	// Group is the IPv4 multicast group and port; zero means DefaultGroup.
	Group netip.AddrPort
	// Interfaces names the interfaces to use. Empty means every interface
	// that is up, running, multicast-capable and has an IPv4 address, looked
	// up again before each send so that interfaces that come later are used.
	Interfaces []string
	// IncludeLoopback adds the loopback interface to the default set (it
	// does not count as multicast-capable on Linux, but multicast on it
	// works and reaches other nodes on the same host).
	IncludeLoopback bool
}

// ErrNoInterfaces: no interface fits MulticastConfig.
var ErrNoInterfaces = errors.New("discovery: no usable multicast interface")

// multicastConn is the real Conn: one UDP socket bound to the group's port
// (shared with other nodes on the host through SO_REUSEADDR), joined to the
// group on each interface, sending with TTL 1 and loopback on.
type multicastConn struct {
	cfg   MulticastConfig
	group *net.UDPAddr
	pc    net.PacketConn
	p     *ipv4.PacketConn

	mu     sync.Mutex     // serialises Send: it sets the outgoing interface per packet
	joined map[int]string // interface index → name
}

// ListenMulticast opens the discovery socket.
func ListenMulticast(cfg MulticastConfig) (Conn, error) {
	if !cfg.Group.IsValid() {
		cfg.Group = DefaultGroup
	}
	g := cfg.Group.Addr()
	if !g.Is4() || !g.IsMulticast() {
		return nil, fmt.Errorf("%w: group %s is not an IPv4 multicast address", ErrBadOptions, g)
	}
	group := &net.UDPAddr{IP: g.AsSlice(), Port: int(cfg.Group.Port())}
	lc := net.ListenConfig{Control: reuseAddr}
	// Bound to the group address, the socket sees only this group's
	// datagrams (Linux and the BSDs); where that is refused, bind the port.
	pc, err := lc.ListenPacket(context.Background(), "udp4", group.String())
	if err != nil {
		pc, err = lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", group.Port))
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: listen on %s: %w", group, err)
	}
	c := &multicastConn{cfg: cfg, group: group, pc: pc, p: ipv4.NewPacketConn(pc), joined: map[int]string{}}
	if err := c.p.SetMulticastTTL(1); err != nil {
		pc.Close()
		return nil, fmt.Errorf("discovery: set multicast TTL: %w", err)
	}
	if err := c.p.SetMulticastLoopback(true); err != nil {
		pc.Close()
		return nil, fmt.Errorf("discovery: set multicast loopback: %w", err)
	}
	ifs, err := c.interfaces()
	if err == nil {
		err = c.join(ifs)
	}
	if err != nil {
		pc.Close()
		return nil, err
	}
	return c, nil
}

// interfaces lists the interfaces to use now.
func (c *multicastConn) interfaces() ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("discovery: list interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		if len(c.cfg.Interfaces) > 0 {
			if slices.Contains(c.cfg.Interfaces, ifi.Name) {
				out = append(out, ifi)
			}
			continue
		}
		up := ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagRunning != 0
		loop := ifi.Flags&net.FlagLoopback != 0
		if !up || (loop && !c.cfg.IncludeLoopback) || (!loop && ifi.Flags&net.FlagMulticast == 0) || !hasIPv4(ifi) {
			continue
		}
		out = append(out, ifi)
	}
	if len(out) == 0 {
		if len(c.cfg.Interfaces) > 0 {
			return nil, fmt.Errorf("%w: none of %v exists", ErrNoInterfaces, c.cfg.Interfaces)
		}
		return nil, fmt.Errorf("%w (up, running, multicast, with an IPv4 address; loopback %v)", ErrNoInterfaces, c.cfg.IncludeLoopback)
	}
	return out, nil
}

func hasIPv4(ifi net.Interface) bool {
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return true
		}
	}
	return false
}

// join joins the group on the interfaces not joined yet. It fails only if
// no interface at all is joined.
func (c *multicastConn) join(ifs []net.Interface) error {
	var errs []error
	for _, ifi := range ifs {
		if _, ok := c.joined[ifi.Index]; ok {
			continue
		}
		if err := c.p.JoinGroup(&ifi, c.group); err != nil {
			errs = append(errs, fmt.Errorf("discovery: join %s on %s: %w", c.group.IP, ifi.Name, err))
			continue
		}
		c.joined[ifi.Index] = ifi.Name
	}
	if len(c.joined) == 0 {
		return errors.Join(append([]error{ErrNoInterfaces}, errs...)...)
	}
	return nil
}

func (c *multicastConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, _, src, err := c.p.ReadFrom(b)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	if u, ok := src.(*net.UDPAddr); ok {
		ap = u.AddrPort()
	}
	return n, ap, nil
}

func (c *multicastConn) Send(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ifs, err := c.interfaces()
	if err != nil {
		return err
	}
	_ = c.join(ifs) // interfaces that appeared since; those that fail are retried next time
	var errs []error
	for _, ifi := range ifs {
		if _, ok := c.joined[ifi.Index]; !ok {
			continue
		}
		if err := c.p.SetMulticastInterface(&ifi); err != nil {
			errs = append(errs, fmt.Errorf("discovery: send on %s: %w", ifi.Name, err))
			continue
		}
		if _, err := c.p.WriteTo(b, nil, c.group); err != nil {
			errs = append(errs, fmt.Errorf("discovery: send on %s: %w", ifi.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (c *multicastConn) Close() error {
	err := c.pc.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
