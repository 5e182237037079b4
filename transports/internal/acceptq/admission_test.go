package acceptq

import (
	"net"
	"net/netip"
	"testing"
)

func src(s string) Source { return SourceOf(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s))) }

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth0"}, "fe80::/64"},
		{nil, "invalid Prefix"},
	} {
		if got := SourceOf(tc.addr).String(); got != tc.want {
			t.Errorf("SourceOf(%v) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

func TestAdmissionLimits(t *testing.T) {
	a := newAdmission(Limits{MaxPending: 4, PerSource: 2, Reserved: 1, Remember: 2}.withDefaults())
	x, y, z, good := src("10.0.0.1:1"), src("10.0.0.2:1"), src("10.0.0.3:1"), src("10.0.0.9:1")
	admit := func(s Source, want bool) ticket {
		t.Helper()
		tk, no := a.admit(s)
		if (no == nil) != want {
			t.Fatalf("admit %s = %v, want admitted %v (stats %+v)", s, no, want, a.stats())
		}
		return tk
	}
	a.succeeded(good)
	x1 := admit(x, true)
	admit(x, true)
	admit(x, false) // per source
	admit(y, true)
	admit(y, true)
	admit(z, false) // general slots full, z unknown
	r := admit(good, true)
	if !r.reserved {
		t.Fatal("the known source did not get the reserved slot")
	}
	admit(good, false) // the reserved slot is taken
	a.release(x1)
	admit(z, true) // a general slot came back
	a.release(r)
	if st := a.stats(); st.Pending != 4 || st.Reserved != 0 || st.Sources != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRecentSetForgetsTheOldest(t *testing.T) {
	s := newRecentSet(2)
	a, b, c := src("10.0.0.1:1"), src("10.0.0.2:1"), src("10.0.0.3:1")
	s.add(a)
	s.add(b)
	s.add(a) // refreshed
	s.add(c) // b goes
	if !s.contains(a) || s.contains(b) || !s.contains(c) || s.len() != 2 {
		t.Fatalf("a %v b %v c %v len %d", s.contains(a), s.contains(b), s.contains(c), s.len())
	}
}
