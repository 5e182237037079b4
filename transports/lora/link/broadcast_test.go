package link

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
)

// announceOf is a signed announce of id at time at.
func announceOf(t *testing.T, id *crypto.Identity, at time.Time) []byte {
	t.Helper()
	a := messages.NewAnnounce(id.PublicKey(), make([]byte, 32), messages.CapRelay, nil, at)
	if err := a.Sign(id.Sign); err != nil {
		t.Fatal(err)
	}
	b, err := messages.EncodeAnnounce(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mesh starts n listening nodes and runs until each has a connection
// from every other (HELLOs alone link them up).
func mesh(t *testing.T, s *sim, n int, opts Options) {
	t.Helper()
	lns := make([]transports.Listener, n)
	for i := range n {
		lns[i] = s.listen(s.add(opts))
	}
	for i, a := range s.nodes {
		for _, b := range s.nodes {
			if a != b {
				s.accept(a, lns[i], b)
			}
		}
	}
}

// A broadcast goes out once per packet for all peers, is not
// acknowledged, and reaches every peer's connection with its signal.
func TestBroadcastOnceForAllPeers(t *testing.T) {
	s := newSim(t, 1)
	mesh(t, s, 4, Options{})
	s.run(time.Minute)
	before := s.m.Stats().Transmissions
	frame := payload(600, 3) // three packets at MTU 255
	src := s.nodes[0]
	if err := src.tr.Broadcast(frame, messages.Data); err != nil {
		t.Fatal(err)
	}
	for _, n := range s.nodes[1:] {
		c := n.accepted[src.id.Address()]
		s.runUntil("broadcast heard", func() bool { return buffered(c) >= 1 }, time.Minute)
		got, sig, err := c.(transports.SignalReader).ReadFrameSignal()
		if err != nil || !bytes.Equal(got, frame) {
			t.Fatalf("node got %d bytes, %v", len(got), err)
		}
		if !sig.Radio || !sig.Broadcast || !sig.HasSNR || sig.SNR != lora.DefaultSNR || sig.Airtime <= 0 {
			t.Fatalf("signal %+v", sig)
		}
	}
	s.run(time.Minute)
	if d := s.m.Stats().Transmissions - before; d != 3 {
		t.Fatalf("%d transmissions for a 3-packet broadcast to 3 peers, want 3", d)
	}
	st := src.tr.Stats()
	if st.BroadcastsSent != 1 || st.Airtime.Data == 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, n := range s.nodes[1:] {
		if r := n.tr.Stats().BroadcastsReceived; r != 1 {
			t.Fatalf("received %d broadcasts", r)
		}
	}
}

// A broadcast from a hint without a HELLO is dropped and counted.
func TestBroadcastFromUnknownSourceIsCounted(t *testing.T) {
	s := newSim(t, 2)
	n := s.add(Options{})
	s.run(time.Minute)
	stranger, err := AttachMock(s.m, "stranger", RadioParams{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	pkt := bcastPacket(Hint{1, 2}, lora.Fragment{ID: 7, Index: 0, Last: 0, Payload: []byte("x")})
	if err := stranger.Send(pkt); err != nil {
		t.Fatal(err)
	}
	s.runUntil("counted", func() bool { return n.tr.Stats().BroadcastUnknown == 1 }, time.Minute)
}

// The announce share: announces wait so that their airtime stays within
// the share of the time elapsed (plus one frame), a newer announce of a
// destination replaces the queued one, and other frames pass the waiting
// announces.
func TestAnnounceShareAndCollapse(t *testing.T) {
	const share = 0.05
	s := newSim(t, 3)
	mesh(t, s, 2, Options{AnnounceShare: share})
	s.run(time.Minute)
	src := s.nodes[0]
	start := s.clk.Now()
	ids := make([]*crypto.Identity, 4)
	for i := range ids {
		ids[i], _ = crypto.NewIdentity(nil)
		if err := src.tr.Broadcast(announceOf(t, ids[i], start), messages.Control); err != nil {
			t.Fatal(err)
		}
	}
	// A newer announce of the last destination replaces the queued one.
	newer := announceOf(t, ids[3], start.Add(time.Second))
	if err := src.tr.Broadcast(newer, messages.Control); err != nil {
		t.Fatal(err)
	}
	// A data frame to the peer goes ahead of the waiting announces.
	peer := src.accepted[s.nodes[1].id.Address()]
	if err := peer.WriteFrame(payload(50, 1)); err != nil {
		t.Fatal(err)
	}
	c := s.nodes[1].accepted[src.id.Address()]
	got := s.read(c, 2, time.Minute)
	if len(got[1]) != 50 && len(got[0]) != 50 {
		t.Fatal("the data frame did not pass the announces")
	}
	s.runUntil("four announces", func() bool { return s.nodes[1].tr.Stats().BroadcastsReceived == 4 }, time.Hour)
	st := src.tr.Stats()
	if st.AnnouncesCollapsed != 1 || st.BroadcastsSent != 4 || st.AnnouncesHeld == 0 {
		t.Fatalf("stats %+v", st)
	}
	elapsed := s.clk.Now().Sub(start)
	one := st.Airtime.Announce / 4
	if st.Airtime.Announce > time.Duration(share*float64(elapsed))+one {
		t.Fatalf("announces used %s in %s, over %v of it plus one announce", st.Airtime.Announce, elapsed, share)
	}
	if min := time.Duration(float64(3*one) / share); elapsed < min {
		t.Fatalf("four announces in %s, the share allows them after %s", elapsed, min)
	}
	var last []byte
	for range 3 {
		last, _ = c.ReadFrame()
	}
	for {
		f, err := readNow(c)
		if err != nil {
			break
		}
		last = f
	}
	if !bytes.Equal(last, newer) {
		t.Fatal("the queued announce was not replaced by the newer one")
	}
}

// readNow reads a frame that is already buffered, or fails.
func readNow(c transports.Conn) ([]byte, error) {
	if buffered(c) == 0 {
		return nil, context.DeadlineExceeded
	}
	return c.ReadFrame()
}

func TestAnnounceGate(t *testing.T) {
	g := announceGate{share: 0.02}
	now := t0
	if !g.open(now) {
		t.Fatal("closed at the start")
	}
	g.charge(now, 300*time.Millisecond)
	if g.open(now.Add(14*time.Second)) || !g.open(now.Add(15*time.Second)) {
		t.Fatalf("next at %s, want 15 s", g.next.Sub(now))
	}
	// Two packets of one frame add up; idle time earns no burst.
	g.charge(now.Add(100*time.Second), 100*time.Millisecond)
	g.charge(now.Add(100*time.Second), 100*time.Millisecond)
	if g.next != now.Add(110*time.Second) {
		t.Fatalf("next at %s, want 110 s", g.next.Sub(now))
	}
	off := announceGate{share: 1}
	off.charge(now, time.Hour)
	if !off.open(now) {
		t.Fatal("share 1 caps")
	}
}

func TestQueueCollapse(t *testing.T) {
	var q outQueue
	q.maxN, q.maxB = 10, 1<<20
	mk := func(dest byte, seq uint64, n int) *outFrame {
		return &outFrame{data: make([]byte, n), prio: messages.Control, ann: true, annDest: [16]byte{dest}, annSeq: seq}
	}
	a := mk(1, 5, 10)
	q.push(a)
	q.push(mk(2, 5, 10))
	if !q.collapse(mk(1, 6, 20)) || a.annSeq != 6 || len(a.data) != 20 || q.b != 30 {
		t.Fatalf("not replaced: %+v, %d bytes", a, q.b)
	}
	if !q.collapse(mk(1, 4, 5)) || a.annSeq != 6 {
		t.Fatal("an older announce replaced a newer one")
	}
	if q.collapse(&outFrame{data: []byte{1}}) || q.collapse(mk(3, 1, 1)) {
		t.Fatal("collapsed what is no queued announce")
	}
	if f := q.peekSkip(true); f != nil {
		t.Fatal("peekSkip returned an announce")
	}
	if !q.take(a) || q.n != 1 || q.b != 10 || q.take(a) {
		t.Fatal("take")
	}
}

// A queued broadcast announce is dropped once every peer but the
// announce's origin has been heard broadcasting it (the link's half of
// the managed flood): one peer's broadcast is not enough.
func TestQueuedAnnounceSuppressedWhenEveryPeerHasIt(t *testing.T) {
	s := newSim(t, 4)
	mesh(t, s, 3, Options{})
	s.run(time.Minute)
	a, b, c := s.nodes[0], s.nodes[1], s.nodes[2]
	dest, _ := crypto.NewIdentity(nil)
	ann := announceOf(t, dest, s.clk.Now())
	b.tr.mu.Lock()
	b.tr.st.bc.gate.next = s.clk.Now().Add(time.Hour) // b's share is used up
	b.tr.mu.Unlock()
	if err := b.tr.Broadcast(ann, messages.Control); err != nil {
		t.Fatal(err)
	}
	if err := a.tr.Broadcast(ann, messages.Control); err != nil {
		t.Fatal(err)
	}
	s.runUntil("a's heard", func() bool { return b.tr.Stats().BroadcastsReceived >= 1 }, time.Minute)
	if st := b.tr.Stats(); st.AnnouncesSuppressed != 0 || st.Queued != 1 {
		t.Fatalf("dropped while c lacks it: %+v", st)
	}
	if err := c.tr.Broadcast(ann, messages.Control); err != nil {
		t.Fatal(err)
	}
	s.runUntil("suppressed", func() bool { return b.tr.Stats().AnnouncesSuppressed == 1 }, time.Minute)
	if st := b.tr.Stats(); st.Queued != 0 || st.BroadcastsSent != 0 {
		t.Fatalf("b still sends it: %+v", st)
	}
}
