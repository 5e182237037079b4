package link

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports/lora"
)

// Engine paths no other test reaches (issue 11 item 3), driven on the
// manual clock: the peer cap, peer expiry, receive overflow, malformed
// DATA and reports from a peer (true MAC, bad body), and giving up after
// MaxRounds rounds of NACKs.

func peerAddrs(n *node) map[crypto.Address]bool {
	out := map[crypto.Address]bool{}
	for _, p := range n.tr.Peers() {
		out[p.Addr] = true
	}
	return out
}

// A full peer table refuses new peers (counted) and keeps the ones it
// has; peers without a connection are forgotten three HELLO intervals
// after they were last heard (not before), which makes room.
func TestPeerCapAndExpiry(t *testing.T) {
	s := newSim(t, 31)
	hello := Options{HelloInterval: time.Minute}
	capped := hello
	capped.MaxPeers = 2
	a := s.add(capped)
	b, c := s.add(hello), s.add(hello)
	s.runUntil("a knows b and c", func() bool { return a.tr.Stats().Peers == 2 }, time.Minute)
	d := s.add(hello)
	s.runUntil("d's HELLO refused", func() bool { return a.tr.Stats().PeersDropped > 0 }, 2*time.Minute)
	if got := peerAddrs(a); len(got) != 2 || !got[b.id.Address()] || !got[c.id.Address()] {
		t.Fatalf("a's peers %v, want b and c (the table is full)", got)
	}

	// b and c go quiet. d's HELLOs keep coming (each one expires what is
	// due first).
	b.tr.Close()
	c.tr.Close()
	last := lastHeard(a, b)
	if lc := lastHeard(a, c); lc.After(last) {
		last = lc
	}
	expiry := last.Add(3 * time.Minute)
	dropped := a.tr.Stats().PeersDropped
	s.run(expiry.Add(-5 * time.Second).Sub(s.clk.Now()))
	if got := peerAddrs(a); got[d.id.Address()] || len(got) != 2 {
		t.Fatalf("%s after b and c were last heard: a's peers %v, want still b and c", s.clk.Now().Sub(last), got)
	}
	if a.tr.Stats().PeersDropped <= dropped {
		t.Errorf("d's HELLOs while the table was full: %d dropped, want more than %d", a.tr.Stats().PeersDropped, dropped)
	}
	s.runUntil("d takes a freed place", func() bool { return peerAddrs(a)[d.id.Address()] }, 3*time.Minute)
	if got := peerAddrs(a); len(got) != 1 || a.tr.Stats().Peers != 1 {
		t.Errorf("a's peers %v, want d alone (b and c expired)", got)
	}
	if lastHeard(a, d).Before(expiry) {
		t.Errorf("d taken at %s, before b and c expired at %s", lastHeard(a, d).Sub(t0), expiry.Sub(t0))
	}
}

// A connection holding RecvQueue unread frames does not acknowledge
// more: the sender retries later, and once the reader catches up every
// frame arrives once, in order, nothing given up.
func TestRecvOverflowRetriedLater(t *testing.T) {
	s := newSim(t, 32)
	a, b := s.add(Options{RecvQueue: 2}), s.add(Options{MaxRounds: 40})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	var sent [][]byte
	for i := range 5 {
		p := []byte(fmt.Sprintf("frame %d", i))
		if i == 2 {
			p = payload(600, 9) // three packets
		}
		sent = append(sent, p)
		if err := ba.WriteFrame(p); err != nil {
			t.Fatal(err)
		}
	}
	s.runUntil("a refuses while full", func() bool { return a.tr.Stats().RecvOverflow >= 4 }, time.Minute)
	if n, st := buffered(ab), b.tr.Stats(); n != 2 || st.FramesSent != 2 || st.Timeouts == 0 {
		t.Fatalf("a holds %d frames, b had %d acknowledged with %d timeouts; want 2, 2 and retries", n, st.FramesSent, st.Timeouts)
	}
	s.run(5 * time.Second)
	if n := buffered(ab); n != 2 {
		t.Fatalf("a holds %d frames with RecvQueue 2", n)
	}
	got := s.read(ab, 2, time.Second)
	for range 3 { // the queue holds two: read as they come
		got = append(got, s.read(ab, 1, time.Hour)...)
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("frame %d: got %d bytes, want %d as sent, in order", i, len(got[i]), len(sent[i]))
		}
	}
	s.run(time.Minute)
	if st, sa := b.tr.Stats(), a.tr.Stats(); st.FramesSent != 5 || st.FramesFailed != 0 || sa.FramesReceived != 5 || buffered(ab) != 0 {
		t.Errorf("b: %d acknowledged, %d failed; a: %d received, %d buffered: want 5, 0, 5, 0", st.FramesSent, st.FramesFailed, sa.FramesReceived, buffered(ab))
	}
}

// DATA packets from a peer (its true MAC) whose body is not a valid
// fragment are refused and counted, stored nowhere and not answered,
// even with the poll flag.
func TestMalformedDataRefused(t *testing.T) {
	s := newSim(t, 33)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	f := newForger(s)
	s.run(time.Minute)
	seal := pairKeysOf(t, b.id, a.id).tx.seal
	hdr := appendHeader(nil, header{kind: KindData, poll: true, dst: HintOf(a.id.Address()), src: HintOf(b.id.Address())})
	bad := map[string][]byte{
		"not a fragment (version 7)": {0x07, 0, 1, 0, 0, 'x'},
		"index past the last":        {0x03, 0, 1, 2, 1, 'x'},
		"no payload":                 {0x03, 0, 1, 0, 0},
		"no fragment header":         {},
	}
	before := a.tr.Stats()
	for _, body := range bad {
		f.send(seal(append(bytes.Clone(hdr), body...)))
	}
	st := a.tr.Stats()
	if st.Malformed != before.Malformed+uint64(len(bad)) || st.BadMAC != before.BadMAC {
		t.Fatalf("malformed %d (was %d), BadMAC %v: want %d more malformed, no bad MAC", st.Malformed, before.Malformed, st.BadMAC, len(bad))
	}
	if st.PacketsSent != before.PacketsSent || st.FramesReceived != before.FramesReceived || st.Reassembly != before.Reassembly || buffered(ab) != 0 {
		t.Errorf("sent %d (was %d), received %d, reassembly %+v (was %+v): a malformed poll was answered or stored",
			st.PacketsSent, before.PacketsSent, st.FramesReceived, st.Reassembly, before.Reassembly)
	}
	if err := ba.WriteFrame([]byte("fine")); err != nil {
		t.Fatal(err)
	}
	if got := s.read(ab, 1, time.Hour); string(got[0]) != "fine" {
		t.Errorf("a got %q", got[0])
	}
}

// ACKs and NACKs from the peer (its true MAC) that do not parse, or name
// fragments the frame does not have, are refused and counted and leave
// the frame waiting for its report; the real ACK then completes it.
func TestMalformedReportRefused(t *testing.T) {
	s := newSim(t, 34)
	a, b := s.add(Options{}), s.add(Options{})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	f := newForger(s)
	s.run(time.Minute)
	if err := s.m.SetLoss(a.name(), b.name(), 1); err != nil {
		t.Fatal(err)
	}
	if err := ba.WriteFrame([]byte("one packet")); err != nil {
		t.Fatal(err)
	}
	s.runUntil("b's round is out", func() bool { _, _, ok := awaitingReport(b); return ok }, time.Minute)
	id, rounds, _ := awaitingReport(b)
	seal := pairKeysOf(t, a.id, b.id).tx.seal
	dst, src := HintOf(b.id.Address()), HintOf(a.id.Address())
	hi, lo := byte(id>>8), byte(id)
	bad := map[string][]byte{
		"ACK with a bitmap":            append(appendHeader(nil, header{kind: KindAck, dst: dst, src: src}), hi, lo, 1),
		"ACK without an id":            append(appendHeader(nil, header{kind: KindAck, dst: dst, src: src}), hi),
		"NACK bitmap ending in zero":   append(appendHeader(nil, header{kind: KindNack, dst: dst, src: src}), hi, lo, 1, 0),
		"NACK of fragment 9 of 1":      nackPacket(dst, src, id, []int{9}),
		"NACK of a 33-byte bitmap":     append(appendHeader(nil, header{kind: KindNack, dst: dst, src: src}), append([]byte{hi, lo}, bytes.Repeat([]byte{1}, 33)...)...),
		"NACK of fragment 255 of 1":    nackPacket(dst, src, id, []int{0, 255}),
		"NACK without a whole message": append(appendHeader(nil, header{kind: KindNack, dst: dst, src: src}), lo),
	}
	before := b.tr.Stats()
	for _, pkt := range bad {
		f.send(seal(pkt))
	}
	st := b.tr.Stats()
	if st.Malformed != before.Malformed+uint64(len(bad)) || st.BadMAC != before.BadMAC || st.StaleReports != before.StaleReports {
		t.Fatalf("malformed %d (was %d), BadMAC %v, stale %d: want %d more malformed", st.Malformed, before.Malformed, st.BadMAC, st.StaleReports, len(bad))
	}
	if id2, rounds2, ok := awaitingReport(b); !ok || id2 != id || rounds2 != rounds || st.FramesSent != before.FramesSent {
		t.Fatalf("frame %d: awaiting %v, round %d (was %d), acknowledged %d: want unchanged", id, ok, rounds2, rounds, st.FramesSent)
	}
	if err := s.m.SetLoss(a.name(), b.name(), 0); err != nil {
		t.Fatal(err)
	}
	if got := s.read(ab, 1, time.Hour); string(got[0]) != "one packet" {
		t.Fatalf("a got %q", got[0])
	}
	s.runUntil("the real ACK", func() bool { return b.tr.Stats().FramesSent == before.FramesSent+1 }, time.Minute)
}

// A receiver that answers every round with a NACK (here: "unknown,
// resend everything", in a's name with a's key, while a itself is out
// of range) makes the sender give up after MaxRounds rounds, by NACK and
// not by timeout. Each NACK is a packet of a's: a is heard, the channel
// is what fails, so the frame alone is dropped (Stats.FramesDropped):
// the Conn stays, a stays a peer, and the next frame is delivered.
func TestGiveUpAfterMaxRoundsOfNacks(t *testing.T) {
	s := newSim(t, 35)
	const maxRounds = 4
	a, b := s.add(Options{}), s.add(Options{MaxRounds: maxRounds})
	ln := s.listen(a)
	ba, ab := s.link(a, ln, b)
	f := newForger(s)
	s.run(time.Minute)
	if err := s.m.SetLoss(a.name(), b.name(), 1); err != nil {
		t.Fatal(err)
	}
	if err := ba.WriteFrame(payload(300, 1)); err != nil { // two packets
		t.Fatal(err)
	}
	seal := pairKeysOf(t, a.id, b.id).tx.seal
	dropped := func() bool { return b.tr.Stats().FramesDropped > 0 || ba.(*conn).ended() }
	nacks := 0
	for !dropped() {
		s.runUntil(fmt.Sprintf("round %d is out", nacks+1), func() bool {
			_, r, ok := awaitingReport(b)
			return (ok && r == nacks+1) || dropped()
		}, time.Minute)
		if dropped() {
			break
		}
		id, _, _ := awaitingReport(b)
		f.send(seal(nackPacket(HintOf(b.id.Address()), HintOf(a.id.Address()), id, nil)))
		nacks++
		if nacks > maxRounds {
			t.Fatalf("still sending after %d NACKs with MaxRounds %d", nacks, maxRounds)
		}
	}
	st := b.tr.Stats()
	if nacks != maxRounds || st.Timeouts != 0 || st.FramesDropped != 1 || st.FramesFailed != 0 || st.FramesSent != 0 {
		t.Errorf("gave up after %d NACKs, %d timeouts, %d dropped, %d failed, %d acknowledged; want %d NACKs, no timeout, 1 dropped, none failed",
			nacks, st.Timeouts, st.FramesDropped, st.FramesFailed, st.FramesSent, maxRounds)
	}
	if want := uint64(2 * (maxRounds - 1)); st.PacketsResent != want {
		t.Errorf("%d packets resent, want %d (both packets in each round after the first)", st.PacketsResent, want)
	}
	if ba.(*conn).ended() || !peerAddrs(b)[a.id.Address()] {
		t.Fatalf("connection ended %v, a still a peer %v: want the link kept", ba.(*conn).ended(), peerAddrs(b)[a.id.Address()])
	}
	// a back in range: the next frame goes on the same Conn.
	if err := s.m.SetLoss(a.name(), b.name(), 0); err != nil {
		t.Fatal(err)
	}
	if err := ba.WriteFrame([]byte("next")); err != nil {
		t.Fatal(err)
	}
	if got := s.read(ab, 1, time.Hour); string(got[0]) != "next" {
		t.Fatalf("a got %q, want the frame after the dropped one", got[0])
	}
	s.runUntil("the next frame acknowledged", func() bool { return b.tr.Stats().FramesSent == 1 }, time.Minute)
	if st := b.tr.Stats(); st.FramesDropped != 1 || st.FramesFailed != 0 {
		t.Errorf("%d dropped, %d failed after the next frame; want 1 and 0", st.FramesDropped, st.FramesFailed)
	}
}

// A peer that goes silent (out of range, nothing of it heard): frames
// given up on within PeerSilence of its last packet are dropped alone;
// the first given up on after a whole window of silence fails the Conn
// with ErrPeerLost (and lora.ErrGaveUp), not before, and the peer is
// forgotten.
func TestPeerLostAfterSilence(t *testing.T) {
	s := newSim(t, 36)
	const maxRounds, silence = 4, 2 * time.Minute
	a, b := s.add(Options{}), s.add(Options{MaxRounds: maxRounds, PeerSilence: silence})
	ln := s.listen(a)
	ba, _ := s.link(a, ln, b)
	s.run(10 * time.Second)
	if err := s.m.SetLoss(a.name(), b.name(), 1); err != nil {
		t.Fatal(err)
	}
	heard := lastHeard(b, a)
	sent := 0
	for !ba.(*conn).ended() {
		if err := ba.WriteFrame([]byte(fmt.Sprintf("frame %d", sent))); err != nil {
			t.Fatal(err)
		}
		sent++
		s.runUntil(fmt.Sprintf("frame %d given up", sent), func() bool {
			st := b.tr.Stats()
			return st.FramesDropped+st.FramesFailed == uint64(sent)
		}, time.Hour)
		if sent > 100 {
			t.Fatalf("%d frames given up in %s of silence, the Conn still up", sent, s.clk.Now().Sub(heard))
		}
	}
	failedAt := s.clk.Now()
	st := b.tr.Stats()
	if st.FramesFailed != 1 || st.FramesDropped != uint64(sent-1) || sent < 2 {
		t.Errorf("%d frames: %d dropped, %d failed; want all but the last dropped, the last failed, and more than one", sent, st.FramesDropped, st.FramesFailed)
	}
	if failedAt.Sub(heard) < silence {
		t.Errorf("the Conn failed %s after a was last heard, before the %s window", failedAt.Sub(heard), silence)
	}
	_, err := ba.ReadFrame()
	if !errors.Is(err, ErrPeerLost) || !errors.Is(err, lora.ErrGaveUp) {
		t.Errorf("ReadFrame = %v, want ErrPeerLost and lora.ErrGaveUp", err)
	}
	if peerAddrs(b)[a.id.Address()] {
		t.Error("b still knows a after losing it")
	}
}
