package link

import (
	"cmp"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
)

// Transport is one node's LoRa radio as a transports.Transport: every
// peer heard on the channel is one Conn (see doc.go for the mapping).
// It is safe for concurrent use. Close it to stop the radio.
type Transport struct {
	// Fixed at construction.
	id         *crypto.Identity
	twin       *ecdh.PrivateKey // the identity's X25519 twin: the link MAC keys
	self       crypto.Address
	hint       Hint
	channel    string
	radio      Radio
	lbt        CarrierSenser // nil if the radio cannot sense
	airtimer   Airtimer      // nil: lora.Airtime of params
	params     RadioParams
	region     lora.Region
	mtu        int // radio packet size
	chunk      int // frame bytes per data packet
	limit      int // frame limit
	info       transports.Info
	clk        clock.Clock
	log        *slog.Logger
	maxRounds  int
	recvQueue  int
	maxPeers   int
	helloEvery time.Duration
	// peerSilence: a frame given up on fails its Conn only when the
	// peer was not heard for this long (Options.PeerSilence).
	peerSilence time.Duration
	maxSkew     time.Duration // < 0: no check

	// Derived timings (see timing in engine.go).
	airMTU, airHello, airReport time.Duration
	reportWait                  time.Duration

	done     chan struct{} // closed by Close
	rxCancel context.CancelFunc
	rxDone   chan struct{}

	// rxHandled counts packets the receive goroutine has processed (tests
	// compare it with the mock radio's count to know the link is idle).
	rxHandled atomic.Uint64

	mu sync.Mutex // guards everything below; the …Locked methods hold it
	st state
}

// state is everything the transport's lock guards.
type state struct {
	closed   bool
	radioErr error
	rng      *rand.Rand
	tracker  *lora.Tracker
	reasm    *lora.Reassembler

	peers   map[crypto.Address]*peer
	byHint  map[Hint][]*peer // the same peers by hint; hints collide
	peerSeq uint64
	conns   int // open connections

	listener  *listener
	acceptQ   []*conn
	acceptSig signal
	unclaimed []*conn // conns made for traffic nobody has taken yet
	waiters   []*dialWaiter
	dialing   []*conn // conns whose Dial waits for the peer's answer

	queue    outQueue
	spaceSig signal
	ctl      []ctlPacket // reports and BYEs, FIFO
	ctlSeq   uint64
	cur      *message // the frame on its way out
	nextID   uint16

	helloAt     time.Time // next HELLO; zero: none planned
	helloSolic  bool      // the next HELLO asks for replies
	helloSeq    uint64
	lastSolicit time.Time

	onAirUntil   time.Time // end of our last transmission
	lbtUntil     time.Time // listen-before-talk back-off
	contendUntil time.Time // random wait before a new round (see engine.go)
	heldKey      uint64    // last transmission counted in Stats.Held
	heldUntil    time.Time

	timer    clock.Timer
	timerAt  time.Time
	timerGen uint64

	bc bcastState // broadcasts, the announce share (broadcast.go)

	downPeers []*peer // their connections ended when the radio went down (radio.go)

	stats Stats
}

// peer is a node heard on the channel.
type peer struct {
	hint      Hint
	addr      crypto.Address
	key       ed25519.PublicKey
	keys      pairKeys // MAC keys to and from it, derived from its HELLO
	rkey      string   // the reassembler's sender key
	seq       uint64   // order first heard
	listening bool
	helloTime uint32
	lastHeard time.Time
	conn      *conn // the open connection to it, if any
}

// dialWaiter is a Dial waiting for a listening peer.
type dialWaiter struct{ ch chan *conn }

// signal wakes every goroutine waiting on it; it lives under the
// transport's lock.
type signal struct{ ch chan struct{} }

func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

var _ transports.Transport = (*Transport)(nil)

// NewMock returns a transport whose radio is attached to opts.Medium
// (lora+mock): the in-process twin of a LoRa radio for tests and the
// simulator.
func NewMock(opts Options) (*Transport, error) {
	if opts.Medium == nil {
		return nil, fmt.Errorf("%s: %w: Medium is required for a mock radio", prefix, transports.ErrBadOptions)
	}
	if opts.Identity == nil {
		return nil, fmt.Errorf("%s: %w: Identity is required", prefix, transports.ErrBadOptions)
	}
	name := opts.Name
	if name == "" {
		name = opts.Identity.Address().String()
	}
	r, err := AttachMock(opts.Medium, name, opts.Radio.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", prefix, transports.ErrBadOptions, err)
	}
	return New(r, opts) // closes r when it fails
}

// New returns a transport on radio, which it owns from now on (Close
// closes it, and so does a failed New). Options.Medium, Name and Radio
// are ignored: the settings are radio.Params(). It starts the receive
// goroutine and plans the first HELLO (after a short random delay).
// Errors match transports.ErrBadOptions and name the option.
func New(radio Radio, opts Options) (*Transport, error) {
	t, err := newTransport(radio, opts)
	if err != nil {
		radio.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.rxCancel = cancel
	t.mu.Lock()
	now := t.clk.Now()
	t.requestHelloLocked(now.Add(t.randDur(8*t.airHello)), true)
	t.pumpLocked()
	t.mu.Unlock()
	if r, ok := radio.(Reviver); ok {
		r.OnDown(t.radioDown)
		r.OnUp(t.radioUp)
	}
	go t.receive(ctx)
	return t, nil
}

func newTransport(radio Radio, opts Options) (*Transport, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: "+format, append([]any{prefix, transports.ErrBadOptions}, args...)...)
	}
	if opts.Identity == nil {
		return nil, bad("Identity is required")
	}
	p := radio.Params()
	if err := p.Validate(); err != nil {
		return nil, bad("Radio: %w", err)
	}
	region := opts.Region
	if region.Name() == "" {
		region = lora.EU868
	}
	band, err := region.SubBandForChannel(p.Frequency, p.Bandwidth)
	if err != nil {
		return nil, bad("Radio.Frequency %d Hz: %w", p.Frequency, err)
	}
	share := opts.DataShare
	if share == 0 {
		share = lora.DefaultDataShare
	}
	tracker, err := lora.NewTracker(band, share)
	if err != nil {
		return nil, bad("DataShare: %w", err)
	}
	airtimer, _ := radio.(Airtimer)
	air := func(n int) time.Duration { return airtimeOf(p.Params, airtimer, n) }

	maxMTU := lora.MaxPayload
	if pl, ok := radio.(PacketLimiter); ok {
		maxMTU = min(maxMTU, pl.MaxPacket())
	}
	mtu := opts.MTU
	if mtu == 0 {
		mtu = min(lora.MTUFor(p.Params), maxMTU)
		if band.MaxDwell > 0 {
			for mtu > MinMTU && air(mtu) > band.MaxDwell {
				mtu--
			}
		}
	}
	if mtu < MinMTU || mtu > maxMTU {
		return nil, bad("MTU %d, want %d to %d bytes (0 for the default)", mtu, MinMTU, maxMTU)
	}
	// Every packet must be sendable some time: within the dwell time, and
	// within the control ceiling (HELLOs, and fragments of control frames).
	longest := max(mtu, HelloSize, MaxNackSize)
	if longest > maxMTU {
		return nil, bad("the radio carries packets of up to %d bytes; a HELLO needs %d", maxMTU, HelloSize)
	}
	if band.MaxDwell > 0 && air(longest) > band.MaxDwell {
		return nil, bad("a %d-byte packet at %s lasts %s, over the %s dwell time of %s (lower MTU or SF; a HELLO is %d bytes)",
			longest, p, air(longest), band.MaxDwell, band.Name, HelloSize)
	}
	if limit := tracker.Limit(lora.Control); air(longest) > limit {
		return nil, bad("a %d-byte packet at %s lasts %s, more than control traffic may use per hour in %s (%s; lower SF or MTU, or use another sub-band)",
			longest, p, air(longest), band, limit)
	}

	limit := FrameLimit(mtu)
	switch {
	case opts.MaxFrameSize < 0:
		return nil, bad("MaxFrameSize %d, want >= 0", opts.MaxFrameSize)
	case opts.MaxFrameSize > 0:
		limit = min(limit, opts.MaxFrameSize)
	}
	for _, o := range []struct {
		name string
		v    int
	}{{"QueueFrames", opts.QueueFrames}, {"QueueBytes", opts.QueueBytes}, {"RecvQueue", opts.RecvQueue}, {"MaxPeers", opts.MaxPeers}, {"MaxRounds", opts.MaxRounds}} {
		if o.v < 0 {
			return nil, bad("%s %d, want >= 0 (0 for the default)", o.name, o.v)
		}
	}
	if a := opts.AnnounceShare; a < 0 || a > 1 || a != a {
		return nil, bad("AnnounceShare %v, want a share above 0 and at most 1 (0 for the default %v)", a, DefaultAnnounceShare)
	}
	if opts.HelloInterval < 0 || opts.ReportTimeout < 0 {
		return nil, bad("HelloInterval %s and ReportTimeout %s, want >= 0 (0 for the default)", opts.HelloInterval, opts.ReportTimeout)
	}
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	reasm, err := lora.NewReassembler(lora.ReassemblerOptions{
		Clock:     opts.Clock,
		MaxPacket: lora.MaxPayload - HeaderSize - MACSize,
		MaxFrame:  limit,
	})
	if err != nil {
		return nil, bad("%w", err)
	}
	twin, err := opts.Identity.X25519Private()
	if err != nil {
		return nil, bad("Identity: %w", err)
	}

	t := &Transport{
		id:         opts.Identity,
		twin:       twin,
		self:       opts.Identity.Address(),
		hint:       HintOf(opts.Identity.Address()),
		channel:    opts.Channel,
		radio:      radio,
		params:     p,
		region:     region,
		mtu:        mtu,
		chunk:      mtu - DataOverhead,
		limit:      limit,
		clk:        opts.Clock,
		log:        opts.Logger,
		maxRounds:  def(opts.MaxRounds, lora.DefaultMaxRounds),
		recvQueue:  def(opts.RecvQueue, DefaultRecvQueue),
		maxPeers:   def(opts.MaxPeers, DefaultMaxPeers),
		helloEvery: opts.HelloInterval,
		maxSkew:    opts.MaxClockSkew,
		airMTU:     air(mtu),
		airHello:   air(HelloSize),
		airReport:  air(MaxNackSize),
		reportWait: opts.ReportTimeout,
		done:       make(chan struct{}),
		rxDone:     make(chan struct{}),
	}
	t.lbt, _ = radio.(CarrierSenser)
	t.airtimer = airtimer
	if t.channel == "" {
		t.channel = DefaultChannel
	}
	if t.clk == nil {
		t.clk = clock.Real{}
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.log = t.log.With("component", "transports/lora", "node", t.self.Short())
	if t.helloEvery == 0 {
		t.helloEvery = DefaultHelloInterval
	}
	if t.maxSkew == 0 {
		t.maxSkew = DefaultMaxClockSkew
	}
	if t.peerSilence = opts.PeerSilence; t.peerSilence <= 0 {
		t.peerSilence = 2 * t.helloEvery
	}
	if t.reportWait == 0 {
		t.reportWait = 2*t.airReport + reportGuard
	}
	t.info = transports.Info{
		Name:     lora.InfoName,
		MTU:      min(t.chunk, limit),
		MaxFrame: limit,
		Bitrate:  lora.Bitrate(p.Params),
	}.WithClass()

	rng := opts.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	t.st = state{
		rng:     rng,
		tracker: tracker,
		reasm:   reasm,
		peers:   map[crypto.Address]*peer{},
		byHint:  map[Hint][]*peer{},
		queue: outQueue{
			maxN: def(opts.QueueFrames, DefaultQueueFrames),
			maxB: def(opts.QueueBytes, DefaultQueueBytes),
		},
		nextID: uint16(rng.Uint32()),
	}
	t.st.bc.gate.share = cmp.Or(opts.AnnounceShare, DefaultAnnounceShare)
	t.st.bc.nextID = uint16(rng.Uint32())
	t.st.stats.SubBand.Name = band.Name
	t.st.stats.SubBand.DutyCycle = band.DutyCycle
	t.st.stats.SubBand.Budget = tracker.Budget()
	t.st.stats.SubBand.ControlLimit = tracker.Limit(lora.Control)
	return t, nil
}

// Info describes the links of this radio: MTU is the largest frame one
// packet carries (the radio MTU minus DataOverhead), MaxFrame the largest
// frame fragmentation carries, Bitrate the modulation's, Class derived.
func (t *Transport) Info() transports.Info { return t.info }

// Channel is the radio's channel name (Options.Channel).
func (t *Transport) Channel() string { return t.channel }

// Params are the radio's settings.
func (t *Transport) Params() RadioParams { return t.params }

// MTU is the radio packet size in bytes.
func (t *Transport) MTU() int { return t.mtu }

// checkAddr checks that addr names this radio's channel and settings.
func (t *Transport) checkAddr(op, addr string) error {
	if addr == "" {
		return nil
	}
	a, err := ParseAddr(addr, t.params)
	if err != nil {
		return err
	}
	var why string
	switch {
	case a.Channel != "" && a.Channel != t.channel:
		why = fmt.Sprintf("channel %q, this radio is on %q", a.Channel, t.channel)
	case a.Radio != t.params:
		why = fmt.Sprintf("%s, this radio is on %s", a.Radio, t.params)
	case a.MTU != 0 && a.MTU != t.mtu:
		why = fmt.Sprintf("mtu %d, this radio uses %d", a.MTU, t.mtu)
	case a.Region != "" && !strings.EqualFold(a.Region, t.region.Name()):
		why = fmt.Sprintf("region %s, this radio is in %s", a.Region, t.region.Name())
	default:
		return nil
	}
	return fmt.Errorf("%s: %s %q: %w: %s", prefix, op, addr, ErrWrongChannel, why)
}

// errLocked is the error Listen, Dial and Accept return once the
// transport is closed or its radio failed, or nil.
func (t *Transport) errLocked(op string) error {
	switch {
	case t.st.closed:
		return fmt.Errorf("%s: %s %s: %w", prefix, op, t.channel, net.ErrClosed)
	case t.st.radioErr != nil:
		return fmt.Errorf("%s: %s %s: %w", prefix, op, t.channel, t.st.radioErr)
	}
	return nil
}

// Listen makes every peer heard on the channel (and not taken by a Dial)
// a connection that the listener's Accept returns, and makes the node's
// HELLOs say that it listens (a HELLO goes out now to tell the peers).
// addr is "" or the channel, optionally with a query matching the
// radio's settings (ErrWrongChannel otherwise). A transport has one
// listener at a time (ErrAddrInUse).
func (t *Transport) Listen(ctx context.Context, addr string) (transports.Listener, error) {
	if err := t.checkAddr("listen", addr); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", prefix, t.channel, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.errLocked("listen"); err != nil {
		return nil, err
	}
	if t.st.listener != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", prefix, t.channel, ErrAddrInUse)
	}
	l := &listener{t: t, done: make(chan struct{})}
	t.st.listener = l
	// Peers heard before: their waiting connections, then the others.
	for _, c := range t.st.unclaimed {
		if c.state == connOpen || len(c.rx) > 0 {
			t.st.acceptQ = append(t.st.acceptQ, c)
		}
	}
	t.st.unclaimed = nil
	for _, p := range t.peersInOrderLocked() {
		if p.conn == nil && p.listening {
			t.st.acceptQ = append(t.st.acceptQ, t.newConnLocked(p))
		}
	}
	t.st.acceptSig.fire()
	t.requestHelloLocked(t.clk.Now().Add(t.randDur(8*t.airHello)), false)
	t.pumpLocked()
	return l, nil
}

// Dial returns a connection to a peer on the channel that listens and
// has no connection from this node yet: the first one heard. It sends the
// peer a HELLO addressed to it, repeated until the peer answers with a
// HELLO addressed back (or any packet to this node), so that when Dial
// returns the peer has its end of the link and has just proven its key.
// When no such peer is known, Dial asks the channel for HELLOs and waits.
// It returns ctx's error when ctx ends first. addr is as for Listen.
func (t *Transport) Dial(ctx context.Context, addr string) (transports.Conn, error) {
	if err := t.checkAddr("dial", addr); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: dial %s: %w", prefix, t.channel, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		if err := t.errLocked("dial"); err != nil {
			return nil, err
		}
		c := t.pickForDialLocked()
		if c == nil {
			var err error
			if c, err = t.waitForPeerLocked(ctx); err != nil {
				return nil, err
			}
			if c == nil {
				continue
			}
		}
		if !c.confirmed && c.state == connOpen {
			c.dialing, c.nextHello = true, time.Time{}
			t.st.dialing = append(t.st.dialing, c)
			t.pumpLocked()
		}
		for !c.confirmed && c.state == connOpen && ctx.Err() == nil {
			sig := c.confirmSig.wait()
			t.mu.Unlock()
			select {
			case <-sig:
			case <-c.dead:
			case <-ctx.Done():
			}
			t.mu.Lock()
		}
		c.dialing = false
		switch {
		case c.confirmed:
			return c, nil // open, or ended just now: its reader will see how
		case c.state != connOpen:
			continue // the peer failed or said BYE: try another
		}
		// Out of time. The peer may have made its end without our hearing
		// its answer: tell it.
		t.closeConnLocked(c, true)
		t.pumpLocked()
		return nil, fmt.Errorf("%s: dial %s: %s did not answer: %w", prefix, t.channel, c.p.addr.Short(), ctx.Err())
	}
}

// waitForPeerLocked registers a Dial waiting for a listening peer, asks
// the channel for HELLOs and waits. It returns the connection a new peer
// got, nil when the radio failed meanwhile (the caller loops), or ctx's
// error.
func (t *Transport) waitForPeerLocked(ctx context.Context) (*conn, error) {
	w := &dialWaiter{ch: make(chan *conn, 1)}
	t.st.waiters = append(t.st.waiters, w)
	t.solicitLocked(t.clk.Now(), false)
	t.pumpLocked()
	t.mu.Unlock()
	var c *conn
	select {
	case c = <-w.ch:
	case <-ctx.Done():
	case <-t.done:
	}
	t.mu.Lock()
	if c == nil {
		select {
		case c = <-w.ch: // served while we were giving up: take it
		default:
		}
	}
	t.st.waiters = slices.DeleteFunc(t.st.waiters, func(x *dialWaiter) bool { return x == w })
	if c != nil || t.errLocked("dial") != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%s: dial %s: no listening peer heard: %w", prefix, t.channel, ctx.Err())
}

// Close stops the radio: every connection and the listener are closed
// (their blocked calls return net.ErrClosed), queued frames are dropped,
// and the receive goroutine has exited when Close returns. Peers are not
// told (a BYE needs the radio); they notice when their frames go
// unacknowledged. Close may be called more than once.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.st.closed {
		t.mu.Unlock()
		return nil
	}
	t.st.closed = true
	close(t.done)
	if t.st.timer != nil {
		t.st.timer.Stop()
		t.st.timer = nil
	}
	for _, p := range t.st.peers {
		if p.conn != nil {
			t.closeConnLocked(p.conn, false)
		}
	}
	for _, c := range append(t.st.acceptQ, t.st.unclaimed...) {
		t.closeConnLocked(c, false)
	}
	t.st.acceptQ, t.st.unclaimed, t.st.ctl = nil, nil, nil
	if l := t.st.listener; l != nil {
		l.closeLocked()
	}
	t.st.cur = nil
	t.st.queue = outQueue{maxN: t.st.queue.maxN, maxB: t.st.queue.maxB}
	t.st.spaceSig.fire()
	t.st.acceptSig.fire()
	t.mu.Unlock()

	err := t.radio.Close()
	t.rxCancel()
	<-t.rxDone
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%s: close radio: %w", prefix, err)
	}
	return nil
}

// PeerInfo describes a peer heard on the channel.
type PeerInfo struct {
	Addr      crypto.Address
	Hint      Hint
	Listening bool      // its last HELLO said it listens
	LastHeard time.Time // its last HELLO or packet to us
	Connected bool      // it has an open connection
}

// Peers lists the peers heard, in the order first heard.
func (t *Transport) Peers() []PeerInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []PeerInfo
	for _, p := range t.peersInOrderLocked() {
		out = append(out, PeerInfo{Addr: p.addr, Hint: p.hint, Listening: p.listening, LastHeard: p.lastHeard, Connected: p.conn != nil})
	}
	return out
}

// addPeerLocked remembers p, a peer whose HELLO verified.
func (t *Transport) addPeerLocked(p *peer) {
	t.st.peers[p.addr] = p
	t.st.byHint[p.hint] = append(t.st.byHint[p.hint], p)
}

// peerByHintLocked returns the first-heard peer with hint h (nil: none)
// and how many known peers have it. Unicast packets never need it: their
// MAC names the sender among all the peers with the hint (senderOf). It
// is for packets without a pairwise MAC (broadcasts), where the hint is
// all there is.
func (t *Transport) peerByHintLocked(h Hint) (*peer, int) {
	ps := t.st.byHint[h]
	if len(ps) == 0 {
		return nil, 0
	}
	return ps[0], len(ps)
}

// forgetPeerLocked forgets p, if it is the peer remembered for its
// address.
func (t *Transport) forgetPeerLocked(p *peer) {
	if t.st.peers[p.addr] != p {
		return
	}
	delete(t.st.peers, p.addr)
	if ps := slices.DeleteFunc(t.st.byHint[p.hint], func(q *peer) bool { return q == p }); len(ps) > 0 {
		t.st.byHint[p.hint] = ps
	} else {
		delete(t.st.byHint, p.hint)
	}
}

func (t *Transport) peersInOrderLocked() []*peer {
	ps := make([]*peer, 0, len(t.st.peers))
	for _, p := range t.st.peers {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *peer) int { return cmp.Compare(a.seq, b.seq) })
	return ps
}

// PriorityOf is the priority WriteFrame gives a frame: messages.Control
// for announces and KeyPackage requests and responses (they keep the mesh
// working), messages.Data for everything else. Callers that know better
// use the connection's WriteFramePriority (PriorityWriter).
func PriorityOf(frame []byte) messages.Priority {
	tag, err := messages.FrameTag(frame)
	if err != nil {
		return messages.Data
	}
	switch tag.Type() {
	case messages.FrameAnnounce, messages.FrameKeyPkgReq, messages.FrameKeyPkgResp:
		return messages.Control
	}
	return messages.Data
}

// PriorityWriter is implemented by the connections of this transport:
// WriteFramePriority is WriteFrame with the frame's priority given
// instead of guessed (PriorityOf). The priority orders the radio's
// queue, picks the frames shed when it is full, and the duty-cycle class
// (lora.ClassFor).
type PriorityWriter interface {
	WriteFramePriority(p []byte, prio messages.Priority) error
}
