package discovery

import (
	"bytes"
	"crypto/ed25519"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// fuzzSources are the datagram sources a script picks from: two LAN
// hosts, one of them again as an IPv4-mapped IPv6 address, and loopback.
var fuzzSources = []netip.AddrPort{
	netip.MustParseAddrPort("192.168.1.20:7779"),
	netip.MustParseAddrPort("10.0.0.5:7779"),
	netip.MustParseAddrPort("[::ffff:192.168.1.20]:7779"),
	netip.MustParseAddrPort("127.0.0.1:7779"),
}

// fuzzSteps are the clock steps a script picks from: within a token's
// refill, around the dedup window (60 s), past MaxSkew (10 min).
var fuzzSteps = []time.Duration{0, 50 * time.Millisecond, time.Second, 5 * time.Second, 30 * time.Second, 61 * time.Second, 11 * time.Minute, 24 * time.Hour}

// FuzzDiscoveryHandle: the discovery handler (Service.handle) runs on every
// UDP datagram anyone on the LAN multicasts. The fuzzer gives one datagram
// and a script; each script byte handles one datagram — bits 0-2 pick the
// fuzzed one (0), a valid beacon of one of three peers (1-3), our own (4),
// one over MaxBeaconSize (5), a peer's with a flipped byte (6), peer 1's
// with other listeners (7); bits 3-4 the source; bits 5-7 how far the clock
// moves first. The service has small limits (2 peers, 2 sources, a burst
// of 3), so the script reaches every refusal.
//
// After every datagram: it is counted exactly once (received equals the sum
// of the verdict counters), OnDiscovered was called once per "discovered",
// the peer and source tables stay within MaxPeers and MaxSources, a peer
// reported within DedupWindow with the same URIs is not reported again, and
// a report is sound: the datagram is a canonical, verifying beacon that is
// not ours, the address is the key's, and every URI parses as a tcp or quic
// URI whose host is the source or a host the beacon names, and is loopback
// only for a beacon that came over loopback.
func FuzzDiscoveryHandle(f *testing.F) {
	self, _ := crypto.IdentityFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	var peers [3]*crypto.Identity
	for i := range peers {
		peers[i], _ = crypto.IdentityFromSeed(bytes.Repeat([]byte{byte(10 + i)}, ed25519.SeedSize))
	}
	beacon := func(id *crypto.Identity, ls ...messages.BeaconListener) []byte {
		b := messages.NewBeacon(id.PublicKey(), t0, ls)
		if err := b.Sign(id.Sign); err != nil {
			f.Fatal(err)
		}
		p, err := messages.EncodeBeacon(b)
		if err != nil {
			f.Fatal(err)
		}
		return p
	}
	tcp := messages.BeaconListener{Scheme: messages.SchemeTCP, Port: 7701}
	quic := messages.BeaconListener{Scheme: messages.SchemeQUIC, Port: 7702}
	loop := messages.BeaconListener{Scheme: messages.SchemeTCP, Port: 7703, Host: []byte{127, 0, 0, 1}}
	v6 := messages.BeaconListener{Scheme: messages.SchemeQUIC, Port: 7704, Host: netip.MustParseAddr("fd00::7").AsSlice()}
	unknown := messages.BeaconListener{Scheme: 9, Port: 7705}
	canned := [8][]byte{
		1: beacon(peers[0], tcp, quic),
		2: beacon(peers[1], loop, v6),
		3: beacon(peers[2], unknown, tcp),
		4: beacon(self, tcp),
		5: make([]byte, messages.MaxBeaconSize+1),
		7: beacon(peers[0], v6),
	}
	canned[6] = bytes.Clone(canned[1])
	canned[6][len(canned[6])/2] ^= 1

	f.Add(canned[1], []byte{})
	f.Add(canned[2], []byte{0x00, 0x18, 0x08})             // the same from three sources
	f.Add(canned[3], []byte{0x01, 0x02, 0x03, 0x07, 0xA1}) // three peers for two slots, then new URIs, then after the window
	f.Add(canned[1], []byte{0x00, 0x00, 0x00, 0x00, 0x00}) // a burst from one source
	f.Add(canned[4], []byte{0x04, 0x05, 0x06, 0xC0})       // own, too large, bad signature, stale
	f.Add(canned[1][:40], []byte{0x08, 0x10})
	f.Add([]byte{}, []byte{0xE1, 0xE9, 0xF1, 0xF9})
	f.Add(beacon(peers[0]), []byte{}) // no listeners: unreachable

	f.Fuzz(func(t *testing.T, pkt, script []byte) {
		clk := clock.NewManual(t0)
		var found []Discovered
		s, err := New(Options{
			Mode: ModePassive, Identity: self, Clock: clk,
			DedupWindow: time.Minute, MaxSkew: 10 * time.Minute,
			SourceRate: 2, SourceBurst: 3, TotalRate: 5, MaxSources: 2, MaxPeers: 2,
			OnDiscovered: func(d Discovered) { found = append(found, d) },
		})
		if err != nil {
			t.Fatal(err)
		}
		s.isLocal = func(netip.Addr) bool { return false }

		steps := append([]byte{0}, script...)
		if len(steps) > 64 {
			steps = steps[:64]
		}
		for i, op := range steps {
			data := canned[op&7]
			if op&7 == 0 {
				data = pkt
			}
			src := fuzzSources[(op>>3)&3]
			clk.Advance(fuzzSteps[op>>5])
			now := clk.Now()

			var prev *seenPeer
			if b, err := messages.DecodeBeacon(data); err == nil {
				if p, ok := s.seen[crypto.AddressOf(b.PublicKey)]; ok {
					prev = &p
				}
			}
			before := len(found)
			s.handle(data, src)

			st := s.Stats()
			verdicts := st.TooLarge + st.RateLimited + st.Malformed + st.BadSignature + st.Own + st.Stale + st.Unreachable + st.Duplicate + st.Discovered
			if st.Received != uint64(i+1) || verdicts != st.Received {
				t.Fatalf("step %d: %d received, %d verdicts: %+v", i, st.Received, verdicts, st)
			}
			if uint64(len(found)) != st.Discovered {
				t.Fatalf("step %d: %d reports, %d counted", i, len(found), st.Discovered)
			}
			if len(s.seen) > 2 || len(s.limiter.sources) > 2 {
				t.Fatalf("step %d: %d peers, %d sources held; limits 2 and 2", i, len(s.seen), len(s.limiter.sources))
			}
			if len(found) == before {
				continue
			}
			d := found[len(found)-1]
			if prev != nil && now.Sub(prev.at) < time.Minute && slices.Equal(prev.uris, d.URIs) {
				t.Fatalf("step %d: %s reported again within the dedup window with the same URIs", i, d.Address.Short())
			}
			checkReport(t, d, data, src, now, self)
		}
	})
}

// checkReport checks that a peer reported for datagram data from src is
// what the datagram says.
func checkReport(t *testing.T, d Discovered, data []byte, src netip.AddrPort, now time.Time, self *crypto.Identity) {
	t.Helper()
	b, err := messages.DecodeBeacon(data)
	if err != nil {
		t.Fatalf("reported a peer from a datagram that is not a beacon: %v", err)
	}
	if again, err := messages.EncodeBeacon(b); err != nil || !bytes.Equal(again, data) {
		t.Fatalf("reported a non-canonical beacon: %v", err)
	}
	if !bytes.Equal(d.PublicKey, b.PublicKey) || d.Address != crypto.AddressOf(b.PublicKey) || d.PublicKey.Equal(self.PublicKey()) {
		t.Fatalf("report %s does not match the beacon's key (or is ours)", d.Address.Short())
	}
	if d.Source != src || !d.Seen.Equal(now) || !d.SentAt.Equal(b.SentAt()) {
		t.Fatalf("report: source %v seen %v sent %v; want %v, %v, %v", d.Source, d.Seen, d.SentAt, src, now, b.SentAt())
	}
	if len(d.URIs) == 0 || len(d.URIs) > len(b.Listeners) {
		t.Fatalf("%d URIs from %d listeners", len(d.URIs), len(b.Listeners))
	}
	hosts := []netip.Addr{src.Addr().Unmap()}
	for _, l := range b.Listeners {
		if h, ok := netip.AddrFromSlice(l.Host); ok {
			hosts = append(hosts, h.Unmap())
		}
	}
	for _, u := range d.URIs {
		scheme, addr, err := transports.ParseURI(u)
		if err != nil || (scheme != transports.SchemeTCP && scheme != transports.SchemeQUIC) {
			t.Fatalf("URI %q: %q, %v", u, scheme, err)
		}
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || ap.Port() == 0 || !slices.Contains(hosts, ap.Addr()) {
			t.Fatalf("URI %q: host not the source's or the beacon's (%v)", u, err)
		}
		if ap.Addr().IsLoopback() && !src.Addr().Unmap().IsLoopback() {
			t.Fatalf("URI %q: loopback from a beacon sent from %v", u, src)
		}
	}
}
