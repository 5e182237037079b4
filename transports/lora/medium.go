package lora

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/transports"
)

// Medium is a simulated LoRa channel (one frequency) that radios attach
// to: the twin of a real channel for tests and the simulator
// (lora+mock://name).
//
// The model:
//
//   - A frame is on air from the moment it is sent for its airtime
//     (Airtime of the sender's Params), and reaches each receiver at the
//     end of it, on the injected clock.
//   - A radio transmits one frame at a time; frames sent while it is busy
//     wait in its transmit queue and go out back to back.
//   - Radio b hears radio a when both use the same spreading factor and
//     bandwidth (other settings are treated as orthogonal: they neither
//     receive nor disturb each other) and the loss from a to b is below 1
//     (SetLoss 1 means out of range).
//   - Two transmissions that overlap in time collide: both are lost at
//     every radio that hears both. There is no capture effect.
//   - Radios are half-duplex: a radio that transmits during any part of a
//     frame loses that frame.
//   - Otherwise a frame is lost at b with the loss probability of the
//     link, drawn from the injected random source when the frame starts.
//
// With a seeded rand and clock.Manual every run is the same: the medium
// works as a discrete-event simulation that processes transmissions in
// time order up to the clock's now. It does so from clock timers and at
// every call (Send, Recv, TryRecv, CarrierSense, Sync), so after
// Manual.Advance a TryRecv already sees what arrived. With the real clock
// it runs in real time. A Medium is safe for concurrent use.
type Medium struct {
	mu     sync.Mutex
	clk    clock.Clock
	rng    *rand.Rand
	txQ    int
	rxQ    int
	radios []*Radio // attach order, for deterministic draws
	loss   map[[2]string]float64
	// defLoss is the loss of pairs not in loss (MediumOptions.DefaultLoss).
	defLoss float64
	snr     map[[2]string]float64 // SetSNR; else derived from the loss
	onAir   []*transmission
	seq     uint64
	stats   MediumStats
}

// MediumOptions configure a Medium; zero fields take the defaults.
type MediumOptions struct {
	Clock clock.Clock // default clock.Real{}
	// Rand draws the link losses; default a randomly seeded PCG. Pass
	// rand.New(rand.NewPCG(seed, seed2)) for repeatable runs.
	Rand *rand.Rand
	// TxQueue is each radio's transmit queue in frames (default 16).
	TxQueue int
	// RxQueue is each radio's receive buffer in frames (default 64);
	// frames arriving at a full buffer are dropped and counted.
	RxQueue int
	// DefaultLoss is the loss of a pair of radios without SetLoss: 0 (the
	// default) lets every radio hear every other, 1 puts them out of
	// range unless SetLoss says otherwise (a simulator's map of who hears
	// whom); 0 to 1.
	DefaultLoss float64
}

// Defaults of MediumOptions.
const (
	DefaultTxQueue = 16
	DefaultRxQueue = 64
)

// MediumStats count what happened on a medium. A frame heard by three
// radios counts once in Transmissions and three times among the others.
type MediumStats struct {
	Transmissions uint64        // frames put on air
	Airtime       time.Duration // their total airtime
	Delivered     uint64        // frames handed to a receiver
	Collided      uint64        // lost to an overlapping transmission
	HalfDuplex    uint64        // lost because the receiver was transmitting
	Lost          uint64        // lost by the link's loss probability
	Overflow      uint64        // dropped at a full receive buffer
}

// Packet is a frame as a radio received it.
type Packet struct {
	From       string    // the sending radio's name
	Data       []byte    // the frame; the receiver owns it
	Start, End time.Time // when it was on air
	// SNR is the signal-to-noise ratio the receiver measured, in dB:
	// Medium.SetSNR's value for the link, else derived from its loss
	// (LinkSNR).
	SNR float64
}

type transmission struct {
	seq        uint64
	from       *Radio
	data       []byte
	start, end time.Time
	rx         []reception
}

type reception struct {
	to   *Radio
	lost lossReason
}

type lossReason uint8

// Loss reasons, by precedence: a frame lost for several reasons counts
// under the highest.
const (
	notLost lossReason = iota
	lostLink
	lostHalfDuplex
	lostCollision
)

// NewMedium returns an empty channel.
func NewMedium(o MediumOptions) *Medium {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if o.TxQueue <= 0 {
		o.TxQueue = DefaultTxQueue
	}
	if o.RxQueue <= 0 {
		o.RxQueue = DefaultRxQueue
	}
	if !(o.DefaultLoss > 0 && o.DefaultLoss <= 1) {
		o.DefaultLoss = 0
	}
	return &Medium{clk: o.Clock, rng: o.Rand, txQ: o.TxQueue, rxQ: o.RxQueue, defLoss: o.DefaultLoss, loss: map[[2]string]float64{}, snr: map[[2]string]float64{}}
}

// Radio is one transceiver attached to a Medium.
type Radio struct {
	m      *Medium
	name   string
	params Params
	bwDiv  int64
	rx     chan Packet
	done   chan struct{}

	// guarded by m.mu
	closed    bool
	busyUntil time.Time
	queue     [][]byte
	stats     RadioStats
}

// RadioStats count one radio's traffic.
type RadioStats struct {
	Sent     uint64        // frames put on air
	Airtime  time.Duration // their total airtime
	Received uint64        // frames delivered to it
}

// Attach adds a radio named name with modulation p. Names are unique on a
// medium (ErrNameInUse); invalid params are a *ParamError.
func (m *Medium) Attach(name string, p Params) (*Radio, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	k, _ := bandwidthDivisor(p.Bandwidth)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.radios {
		if r.name == name {
			return nil, fmt.Errorf("%s: attach %q: %w", prefix, name, ErrNameInUse)
		}
	}
	r := &Radio{m: m, name: name, params: p, bwDiv: k, rx: make(chan Packet, m.rxQ), done: make(chan struct{})}
	m.radios = append(m.radios, r)
	return r, nil
}

// SetLoss sets the probability (0..1) that a frame between the radios
// named a and b is lost, in both directions; 1 puts them out of range of
// each other (no reception, no collision). The default is 0. Names need
// not be attached yet. It applies to frames that start afterwards.
func (m *Medium) SetLoss(a, b string, p float64) error {
	if !(p >= 0 && p <= 1) {
		return &ParamError{Field: "loss", Value: p, Allowed: "0 to 1"}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loss[[2]string{a, b}] = p
	m.loss[[2]string{b, a}] = p
	return nil
}

// SetSNR sets the signal-to-noise ratio (dB) that frames between the
// radios named a and b arrive with, in both directions (Packet.SNR). It
// only labels the frames, their loss is SetLoss's. Without it a link's
// SNR is derived from its loss (LinkSNR).
func (m *Medium) SetSNR(a, b string, snr float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snr[[2]string{a, b}] = snr
	m.snr[[2]string{b, a}] = snr
}

// DefaultSNR is the SNR of a link without loss and without SetSNR: a
// strong signal. LinkSNR lowers it by 25 dB per unit of loss.
const DefaultSNR = 10.0

// LinkSNR is the SNR frames from a to b arrive with: SetSNR's value, else
// DefaultSNR − 25 × loss (10 dB without loss, −2.5 dB at loss 0.5: a
// lossy link is a weak, distant one).
func (m *Medium) LinkSNR(a, b string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.linkSNRLocked(a, b)
}

func (m *Medium) linkSNRLocked(a, b string) float64 {
	if v, ok := m.snr[[2]string{a, b}]; ok {
		return v
	}
	return DefaultSNR - 25*m.lossLocked(a, b)
}

// Stats returns the medium's counters.
func (m *Medium) Stats() MediumStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runLocked(m.clk.Now())
	return m.stats
}

// Sync processes every transmission that has ended by the clock's now.
// Clock timers do it too; Sync makes it happen before the call returns.
func (m *Medium) Sync() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runLocked(m.clk.Now())
}

// lossLocked is the loss from a to b: SetLoss's, else the default.
func (m *Medium) lossLocked(a, b string) float64 {
	if p, ok := m.loss[[2]string{a, b}]; ok {
		return p
	}
	return m.defLoss
}

func (m *Medium) hears(from, to *Radio) bool {
	return from != to && !to.closed &&
		from.params.SF == to.params.SF && from.bwDiv == to.bwDiv &&
		m.lossLocked(from.name, to.name) < 1
}

// startLocked puts data from r on air at t (t <= now).
func (m *Medium) startLocked(r *Radio, data []byte, t time.Time) {
	airtime, _ := Airtime(r.params, len(data)) // params and length checked before
	m.seq++
	tx := &transmission{seq: m.seq, from: r, data: data, start: t, end: t.Add(airtime)}
	for _, to := range m.radios {
		if !m.hears(r, to) {
			continue
		}
		rc := reception{to: to}
		if p := m.lossLocked(r.name, to.name); p > 0 && m.rng.Float64() < p {
			rc.lost = lostLink
		}
		tx.rx = append(tx.rx, rc)
	}
	for _, o := range m.onAir {
		if !o.end.After(t) {
			continue // already over (processed later in this run)
		}
		for i := range tx.rx {
			to := tx.rx[i].to
			if to == o.from {
				tx.rx[i].lost = max(tx.rx[i].lost, lostHalfDuplex)
				continue
			}
			for j := range o.rx {
				if o.rx[j].to == to { // to hears both
					tx.rx[i].lost = lostCollision
					o.rx[j].lost = lostCollision // both at their highest
				}
			}
		}
		for j := range o.rx {
			if o.rx[j].to == r {
				o.rx[j].lost = max(o.rx[j].lost, lostHalfDuplex)
			}
		}
	}
	m.onAir = append(m.onAir, tx)
	r.busyUntil = tx.end
	r.stats.Sent++
	r.stats.Airtime += airtime
	m.stats.Transmissions++
	m.stats.Airtime += airtime
	if d := tx.end.Sub(m.clk.Now()); d > 0 {
		m.clk.AfterFunc(d, m.Sync)
	}
}

// runLocked ends, in time order, every transmission that is over by now:
// it delivers the frame and starts the sender's next queued frame at the
// same instant.
func (m *Medium) runLocked(now time.Time) {
	for {
		i := -1
		for j, tx := range m.onAir {
			if tx.end.After(now) {
				continue
			}
			if i < 0 || tx.end.Before(m.onAir[i].end) || (tx.end.Equal(m.onAir[i].end) && tx.seq < m.onAir[i].seq) {
				i = j
			}
		}
		if i < 0 {
			return
		}
		tx := m.onAir[i]
		m.onAir = slices.Delete(m.onAir, i, i+1)
		m.deliverLocked(tx)
		if r := tx.from; !r.closed && len(r.queue) > 0 {
			next := r.queue[0]
			r.queue = slices.Delete(r.queue, 0, 1)
			m.startLocked(r, next, tx.end)
		}
	}
}

func (m *Medium) deliverLocked(tx *transmission) {
	for _, rc := range tx.rx {
		switch rc.lost {
		case lostCollision:
			m.stats.Collided++
			continue
		case lostHalfDuplex:
			m.stats.HalfDuplex++
			continue
		case lostLink:
			m.stats.Lost++
			continue
		}
		if rc.to.closed {
			continue
		}
		p := Packet{From: tx.from.name, Data: bytes.Clone(tx.data), Start: tx.start, End: tx.end, SNR: m.linkSNRLocked(tx.from.name, rc.to.name)}
		select {
		case rc.to.rx <- p:
			rc.to.stats.Received++
			m.stats.Delivered++
		default:
			m.stats.Overflow++
		}
	}
}

// Name is the radio's name on the medium.
func (r *Radio) Name() string { return r.name }

// Params is the radio's modulation.
func (r *Radio) Params() Params { return r.params }

// Stats returns the radio's counters.
func (r *Radio) Stats() RadioStats {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	r.m.runLocked(r.m.clk.Now())
	return r.stats
}

// Send puts a frame on air now, or queues it behind the frame the radio is
// sending. It does not wait for the airtime and does not retain frame.
// Errors: a frame over 255 bytes is a *transports.FrameTooLargeError
// (matching transports.ErrFrameTooLarge); an empty one a *ParamError;
// ErrQueueFull; net.ErrClosed after Close.
func (r *Radio) Send(frame []byte) error {
	if len(frame) > MaxPayload {
		return fmt.Errorf("%s: %s: send: %w", prefix, r.name, &transports.FrameTooLargeError{Size: uint64(len(frame)), Limit: MaxPayload})
	}
	if len(frame) == 0 {
		return &ParamError{Field: "frame", Value: 0, Allowed: fmt.Sprintf("1 to %d bytes", MaxPayload)}
	}
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.closed {
		return fmt.Errorf("%s: %s: send: %w", prefix, r.name, net.ErrClosed)
	}
	now := m.clk.Now()
	m.runLocked(now)
	if r.busyUntil.After(now) || len(r.queue) > 0 {
		if len(r.queue) >= m.txQ {
			return fmt.Errorf("%s: %s: %w (%d frames)", prefix, r.name, ErrQueueFull, m.txQ)
		}
		r.queue = append(r.queue, bytes.Clone(frame))
		return nil
	}
	m.startLocked(r, bytes.Clone(frame), now)
	return nil
}

// Transmitting reports whether the radio is on air or has frames queued.
func (r *Radio) Transmitting() bool {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now()
	m.runLocked(now)
	return r.busyUntil.After(now) || len(r.queue) > 0
}

// CarrierSense reports whether the radio hears another radio's
// transmission on air now: the channel-activity check of listen before
// talk.
func (r *Radio) CarrierSense() bool {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runLocked(m.clk.Now())
	for _, tx := range m.onAir {
		for _, rc := range tx.rx {
			if rc.to == r {
				return true
			}
		}
	}
	return false
}

// Recv returns the next received frame. It returns ctx.Err() when ctx
// ends first and net.ErrClosed (wrapped) once the radio is closed.
func (r *Radio) Recv(ctx context.Context) (Packet, error) {
	r.m.Sync()
	select {
	case <-r.done:
		return Packet{}, fmt.Errorf("%s: %s: recv: %w", prefix, r.name, net.ErrClosed)
	default:
	}
	select {
	case p := <-r.rx:
		return p, nil
	case <-r.done:
		return Packet{}, fmt.Errorf("%s: %s: recv: %w", prefix, r.name, net.ErrClosed)
	case <-ctx.Done():
		return Packet{}, ctx.Err()
	}
}

// TryRecv returns a received frame if one is waiting, without blocking.
func (r *Radio) TryRecv() (Packet, bool) {
	r.m.Sync()
	select {
	case p := <-r.rx:
		return p, true
	default:
		return Packet{}, false
	}
}

// Close detaches the radio: its queued frames are dropped (a frame on air
// finishes), it receives nothing more, and Send and Recv return
// net.ErrClosed. Its name may be attached again. Close may be called more
// than once.
func (r *Radio) Close() error {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.closed {
		return nil
	}
	m.runLocked(m.clk.Now())
	r.closed = true
	r.queue = nil
	close(r.done)
	m.radios = slices.DeleteFunc(m.radios, func(x *Radio) bool { return x == r })
	return nil
}
