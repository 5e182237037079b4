package node

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/quicprochat/qpc/transports/discovery"
)

// TestNodesFindEachOtherOnLoopbackMulticast is acceptance 5 of the
// transports issue where network namespaces are not at hand: two nodes
// with no --peer find each other by signed beacons on loopback multicast
// and connect. test/netns_test.go runs the same across two namespaces.
func TestNodesFindEachOtherOnLoopbackMulticast(t *testing.T) {
	lo := ""
	ifs, _ := net.Interfaces()
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagUp != 0 {
			lo = ifi.Name
		}
	}
	if lo == "" {
		t.Skip("SKIP: no loopback interface is up")
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	opts := discovery.Options{
		Group:           netip.AddrPortFrom(netip.MustParseAddr("239.255.70.77"), port),
		Interfaces:      []string{lo},
		IncludeLoopback: true,
		Interval:        100 * time.Millisecond,
	}
	probe, err := discovery.ListenMulticast(discovery.MulticastConfig{Group: opts.Group, Interfaces: opts.Interfaces})
	if err != nil {
		t.Skipf("SKIP: multicast on loopback refused here: %v", err)
	}
	probe.Close()
	ca, cb := testConfig(t), testConfig(t)
	ca.Transports.Listen = []string{"quic://127.0.0.1:0"}
	cb.Transports.Listen = []string{"quic://127.0.0.1:0"}
	a, _ := startNode(t, ca, WithDiscovery(opts))
	b, _ := startNode(t, cb, WithDiscovery(opts))
	waitLink(t, a, b.Address(), "quic")
	waitLink(t, b, a.Address(), "quic")
	// Exactly one link: only the node with the smaller address dials.
	ls, err := a.Links(t.Context())
	if err != nil || len(ls) != 1 {
		t.Fatalf("links on a: %+v %v", ls, err)
	}
}
