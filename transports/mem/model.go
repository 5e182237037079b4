package mem

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
)

// ErrReset: the link was cut by Network.Partition (what a TCP reset or a
// QUIC idle timeout looks like to the node).
var ErrReset = errors.New("connection reset")

// Link model limits and defaults.
const (
	// MinRTO is the smallest retransmission timeout a lost frame costs
	// (Linux's TCP_RTO_MIN).
	MinRTO = 200 * time.Millisecond
	// MaxLoss is the largest loss probability a model keeps; higher values
	// are lowered to it (a reliable link with Loss 1 would never deliver).
	MaxLoss = 0.99
	// DefaultSeed seeds the network's random source unless WithRand or
	// WithSeed says otherwise, so runs repeat.
	DefaultSeed = 1
)

// maxLossDraws bounds the retransmissions of one frame (at MaxLoss the
// chance of reaching it is below 1e-4).
const maxLossDraws = 1000

// LinkModel is how a link behaves in time: a TCP- or QUIC-like stream with
// latency, jitter, loss and bandwidth. The zero LinkModel is an instant
// link (no model). See the package doc for the semantics.
type LinkModel struct {
	// Latency is the one-way propagation delay.
	Latency time.Duration
	// Jitter is the largest extra delay; each frame gets one uniform in
	// [0, Jitter], never reordering frames.
	Jitter time.Duration
	// Loss is the probability, per transmission, that the frame is lost and
	// resent one RTO later. Frames are never dropped.
	Loss float64
	// Bandwidth is the link's rate in bits per second per direction;
	// zero is unlimited.
	Bandwidth int64
	// RTO is what one loss costs; zero means max(3*Latency, MinRTO).
	RTO time.Duration
}

// normalized clamps a model to what it can mean.
func (m LinkModel) normalized() LinkModel {
	m.Latency = max(m.Latency, 0)
	m.Jitter = max(m.Jitter, 0)
	m.Bandwidth = max(m.Bandwidth, 0)
	m.RTO = max(m.RTO, 0)
	if !(m.Loss > 0) { // also NaN
		m.Loss = 0
	}
	m.Loss = min(m.Loss, MaxLoss)
	return m
}

// rto is the retransmission timeout of a normalized model.
func (m LinkModel) rto() time.Duration {
	if m.RTO > 0 {
		return m.RTO
	}
	return max(3*m.Latency, MinRTO)
}

// serialization is the time len bytes take on the wire at the model's
// bandwidth. Frames are at most transports.MaxFrameSizeCap bytes, so
// bits*1e9 fits an int64.
func (m LinkModel) serialization(n int) time.Duration {
	if m.Bandwidth <= 0 {
		return 0
	}
	return time.Duration(int64(n) * 8 * int64(time.Second) / m.Bandwidth)
}

// NetworkOption configures a Network.
type NetworkOption func(*Network)

// WithClock makes the network take time from c (the simulator's clock):
// modelled links deliver frames by c.AfterFunc. The default is the real
// clock. Links without a model never consult the clock.
func WithClock(c clock.Clock) NetworkOption {
	return func(n *Network) {
		if c != nil {
			n.clk = c
		}
	}
}

// WithRand makes the network draw jitter and losses from r. The network
// serialises its use of r; the caller must not use r concurrently.
func WithRand(r *rand.Rand) NetworkOption {
	return func(n *Network) {
		if r != nil {
			n.rnd = r
		}
	}
}

// WithSeed is WithRand with a PCG source seeded by seed.
func WithSeed(seed uint64) NetworkOption {
	return func(n *Network) { n.rnd = rand.New(rand.NewPCG(seed, seed)) }
}

// WithModel is the model of every link that has none of its own from
// SetModel.
func WithModel(m LinkModel) NetworkOption {
	return func(n *Network) { n.defModel = m.normalized() }
}

// SetModel gives links between the transport named a and the listener
// named b (in either direction) the model m. Like SetLink it applies to
// connections dialed afterwards; a zero m makes the link instant again
// (unless the network has a default model from WithModel).
func (n *Network) SetModel(a, b string, m LinkModel) {
	k := linkKey(a, b)
	n.mu.Lock()
	n.models[k] = m.normalized()
	n.mu.Unlock()
}

// Partition cuts the link between the names a and b (in either
// direction): connections between them are reset (both ends' ReadFrame and
// WriteFrame fail with an error matching ErrReset, frames in flight and
// queued are lost) and dials between them are refused (ErrRefused) until
// Heal.
func (n *Network) Partition(a, b string) {
	k := linkKey(a, b)
	n.mu.Lock()
	n.cut[k] = true
	live := n.live[k]
	delete(n.live, k)
	n.mu.Unlock()
	for p := range live {
		p.reset()
	}
}

// Heal undoes Partition: dials between a and b work again. Connections
// reset by the partition stay reset.
func (n *Network) Heal(a, b string) {
	k := linkKey(a, b)
	n.mu.Lock()
	delete(n.cut, k)
	n.mu.Unlock()
}

// Partitioned reports whether the link between a and b is cut.
func (n *Network) Partitioned(a, b string) bool {
	k := linkKey(a, b)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[k]
}

func linkKey(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// unregister forgets a link that was closed.
func (n *Network) unregister(p *pair) {
	n.mu.Lock()
	if set := n.live[p.key]; set != nil {
		delete(set, p)
		if len(set) == 0 {
			delete(n.live, p.key)
		}
	}
	n.mu.Unlock()
}

// jitter draws a delay uniform in [0, max].
func (n *Network) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	n.rndMu.Lock()
	defer n.rndMu.Unlock()
	return time.Duration(n.rnd.Int64N(int64(max) + 1))
}

// losses draws how many times a frame is lost before it gets through.
func (n *Network) losses(p float64) int64 {
	if p <= 0 {
		return 0
	}
	n.rndMu.Lock()
	defer n.rndMu.Unlock()
	var k int64
	for k < maxLossDraws && n.rnd.Float64() < p {
		k++
	}
	return k
}

// pair is what the two ends of one link share: the reset switch and, on a
// modelled link, the two directions' pipes.
type pair struct {
	net      *Network
	key      [2]string
	cut      chan struct{} // closed by reset
	cutOnce  sync.Once
	aToB     *pipe // nil on an instant link
	bToA     *pipe
	unregOne sync.Once
}

func (p *pair) reset() {
	p.cutOnce.Do(func() { close(p.cut) })
	p.stop()
}

// stop discards the frames in flight both ways and stops their timers.
func (p *pair) stop() {
	if p.aToB != nil {
		p.aToB.stop()
		p.bToA.stop()
	}
	p.unregOne.Do(func() { p.net.unregister(p) })
}

// pipe is one direction of a modelled link: a FIFO of frames in flight,
// each with its delivery time, moved into ch by one clock timer at a time.
// slots holds a token for every frame in flight or in ch, so both together
// never exceed the queue size.
type pipe struct {
	ch    chan []byte
	slots chan struct{}
	m     LinkModel
	clk   clock.Clock
	net   *Network

	mu      sync.Mutex
	stopped bool
	txFree  time.Time // when the transmitter finishes the frames before
	last    time.Time // delivery time of the last frame scheduled
	flight  []inflight
	timer   clock.Timer
}

type inflight struct {
	at time.Time
	f  []byte
}

func newPipe(n *Network, m LinkModel, ch chan []byte) *pipe {
	return &pipe{ch: ch, slots: make(chan struct{}, cap(ch)), m: m, clk: n.clk, net: n}
}

// schedule sends f, whose slot the caller holds. It reports false when the
// pipe was stopped (the link closed meanwhile).
func (p *pipe) schedule(f []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	now := p.clk.Now()
	start := now
	if p.txFree.After(start) {
		start = p.txFree // queued behind the frames before
	}
	p.txFree = start.Add(p.m.serialization(len(f)))
	at := p.txFree.Add(p.m.Latency + p.net.jitter(p.m.Jitter) +
		time.Duration(p.net.losses(p.m.Loss))*p.m.rto())
	if at.Before(p.last) {
		at = p.last // a stream never reorders
	}
	p.last = at
	if len(p.flight) == 0 && !at.After(now) {
		p.deliver(f)
		return true
	}
	p.flight = append(p.flight, inflight{at: at, f: f})
	if p.timer == nil {
		p.timer = p.clk.AfterFunc(at.Sub(now), p.fire)
	}
	return true
}

// deliver makes f readable. ch never blocks: the writer held a slot.
func (p *pipe) deliver(f []byte) {
	select {
	case p.ch <- f:
	default:
		panic("transports/mem: delivery beyond the queue") // slots make it impossible
	}
}

// fire delivers the frames that are due and sets the timer for the next.
func (p *pipe) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = nil
	if p.stopped {
		return
	}
	now := p.clk.Now()
	i := 0
	for ; i < len(p.flight) && !p.flight[i].at.After(now); i++ {
		p.deliver(p.flight[i].f)
		p.flight[i] = inflight{}
	}
	p.flight = p.flight[i:]
	if len(p.flight) == 0 {
		p.flight = nil // let the backing array go
		return
	}
	p.timer = p.clk.AfterFunc(p.flight[0].at.Sub(now), p.fire)
}

// stop discards the frames in flight; frames already delivered stay in ch.
func (p *pipe) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.flight = nil
}

// inFlight counts the frames scheduled but not yet delivered (tests).
func (p *pipe) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.flight)
}
