package link

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports/lora"
)

// pairKeysOf derives the keys of a towards b, as a's transport does when
// b's HELLO verifies.
func pairKeysOf(t testing.TB, a, b *crypto.Identity) pairKeys {
	t.Helper()
	twin, err := a.X25519Private()
	if err != nil {
		t.Fatal(err)
	}
	k, err := derivePairKeys(twin, a.Address(), b.PublicKey(), b.Address())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Both ends derive the same keys, one per direction; a MAC checks only
// under the key it was made with, and not after any change to the packet.
func TestPairKeys(t *testing.T) {
	a, b := goldenID(t), goldenPeer(t)
	c, _ := crypto.NewIdentity(nil)
	ab, ba, ac := pairKeysOf(t, a, b), pairKeysOf(t, b, a), pairKeysOf(t, a, c)
	pkt := ab.tx.seal(ackPacket(HintOf(b.Address()), HintOf(a.Address()), 0x1234))
	if len(pkt) != AckSize || !ba.rx.verify(pkt) {
		t.Fatalf("a's ACK (%d bytes) does not check at b", len(pkt))
	}
	for name, k := range map[string]*macKey{"a's own rx": ab.rx, "b's tx (the reverse direction)": ba.tx, "a to c": ac.tx, "c's rx from a": pairKeysOf(t, c, a).rx} {
		if k.verify(pkt) {
			t.Errorf("the MAC checks under %s", name)
		}
	}
	if pairKeysOf(t, c, a).rx.verify(ac.tx.seal(byePacket(HintOf(c.Address()), HintOf(a.Address())))) == false {
		t.Error("a's BYE to c does not check at c")
	}
	for i := range pkt {
		for bit := range 8 {
			p := bytes.Clone(pkt)
			p[i] ^= 1 << bit
			if ba.rx.verify(p) {
				t.Fatalf("byte %d bit %d changed, the MAC still checks", i, bit)
			}
		}
	}
	for n := range MACSize + HeaderSize {
		if ba.rx.verify(pkt[:n]) {
			t.Errorf("a %d-byte prefix checks", n)
		}
	}
	// A peer key without an X25519 twin is refused like a bad HELLO.
	twin, _ := a.X25519Private()
	if _, err := derivePairKeys(twin, a.Address(), make([]byte, 31), crypto.Address{}); !errors.Is(err, ErrBadHello) {
		t.Errorf("derivePairKeys with a short key = %v, want ErrBadHello", err)
	}
	identity := append([]byte{1}, make([]byte, 31)...) // the neutral element: y = 1
	if _, err := derivePairKeys(twin, a.Address(), identity, crypto.AddressOf(identity)); !errors.Is(err, ErrBadHello) {
		t.Errorf("derivePairKeys with the neutral element = %v, want ErrBadHello", err)
	}
	lowOrder := append([]byte{0}, make([]byte, 31)...) // y = 0: a point of order 4
	if _, err := derivePairKeys(twin, a.Address(), lowOrder, crypto.AddressOf(lowOrder)); !errors.Is(err, ErrBadHello) {
		t.Errorf("derivePairKeys with a low-order key = %v, want ErrBadHello", err)
	}
}

// FuzzOpenPacket drives the receive path's decoder: the header (its
// lengths checked before anything is read), then the MAC against the
// peers with the source hint, then the body. in[0] bit 0 seals the rest
// with the true key of goldenID towards goldenPeer, so that the fuzzer
// also reaches the bodies behind a good MAC. It checks that nothing
// panics, every error is typed, a packet authenticates only as its
// true sender and only unchanged, and what authenticates parses as its
// kind says or is refused with ErrMalformed.
func FuzzOpenPacket(f *testing.F) {
	for _, g := range goldenPackets(f) {
		for _, p := range g.pkts {
			f.Add(append([]byte{0}, p...))
			if h, _, err := parseHeader(p); err == nil && macked(h.kind) {
				f.Add(append([]byte{1}, p[:len(p)-MACSize]...))
			}
		}
	}
	f.Add([]byte{1, 0xD3, 0, 0, 0, 0})
	f.Add([]byte{0, 0xC3, 1, 2, 3, 4, 0, 1})
	// The receiver knows the sender and an impostor with the same hint.
	pair := collidingIDs(f, 2)
	sender, impostor, receiver := pair[0], pair[1], goldenPeer(f)
	send := pairKeysOf(f, sender, receiver)
	cands := []*peer{
		{hint: HintOf(impostor.Address()), addr: impostor.Address(), keys: pairKeysOf(f, receiver, impostor)},
		{hint: HintOf(sender.Address()), addr: sender.Address(), keys: pairKeysOf(f, receiver, sender)},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		pkt := in[1:]
		if in[0]&1 != 0 {
			pkt = send.tx.seal(bytes.Clone(pkt))
		}
		h, body, err := parseHeader(pkt)
		if err != nil {
			if !errors.Is(err, ErrNotLink) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !macked(h.kind) {
			return
		}
		if len(body) != len(pkt)-HeaderSize-MACSize {
			t.Fatalf("body of %d bytes from a %d-byte packet", len(body), len(pkt))
		}
		p := senderOf(cands, pkt)
		if p == nil {
			if in[0]&1 != 0 {
				t.Fatal("a packet sealed with the sender's key did not authenticate")
			}
			return
		}
		if p.addr != sender.Address() {
			t.Fatalf("authenticated as %s, not the sender", p.addr.Short())
		}
		if again := send.tx.seal(bytes.Clone(pkt[:len(pkt)-MACSize])); !bytes.Equal(again, pkt) {
			t.Fatalf("authenticated % x, which re-seals to % x", pkt, again)
		}
		switch h.kind {
		case KindAck, KindNack:
			r, err := parseReport(h.kind, body)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("untyped report error %v", err)
				}
				return
			}
			var re []byte
			if r.ack {
				re = ackPacket(h.dst, h.src, r.id)
			} else {
				re = nackPacket(h.dst, h.src, r.id, r.missing)
			}
			if !bytes.Equal(send.tx.seal(re), pkt) {
				t.Fatalf("report % x re-encodes differently", pkt)
			}
		case KindData:
			if fr, err := lora.ParseFragment(body); err == nil && len(fr.Payload) > len(body) {
				t.Fatal("fragment longer than its packet")
			}
		case KindBye:
			if len(body) != 0 {
				t.Logf("BYE with a %d-byte body", len(body)) // ignored by the engine
			}
		}
	})
}

// collidingIDs returns n identities whose addresses share their hint:
// fixed seeds, tried in order until n land on one hint (the birthday
// bound: about 300 keys for two, 3000 for three). Cached per n.
func collidingIDs(t testing.TB, n int) []*crypto.Identity {
	t.Helper()
	collidingMu.Lock()
	defer collidingMu.Unlock()
	if ids, ok := collidingCache[n]; ok {
		return ids
	}
	byHint := map[Hint][]*crypto.Identity{}
	seed := make([]byte, 32)
	seed[31] = 0x5A
	for i := uint64(0); i < 1<<20; i++ {
		for b := range 8 {
			seed[b] = byte(i >> (8 * b))
		}
		id, err := crypto.IdentityFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		h := HintOf(id.Address())
		if byHint[h] = append(byHint[h], id); len(byHint[h]) == n {
			collidingCache[n] = byHint[h]
			return byHint[h]
		}
	}
	t.Fatalf("no %d keys with one hint", n)
	return nil
}

var (
	collidingMu    sync.Mutex
	collidingCache = map[int][]*crypto.Identity{}
)

// A HELLO whose key has no X25519 twin cannot give a link key: refused
// like a bad HELLO. The neutral element signs anything (its multiples are
// all itself: R = B, S = 1 verifies for every message), so it passes
// ed25519.Verify and must be stopped here.
func TestHelloWithoutTwinRefused(t *testing.T) {
	s := newSim(t, 25)
	a := s.add(Options{})
	s.listen(a)
	s.run(time.Minute)
	f := newForger(s)
	neutral := ed25519.PublicKey(append([]byte{1}, make([]byte, 31)...))
	src := HintOf(crypto.AddressOf(neutral))
	pkt := appendHeader(nil, header{kind: KindHello, dst: Broadcast, src: src})
	pkt = append(pkt, helloListening)
	pkt = binary.BigEndian.AppendUint32(pkt, uint32(s.clk.Now().Unix()))
	pkt = append(pkt, neutral...)
	base := []byte{0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
		0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66}
	sig := append(append([]byte(nil), base...), append([]byte{1}, make([]byte, 31)...)...)
	if !ed25519.Verify(neutral, helloSigned(pkt), sig) {
		t.Skip("this ed25519 refuses the neutral key itself")
	}
	before := a.tr.Stats()
	f.send(append(pkt, sig...))
	if st := a.tr.Stats(); st.HellosRejected != before.HellosRejected+1 || st.Peers != 0 || queued(a.tr) {
		t.Errorf("rejected %d (was %d), %d peers: want the HELLO refused", st.HellosRejected, before.HellosRejected, st.Peers)
	}
}

// BenchmarkPacketMAC is the cost the MAC adds to a full data packet: one
// seal at the sender, one check at the receiver.
func BenchmarkPacketMAC(b *testing.B) {
	keys := goldenKeys(b)
	back := pairKeysOf(b, goldenPeer(b), goldenID(b))
	pkt := dataPacket(Hint{1, 2}, Hint{3, 4}, lora.Fragment{ID: 1, Payload: make([]byte, 255-DataOverhead)})
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		sealed := keys.tx.seal(pkt[:len(pkt):len(pkt)])
		if !back.rx.verify(sealed) {
			b.Fatal("does not verify")
		}
	}
}
