package discovery

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newIdentity(t testing.TB) *crypto.Identity {
	t.Helper()
	id, err := crypto.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// armClock is a manual clock that also reports each AfterFunc it is asked
// for, so a test knows when the sender has re-armed its timer.
type armClock struct {
	*clock.Manual
	armed chan time.Duration
}

func (c *armClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := c.Manual.AfterFunc(d, f)
	select {
	case c.armed <- d:
	default:
	}
	return t
}

func newArmClock() *armClock {
	return &armClock{Manual: clock.NewManual(t0), armed: make(chan time.Duration, 16)}
}

// node is a Service under test with its channels.
type node struct {
	*Service
	id         *crypto.Identity
	conn       *memConn
	found      chan Discovered
	handled    chan struct{}
	handledCnt atomic.Int64
}

func newNode(t *testing.T, c clock.Clock, conn *memConn, mut func(*Options)) *node {
	t.Helper()
	n := &node{id: newIdentity(t), conn: conn, found: make(chan Discovered, 100), handled: make(chan struct{}, 1000)}
	opts := Options{
		Identity:     n.id,
		Listen:       []string{"tcp://0.0.0.0:7701", "quic://[::]:7702", "lora+mock://x"},
		Conn:         conn,
		Clock:        c,
		OnDiscovered: func(d Discovered) { n.found <- d },
	}
	if mut != nil {
		mut(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.afterHandle = func() { n.handledCnt.Add(1); n.handled <- struct{}{} }
	s.isLocal = func(netip.Addr) bool { return false } // the test addresses are not this host's
	n.Service = s
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func (n *node) start(t *testing.T) {
	t.Helper()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
}

// within is the deadline of every wait in these tests.
func within() <-chan time.Time { return time.After(5 * time.Second) }

// waitHandled waits until k more datagrams have been handled.
func (n *node) waitHandled(t *testing.T, k int) {
	t.Helper()
	deadline := within()
	for range k {
		select {
		case <-n.handled:
		case <-deadline:
			t.Fatalf("timeout: %d handled, stats %+v", n.handledCnt.Load(), n.Stats())
		}
	}
}

func (n *node) waitFound(t *testing.T) Discovered {
	t.Helper()
	select {
	case d := <-n.found:
		return d
	case <-within():
		t.Fatalf("timeout waiting for a discovery; stats %+v", n.Stats())
	}
	return Discovered{}
}

func (n *node) noneFound(t *testing.T) {
	t.Helper()
	select {
	case d := <-n.found:
		t.Fatalf("unexpected discovery %+v", d)
	default:
	}
}

func TestTwoNodesFindEachOther(t *testing.T) {
	c := newArmClock()
	var mem memNet
	a := newNode(t, c, mem.join("192.0.2.1:7779"), nil)
	b := newNode(t, c, mem.join("192.0.2.2:7779"), nil)
	a.start(t)
	b.start(t)

	gotByA, gotByB := a.waitFound(t), b.waitFound(t)
	if gotByA.Address != b.id.Address() || !bytes.Equal(gotByA.PublicKey, b.id.PublicKey()) {
		t.Fatalf("a found %v, want b %v", gotByA.Address, b.id.Address())
	}
	if want := []string{"tcp://192.0.2.2:7701", "quic://192.0.2.2:7702"}; !slices.Equal(gotByA.URIs, want) {
		t.Fatalf("a found URIs %v, want %v", gotByA.URIs, want)
	}
	if gotByB.Address != a.id.Address() || gotByB.URIs[0] != "tcp://192.0.2.1:7701" {
		t.Fatalf("b found %+v", gotByB)
	}
	if !gotByA.Seen.Equal(t0) || !gotByA.SentAt.Equal(t0) || gotByA.Source.Addr() != netip.MustParseAddr("192.0.2.2") {
		t.Fatalf("times/source %+v", gotByA)
	}
	// Each node also heard its own beacon and ignored it.
	a.waitHandled(t, 2)
	b.waitHandled(t, 2)
	if s := a.Stats(); s.Own != 1 || s.Discovered != 1 || s.Sent != 1 || s.Received != 2 {
		t.Fatalf("a stats %+v", s)
	}
}

func TestPeriodicBeaconsAreJitteredAndDeduplicated(t *testing.T) {
	c := newArmClock()
	var mem memNet
	a := newNode(t, c, mem.join("192.0.2.1:7779"), func(o *Options) { o.Interval = 10 * time.Second; o.DedupWindow = 60 * time.Second })
	b := newNode(t, c, mem.join("192.0.2.2:7779"), func(o *Options) { o.Mode = ModePassive })
	b.start(t)
	a.start(t)
	b.waitFound(t)

	// Each beacon re-arms the timer within ±25 % of the interval; the peer
	// is not reported again within the dedup window.
	var elapsed time.Duration
	for i := range 5 {
		var d time.Duration
		select {
		case d = <-c.armed:
		case <-within():
			t.Fatal("timeout waiting for the sender to arm its timer")
		}
		if d < 7500*time.Millisecond || d >= 12500*time.Millisecond {
			t.Fatalf("interval %d: %v, want 7.5s..12.5s", i, d)
		}
		c.Advance(d)
		elapsed += d
		b.waitHandled(t, 1)
		if elapsed < 60*time.Second {
			b.noneFound(t)
		}
	}
	if s := b.Stats(); s.Duplicate == 0 || s.Sent != 0 {
		t.Fatalf("passive b stats %+v", s)
	}
	// After the window, the next beacon reports the peer again.
	c.Advance(61 * time.Second) // fires a's timer once
	b.waitHandled(t, 1)
	b.waitFound(t)
}

func TestChangedURIsAreReportedAtOnce(t *testing.T) {
	c := newArmClock()
	var mem memNet
	b := newNode(t, c, mem.join("192.0.2.2:7779"), func(o *Options) { o.Mode = ModePassive })
	b.start(t)
	peer := newIdentity(t)
	beacon := signedBeacon(t, peer, t0, []messages.BeaconListener{{Scheme: messages.SchemeTCP, Port: 7701}})
	b.conn.inject(beacon, netip.MustParseAddrPort("192.0.2.9:7779"))
	b.waitFound(t)
	b.conn.inject(beacon, netip.MustParseAddrPort("192.0.2.9:7779"))
	b.waitHandled(t, 2)
	b.noneFound(t)
	b.conn.inject(beacon, netip.MustParseAddrPort("192.0.2.10:7779")) // moved
	if d := b.waitFound(t); d.URIs[0] != "tcp://192.0.2.10:7701" {
		t.Fatalf("found %v", d.URIs)
	}
}

// signedBeacon encodes a beacon of id, signed.
func signedBeacon(t testing.TB, id *crypto.Identity, at time.Time, ls []messages.BeaconListener) []byte {
	t.Helper()
	b := messages.NewBeacon(id.PublicKey(), at, ls)
	if err := b.Sign(id.Sign); err != nil {
		t.Fatal(err)
	}
	out, err := messages.EncodeBeacon(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestForgedAndBrokenBeaconsAreDroppedAndCounted(t *testing.T) {
	c := newArmClock()
	var mem memNet
	n := newNode(t, c, mem.join("192.0.2.1:7779"), func(o *Options) { o.Mode = ModePassive; o.MaxSkew = time.Hour })
	n.start(t)
	victim, attacker := newIdentity(t), newIdentity(t)
	ls := []messages.BeaconListener{{Scheme: messages.SchemeTCP, Port: 7701}}

	unsigned := messages.NewBeacon(victim.PublicKey(), t0, ls)
	unsignedBytes, err := messages.Marshal(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	forged := messages.NewBeacon(victim.PublicKey(), t0, ls)
	tbs, _ := forged.SigningBytes()
	forged.Signature = attacker.Sign(tbs) // the attacker's signature on the victim's key
	forgedBytes, err := messages.EncodeBeacon(forged)
	if err != nil {
		t.Fatal(err)
	}
	tampered := signedBeacon(t, victim, t0, ls)
	tampered[len(tampered)-68] ^= 1 // the port's low byte: 7701 becomes 7700, so the signature no longer matches

	src := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), 7779)
	}
	inputs := [][]byte{
		unsignedBytes,
		forgedBytes,
		tampered,
		[]byte("hello"),
		bytes.Repeat([]byte{0x85}, messages.MaxBeaconSize+1),
		append([]byte{0x85, 0x18, 0x1f}, signedBeacon(t, victim, t0, ls)[2:]...), // version 1
		signedBeacon(t, victim, t0.Add(-2*time.Hour), ls),                        // stale
		signedBeacon(t, victim, t0, []messages.BeaconListener{{Scheme: messages.SchemeTCP, Port: 7701, Host: []byte{127, 0, 0, 1}}}),
		signedBeacon(t, n.id, t0, ls), // our own key
	}
	for i, in := range inputs {
		n.conn.inject(in, src(i))
	}
	n.waitHandled(t, len(inputs))
	n.noneFound(t)
	want := Stats{Received: 9, BadSignature: 3, Malformed: 2, TooLarge: 1, Stale: 1, Unreachable: 1, Own: 1}
	if got := n.Stats(); got != want {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}

	// The real one still gets through.
	n.conn.inject(signedBeacon(t, victim, t0, ls), src(99))
	if d := n.waitFound(t); d.Address != victim.Address() {
		t.Fatalf("found %v", d.Address)
	}
}

func TestRateLimitDropsBeforeVerifying(t *testing.T) {
	c := newArmClock()
	var mem memNet
	n := newNode(t, c, mem.join("192.0.2.1:7779"), func(o *Options) {
		o.Mode = ModePassive
		o.SourceRate, o.SourceBurst = 2, 5
	})
	n.start(t)
	ls := []messages.BeaconListener{{Scheme: messages.SchemeTCP, Port: 7701}}
	flooder := netip.MustParseAddrPort("192.0.2.66:7779")
	forged := signedBeacon(t, newIdentity(t), t0, ls)
	forged[len(forged)-1] ^= 1

	for range 20 {
		n.conn.inject(forged, flooder)
	}
	n.waitHandled(t, 20)
	// Only the burst was verified (and failed); the rest cost nothing.
	if s := n.Stats(); s.BadSignature != 5 || s.RateLimited != 15 {
		t.Fatalf("stats %+v", s)
	}
	// Another source is not affected.
	n.conn.inject(signedBeacon(t, newIdentity(t), t0, ls), netip.MustParseAddrPort("192.0.2.7:7779"))
	n.waitFound(t)
	// A second later the flooder has 2 tokens again.
	c.Advance(time.Second)
	for range 5 {
		n.conn.inject(forged, flooder)
	}
	n.waitHandled(t, 6)
	if s := n.Stats(); s.BadSignature != 7 || s.RateLimited != 18 {
		t.Fatalf("stats after a second %+v", s)
	}
}

func TestDedupTableIsBounded(t *testing.T) {
	c := newArmClock()
	var mem memNet
	n := newNode(t, c, mem.join("192.0.2.1:7779"), func(o *Options) { o.Mode = ModePassive; o.MaxPeers = 3 })
	ls := []messages.BeaconListener{{Scheme: messages.SchemeTCP, Port: 7701}}
	for i := range 10 {
		n.handle(signedBeacon(t, newIdentity(t), t0, ls), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 7779))
		c.Advance(time.Second)
		if len(n.seen) > 3 {
			t.Fatalf("dedup table has %d entries, bound 3", len(n.seen))
		}
	}
	if s := n.Stats(); s.Discovered != 10 {
		t.Fatalf("stats %+v", s)
	}
}

func TestModes(t *testing.T) {
	off, err := New(Options{Mode: ModeOff})
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Start(); err != nil {
		t.Fatal(err)
	}
	if err := off.Close(); err != nil {
		t.Fatal(err)
	}

	c := newArmClock()
	var mem memNet
	p := newNode(t, c, mem.join("192.0.2.1:7779"), func(o *Options) { o.Mode = ModePassive; o.Listen = nil })
	p.start(t)
	if err := p.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	select {
	case b := <-p.conn.sent:
		t.Fatalf("passive node sent %x", b)
	default:
	}
}

func TestNewRejects(t *testing.T) {
	id := newIdentity(t)
	cases := []struct {
		name string
		opts Options
		want error
	}{
		{"no identity", Options{Listen: []string{"tcp://0.0.0.0:1"}}, ErrBadOptions},
		{"only loopback", Options{Identity: id, Listen: []string{"tcp://127.0.0.1:7701", "quic://localhost:7702"}}, ErrNothingToAnnounce},
		{"only lora", Options{Identity: id, Listen: []string{"lora+serial:///dev/ttyUSB0"}}, ErrNothingToAnnounce},
		{"host name", Options{Identity: id, Listen: []string{"tcp://node.example:7701"}}, ErrBadOptions},
		{"bad port", Options{Identity: id, Listen: []string{"tcp://0.0.0.0:99999"}}, ErrBadOptions},
		{"not multicast", Options{Identity: id, Listen: []string{"tcp://0.0.0.0:1"}, Group: netip.MustParseAddrPort("192.0.2.1:7779")}, ErrBadOptions},
		{"negative interval", Options{Identity: id, Listen: []string{"tcp://0.0.0.0:1"}, Interval: -1}, ErrBadOptions},
	}
	for _, c := range cases {
		if _, err := New(c.opts); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestAdvertised(t *testing.T) {
	got, err := advertised([]string{
		"tcp://0.0.0.0:7701", "quic://[::]:7702", "tcp://:7703", "tcp://192.0.2.5:7704",
		"quic://[2001:db8::1]:7705", "tcp://127.0.0.1:7706", "mem://x", "lora+mock://ch",
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []messages.BeaconListener{
		{Scheme: messages.SchemeTCP, Port: 7701},
		{Scheme: messages.SchemeQUIC, Port: 7702},
		{Scheme: messages.SchemeTCP, Port: 7703},
		{Scheme: messages.SchemeTCP, Port: 7704, Host: []byte{192, 0, 2, 5}},
		{Scheme: messages.SchemeQUIC, Port: 7705, Host: netip.MustParseAddr("2001:db8::1").AsSlice()},
	}
	if !equalListeners(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	got, err = advertised([]string{"tcp://127.0.0.1:7701", "quic://localhost:7702"}, true)
	if err != nil {
		t.Fatal(err)
	}
	want = []messages.BeaconListener{
		{Scheme: messages.SchemeTCP, Port: 7701, Host: []byte{127, 0, 0, 1}},
		{Scheme: messages.SchemeQUIC, Port: 7702, Host: []byte{127, 0, 0, 1}},
	}
	if !equalListeners(got, want) {
		t.Fatalf("loopback: got %+v", got)
	}
}

func equalListeners(a, b []messages.BeaconListener) bool {
	return slices.EqualFunc(a, b, func(x, y messages.BeaconListener) bool {
		return x.Scheme == y.Scheme && x.Port == y.Port && bytes.Equal(x.Host, y.Host)
	})
}

func TestResolve(t *testing.T) {
	ls := []messages.BeaconListener{
		{Scheme: messages.SchemeTCP, Port: 7701},
		{Scheme: messages.SchemeQUIC, Port: 7702, Host: []byte{198, 51, 100, 4}},
		{Scheme: messages.SchemeTCP, Port: 7703, Host: []byte{127, 0, 0, 1}},
		{Scheme: 99, Port: 7704},
		{Scheme: messages.SchemeQUIC, Port: 7705, Host: netip.MustParseAddr("2001:db8::1").AsSlice()},
		{Scheme: messages.SchemeTCP, Port: 7706, Host: []byte{0, 0, 0, 0}},
	}
	notLocal := func(netip.Addr) bool { return false }
	got := resolve(ls, netip.MustParseAddr("192.0.2.9"), notLocal)
	want := []string{"tcp://192.0.2.9:7701", "quic://198.51.100.4:7702", "quic://[2001:db8::1]:7705", "tcp://192.0.2.9:7706"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// From this host, loopback listeners are usable: the source is loopback,
	// or one of this host's addresses.
	got = resolve(ls[:3], netip.MustParseAddr("127.0.0.1"), notLocal)
	want = []string{"tcp://127.0.0.1:7701", "quic://198.51.100.4:7702", "tcp://127.0.0.1:7703"}
	if !slices.Equal(got, want) {
		t.Fatalf("from loopback: got %v", got)
	}
	asked := 0
	got = resolve(ls, netip.MustParseAddr("192.0.2.9"), func(a netip.Addr) bool { asked++; return a == netip.MustParseAddr("192.0.2.9") })
	if want := "tcp://127.0.0.1:7703"; len(got) != 5 || got[2] != want || asked != 1 {
		t.Fatalf("from a local address: got %v (asked %d times)", got, asked)
	}
}

func TestSourceLimiter(t *testing.T) {
	now := t0
	l := newSourceLimiter(1, 2, 1000, 2, now)
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	steps := []struct {
		src     netip.Addr
		advance time.Duration
		want    bool
	}{
		{a, 0, true}, {a, 0, true}, {a, 0, false}, // burst 2
		{b, 0, true},                       // table: a, b (full)
		{c, 0, false},                      // full, nobody idle: refused
		{a, 500 * time.Millisecond, false}, // half a token
		{a, 500 * time.Millisecond, true},  // one token
		{c, 3 * time.Second, true},         // a and b refilled: swept, c gets in
		{c, 0, true}, {c, 0, false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := l.allow(s.src, now); got != s.want {
			t.Fatalf("step %d (%v): allow = %v, want %v", i, s.src, got, s.want)
		}
	}

	// The total bucket caps all sources together.
	l = newSourceLimiter(100, 100, 3, 1000, t0)
	ok := 0
	for i := range 10 {
		if l.allow(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), t0) {
			ok++
		}
	}
	if ok != 3 {
		t.Fatalf("total bucket admitted %d, want 3", ok)
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if d := jitter(time.Second); d < 750*time.Millisecond || d >= 1250*time.Millisecond {
			t.Fatalf("jitter %v", d)
		}
	}
}
