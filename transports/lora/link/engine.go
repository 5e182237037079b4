package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/quicprochat/qpc/transports/lora"
)

// The engine: what the radio sends next, and what it does with what it
// hears. Everything here runs under the transport's lock, called from
// WriteFrame, Close, the receive goroutine and the clock's timer; no
// goroutine of its own. pumpLocked is the one place that transmits.
//
// Timing, all derived from the airtime of the radio's settings:
//
//	reportWait    after a round's last packet, the wait for the ACK/NACK
//	              (Options.ReportTimeout; default 2 × airtime(longest NACK)
//	              + 250 ms)
//	contention    a new round starts after a random 0..airtime(longest
//	              NACK) past the last event, so that two nodes freed by the
//	              same packet do not start together
//	retry jitter  after a timeout, a further random 0..airtime(MTU)
//	lbt back-off  channel busy: airtime(longest NACK) + random 0..airtime(MTU)
//	dial HELLO    repeated every reportWait + airtime(HELLO) + random
//	              0..2 × airtime(HELLO) until the peer answers
//	hello jitter  the first HELLO, replies and listener changes: random
//	              0..8 × airtime(HELLO); a HELLO asking for replies:
//	              random 0..1 × airtime(HELLO)
//	solicit gap   a HELLO asking for replies at most every 16 × airtime(HELLO)
//	              when urgent (unknown source, no peer known), else every
//	              half HELLO interval; a waiting Dial asks again after
//	              64 × airtime(HELLO) within those limits

// message is a frame on its way out: its packets and the state of its
// selective repeat (the table in doc.go).
type message struct {
	c         *conn // nil: a broadcast (bcast)
	bcast     bool  // KindBcast packets: one round, no poll, no report
	ann       bool  // an announce: its packets count against the announce share
	id        uint16
	class     lora.TrafficClass
	packets   [][]byte // every packet, without the poll flag
	round     []int    // indices still to send in this round
	rounds    int      // rounds started, the first included
	awaiting  bool     // the round is out; waiting for a report
	deadline  time.Time
	notBefore time.Time
}

// ctlPacket is a report or BYE waiting for the radio.
type ctlPacket struct {
	seq uint64
	pkt []byte
	// class is the duty-cycle class it is sent under: Control, but
	// UserData for a report (ACK, NACK). A report is part of delivering
	// the frame it answers: held at the control ceiling, it would cost
	// its sender a whole round of the frame, and then the frame, on a
	// relay whose data fill more than the ceiling (issue 12: the bridge
	// of a 30-node mesh acknowledged nothing for minutes).
	class lora.TrafficClass
}

// maxCtl bounds the waiting reports and BYEs; a hostile node polling
// from many hints cannot grow it further.
const maxCtl = 32

func (t *Transport) randDur(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(t.st.rng.Int64N(int64(d) + 1))
}

func (t *Transport) airtime(n int) time.Duration { return airtimeOf(t.params.Params, t.airtimer, n) }

// airtimeOf is how long a packet of n bytes lasts on air: the radio's
// own count where it has one (Airtimer), else lora.Airtime. Params and n
// are checked at construction.
func airtimeOf(p lora.Params, a Airtimer, n int) time.Duration {
	if a != nil {
		if d, err := a.Airtime(n); err == nil {
			return d
		}
	}
	d, _ := lora.Airtime(p, n)
	return d
}

func (t *Transport) queueCtlLocked(pkt []byte) { t.queueCtlClassLocked(pkt, lora.Control) }

// queueReportLocked queues an ACK or NACK: under the user-data budget
// (ctlPacket.class).
func (t *Transport) queueReportLocked(pkt []byte) { t.queueCtlClassLocked(pkt, lora.UserData) }

func (t *Transport) queueCtlClassLocked(pkt []byte, class lora.TrafficClass) {
	if len(t.st.ctl) >= maxCtl {
		t.st.stats.CtlDropped++
		return
	}
	t.st.ctlSeq++
	t.st.ctl = append(t.st.ctl, ctlPacket{seq: t.st.ctlSeq, pkt: pkt, class: class})
}

// requestHelloLocked plans a HELLO at or before at; solicit makes it ask
// for replies.
func (t *Transport) requestHelloLocked(at time.Time, solicit bool) {
	if t.st.helloAt.IsZero() || at.Before(t.st.helloAt) {
		t.st.helloAt = at
	}
	t.st.helloSolic = t.st.helloSolic || solicit
}

// solicitLocked asks the channel for HELLOs (every node that hears the
// request answers). Urgent requests (a packet from an unknown source, or
// no peer known at all) go at most once per 16 HELLO airtimes; others, as
// when a Dial waits while every known peer is connected, at most once per
// half HELLO interval, so that a re-dialing node cannot keep the channel
// busy with answers.
func (t *Transport) solicitLocked(now time.Time, urgent bool) {
	if now.Before(t.nextSolicitLocked(urgent)) {
		return
	}
	t.st.lastSolicit = now
	t.requestHelloLocked(now.Add(t.randDur(t.airHello)), true)
}

// nextSolicitLocked is the earliest time for the next request for HELLOs.
func (t *Transport) nextSolicitLocked(urgent bool) time.Time {
	if t.st.lastSolicit.IsZero() {
		return time.Time{}
	}
	gap := t.helloEvery / 2
	if urgent || len(t.st.peers) == 0 {
		gap = 16 * t.airHello
	}
	return t.st.lastSolicit.Add(gap)
}

// dialHellosLocked queues the HELLO of each waiting Dial to its peer,
// again every report timeout and HELLO airtime (plus jitter) until the
// peer answers.
func (t *Transport) dialHellosLocked(now time.Time, soon func(time.Time)) {
	t.st.dialing = slices.DeleteFunc(t.st.dialing, func(c *conn) bool {
		return !c.dialing || c.confirmed || c.state != connOpen
	})
	for _, c := range t.st.dialing {
		if now.Before(c.nextHello) {
			soon(c.nextHello)
			continue
		}
		t.queueHelloToLocked(c.p, true)
		c.nextHello = now.Add(t.reportWait + t.airHello + t.randDur(2*t.airHello))
		soon(c.nextHello)
	}
}

// queueHelloToLocked queues a HELLO addressed to p, unless one is waiting
// already; solicit asks p to answer with one addressed back.
func (t *Transport) queueHelloToLocked(p *peer, solicit bool) {
	for _, q := range t.st.ctl {
		if Kind(q.pkt[0]&kindMask) == KindHello && q.pkt[1] == p.hint[0] && q.pkt[2] == p.hint[1] {
			return
		}
	}
	t.queueCtlLocked(helloPacket(t.id, p.hint, uint32(t.clk.Now().Unix()), t.st.listener != nil, solicit))
}

// candidate is something the radio could send now.
type candidate struct {
	kind  candKind
	size  int
	class lora.TrafficClass
	key   uint64    // identifies the transmission for Stats.Held
	f     *outFrame // candMsg of a queued frame: the one to start
	ctl   int       // candCtl: its index in the control queue
}

type candKind uint8

const (
	candCtl candKind = iota
	candHello
	candMsg
)

// pumpLocked sends what may go now, in order: reports and BYEs, a due
// HELLO, the next packet of the frame on its way out (or the first of the
// next queued frame). Each must pass the duty-cycle tracker; one that is
// held back lets a later one of the other class try. Then it arms the
// timer for the next time something may change.
func (t *Transport) pumpLocked() {
	if t.st.closed || t.st.radioErr != nil {
		return
	}
	now := t.clk.Now()
	var wake time.Time
	soon := func(at time.Time) {
		if wake.IsZero() || at.Before(wake) {
			wake = at
		}
	}
	if len(t.st.waiters) > 0 { // a Dial waits: ask again now and then
		again := t.nextSolicitLocked(false)
		if min64 := t.st.lastSolicit.Add(64 * t.airHello); again.Before(min64) {
			again = min64
		}
		if now.Before(again) {
			soon(again)
		} else {
			t.solicitLocked(now, false)
		}
	}
	t.dialHellosLocked(now, soon)
	for {
		t.checkTimeoutLocked(now)
		cands := t.candidatesLocked(now, soon)
		if len(cands) == 0 {
			t.st.heldUntil = time.Time{}
			break
		}
		if t.listenBeforeTalkLocked(now, soon) {
			break
		}
		t.st.heldUntil = time.Time{}
		progressed := false
		for _, c := range cands {
			air := t.airtime(c.size)
			ok, until, err := t.st.tracker.Reserve(now, air, c.class)
			if err != nil { // cannot happen: sizes checked at construction
				t.log.Error("transmission refused", "err", err, "len", c.size)
				t.dropCandidateLocked(c, err)
				progressed = true
				break
			}
			if !ok {
				if until.After(t.st.onAirUntil) { // held by the duty cycle, not by our own packet
					if t.st.heldKey != c.key {
						t.st.heldKey = c.key
						t.st.stats.Held++
					}
					if t.st.heldUntil.IsZero() || until.Before(t.st.heldUntil) {
						t.st.heldUntil = until
					}
				}
				soon(until)
				continue
			}
			t.sendCandidateLocked(c, now, air)
			progressed = true
			break
		}
		if !progressed {
			break
		}
	}
	t.armLocked(wake)
}

// candidatesLocked lists what could go now, in order; what will be ready
// later goes to soon.
func (t *Transport) candidatesLocked(now time.Time, soon func(time.Time)) []candidate {
	var cs []candidate
	if len(t.st.ctl) > 0 {
		// The first of each class: a report is not held behind a BYE or
		// HELLO that waits for the control ceiling.
		c0 := t.st.ctl[0]
		cs = append(cs, candidate{kind: candCtl, size: len(c0.pkt), class: c0.class, key: 1<<62 | c0.seq})
		for i, c := range t.st.ctl[1:] {
			if c.class != c0.class {
				cs = append(cs, candidate{kind: candCtl, size: len(c.pkt), class: c.class, key: 1<<62 | c.seq, ctl: i + 1})
				break
			}
		}
	}
	m := t.st.cur
	awaiting := m != nil && m.awaiting
	if awaiting {
		soon(m.deadline)
	}
	if !t.st.helloAt.IsZero() {
		switch {
		case now.Before(t.st.helloAt):
			soon(t.st.helloAt)
		case !awaiting:
			cs = append(cs, candidate{kind: candHello, size: HelloSize, class: lora.Control, key: 2<<62 | t.st.helloSeq})
		}
	}
	if awaiting {
		return cs
	}
	if m != nil {
		if len(m.round) > 0 {
			if now.Before(m.notBefore) {
				soon(m.notBefore)
			} else {
				i := m.round[0]
				cs = append(cs, candidate{kind: candMsg, size: len(m.packets[i]) + m.macLen(), class: m.class,
					key: 3<<62 | uint64(m.id)<<24 | uint64(m.rounds)<<8 | uint64(i)})
			}
		}
	} else if f := t.nextQueuedLocked(now, soon); f != nil {
		if now.Before(t.st.contendUntil) {
			soon(t.st.contendUntil)
		} else {
			size := DataOverhead + min(len(f.data), t.chunk)
			if f.c == nil {
				size = BcastOverhead + min(len(f.data), t.chunk)
			}
			cs = append(cs, candidate{kind: candMsg, size: size, class: lora.ClassFor(f.prio),
				key: 3<<62 | uint64(t.st.nextID)<<24 | 1<<8, f: f})
		}
	}
	return cs
}

// listenBeforeTalkLocked reports whether the channel is busy (and sets a
// back-off); radios that cannot sense never are.
func (t *Transport) listenBeforeTalkLocked(now time.Time, soon func(time.Time)) bool {
	if now.Before(t.st.lbtUntil) {
		soon(t.st.lbtUntil)
		return true
	}
	if t.lbt == nil || !t.lbt.CarrierSense() {
		return false
	}
	t.st.stats.CarrierBusy++
	t.st.lbtUntil = now.Add(t.airReport + t.randDur(t.airMTU))
	soon(t.st.lbtUntil)
	return true
}

func (t *Transport) dropCandidateLocked(c candidate, err error) {
	switch c.kind {
	case candCtl:
		t.st.ctl = slices.Delete(t.st.ctl, c.ctl, c.ctl+1)
	case candHello:
		t.st.helloAt = time.Time{}
	case candMsg:
		if m := t.st.cur; m != nil && m.bcast {
			t.st.cur = nil
		} else if m != nil {
			t.failMessageLocked(m, err)
		} else if f := c.f; f != nil && t.st.queue.take(f) {
			t.st.spaceSig.fire()
			if f.c != nil {
				t.endLocked(f.c, connFailed, fmt.Errorf("%s: %s: %w", prefix, f.c.remote, err))
			}
		}
	}
}

func (t *Transport) sendCandidateLocked(c candidate, now time.Time, air time.Duration) {
	var pkt []byte
	ann := false // an announce's packet
	switch c.kind {
	case candCtl:
		pkt = t.st.ctl[c.ctl].pkt
		t.st.ctl = slices.Delete(t.st.ctl, c.ctl, c.ctl+1)
		if Kind(pkt[0]&kindMask) == KindHello { // a Dial's
			t.st.stats.HellosSent++
		}
	case candHello:
		pkt = helloPacket(t.id, Broadcast, uint32(now.Unix()), t.st.listener != nil, t.st.helloSolic)
		t.st.helloSolic = false
		t.st.helloSeq++
		t.st.stats.HellosSent++
		// The next periodic HELLO: the interval ±10 %.
		t.st.helloAt = now.Add(t.helloEvery*9/10 + t.randDur(t.helloEvery/5))
	case candMsg:
		m := t.st.cur
		if m == nil {
			t.st.queue.take(c.f)
			m = t.startMessageLocked(c.f)
			t.st.spaceSig.fire()
		}
		i := m.round[0]
		m.round = m.round[1:]
		ann = m.ann
		if m.bcast { // one round, no poll, nobody reports, no MAC
			pkt = m.packets[i]
			if len(m.round) == 0 {
				t.st.cur = nil
				t.st.stats.BroadcastsSent++
			}
			break
		}
		pkt = append(make([]byte, 0, len(m.packets[i])+MACSize), m.packets[i]...)
		if m.rounds > 1 {
			t.st.stats.PacketsResent++
		}
		if len(m.round) == 0 { // the round's last packet asks for a report
			pkt[0] |= pollFlag
			m.awaiting = true
			m.deadline = now.Add(air + t.reportWait)
		}
		pkt = m.c.p.keys.tx.seal(pkt) // over the poll flag too
	}
	t.accountLocked(pkt, ann, now, air)
	t.st.onAirUntil = now.Add(air)
	t.st.stats.PacketsSent++
	t.st.stats.SubBand.Total += air
	if err := t.radio.Send(pkt); err != nil {
		if errors.Is(err, net.ErrClosed) {
			t.radioFailedLocked(err)
			return
		}
		// A full modem queue or the like: the packet is lost, and the
		// selective repeat recovers it (the airtime stays counted).
		t.st.stats.SendErrors++
		t.log.Debug("radio refused a packet", "err", err, "len", len(pkt))
	}
}

// startMessageLocked splits f into data packets under the next id.
func (t *Transport) startMessageLocked(f *outFrame) *message {
	bcast := f.c == nil
	id := t.st.nextID
	if bcast { // broadcast ids are an id space of their own
		id = t.st.bc.nextID
		t.st.bc.nextID++
	} else {
		t.st.nextID++
	}
	n := (len(f.data) + t.chunk - 1) / t.chunk
	m := &message{c: f.c, bcast: bcast, ann: f.ann, id: id, class: lora.ClassFor(f.prio), packets: make([][]byte, n), round: make([]int, n), rounds: 1}
	for i := range n {
		part := f.data[i*t.chunk : min((i+1)*t.chunk, len(f.data))]
		frag := lora.Fragment{ID: id, Index: i, Last: n - 1, Payload: part}
		if bcast {
			m.packets[i] = bcastPacket(t.hint, frag)
		} else {
			m.packets[i] = dataPacket(f.c.p.hint, t.hint, frag)
		}
		m.round[i] = i
	}
	t.st.cur = m
	return m
}

// checkTimeoutLocked starts the next round when the report is overdue:
// a probe, the last packet alone, which makes the receiver report again.
func (t *Transport) checkTimeoutLocked(now time.Time) {
	m := t.st.cur
	if m == nil || !m.awaiting || now.Before(m.deadline) {
		return
	}
	t.st.stats.Timeouts++
	if m.rounds >= t.maxRounds {
		t.giveUpLocked(m, now)
		return
	}
	m.rounds++
	m.awaiting = false
	m.round = []int{len(m.packets) - 1}
	m.notBefore = now.Add(t.randDur(t.airReport) + t.randDur(t.airMTU))
}

// giveUpLocked ends m after its last round without an ACK. A peer heard
// within the silence window (any packet whose MAC checked, a HELLO or a
// broadcast of it: peer.lastHeard) is alive and the channel is busy: the
// frame alone is dropped (Stats.FramesDropped), the Conn stays and the
// next frame goes; the end-to-end retransmission above the link recovers
// what the frame carried. A peer silent for the whole window is lost:
// the Conn fails (failMessageLocked).
func (t *Transport) giveUpLocked(m *message, now time.Time) {
	if p := m.c.p; !p.lastHeard.IsZero() && now.Sub(p.lastHeard) < t.peerSilence {
		t.st.stats.FramesDropped++
		t.log.Debug("frame dropped", "peer", p.addr.Short(), "id", m.id, "rounds", m.rounds, "heard", now.Sub(p.lastHeard))
		t.st.cur = nil
		t.st.contendUntil = now.Add(t.randDur(t.airReport))
		return
	}
	t.failMessageLocked(m, lora.ErrGaveUp)
}

// failMessageLocked gives up on m: its connection fails.
func (t *Transport) failMessageLocked(m *message, cause error) {
	t.st.stats.FramesFailed++
	err := fmt.Errorf("%s: %s: frame %d not acknowledged in %d rounds: %w: %w", prefix, m.c.p.addr.Short(), m.id, m.rounds, ErrPeerLost, cause)
	t.log.Debug("peer lost", "peer", m.c.p.addr.Short(), "err", err)
	t.st.cur = nil
	t.endLocked(m.c, connFailed, err)
	// Forget the peer until it is heard again, so that a Dial does not
	// pick it straight back.
	if p := m.c.p; p.conn == nil {
		t.forgetPeerLocked(p)
	}
	t.st.contendUntil = t.clk.Now().Add(t.randDur(t.airReport))
}

// radioFailedLocked fails every connection with the radio's error.
func (t *Transport) radioFailedLocked(cause error) {
	if t.st.radioErr != nil || t.st.closed {
		return
	}
	t.st.radioErr = fmt.Errorf("%w: %w", ErrRadio, cause)
	t.log.Warn("radio failed", "err", cause)
	for _, p := range t.st.peers {
		if p.conn != nil {
			t.endLocked(p.conn, connFailed, t.st.radioErr)
		}
	}
	for _, c := range append(t.st.acceptQ, t.st.unclaimed...) {
		t.endLocked(c, connFailed, t.st.radioErr)
	}
	t.st.cur, t.st.ctl = nil, nil
	t.st.acceptSig.fire()
	t.st.spaceSig.fire()
	for _, w := range t.st.waiters {
		close(w.ch) // Dial sees the closed channel and returns radioErr
	}
	t.st.waiters = nil
}

// armLocked makes the timer fire at at (zero: no need), unless it already
// fires earlier.
func (t *Transport) armLocked(at time.Time) {
	if at.IsZero() || t.st.closed {
		return
	}
	if t.st.timer != nil && !t.st.timerAt.After(at) {
		return
	}
	if t.st.timer != nil {
		t.st.timer.Stop()
	}
	t.st.timerGen++
	gen := t.st.timerGen
	t.st.timerAt = at
	t.st.timer = t.clk.AfterFunc(max(at.Sub(t.clk.Now()), 0), func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if gen == t.st.timerGen {
			t.st.timer, t.st.timerAt = nil, time.Time{}
		}
		t.pumpLocked()
	})
}

// receive is the transport's one goroutine: it hands each packet the
// radio hears to the engine.
func (t *Transport) receive(ctx context.Context) {
	defer close(t.rxDone)
	for {
		pkt, sig, err := t.recvSignal(ctx)
		if err != nil {
			if ctx.Err() == nil {
				t.mu.Lock()
				t.radioFailedLocked(err)
				t.mu.Unlock()
			}
			return
		}
		t.mu.Lock()
		t.st.bc.rxSignal = sig
		t.handlePacketLocked(pkt)
		t.pumpLocked()
		t.mu.Unlock()
		t.rxHandled.Add(1)
	}
}

// handlePacketLocked processes one received packet.
func (t *Transport) handlePacketLocked(pkt []byte) {
	if t.st.closed {
		return
	}
	now := t.clk.Now()
	h, body, err := parseHeader(pkt)
	if err != nil {
		switch {
		case errors.Is(err, ErrNotLink):
			t.st.stats.Foreign++
		case errors.Is(err, ErrVersion):
			t.st.stats.OtherVersion++
		default:
			t.st.stats.Malformed++
			t.log.Debug("malformed packet", "err", err, "len", len(pkt))
		}
		return
	}
	t.st.stats.PacketsReceived++
	// A new round of ours starts only a moment after the channel falls
	// quiet, at a random offset (see contention above).
	t.st.contendUntil = now.Add(t.randDur(t.airReport))
	if h.kind == KindHello {
		t.handleHelloLocked(h, pkt, now)
		t.releaseHeldLocked(h.src, now) // broadcasts that came before the HELLO
		return
	}
	if h.kind == KindBcast { // no MAC: see doc.go, "Broadcast"
		t.handleBcastLocked(h, body, now)
		return
	}
	if h.dst != t.hint {
		t.st.stats.NotForUs++
		return
	}
	cands := t.st.byHint[h.src]
	if len(cands) == 0 {
		// A peer we have not heard (or have forgotten): ask for HELLOs.
		t.st.stats.UnknownSource++
		t.solicitLocked(now, true)
		return
	}
	// The sender is the peer whose key checks the MAC, whichever of the
	// peers with the source hint that is (hints collide). Nothing else
	// is read from the packet before.
	p := senderOf(cands, pkt)
	if p == nil {
		t.st.stats.BadMAC[h.kind]++
		t.log.Debug("packet refused", "kind", h.kind, "src", h.src, "err", ErrBadMAC, "candidates", len(cands))
		return
	}
	p.lastHeard = now
	if p.conn != nil {
		p.conn.confirmLocked() // it sends to us: it has its end
	}
	switch h.kind {
	case KindData:
		t.handleDataLocked(p, h, body)
	case KindAck, KindNack:
		t.handleReportLocked(p, h, body, now)
	case KindBye:
		if c := p.conn; c != nil {
			t.endLocked(c, connEOF, nil)
		}
	}
}

func (t *Transport) handleHelloLocked(h header, pkt []byte, now time.Time) {
	hl, err := parseHello(h, pkt)
	if err == nil {
		err = t.checkHelloLocked(hl, now)
	}
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			t.st.stats.Malformed++
		} else {
			t.st.stats.HellosRejected++
		}
		t.log.Debug("HELLO ignored", "err", err)
		return
	}
	p := t.st.peers[hl.addr]
	switch {
	case p == nil:
		t.expirePeersLocked(now)
		if len(t.st.peers) >= t.maxPeers {
			t.st.stats.PeersDropped++
			return
		}
		keys, err := derivePairKeys(t.twin, t.self, hl.key, hl.addr)
		if err != nil {
			t.st.stats.HellosRejected++
			t.log.Debug("HELLO ignored", "err", err)
			return
		}
		if len(t.st.byHint[h.src]) > 0 || h.src == t.hint {
			// Another key with a known hint (or ours): both are kept, the
			// MACs tell their packets apart.
			t.st.stats.HintCollisions++
			t.log.Debug("hint collision", "hint", h.src, "new", hl.addr.Short())
		}
		t.st.peerSeq++
		p = &peer{hint: h.src, addr: hl.addr, key: hl.key, keys: keys, rkey: string(hl.addr[:]), seq: t.st.peerSeq}
		t.addPeerLocked(p)
	case hl.time < p.helloTime:
		t.st.stats.HellosRejected++
		t.log.Debug("HELLO older than one already seen", "peer", p.addr.Short())
		return
	}
	t.st.stats.HellosReceived++
	p.helloTime, p.listening, p.lastHeard = hl.time, hl.listening, now
	toUs := h.dst == t.hint
	switch {
	case toUs && hl.solicit: // a Dial's: answer it, addressed back
		t.queueHelloToLocked(p, false)
	case hl.solicit && h.dst == Broadcast:
		t.requestHelloLocked(now.Add(t.randDur(8*t.airHello)), false)
	}
	switch {
	case p.conn != nil:
		if toUs {
			p.conn.confirmLocked()
		}
	case toUs:
		// p dialed us (or answers a Dial of ours that has ended): its end
		// of the link exists, make ours.
		c := t.newConnLocked(p)
		c.confirmed = true
		t.offerLocked(c)
	case h.dst == Broadcast && p.listening && (t.st.listener != nil || len(t.st.waiters) > 0):
		// A listening peer: our listener links with it, or a Dial takes it.
		t.offerLocked(t.newConnLocked(p))
	}
}

// checkHelloLocked checks what parseHello cannot: not our own key, and
// a timestamp near our clock.
func (t *Transport) checkHelloLocked(hl hello, now time.Time) error {
	if hl.addr == t.self {
		return fmt.Errorf("%s: %w: our own key", prefix, ErrBadHello)
	}
	if t.maxSkew > 0 {
		skew := now.Sub(time.Unix(int64(hl.time), 0))
		if skew > t.maxSkew+time.Second || -skew > t.maxSkew+time.Second {
			return fmt.Errorf("%s: %w: %s's clock is %s off ours, more than %s", prefix, ErrBadHello, hl.addr.Short(), skew.Round(time.Second), t.maxSkew)
		}
	}
	return nil
}

// expirePeersLocked forgets peers without a connection that have not been
// heard for three HELLO intervals.
func (t *Transport) expirePeersLocked(now time.Time) {
	for _, p := range t.st.peers {
		if p.conn == nil && now.Sub(p.lastHeard) > 3*t.helloEvery {
			t.forgetPeerLocked(p)
		}
	}
}

// senderOf returns the peer among cands (the peers with the packet's
// source hint) whose key towards us checks pkt's MAC, or nil.
func senderOf(cands []*peer, pkt []byte) *peer {
	for _, p := range cands {
		if p.keys.rx.verify(pkt) {
			return p
		}
	}
	return nil
}

func (t *Transport) handleDataLocked(p *peer, h header, body []byte) {
	f, err := lora.ParseFragment(body)
	if err != nil {
		t.st.stats.Malformed++
		t.log.Debug("malformed data packet", "peer", p.addr.Short(), "err", err)
		return
	}
	c := p.conn
	if c != nil && len(c.rx) >= t.recvQueue {
		// Nobody reads: no ACK, so the sender retries later.
		t.st.stats.RecvOverflow++
		return
	}
	frame, err := t.st.reasm.Add(p.rkey, body)
	if err != nil {
		t.log.Debug("fragment refused", "peer", p.addr.Short(), "err", err)
	}
	if frame != nil {
		if c == nil {
			c = t.newConnLocked(p)
			c.confirmed = true
			t.offerLocked(c)
		}
		c.pushLocked(frame, t.signalLocked(len(frame), false))
		t.st.stats.FramesReceived++
	}
	if !h.poll {
		return
	}
	missing, known := t.st.reasm.Missing(p.rkey, f.ID)
	switch {
	case known && len(missing) == 0:
		t.queueReportLocked(p.keys.tx.seal(ackPacket(p.hint, t.hint, f.ID)))
	case known:
		t.queueReportLocked(p.keys.tx.seal(nackPacket(p.hint, t.hint, f.ID, missing)))
	default:
		t.queueReportLocked(p.keys.tx.seal(nackPacket(p.hint, t.hint, f.ID, nil)))
	}
}

func (t *Transport) handleReportLocked(p *peer, h header, body []byte, now time.Time) {
	r, err := parseReport(h.kind, body)
	if err != nil {
		t.st.stats.Malformed++
		return
	}
	m := t.st.cur
	if m == nil || m.bcast || m.c.p != p || m.id != r.id {
		t.st.stats.StaleReports++
		return
	}
	if r.ack {
		t.st.stats.FramesSent++
		t.st.cur = nil
		return
	}
	if !m.awaiting {
		return // a late NACK while the next round is going out
	}
	if len(r.missing) > 0 && r.missing[len(r.missing)-1] >= len(m.packets) {
		t.st.stats.Malformed++
		return
	}
	if m.rounds >= t.maxRounds {
		t.giveUpLocked(m, now) // the NACK was just heard: the frame is dropped
		return
	}
	m.rounds++
	m.awaiting = false
	m.round = r.missing
	if len(m.round) == 0 { // the receiver knows nothing of it
		m.round = make([]int, len(m.packets))
		for i := range m.round {
			m.round[i] = i
		}
	}
	m.notBefore = now.Add(t.randDur(t.airReport))
}
