package link

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
)

// Broadcast on the air, the announce cap and the signal of received
// frames (issue 12 item 1). See doc.go, "Broadcast".

// PacketSignal is how a radio received one packet.
type PacketSignal struct {
	Measured bool    // the radio reported SNR and RSSI
	SNR      float64 // dB
	RSSI     int     // dBm
}

// SignalRadio is implemented by radios that measure each packet they
// receive: the link carries the measure of a frame's last packet up with
// the frame (Conn.ReadFrameSignal, messages.Signal), so that the router
// can weigh its re-broadcast delay by it. MockRadio gives the medium's
// SNR of the link (lora.Medium.SetSNR, else derived from SetLoss);
// RNodeRadio the modem's STAT_SNR and STAT_RSSI.
type SignalRadio interface {
	RecvSignal(ctx context.Context) ([]byte, PacketSignal, error)
}

var (
	_ SignalRadio = (*MockRadio)(nil)
	_ SignalRadio = (*RNodeRadio)(nil)
	_ SignalRadio = (*RNodeDeviceRadio)(nil)

	_ transports.Broadcaster   = (*Transport)(nil)
	_ transports.BroadcastConn = (*conn)(nil)
	_ transports.SignalReader  = (*conn)(nil)
)

// RecvSignal is Recv with the packet's SNR on the medium (RSSI unknown:
// zero).
func (r *MockRadio) RecvSignal(ctx context.Context) ([]byte, PacketSignal, error) {
	p, err := r.r.Recv(ctx)
	return p.Data, PacketSignal{Measured: err == nil, SNR: p.SNR}, err
}

// RecvSignal is Recv with the modem's RSSI and SNR of the packet.
func (r *RNodeRadio) RecvSignal(ctx context.Context) ([]byte, PacketSignal, error) {
	p, err := r.m.Recv(ctx)
	return p.Data, PacketSignal{Measured: p.Measured, SNR: p.SNR, RSSI: p.RSSI}, err
}

// RecvSignal is Recv with the modem's RSSI and SNR of the packet.
func (r *RNodeDeviceRadio) RecvSignal(ctx context.Context) ([]byte, PacketSignal, error) {
	p, err := r.d.Recv(ctx)
	return p.Data, PacketSignal{Measured: p.Measured, SNR: p.SNR, RSSI: p.RSSI}, err
}

// Broadcast sends frame to every node in range with one transmission per
// packet (KindBcast packets, destination ff ff): no ACK, no NACK, no
// retransmission. It queues the frame with the connections' frames by
// prio and never blocks: when the queue is full and lower-priority frames
// cannot make room it returns an error matching lora.ErrQueueFull
// (counted in Stats.BroadcastsDropped). An announce waits for the
// announce share (Options.AnnounceShare) and replaces a queued broadcast
// announce of the same destination (Stats.AnnouncesCollapsed).
func (t *Transport) Broadcast(frame []byte, prio messages.Priority) error {
	if len(frame) > t.limit {
		return fmt.Errorf("%s: broadcast: %w", prefix, &transports.FrameTooLargeError{Size: uint64(len(frame)), Limit: t.limit})
	}
	if len(frame) == 0 {
		return fmt.Errorf("%s: broadcast: %w", prefix, ErrEmptyFrame)
	}
	f := newOutFrame(nil, frame, prio)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.errLocked("broadcast"); err != nil {
		return err
	}
	if t.st.queue.collapse(f) {
		t.st.stats.AnnouncesCollapsed++
		t.pumpLocked()
		return nil
	}
	ok, shed := t.st.queue.push(f)
	if !ok {
		t.st.stats.BroadcastsDropped++
		return fmt.Errorf("%s: broadcast on %s: %w", prefix, t.channel, lora.ErrQueueFull)
	}
	t.countShedLocked(shed)
	t.pumpLocked()
	return nil
}

// newOutFrame copies p into a queued frame for c (nil: a broadcast),
// noting whether it is an announce and for which destination.
func newOutFrame(c *conn, p []byte, prio messages.Priority) *outFrame {
	f := &outFrame{c: c, data: bytes.Clone(p), prio: clampPriority(prio)}
	if tag, err := messages.FrameTag(p); err == nil && tag.Type() == messages.FrameAnnounce {
		if a, err := messages.DecodeAnnounce(p); err == nil {
			f.ann, f.annDest, f.annSeq, f.annHops = true, a.Address(), a.UnixMilli, a.Hops
		}
	}
	return f
}

// countShedLocked counts and logs the frames a push shed.
func (t *Transport) countShedLocked(shed []*outFrame) {
	for _, g := range shed {
		t.st.stats.FramesShed[g.prio]++
		to := "broadcast"
		if g.c != nil {
			to = g.c.p.addr.Short()
		}
		t.log.Debug("frame shed", "peer", to, "priority", g.prio, "len", len(g.data))
	}
}

// Broadcaster is the transport of the connection: a broadcast reaches
// its peer (transports.BroadcastConn).
func (c *conn) Broadcaster() transports.Broadcaster { return c.t }

// pushLocked hands a received frame to the connection's reader.
func (c *conn) pushLocked(frame []byte, sig messages.Signal) {
	c.rx = append(c.rx, frame)
	c.rxMeta = append(c.rxMeta, sig)
	c.rxSig.fire()
}

// ReadFrameSignal is ReadFrame with the frame's reception: SNR and RSSI
// of its last packet where the radio measures them, its airtime, and
// whether it came as a broadcast (transports.SignalReader).
func (c *conn) ReadFrameSignal() ([]byte, messages.Signal, error) {
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	return c.readLocked()
}

// signalLocked is the reception of a frame of n bytes that the packet
// just heard completed.
func (t *Transport) signalLocked(n int, bcast bool) messages.Signal {
	s := t.st.bc.rxSignal
	return messages.Signal{
		Radio: true, HasSNR: s.Measured, SNR: s.SNR, RSSI: s.RSSI,
		Airtime: t.frameAirtime(n, bcast), Broadcast: bcast,
	}
}

// frameAirtime is how long a frame of n bytes lasts on air, sent once in
// packets of this radio's chunk size.
func (t *Transport) frameAirtime(n int, bcast bool) time.Duration {
	ov := DataOverhead
	if bcast {
		ov = BcastOverhead
	}
	var d time.Duration
	for n > 0 {
		part := min(n, t.chunk)
		d += t.airtime(part + ov)
		n -= part
	}
	return d
}

// handleBcastLocked takes a broadcast data packet: it is reassembled by
// its source (hint and broadcast id) and the frame goes to the source
// peer's connection, made now if it has none. Packets of sources without
// a HELLO are dropped and counted (Stats.BroadcastUnknown).
func (t *Transport) handleBcastLocked(h header, body []byte, now time.Time) {
	if h.dst != Broadcast {
		t.st.stats.Malformed++
		return
	}
	p, n := t.peerByHintLocked(h.src)
	if n > 1 {
		t.collidingBcastLocked(h, body)
		return
	}
	if n != 1 {
		t.st.stats.BroadcastUnknown++
		if n == 0 {
			// A node we have not heard yet: its HELLO is likely on its way
			// (a new neighbour announces itself at once). Keep the frame
			// until then, and ask for HELLOs.
			t.holdBcastLocked(h, body, now)
			t.solicitLocked(now, true)
		}
		return
	}
	p.lastHeard = now
	if _, err := lora.ParseFragment(body); err != nil {
		t.st.stats.Malformed++
		return
	}
	if c := p.conn; c != nil && len(c.rx) >= t.recvQueue {
		t.st.stats.RecvOverflow++
		return
	}
	frame, err := t.st.reasm.Add("b"+p.rkey, body)
	if err != nil {
		t.log.Debug("broadcast fragment refused", "peer", p.addr.Short(), "err", err)
	}
	if frame == nil {
		return
	}
	t.deliverBcastLocked(p, frame, t.signalLocked(len(frame), true))
}

// deliverBcastLocked hands a broadcast frame from p to p's connection,
// made now if it has none.
func (t *Transport) deliverBcastLocked(p *peer, frame []byte, sig messages.Signal) {
	c := p.conn
	if c == nil {
		c = t.newConnLocked(p)
		t.offerLocked(c)
	}
	c.pushLocked(frame, sig)
	t.st.stats.BroadcastsReceived++
	// A neighbour broadcast an announce we hold for a broadcast of our
	// own (a re-broadcast, or one for new neighbours): it has it. Once
	// every peer but the announce's origin has it, ours would serve
	// nobody and stays home (the link's half of the managed flood; the
	// router's half is router.Flood).
	if heard := newOutFrame(nil, frame, messages.Control); heard.ann {
		peers := make([][16]byte, 0, len(t.st.peers))
		for a := range t.st.peers {
			peers = append(peers, [16]byte(a))
		}
		if n := t.st.queue.suppress(heard.annDest, heard.annSeq, p.addr, peers); n > 0 {
			t.st.stats.AnnouncesSuppressed += uint64(n)
			t.st.spaceSig.fire()
		}
	}
}

// announceGate caps the airtime of announces at a share of the channel,
// as Reticulum caps announces at 2 % of an interface's bandwidth: after
// an announce packet of airtime a, the next announce frame waits until
// a/share has passed since the later of its start and the previous
// wait's end. So over any window of time w the announces use at most
// share × w plus one frame; they wait, never go early, and idle time
// earns no burst. Plain state under the transport's lock.
type announceGate struct {
	share float64   // 0 < share <= 1
	next  time.Time // when the next announce frame may start
}

// open reports whether an announce frame may start at now.
func (g *announceGate) open(now time.Time) bool { return !now.Before(g.next) }

// charge accounts an announce packet of airtime air sent at now.
func (g *announceGate) charge(now time.Time, air time.Duration) {
	if g.share <= 0 || g.share >= 1 {
		return
	}
	start := g.next
	if now.After(start) {
		start = now
	}
	g.next = start.Add(time.Duration(float64(air) / g.share))
}

// bcastState is the transport's state for broadcasts, the announce share
// and the signal of the packet being handled (under its lock).
type bcastState struct {
	nextID   uint16       // the next broadcast message id
	gate     announceGate // the announce share
	rxSignal PacketSignal // of the packet handlePacketLocked is handling
	held     []heldBcast  // frames from senders without a HELLO yet
	heldFor  time.Time    // the announce share's wait last counted in Stats.AnnouncesHeld
}

// recvSignal receives the next packet with its signal where the radio
// measures it.
func (t *Transport) recvSignal(ctx context.Context) ([]byte, PacketSignal, error) {
	if sr, ok := t.radio.(SignalRadio); ok {
		return sr.RecvSignal(ctx)
	}
	pkt, err := t.radio.Recv(ctx)
	return pkt, PacketSignal{}, err
}

// nextQueuedLocked is the queued frame to start next: the first by
// priority, passing over announces while the announce share is used up
// (then it wakes the pump when the share allows the next one).
func (t *Transport) nextQueuedLocked(now time.Time, soon func(time.Time)) *outFrame {
	gated := !t.st.bc.gate.open(now)
	f := t.st.queue.peekSkip(gated)
	if gated && t.st.queue.peekSkip(false) != f {
		soon(t.st.bc.gate.next)                        // an announce waits for the share
		if !t.st.bc.heldFor.Equal(t.st.bc.gate.next) { // each wait counted once
			t.st.bc.heldFor = t.st.bc.gate.next
			t.st.stats.AnnouncesHeld++
		}
	}
	return f
}

// macLen is the length of the MAC the message's packets get when sent.
func (m *message) macLen() int {
	if m.bcast {
		return 0
	}
	return MACSize
}

// accountLocked books a packet's airtime by kind, and an announce's
// against the announce share.
func (t *Transport) accountLocked(pkt []byte, ann bool, now time.Time, air time.Duration) {
	a := &t.st.stats.Airtime
	switch Kind(pkt[0] & kindMask) {
	case KindHello:
		a.Hello += air
	case KindData, KindBcast:
		if ann {
			a.Announce += air
			t.st.bc.gate.charge(now, air)
		} else {
			a.Data += air
		}
	default:
		a.Control += air
	}
}

// AirtimeByKind is a radio's airtime since it started, by what it sent:
// announces (their data packets, unicast or broadcast), HELLOs, other
// frames' data packets, and the selective repeat's ACKs, NACKs and BYEs.
type AirtimeByKind struct {
	Announce, Hello, Data, Control time.Duration
}

// Total is the sum of the kinds.
func (a AirtimeByKind) Total() time.Duration { return a.Announce + a.Hello + a.Data + a.Control }

// DefaultAnnounceShare is the share of the channel announces may use
// when Options.AnnounceShare is zero: Reticulum's 2 %.
const DefaultAnnounceShare = 0.02

// collidingBcastLocked takes a broadcast packet whose source hint
// several peers share: a broadcast has no MAC to tell them apart. A frame
// that names its sender itself, an announce of its own (hops 0, signed by
// the key whose address it is), goes to that peer; any other is dropped
// and counted (Stats.BroadcastUnknown), since the router must not take
// the wrong neighbour for its next hop.
func (t *Transport) collidingBcastLocked(h header, body []byte) {
	if _, err := lora.ParseFragment(body); err != nil {
		t.st.stats.Malformed++
		return
	}
	frame, _ := t.st.reasm.Add("c"+string(h.src[:]), body)
	if frame == nil {
		return
	}
	if f := newOutFrame(nil, frame, messages.Control); f.ann && f.annHops == 0 {
		for _, p := range t.st.byHint[h.src] {
			if p.addr == f.annDest {
				if c := p.conn; c != nil && len(c.rx) >= t.recvQueue {
					t.st.stats.RecvOverflow++
					return
				}
				t.deliverBcastLocked(p, frame, t.signalLocked(len(frame), true))
				return
			}
		}
	}
	t.st.stats.BroadcastUnknown++
}

// heldBcast is a broadcast frame from a hint without a HELLO yet.
type heldBcast struct {
	hint  Hint
	frame []byte
	sig   messages.Signal
	until time.Time
}

// maxHeldBcast bounds the broadcast frames kept for senders not heard
// yet; the oldest goes first.
const maxHeldBcast = 8

// heldTTL is how long such a frame waits for its sender's HELLO: long
// enough for the HELLOs a request brings (16 HELLO airtimes apart).
func (t *Transport) heldTTL() time.Duration { return max(30*time.Second, 64*t.airHello) }

// holdBcastLocked reassembles a broadcast packet from an unknown hint
// and keeps the frame, when complete, for releaseHeldLocked.
func (t *Transport) holdBcastLocked(h header, body []byte, now time.Time) {
	if _, err := lora.ParseFragment(body); err != nil {
		t.st.stats.Malformed++
		return
	}
	frame, _ := t.st.reasm.Add("u"+string(h.src[:]), body)
	if frame == nil {
		return
	}
	held := t.st.bc.held[:0]
	for _, x := range t.st.bc.held {
		if now.Before(x.until) {
			held = append(held, x)
		}
	}
	if len(held) >= maxHeldBcast {
		held = append(held[:0], held[1:]...)
	}
	t.st.bc.held = append(held, heldBcast{hint: h.src, frame: frame, sig: t.signalLocked(len(frame), true), until: now.Add(t.heldTTL())})
}

// releaseHeldLocked delivers the held broadcast frames of hint, once a
// HELLO made it a known peer's (and only one peer's).
func (t *Transport) releaseHeldLocked(hint Hint, now time.Time) {
	if len(t.st.bc.held) == 0 {
		return
	}
	p, n := t.peerByHintLocked(hint)
	if n != 1 {
		return
	}
	held := t.st.bc.held[:0]
	for _, x := range t.st.bc.held {
		switch {
		case !now.Before(x.until):
		case x.hint == hint:
			t.deliverBcastLocked(p, x.frame, x.sig)
		default:
			held = append(held, x)
		}
	}
	clear(t.st.bc.held[len(held):])
	t.st.bc.held = held
}
