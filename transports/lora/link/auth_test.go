package link

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
)

// The link MAC in the engine (issue 12 item 2, acceptance 3): packets
// that spoof a peer's source hint, sent by a third radio on the medium,
// are refused, counted and change nothing; neighbours whose addresses
// share a hint are all reachable.

// addID is sim.add with a given identity.
func (s *sim) addID(opts Options, id *crypto.Identity) *node {
	s.t.Helper()
	opts.Identity, opts.Clock = id, s.clk
	opts.Rand = rand.New(rand.NewPCG(s.seed, uint64(len(s.nodes))))
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	mr, err := AttachMock(s.m, id.Address().String(), opts.Radio.withDefaults())
	if err != nil {
		s.t.Fatal(err)
	}
	tr, err := New(mr, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	n := &node{id: id, tr: tr, radio: mr, accepted: map[crypto.Address]transports.Conn{}}
	s.nodes = append(s.nodes, n)
	s.t.Cleanup(func() { tr.Close() })
	return n
}

// forger is a third radio on the medium with an identity of its own
// (mallory), which it may announce with a HELLO so that the others know
// her key: a peer in good standing that spoofs another's hint.
type forger struct {
	s       *sim
	r       *MockRadio
	mallory *crypto.Identity
}

func newForger(s *sim) *forger {
	s.t.Helper()
	r, err := AttachMock(s.m, "forger", RadioParams{}.withDefaults())
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { r.Close() })
	mallory, _ := crypto.NewIdentity(nil)
	return &forger{s: s, r: r, mallory: mallory}
}

// hello broadcasts mallory's HELLO (not listening: nobody links with her).
func (f *forger) hello() {
	f.send(helloPacket(f.mallory, Broadcast, uint32(f.s.clk.Now().Unix()), false, false))
}

// send puts pkt on air and runs the simulation until it has been heard.
func (f *forger) send(pkt []byte) {
	f.s.t.Helper()
	if err := f.r.Send(pkt); err != nil {
		f.s.t.Fatal(err)
	}
	air, _ := lora.Airtime(f.r.Params().Params, len(pkt))
	f.s.run(air + time.Millisecond)
}

// spoofs are the forgeries of one unicast packet from → to (unsealed):
// a made-up MAC, mallory's true MAC towards the victim, and the MAC of the
// reverse direction (a packet of the victim's own, reflected).
func (f *forger) spoofs(pkt []byte, from, to *node) map[string][]byte {
	return map[string][]byte{
		"made-up MAC":         append(bytes.Clone(pkt), 0xDE, 0xAD, 0xBE, 0xEF),
		"mallory's own MAC":   pairKeysOf(f.s.t, f.mallory, to.id).tx.seal(bytes.Clone(pkt)),
		"the reverse key MAC": pairKeysOf(f.s.t, to.id, from.id).tx.seal(bytes.Clone(pkt)),
	}
}

// awaitingReport reports whether n's frame on its way out has had its
// round sent and waits for the report, and returns its id and rounds.
func awaitingReport(n *node) (id uint16, rounds int, ok bool) {
	t := n.tr
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.st.cur
	if m == nil || !m.awaiting || t.clk.Now().Before(t.st.onAirUntil) {
		return 0, 0, false
	}
	return m.id, m.rounds, true
}

// lastHeard is when n last heard peer (zero: not a peer).
func lastHeard(n, peer *node) time.Time {
	for _, p := range n.tr.Peers() {
		if p.Addr == peer.id.Address() {
			return p.LastHeard
		}
	}
	return time.Time{}
}

func TestForgedAckRefused(t *testing.T) {
	s := newSim(t, 21)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	f := newForger(s)
	f.hello()
	s.run(time.Minute)
	if b.tr.Stats().Peers != 2 {
		t.Fatalf("b knows %d peers, want a and mallory", b.tr.Stats().Peers)
	}

	// a cannot hear b's frame; b waits for the report of its round.
	if err := s.m.SetLoss(a.name(), b.name(), 1); err != nil {
		t.Fatal(err)
	}
	if err := ba.WriteFrame([]byte("to be acknowledged by a alone")); err != nil {
		t.Fatal(err)
	}
	s.runUntil("b's round is out", func() bool { _, _, ok := awaitingReport(b); return ok }, time.Minute)
	id, rounds, _ := awaitingReport(b)
	before, heardBefore := b.tr.Stats(), lastHeard(b, a)
	spoofs := f.spoofs(ackPacket(HintOf(b.id.Address()), HintOf(a.id.Address()), id), a, b)
	for _, pkt := range spoofs {
		f.send(pkt)
	}
	st := b.tr.Stats()
	if st.BadMAC[KindAck] != uint64(len(spoofs)) || st.FramesSent != before.FramesSent || st.StaleReports != before.StaleReports {
		t.Fatalf("after %d forged ACKs: BadMAC %v, frames acknowledged %d (was %d), stale reports %d: want every one refused",
			len(spoofs), st.BadMAC, st.FramesSent, before.FramesSent, st.StaleReports)
	}
	if id2, rounds2, ok := awaitingReport(b); !ok || id2 != id || rounds2 != rounds {
		t.Fatalf("b's frame: awaiting %v, id %d round %d; want still %d round %d, waiting for a's report", ok, id2, rounds2, id, rounds)
	}
	if h := lastHeard(b, a); !h.Equal(heardBefore) {
		t.Errorf("a last heard at %s, was %s: a forged ACK counted as hearing a", h.Sub(t0), heardBefore.Sub(t0))
	}

	// a comes back in range: the frame gets there and the real ACK back.
	if err := s.m.SetLoss(a.name(), b.name(), 0); err != nil {
		t.Fatal(err)
	}
	if got := s.read(ab, 1, time.Hour); string(got[0]) != "to be acknowledged by a alone" {
		t.Fatalf("a got %q", got[0])
	}
	s.runUntil("the real ACK", func() bool { return b.tr.Stats().FramesSent == before.FramesSent+1 }, time.Minute)
	if st := b.tr.Stats(); st.FramesFailed != 0 || st.Conns != 1 {
		t.Errorf("failed %d, conns %d: want the frame acknowledged and the link up", st.FramesFailed, st.Conns)
	}
}

func TestForgedByeRefused(t *testing.T) {
	s := newSim(t, 22)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	f := newForger(s)
	f.hello()
	s.run(time.Minute)

	spoofs := f.spoofs(byePacket(HintOf(a.id.Address()), HintOf(b.id.Address())), b, a)
	for _, pkt := range spoofs {
		f.send(pkt)
	}
	if st := a.tr.Stats(); st.BadMAC[KindBye] != uint64(len(spoofs)) || st.Conns != 1 {
		t.Fatalf("BadMAC %v, %d conns: want %d BYEs refused and the link up", st.BadMAC, st.Conns, len(spoofs))
	}
	if ab.(*conn).ended() {
		t.Fatal("a forged BYE closed a's connection to b")
	}
	// The link works both ways.
	if err := ba.WriteFrame([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if err := ab.WriteFrame([]byte("so am I")); err != nil {
		t.Fatalf("a's write after the forged BYEs: %v", err)
	}
	if got := s.read(ab, 1, time.Hour); string(got[0]) != "still here" {
		t.Errorf("a got %q", got[0])
	}
	if got := s.read(ba, 1, time.Hour); string(got[0]) != "so am I" {
		t.Errorf("b got %q", got[0])
	}
	// And a real BYE still ends it.
	ba.Close()
	s.runUntil("b's BYE", func() bool { return ab.(*conn).ended() }, time.Minute)
}

func TestForgedDataRefused(t *testing.T) {
	s := newSim(t, 23)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	f := newForger(s)
	f.hello()
	s.run(time.Minute)

	// The forgeries use the id b's next frame will have: were one taken,
	// b's real frame would be a "retransmission" of it, acknowledged and
	// not delivered.
	b.tr.mu.Lock()
	next := b.tr.st.nextID
	b.tr.mu.Unlock()
	fake := dataPacket(HintOf(a.id.Address()), HintOf(b.id.Address()), lora.Fragment{ID: next, Index: 0, Last: 0, Payload: []byte("forged")})
	fake[0] |= pollFlag
	before, heardBefore := a.tr.Stats(), lastHeard(a, b)
	spoofs := f.spoofs(fake, b, a)
	for _, pkt := range spoofs {
		f.send(pkt)
	}
	st := a.tr.Stats()
	if st.BadMAC[KindData] != uint64(len(spoofs)) || st.FramesReceived != before.FramesReceived || buffered(ab) != 0 {
		t.Fatalf("BadMAC %v, frames received %d (was %d), %d buffered: want %d forged DATA packets refused",
			st.BadMAC, st.FramesReceived, before.FramesReceived, buffered(ab), len(spoofs))
	}
	if st.PacketsSent != before.PacketsSent || st.Reassembly != before.Reassembly {
		t.Errorf("packets sent %d (was %d), reassembly %+v (was %+v): a forged poll got a report, or a fragment was stored",
			st.PacketsSent, before.PacketsSent, st.Reassembly, before.Reassembly)
	}
	if h := lastHeard(a, b); !h.Equal(heardBefore) {
		t.Errorf("b last heard %s, was %s: forged packets count as hearing b", h.Sub(t0), heardBefore.Sub(t0))
	}
	if err := ba.WriteFrame([]byte("real")); err != nil {
		t.Fatal(err)
	}
	if got := s.read(ab, 1, time.Hour); string(got[0]) != "real" {
		t.Fatalf("a got %q, want b's real frame", got[0])
	}
	s.run(time.Minute)
	if n := buffered(ab); n != 0 {
		t.Errorf("%d more frames buffered, want only b's", n)
	}
	if st := b.tr.Stats(); st.FramesSent != 1 {
		t.Errorf("b: %d frames acknowledged, want 1", st.FramesSent)
	}
}

// Nodes whose addresses share the 2-byte hint: all of them are peers,
// reachable both ways; packets are told apart by their MACs, on the
// source side (several peers with one hint) and on the destination side
// (a packet for another node with our hint fails our check).
func TestHintCollisionsAllReachable(t *testing.T) {
	for _, tc := range []struct {
		name      string
		colliding int  // nodes sharing one hint
		hub       bool // plus a node with a hint of its own
	}{
		{"two neighbours of a hub share a hint", 2, true},
		{"three nodes share one hint", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 24)
			var ns []*node
			if tc.hub {
				ns = append(ns, s.add(Options{}))
			}
			for _, id := range collidingIDs(t, tc.colliding) {
				ns = append(ns, s.addID(Options{}, id))
			}
			lns := make([]transports.Listener, len(ns))
			for i, n := range ns {
				lns[i] = s.listen(n)
			}
			conns := map[[2]int]transports.Conn{}
			for i, n := range ns {
				for j, m := range ns {
					if i != j {
						conns[[2]int{i, j}] = s.accept(n, lns[i], m)
					}
				}
			}
			msg := func(i, j, k int) []byte {
				if k == 1 { // fragmented
					return append(payload(600, byte(i*5+j)), byte(i), byte(j))
				}
				return []byte(fmt.Sprintf("from %d to %d", i, j))
			}
			for k := range 2 {
				for key, c := range conns {
					if err := c.WriteFrame(msg(key[0], key[1], k)); err != nil {
						t.Fatal(err)
					}
				}
			}
			for key := range conns {
				from, to := key[0], key[1] // what from wrote on its connection to to
				got := s.read(conns[[2]int{to, from}], 2, time.Hour)
				for k := range 2 {
					if !bytes.Equal(got[k], msg(from, to, k)) {
						t.Errorf("%d to %d, frame %d: got %d bytes, not as sent", from, to, k, len(got[k]))
					}
				}
			}
			s.run(time.Minute)
			for i, n := range ns {
				st := n.tr.Stats()
				if st.Peers != len(ns)-1 || st.Conns != len(ns)-1 || st.FramesFailed != 0 {
					t.Errorf("node %d: %d peers, %d conns, %d frames failed; want %d, %d, 0", i, st.Peers, st.Conns, st.FramesFailed, len(ns)-1, len(ns)-1)
				}
				for j := range ns {
					if j != i && buffered(conns[[2]int{i, j}]) != 0 {
						t.Errorf("node %d holds %d more frames from %d: a frame for another node was taken", i, buffered(conns[[2]int{i, j}]), j)
					}
				}
			}
			// The hub's two neighbours make one collision at the hub; three
			// nodes with one hint see two each (the other two share theirs).
			want := uint64(1)
			if !tc.hub {
				want = 2
			}
			if st := ns[0].tr.Stats(); st.HintCollisions != want {
				t.Errorf("node 0 counted %d hint collisions, want %d", st.HintCollisions, want)
			}
			if !tc.hub {
				// Packets to a node with our hint fail our MAC check.
				if st := ns[0].tr.Stats(); st.BadMAC[KindData] == 0 || st.NotForUs != 0 {
					t.Errorf("node 0: BadMAC %v, NotForUs %d: packets between the other two have our hint and must fail the MAC", st.BadMAC, st.NotForUs)
				}
			}
		})
	}
}
