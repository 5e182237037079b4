package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// freeUDPPort finds a UDP port nobody uses now, so the test does not meet a
// real node (or a parallel test run) on the default port.
func freeUDPPort(t *testing.T) uint16 {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

// loopbackMulticastWorks sends one datagram to group on the loopback
// interface and reports whether it comes back; if not, why.
func loopbackMulticastWorks(t *testing.T, group netip.AddrPort) (bool, string) {
	t.Helper()
	conn, err := ListenMulticast(MulticastConfig{Group: group, Interfaces: []string{loopbackName(t)}})
	if err != nil {
		return false, err.Error()
	}
	defer conn.Close()
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		_, _, err := conn.ReadFrom(buf)
		got <- err
	}()
	if err := conn.Send([]byte("probe")); err != nil {
		return false, err.Error()
	}
	select {
	case err := <-got:
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	case <-time.After(2 * time.Second):
		return false, "a datagram sent to the group on loopback did not come back within 2s"
	}
}

func loopbackName(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagUp != 0 {
			return ifi.Name
		}
	}
	t.Skip("no loopback interface that is up")
	return ""
}

// TestRealMulticastOnLoopback runs two services on real sockets, on the
// loopback interface, and checks that they find each other. It needs
// multicast on loopback (IP_MULTICAST_LOOP, a multicast route for lo);
// where the sandbox refuses that, it skips, and the in-memory tests cover
// the logic.
func TestRealMulticastOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("real sockets; skipped with -short")
	}
	group := netip.AddrPortFrom(netip.MustParseAddr("239.255.70.77"), freeUDPPort(t))
	if ok, why := loopbackMulticastWorks(t, group); !ok {
		t.Skipf("multicast on loopback does not work here (%s); TestTwoNodesFindEachOther covers the logic in memory", why)
	}
	lo := loopbackName(t)

	var nodes [2]*node
	for i := range nodes {
		n := &node{id: newIdentity(t), found: make(chan Discovered, 10), handled: make(chan struct{}, 100)}
		s, err := New(Options{
			Identity:        n.id,
			Listen:          []string{fmt.Sprintf("tcp://127.0.0.1:%d", 7701+i)},
			Group:           group,
			Interfaces:      []string{lo},
			IncludeLoopback: true,
			Interval:        500 * time.Millisecond,
			OnDiscovered:    func(d Discovered) { n.found <- d },
		})
		if err != nil {
			t.Fatal(err)
		}
		n.Service = s
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		nodes[i] = n
	}
	a, b := nodes[0], nodes[1]
	// a hears b's first beacon; b may have started after a's first went
	// out, and then hears a's second, one Interval (±25 %) later.
	gotByA := a.waitFoundWithin(t, 5*time.Second)
	if gotByA.Address != b.id.Address() || len(gotByA.URIs) != 1 || gotByA.URIs[0] != "tcp://127.0.0.1:7702" {
		t.Fatalf("a found %+v", gotByA)
	}
	gotByB := b.waitFoundWithin(t, 5*time.Second)
	if gotByB.Address != a.id.Address() || gotByB.URIs[0] != "tcp://127.0.0.1:7701" {
		t.Fatalf("b found %+v", gotByB)
	}
	t.Logf("a heard b from %v, b heard a from %v", gotByA.Source, gotByB.Source)
	if s := a.Stats(); s.SendErrors != 0 || s.BadSignature+s.Malformed+s.RateLimited != 0 {
		t.Fatalf("a stats %+v", s)
	}
}

func (n *node) waitFoundWithin(t *testing.T, d time.Duration) Discovered {
	t.Helper()
	select {
	case f := <-n.found:
		return f
	case <-time.After(d):
		t.Fatalf("nothing found within %v; stats %+v", d, n.Stats())
	}
	return Discovered{}
}
