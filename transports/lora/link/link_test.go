package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
)

// A small frame travels in one packet, a 2 KB frame in 9 fragments; both
// directions at once.
func TestTwoNodesSmallAndFragmented(t *testing.T) {
	s := newSim(t, 1)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	if ab.Peer() != b.id.Address() || !bytes.Equal(ab.PeerKey(), b.id.PublicKey()) {
		t.Fatalf("accepted Peer %s, want %s", ab.Peer().Short(), b.id.Address().Short())
	}

	small, big := payload(100, 1), payload(2048, 2)
	for _, c := range []transports.Conn{ba, ab} {
		for _, p := range [][]byte{small, big} {
			if err := c.WriteFrame(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []transports.Conn{ab, ba} {
		got := s.read(c, 2, time.Hour)
		if !bytes.Equal(got[0], small) || !bytes.Equal(got[1], big) {
			t.Fatalf("from %s: got %d and %d bytes, want 100 and 2048 as sent", c.Peer().Short(), len(got[0]), len(got[1]))
		}
	}
	s.run(10 * time.Second) // the last ACKs
	for _, n := range []*node{a, b} {
		st := n.tr.Stats()
		if st.FramesSent != 2 || st.FramesReceived != 2 || st.FramesFailed != 0 {
			t.Errorf("%s: frames sent %d received %d failed %d, want 2 2 0", n.id.Address().Short(), st.FramesSent, st.FramesReceived, st.FramesFailed)
		}
		if want := uint64(1 + 9); st.PacketsSent < want+1 { // data, ACKs, HELLOs
			t.Errorf("%s: %d packets sent, want at least %d", n.id.Address().Short(), st.PacketsSent, want+1)
		}
		if st.SubBand.Used <= 0 || st.SubBand.Used != st.SubBand.Total || st.SubBand.Remaining != st.SubBand.Budget-st.SubBand.Used {
			t.Errorf("airtime account %+v", st.SubBand)
		}
	}
}

// Three listening nodes: every pair links up by HELLOs alone, frames
// reach only their destination.
func TestThreeNodes(t *testing.T) {
	s := newSim(t, 2)
	ns := []*node{s.add(Options{}), s.add(Options{}), s.add(Options{})}
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
	frame := func(i, j, k int) []byte {
		if k == 1 {
			return append(payload(2000, byte(i*3+j)), byte(i), byte(j))
		}
		return []byte(fmt.Sprintf("from %d to %d", i, j))
	}
	for k := range 2 {
		for i := range ns {
			for j := range ns {
				if i != j {
					if err := conns[[2]int{i, j}].WriteFrame(frame(i, j, k)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	for i := range ns {
		for j := range ns {
			if i == j {
				continue
			}
			got := s.read(conns[[2]int{j, i}], 2, time.Hour)
			for k := range 2 {
				if !bytes.Equal(got[k], frame(i, j, k)) {
					t.Errorf("%d to %d, frame %d: got %d bytes, not as sent", i, j, k, len(got[k]))
				}
			}
		}
	}
	for i, n := range ns {
		st := n.tr.Stats()
		if st.NotForUs == 0 {
			t.Errorf("node %d ignored no packet for another node", i)
		}
		if st.Peers != 2 || st.Conns != 2 {
			t.Errorf("node %d: %d peers, %d conns, want 2 and 2", i, st.Peers, st.Conns)
		}
		if peers := n.tr.Peers(); len(peers) != 2 || !peers[0].Listening || !peers[0].Connected {
			t.Errorf("node %d: Peers() = %+v", i, peers)
		}
	}
}

// 10 % loss on the link: the selective repeat gets every frame through;
// with the peer out of range, the first frame given up on is dropped (the
// peer was heard just now), and once the peer has been silent for
// PeerSilence the connection fails with ErrPeerLost.
func TestLossyChannel(t *testing.T) {
	s := newSim(t, 3)
	const silence = 5 * time.Minute
	a, b := s.add(Options{}), s.add(Options{PeerSilence: silence})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	if err := s.m.SetLoss(a.name(), b.name(), 0.1); err != nil {
		t.Fatal(err)
	}
	var sent [][]byte
	for i := range 30 {
		p := payload(20+i*7, byte(i))
		if i%6 == 5 {
			p = payload(2048+i, byte(i))
		}
		sent = append(sent, p)
		if err := ba.WriteFrame(p); err != nil {
			t.Fatal(err)
		}
	}
	got := s.read(ab, len(sent), 6*time.Hour)
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("frame %d: got %d bytes, want %d as sent (in order)", i, len(got[i]), len(sent[i]))
		}
	}
	s.run(time.Minute)
	st := b.tr.Stats()
	t.Logf("sender: %d packets, %d resent, %d timeouts; medium %+v", st.PacketsSent, st.PacketsResent, st.Timeouts, s.m.Stats())
	if st.PacketsResent == 0 || st.FramesFailed != 0 || st.FramesSent != uint64(len(sent)) {
		t.Errorf("resent %d failed %d acknowledged %d, want >0, 0, %d", st.PacketsResent, st.FramesFailed, st.FramesSent, len(sent))
	}
	if n, st := buffered(ab), a.tr.Stats(); n != 0 || st.FramesReceived != uint64(len(sent)) {
		t.Errorf("%d frames delivered and %d more buffered, want exactly %d: a retransmission was delivered twice", st.FramesReceived, n, len(sent))
	}

	// Out of range: the frame is given up after MaxRounds rounds and
	// dropped (a was heard moments ago), the connection stays; the next
	// frame after five minutes of silence fails it, clearly.
	if err := s.m.SetLoss(a.name(), b.name(), 1); err != nil {
		t.Fatal(err)
	}
	if err := ba.WriteFrame([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	s.runUntil("the frame is dropped", func() bool { return b.tr.Stats().FramesDropped == 1 }, time.Hour)
	if st := b.tr.Stats(); st.FramesFailed != 0 || ba.(*conn).ended() {
		t.Fatalf("%d frames failed, connection ended %v: want the frame dropped alone", st.FramesFailed, ba.(*conn).ended())
	}
	heard := lastHeard(b, a)
	s.run(heard.Add(silence).Sub(s.clk.Now()))
	if err := ba.WriteFrame([]byte("still there?")); err != nil {
		t.Fatal(err)
	}
	s.runUntil("the connection fails", func() bool { return b.tr.Stats().FramesFailed == 1 }, time.Hour)
	_, err := ba.ReadFrame()
	if !errors.Is(err, ErrPeerLost) || !errors.Is(err, lora.ErrGaveUp) {
		t.Errorf("ReadFrame after the peer went out of range = %v, want ErrPeerLost and lora.ErrGaveUp", err)
	}
	if err := ba.WriteFrame([]byte("x")); !errors.Is(err, ErrPeerLost) {
		t.Errorf("WriteFrame on the failed connection = %v, want ErrPeerLost", err)
	}
	if st := b.tr.Stats(); st.Timeouts < uint64(lora.DefaultMaxRounds) {
		t.Errorf("%d timeouts before giving up, want at least %d", st.Timeouts, lora.DefaultMaxRounds)
	}
}

// txLog records every packet a radio sends, with its time on air.
type txLog struct {
	Radio
	clk  interface{ Now() time.Time }
	p    lora.Params
	mu   sync.Mutex
	sent []txRecord
}

type txRecord struct {
	start   time.Time
	airtime time.Duration
	kind    Kind
}

func (l *txLog) Send(pkt []byte) error {
	air, _ := lora.Airtime(l.p, len(pkt))
	l.mu.Lock()
	l.sent = append(l.sent, txRecord{l.clk.Now(), air, Kind(pkt[0] & kindMask)})
	l.mu.Unlock()
	return l.Radio.Send(pkt)
}

func (l *txLog) records() []txRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]txRecord(nil), l.sent...)
}

// checkDutyCycle checks the regulation on a transmission log: in every
// window of one hour, at most budget on air. The fullest windows end
// where a transmission ends.
func checkDutyCycle(t *testing.T, log []txRecord, budget time.Duration) (peak time.Duration) {
	t.Helper()
	for i, r := range log {
		if i > 0 && r.start.Before(log[i-1].start.Add(log[i-1].airtime)) {
			t.Errorf("transmission %d starts at %s, before the previous one ended", i, r.start.Sub(t0))
		}
		end := r.start.Add(r.airtime)
		from := end.Add(-lora.Window)
		var used time.Duration
		for _, q := range log[:i+1] {
			qEnd := q.start.Add(q.airtime)
			if qEnd.After(from) {
				used += qEnd.Sub(maxTime(q.start, from))
			}
		}
		peak = max(peak, used)
		if used > budget {
			t.Fatalf("the hour ending at %s has %s on air, over the %s budget", end.Sub(t0), used, budget)
		}
	}
	return peak
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// More than the 1 % budget is offered: the excess is held back, never
// sent early, and goes out as the hour rolls on.
func TestDutyCycleHoldBack(t *testing.T) {
	s := newSim(t, 4)
	eu1 := Options{Radio: RadioParams{Frequency: 868_100_000}, QueueFrames: 256, RecvQueue: 256} // 868.0–868.6 MHz: 1 %
	var logB *txLog
	a := s.add(eu1)
	b := s.addWrapped(eu1, func(r Radio) Radio {
		logB = &txLog{Radio: r, clk: s.clk, p: r.Params().Params}
		return logB
	})
	if st := b.tr.Stats().SubBand; st.DutyCycle != lora.DutyCycle1 || st.Budget != 36*time.Second {
		t.Fatalf("sub-band %+v, want 1 %% (36 s per hour)", st)
	}
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)

	const n, size = 150, 200
	air, _ := lora.Airtime(b.tr.Params().Params, size+DataOverhead)
	if offered := n * air; offered < 40*time.Second {
		t.Fatalf("offering only %s of airtime; the test needs more than the 36 s budget", offered)
	}
	start := s.clk.Now()
	for i := range n {
		if err := ba.WriteFrame(payload(size, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	s.run(55 * time.Minute)
	st := b.tr.Stats()
	delivered := buffered(ab)
	t.Logf("after 55 min: %d of %d frames delivered, %d queued, held %d, until %s, used %s",
		delivered, n, st.Queued, st.Held, st.HeldUntil.Sub(t0), st.SubBand.Used)
	if delivered == 0 || delivered >= n || st.Queued == 0 {
		t.Fatalf("%d of %d frames delivered with %d queued, want the budget's worth and the rest held", delivered, n, st.Queued)
	}
	if st.Held == 0 || st.HeldUntil.IsZero() || !st.HeldUntil.After(s.clk.Now()) {
		t.Errorf("Held %d, HeldUntil %s: want frames held by the duty cycle", st.Held, st.HeldUntil.Sub(t0))
	}
	if st.SubBand.Used > st.SubBand.Budget || st.SubBand.Remaining > st.SubBand.Budget-st.SubBand.Used {
		t.Errorf("airtime %+v over the budget", st.SubBand)
	}
	peak := checkDutyCycle(t, logB.records(), 36*time.Second)
	if peak < 30*time.Second {
		t.Errorf("peak hourly airtime %s: the budget was not used", peak)
	}

	// As the first transmissions leave the window, the rest go out.
	got := s.read(ab, n, 3*time.Hour)
	for i, f := range got {
		if !bytes.Equal(f, payload(size, byte(i))) {
			t.Fatalf("frame %d not as sent", i)
		}
	}
	recs := logB.records()
	checkDutyCycle(t, recs, 36*time.Second)
	if last := recs[len(recs)-1].start; last.Sub(start) < lora.Window {
		t.Errorf("the last transmission started %s after the first write, want over an hour", last.Sub(start))
	}
}

// The queue sheds the newest frame of the lowest priority when a higher
// one needs room, and a writer with nothing lower to shed waits.
func TestQueueShedsByPriority(t *testing.T) {
	s := newSim(t, 5)
	a, b := s.add(Options{}), s.add(Options{QueueFrames: 4})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	s.run(time.Minute) // HELLOs and replies done

	pw := ba.(PriorityWriter)
	// The clock stands still: the first frame goes on air, the rest wait.
	if err := pw.WriteFramePriority([]byte("first"), messages.Data); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := pw.WriteFramePriority([]byte{'b', byte('0' + i)}, messages.Bulk); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.WriteFramePriority([]byte("control"), messages.Control); err != nil {
		t.Fatal(err)
	}
	if st := b.tr.Stats(); st.FramesShed != [3]uint64{1, 0, 0} || st.Queued != 4 {
		t.Fatalf("shed %v, queued %d: want one bulk frame shed and 4 queued", st.FramesShed, st.Queued)
	}
	// A bulk frame now has nothing lower to shed: it waits for room.
	wrote := make(chan error, 1)
	go func() { wrote <- pw.WriteFramePriority([]byte("late"), messages.Bulk) }()
	want := []string{"first", "control", "b0", "b1", "b2", "late"}
	got := s.read(ab, len(want), time.Hour)
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("frame %d = %q, want %q (order: priority, then FIFO; b3 shed)", i, got[i], want[i])
		}
	}
	if err := <-wrote; err != nil {
		t.Errorf("the waiting write: %v", err)
	}
}

// Close semantics per the transports contract.
func TestCloseSemantics(t *testing.T) {
	before := runtime.NumGoroutine()
	s := newSim(t, 6)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)

	if err := ba.WriteFrame([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if got := s.read(ab, 1, time.Hour); string(got[0]) != "bye" {
		t.Fatalf("got %q", got[0])
	}
	// A blocked ReadFrame returns when the connection closes.
	blocked := make(chan error, 1)
	go func() { _, err := ba.ReadFrame(); blocked <- err }()
	// Blocked before Close, so Close is what ends it.
	probe.Parked(t, 10*time.Second, "(*conn).ReadFrame(")
	if err := ba.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ba.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked ReadFrame = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock ReadFrame")
	}
	if _, err := ba.ReadFrame(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrame after Close = %v, want net.ErrClosed", err)
	}
	if err := ba.WriteFrame([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteFrame after Close = %v, want net.ErrClosed", err)
	}
	if ba.Peer() != a.id.Address() {
		t.Error("Peer changed after Close")
	}
	// The peer gets the BYE: io.EOF, then its writes fail.
	s.runUntil("BYE arrives", func() bool { return ab.(*conn).ended() }, time.Minute)
	if _, err := ab.ReadFrame(); err != io.EOF {
		t.Errorf("peer's ReadFrame after BYE = %v, want io.EOF", err)
	}
	if err := ab.WriteFrame([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("peer's WriteFrame after BYE = %v, want io.ErrClosedPipe", err)
	}
	ab.Close()

	// b dials again: a is known and listening, so at once; a accepts a
	// new connection when b's frame arrives.
	ba2 := s.dial(b)
	if err := ba2.WriteFrame([]byte("again")); err != nil {
		t.Fatal(err)
	}
	delete(a.accepted, b.id.Address())
	ab2 := s.accept(a, ln, b)
	if got := s.read(ab2, 1, time.Hour); string(got[0]) != "again" {
		t.Fatalf("got %q", got[0])
	}

	// Closing the transport closes everything and stops its goroutine.
	if err := b.tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.tr.Close(); err != nil {
		t.Errorf("second Transport.Close = %v", err)
	}
	if _, err := ba2.ReadFrame(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrame after Transport.Close = %v, want net.ErrClosed", err)
	}
	if _, err := b.tr.Dial(context.Background(), ""); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Transport.Close = %v, want net.ErrClosed", err)
	}
	if _, err := b.tr.Listen(context.Background(), ""); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen after Transport.Close = %v, want net.ErrClosed", err)
	}
	acceptErr := make(chan error, 1)
	go func() { _, err := ln.Accept(context.Background()); acceptErr <- err }()
	probe.Parked(t, 10*time.Second, "link.(*listener).Accept(")
	a.tr.Close()
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Transport.Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Transport.Close did not unblock Accept")
	}
	if err := ln.Close(); err != nil {
		t.Errorf("listener Close after Transport.Close = %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after closing:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

func (c *conn) ended() bool {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	return c.state != connOpen
}

// Forged, unsigned, stale and replayed HELLOs are counted and ignored;
// a good one makes a peer.
func TestForgedHelloIgnored(t *testing.T) {
	s := newSim(t, 7)
	a := s.add(Options{})
	ln := s.listen(a)
	s.run(time.Minute) // a's own HELLOs are out
	evil, err := AttachMock(s.m, "evil", a.tr.Params())
	if err != nil {
		t.Fatal(err)
	}
	mallory, _ := crypto.NewIdentity(nil)
	victim, _ := crypto.NewIdentity(nil)
	now := uint32(s.clk.Now().Unix())

	resign := func(pkt []byte, id *crypto.Identity) []byte {
		n := HelloSize - 64
		return append(pkt[:n:n], id.Sign(helloSigned(pkt[:n]))...)
	}
	forged := []struct {
		name string
		pkt  []byte
	}{
		{"victim's key, mallory's signature", func() []byte {
			p := helloPacket(victim, Broadcast, now, true, false)
			return resign(p, mallory)
		}()},
		{"unsigned", func() []byte {
			p := helloPacket(victim, Broadcast, now, true, false)
			clear(p[HelloSize-64:])
			return p
		}()},
		{"another key's hint", func() []byte {
			p := helloPacket(mallory, Broadcast, now, true, false)
			h := HintOf(victim.Address())
			p[3], p[4] = h[0], h[1]
			return resign(p, mallory)
		}()},
		{"two hours old", helloPacket(mallory, Broadcast, now-7200, true, false)},
		{"the receiver's own key", helloPacket(a.id, Broadcast, now, true, false)},
		{"signed, then its time changed", func() []byte {
			p := helloPacket(mallory, Broadcast, now, true, false)
			p[HeaderSize+4]++
			return p
		}()},
	}
	for _, f := range forged {
		if err := evil.Send(f.pkt); err != nil {
			t.Fatal(err)
		}
		s.run(time.Second)
	}
	st := a.tr.Stats()
	if st.HellosRejected != uint64(len(forged)) || st.Peers != 0 || queued(a.tr) {
		t.Fatalf("rejected %d of %d forged HELLOs, %d peers: forged HELLOs must be ignored", st.HellosRejected, len(forged), st.Peers)
	}
	// Not ours at all, or truncated.
	for _, p := range [][]byte{{0x82, 0x01, 0x02}, {0xD2, 0xFF}, append([]byte{0xD2, 0xFF, 0xFF}, make([]byte, 50)...)} {
		evil.Send(p)
		s.run(time.Second)
	}
	if st := a.tr.Stats(); st.Foreign != 1 || st.Malformed != 2 {
		t.Errorf("foreign %d malformed %d, want 1 and 2", st.Foreign, st.Malformed)
	}

	// A good HELLO makes a peer; replaying an older one is refused.
	if err := evil.Send(helloPacket(mallory, Broadcast, now, true, false)); err != nil {
		t.Fatal(err)
	}
	s.run(time.Second)
	if err := evil.Send(helloPacket(mallory, Broadcast, now-10, false, false)); err != nil {
		t.Fatal(err)
	}
	s.run(time.Second)
	st = a.tr.Stats()
	if st.HellosRejected != uint64(len(forged))+1 || st.Peers != 1 {
		t.Errorf("rejected %d, %d peers: want the replay refused and one peer", st.HellosRejected, st.Peers)
	}
	if p := a.tr.Peers(); len(p) != 1 || p[0].Addr != mallory.Address() || !p[0].Listening {
		t.Errorf("peers %+v, want mallory, listening (the replay's flag ignored)", p)
	}
	c := s.accept(a, ln, &node{id: mallory})
	if c.Peer() != mallory.Address() {
		t.Errorf("accepted %s", c.Peer().Short())
	}
}

func TestInfoAndOptions(t *testing.T) {
	s := newSim(t, 8)
	for _, tc := range []struct {
		name          string
		opts          Options
		mtu, maxFrame int
		class         transports.Class
		bitrate       int64
		radioMTU      int
	}{
		{"SF7 default", Options{}, 241, 61696, transports.Constrained, 5468, 255},
		{"SF12: LoRaWAN MTU", Options{Radio: RadioParams{Params: lora.Params{SF: 12}}}, 37, 9472, transports.SeverelyConstrained, 244, 51},
		{"frame limit", Options{MaxFrameSize: 1000}, 241, 1000, transports.Constrained, 5468, 255},
		{"US915 SF7: dwell", Options{Radio: RadioParams{Frequency: 915_000_000}, Region: lora.US915}, 241, 61696, transports.Constrained, 5468, 255},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := s.add(tc.opts)
			info := n.tr.Info()
			if info.Name != "lora" || info.MTU != tc.mtu || info.MaxFrame != tc.maxFrame || info.Class != tc.class ||
				info.Bitrate != tc.bitrate || n.tr.MTU() != tc.radioMTU || info.Class != transports.ClassOf(info) {
				t.Errorf("Info = %v, radio MTU %d; want mtu %d max %d class %s bitrate %d radio MTU %d",
					info, n.tr.MTU(), tc.mtu, tc.maxFrame, tc.class, tc.bitrate, tc.radioMTU)
			}
			if c := s.nodes[0]; c.tr.Info().Limit() != c.tr.limit {
				t.Error("Info().Limit() is not the frame limit")
			}
		})
	}
	id, _ := crypto.NewIdentity(nil)
	for _, tc := range []struct {
		name string
		opts Options
		want error
	}{
		{"no identity", Options{Medium: s.m}, transports.ErrBadOptions},
		{"no medium", Options{Identity: id}, transports.ErrBadOptions},
		{"alarm band", Options{Identity: id, Medium: s.m, Radio: RadioParams{Frequency: 869_300_000}}, lora.ErrRestrictedBand},
		{"outside the region", Options{Identity: id, Medium: s.m, Radio: RadioParams{Frequency: 433_000_000}}, lora.ErrOutOfBand},
		{"US915 SF9: HELLO over the dwell time", Options{Identity: id, Medium: s.m, Radio: RadioParams{Params: lora.Params{SF: 9}, Frequency: 915_000_000}, Region: lora.US915}, transports.ErrBadOptions},
		{"0.1 % band at SF12: over the control ceiling", Options{Identity: id, Medium: s.m, Radio: RadioParams{Params: lora.Params{SF: 12}, Frequency: 864_000_000}}, transports.ErrBadOptions},
		{"MTU too small", Options{Identity: id, Medium: s.m, MTU: 10}, transports.ErrBadOptions},
		{"bad SF", Options{Identity: id, Medium: s.m, Radio: RadioParams{Params: lora.Params{SF: 13}}}, lora.ErrBadParams},
		{"negative queue", Options{Identity: id, Medium: s.m, QueueFrames: -1}, transports.ErrBadOptions},
		{"data share 1", Options{Identity: id, Medium: s.m, DataShare: 1}, lora.ErrBadParams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := NewMock(tc.opts)
			if err == nil {
				tr.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("NewMock = %v, want %v", err, tc.want)
			}
			// A failed NewMock detaches its radio: the name is free again.
			if tc.opts.Identity != nil && tc.opts.Medium != nil {
				r, err := AttachMock(s.m, id.Address().String(), RadioParams{}.withDefaults())
				if err != nil {
					t.Fatalf("radio left attached: %v", err)
				}
				r.Close()
			}
		})
	}
}

func TestListenDialAddresses(t *testing.T) {
	s := newSim(t, 9)
	n := s.add(Options{Channel: "chan-a"})
	ctx := context.Background()
	for _, tc := range []struct {
		addr string
		want error
	}{
		{"other", ErrWrongChannel},
		{"chan-a?sf=9", ErrWrongChannel},
		{"?freq=868100000", ErrWrongChannel},
		{"chan-a?mtu=51", ErrWrongChannel},
		{"chan-a?region=us915", ErrWrongChannel},
		{"chan-a?sf=x", transports.ErrBadURI},
		{"chan-a?color=red", transports.ErrBadURI},
	} {
		if _, err := n.tr.Listen(ctx, tc.addr); !errors.Is(err, tc.want) {
			t.Errorf("Listen(%q) = %v, want %v", tc.addr, err, tc.want)
		}
		dctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		if _, err := n.tr.Dial(dctx, tc.addr); !errors.Is(err, tc.want) {
			t.Errorf("Dial(%q) = %v, want %v", tc.addr, err, tc.want)
		}
		cancel()
	}
	ln, err := n.tr.Listen(ctx, "chan-a?sf=7&bw=125000&freq=869525000&cr=5&region=EU868&mtu=255")
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr() != "chan-a" {
		t.Errorf("Addr = %q", ln.Addr())
	}
	if _, err := n.tr.Listen(ctx, ""); !errors.Is(err, ErrAddrInUse) {
		t.Errorf("second Listen = %v, want ErrAddrInUse", err)
	}
	ln.Close()
	// Nobody else on the channel: Dial waits for ctx.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := n.tr.Dial(dctx, "chan-a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial on an empty channel = %v, want context.DeadlineExceeded", err)
	}
}

// The radio failing underneath fails every connection with ErrRadio.
func TestRadioFailure(t *testing.T) {
	s := newSim(t, 10)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, _ := s.link(a, ln, b)
	b.radio.Close() // the modem is unplugged
	deadline := time.Now().Add(10 * time.Second)
	for !ba.(*conn).ended() && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if _, err := ba.ReadFrame(); !errors.Is(err, ErrRadio) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrame after the radio failed = %v, want ErrRadio", err)
	}
	if _, err := b.tr.Dial(context.Background(), ""); !errors.Is(err, ErrRadio) {
		t.Errorf("Dial after the radio failed = %v, want ErrRadio", err)
	}
}

func TestPriorityOf(t *testing.T) {
	for _, tc := range []struct {
		frame []byte
		want  messages.Priority
	}{
		{[]byte{0x83, 0x02, 0x00, 0x00}, messages.Control}, // announce
		{[]byte{0x83, 0x04, 0x00, 0x00}, messages.Control}, // KeyPackage request
		{[]byte{0x83, 0x01, 0x00, 0x00}, messages.Data},    // envelope
		{[]byte{0x83, 0x06, 0x00, 0x00}, messages.Data},    // FAPP
		{[]byte("not cbor"), messages.Data},
	} {
		if got := PriorityOf(tc.frame); got != tc.want {
			t.Errorf("PriorityOf(% x) = %s, want %s", tc.frame, got, tc.want)
		}
	}
}

// Frames of every size class, up to the limit, in one direction; the
// limit and the empty frame are refused before anything is sent.
func TestRoundTripSizes(t *testing.T) {
	s := newSim(t, 12)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	limit := ba.Info().Limit()
	if limit != FrameLimit(255) {
		t.Fatalf("limit %d, want %d", limit, FrameLimit(255))
	}
	sizes := []int{1, 127, 245, 246, 250, 251, 490, 491, 1000, 16384, limit}
	for i, n := range sizes {
		if err := ba.WriteFrame(payload(n, byte(i))); err != nil {
			t.Fatalf("WriteFrame(%d bytes): %v", n, err)
		}
	}
	var tooLarge *transports.FrameTooLargeError
	if err := ba.WriteFrame(make([]byte, limit+1)); !errors.As(err, &tooLarge) || tooLarge.Size != uint64(limit+1) || tooLarge.Limit != limit {
		t.Errorf("WriteFrame(limit+1) = %v, want a FrameTooLargeError", err)
	}
	if err := ba.WriteFrame(nil); !errors.Is(err, ErrEmptyFrame) {
		t.Errorf("WriteFrame(nil) = %v, want ErrEmptyFrame", err)
	}
	got := s.read(ab, len(sizes), time.Hour)
	for i, n := range sizes {
		if !bytes.Equal(got[i], payload(n, byte(i))) {
			t.Errorf("%d-byte frame: got %d bytes, not as sent", n, len(got[i]))
		}
	}
	// The largest frame is 256 packets.
	if st := b.tr.Stats(); st.PacketsSent < 256+16 {
		t.Errorf("%d packets sent, want at least %d", st.PacketsSent, 256+16)
	}
}

// A node whose Dial waits while every peer it knows is linked (it listens
// and dials, as a node configured with both does) asks for HELLOs only
// every half HELLO interval: the channel does not fill with answers.
func TestWaitingDialDoesNotFloodHellos(t *testing.T) {
	s := newSim(t, 13)
	a, b := s.add(Options{}), s.add(Options{})
	lnA, _ := s.listen(a), s.listen(b)
	s.accept(a, lnA, b)
	ctx, cancel := context.WithCancel(context.Background())
	dialed := make(chan error, 1)
	go func() { _, err := a.tr.Dial(ctx, ""); dialed <- err }()
	s.run(30 * time.Minute)
	cancel()
	if err := <-dialed; !errors.Is(err, context.Canceled) {
		t.Errorf("Dial = %v, want context.Canceled", err)
	}
	// Periodic HELLOs (3 in 30 min), solicitations every 5 min and the
	// answers to them: a dozen at most, not one every few seconds.
	for _, n := range []*node{a, b} {
		if st := n.tr.Stats(); st.HellosSent > 12 {
			t.Errorf("%s sent %d HELLOs in 30 min", n.id.Address().Short(), st.HellosSent)
		}
	}
}

// A relay whose own data have filled more than the control ceiling
// (1 − DataShare of the budget) still acknowledges the frames it
// receives: reports are user data (issue 12, acceptance 2: the bridge of
// a 30-node mesh held its ACKs for minutes, and its neighbours gave up
// frame after frame on it).
func TestReportsGoPastTheControlCeiling(t *testing.T) {
	s := newSim(t, 12)
	eu1 := Options{Radio: RadioParams{Frequency: 868_100_000}, QueueFrames: 256, RecvQueue: 256} // 1 %: 36 s, control 18 s
	a, b := s.add(eu1), s.add(eu1)
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	const size = 200
	air, _ := lora.Airtime(a.tr.Params().Params, size+DataOverhead)
	n := int(24*time.Second/air) + 1 // a's data: past the 18 s ceiling, within the 36 s budget
	for i := range n {
		if err := ab.WriteFrame(payload(size, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	s.read(ba, n, 30*time.Minute)
	st := a.tr.Stats()
	if ceiling := st.SubBand.Budget / 2; st.SubBand.Used <= ceiling {
		t.Fatalf("a used %s, not past the control ceiling %s", st.SubBand.Used, ceiling)
	}
	sentBefore := b.tr.Stats().FramesSent
	if err := ba.WriteFrame([]byte("to the busy relay")); err != nil {
		t.Fatal(err)
	}
	got := s.read(ab, 1, 5*time.Minute)
	if string(got[0]) != "to the busy relay" {
		t.Fatalf("got %q", got[0])
	}
	s.runUntil("b's frame acknowledged", func() bool { return b.tr.Stats().FramesSent > sentBefore }, 5*time.Minute)
	if bs := b.tr.Stats(); bs.FramesDropped != 0 || bs.FramesFailed != 0 {
		t.Fatalf("b gave up on frames: %+v", bs)
	}
}

// A frame whose bytes wait in the queue for the same peer already is not
// queued twice (an end-to-end retransmission reaching a relay that still
// holds the first copy); other bytes, or the same bytes once the first
// copy has gone, are.
func TestQueueTakesNoSecondCopy(t *testing.T) {
	s := newSim(t, 13)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	s.run(time.Minute) // HELLOs and replies done
	// The clock stands still: the first frame goes on air, the rest wait.
	for _, f := range []string{"first", "retransmitted", "retransmitted", "other", "retransmitted"} {
		if err := ba.WriteFrame([]byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	if st := b.tr.Stats(); st.FramesCopies != 2 || st.Queued != 2 {
		t.Fatalf("copies %d, queued %d: want 2 copies refused, 2 queued", st.FramesCopies, st.Queued)
	}
	want := []string{"first", "retransmitted", "other"}
	got := s.read(ab, len(want), time.Hour)
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("frame %d = %q, want %q", i, got[i], want[i])
		}
	}
	if err := ba.WriteFrame([]byte("retransmitted")); err != nil {
		t.Fatal(err)
	}
	if got := s.read(ab, 1, time.Hour); string(got[0]) != "retransmitted" {
		t.Fatalf("after the first copy went: %q", got[0])
	}
}
