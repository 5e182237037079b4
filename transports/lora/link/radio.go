package link

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/quicprochat/qpc/transports/lora"
)

// Radio is one LoRa transceiver as the link drives it: the seam between
// the link and the hardware. MockRadio puts one on a lora.Medium; the
// RNode serial modem (transports/lora/rnode) is the real one.
//
// Contract, for implementers:
//
//   - Send transmits one packet of 1..255 bytes, starting now. It returns
//     once the radio has taken the packet (a modem's buffer), not when it
//     is on air, and does not retain the slice. The link calls it at most
//     once per airtime: it has already checked the duty cycle, waited
//     for the previous packet to end, and listened before talking where
//     the radio can (CarrierSenser). It should not block for longer than
//     handing the packet over takes (the link holds its lock around it).
//   - Recv returns the next packet received with the radio's settings;
//     the caller owns it. It returns ctx.Err() when ctx ends first and an
//     error matching net.ErrClosed after Close. Any other error is taken
//     as the radio failing for good: the link fails every connection
//     with ErrRadio and stops receiving. One goroutine calls Recv at a
//     time. A radio that can come back (Reviver) blocks in Recv while it
//     is down instead of failing.
//   - A Send error matching net.ErrClosed fails the link the same way;
//     any other (a full modem queue, a radio that is down for now) loses
//     the packet: it is counted (Stats.SendErrors) and the selective
//     repeat sends it again (or, after the last round, gives the frame
//     up: see "Selective repeat" in the package doc).
//   - Params is the radio's configuration; it never changes.
//   - Close stops the radio and unblocks Recv. The link calls it once,
//     from Transport.Close.
type Radio interface {
	Send(packet []byte) error
	Recv(ctx context.Context) ([]byte, error)
	Params() RadioParams
	Close() error
}

// Reviver is implemented by radios that can go down and come back
// without the link being torn down: a serial modem unplugged and plugged
// in again (RNodeDeviceRadio on an rnode.Device). While down, Recv
// blocks and Send fails with an error that does not match net.ErrClosed
// (a lost packet, see Radio). New calls OnDown and OnUp once, before the
// first Recv; the radio calls the functions each time it goes down and
// each time it is up again, on its own goroutine and holding none of its
// locks. When the radio goes down the transport ends every connection
// with ErrRadioDown (their peers are out of reach: the node routes
// around them and keeps what it cannot send) but keeps the peers it
// knows and its listener; when it is up again it sends those peers the
// BYE it could not send before (a peer that did not notice closes its
// end) and broadcasts a HELLO asking for answers, so that the peers link
// again at once, both ends with a new connection (and so both tell the
// other what they know), rather than at the next periodic HELLO.
type Reviver interface {
	OnDown(f func())
	OnUp(f func())
}

// radioDown is the Reviver's callback when the radio goes away.
func (t *Transport) radioDown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.st.closed || t.st.radioErr != nil {
		return
	}
	err := fmt.Errorf("%s: %s: %w", prefix, t.channel, ErrRadioDown)
	t.log.Warn("radio is down; its connections end until it is back")
	for _, p := range t.st.peers {
		if p.conn != nil {
			t.endLocked(p.conn, connFailed, err)
			t.st.downPeers = append(t.st.downPeers, p)
		}
	}
	for _, c := range append(t.st.acceptQ, t.st.unclaimed...) {
		t.endLocked(c, connFailed, err)
	}
	t.st.cur, t.st.ctl = nil, nil
	t.st.acceptSig.fire()
	t.st.spaceSig.fire()
}

// radioUp is the Reviver's callback when the radio is back: greet the
// channel again.
func (t *Transport) radioUp() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.st.closed || t.st.radioErr != nil {
		return
	}
	t.log.Info("radio is back; asking the channel for HELLOs")
	// A peer that has not noticed our end going away is told so, as a
	// BYE would have when the radio could still send: its end closes,
	// and both ends make new connections from the HELLOs, so that both
	// nodes see the link come up and tell each other what they know.
	for _, p := range t.st.downPeers {
		if p.conn == nil {
			t.queueCtlLocked(p.keys.tx.seal(byePacket(p.hint, t.hint)))
		}
	}
	t.st.downPeers = nil
	t.requestHelloLocked(t.clk.Now().Add(t.randDur(t.airHello)), true)
	t.pumpLocked()
}

// CarrierSenser is implemented by radios that can tell whether the
// channel is busy (LoRa channel-activity detection). The link checks it
// before each transmission (listen before talk) and backs off while it
// reports true.
type CarrierSenser interface {
	CarrierSense() bool
}

// Airtimer is implemented by radios whose packets last longer on air
// than lora.Airtime of their Params says: the RNode adds a 1-byte header
// to every packet and programs its own preamble. The link then uses
// Airtime for every duty-cycle reservation, so that it never undercounts.
type Airtimer interface {
	Airtime(n int) (time.Duration, error)
}

// PacketLimiter is implemented by radios that carry packets of fewer
// than 255 bytes as one LoRa frame (the RNode: 254, its header taking
// one). The default MTU is capped to MaxPacket, and a larger Options.MTU
// refused.
type PacketLimiter interface {
	MaxPacket() int
}

// RadioParams are a radio's modulation and centre frequency.
type RadioParams struct {
	lora.Params
	// Frequency is the centre frequency in Hz; it picks the duty-cycle
	// sub-band (lora.Region.SubBandForChannel).
	Frequency uint32
}

func (p RadioParams) String() string {
	return fmt.Sprintf("%s at %d Hz", p.Params, p.Frequency)
}

// Default radio settings, where Options.Radio leaves a field zero: SF7,
// 125 kHz, 4/5, an 8-symbol preamble at 869.525 MHz, the EU868 sub-band
// with a 10 % duty cycle that community meshes use.
const (
	DefaultSF        = 7
	DefaultBandwidth = 125_000
	DefaultCR        = lora.CR45
	DefaultFrequency = 869_525_000
)

// withDefaults fills the zero fields of p.
func (p RadioParams) withDefaults() RadioParams {
	if p.SF == 0 {
		p.SF = DefaultSF
	}
	if p.Bandwidth == 0 {
		p.Bandwidth = DefaultBandwidth
	}
	if p.CR == 0 {
		p.CR = DefaultCR
	}
	if p.Preamble == 0 {
		p.Preamble = lora.DefaultPreamble
	}
	if p.Frequency == 0 {
		p.Frequency = DefaultFrequency
	}
	return p
}

// MockRadio is a Radio on a simulated lora.Medium (lora+mock).
type MockRadio struct {
	r *lora.Radio
	p RadioParams
}

var (
	_ Radio         = (*MockRadio)(nil)
	_ CarrierSenser = (*MockRadio)(nil)
)

// AttachMock attaches a radio named name with settings p to m. The medium
// models one channel: Frequency is only reported (it picks the
// duty-cycle sub-band), radios on one medium hear each other when their
// SF and bandwidth match. Errors are lora's (*lora.ParamError,
// lora.ErrNameInUse).
func AttachMock(m *lora.Medium, name string, p RadioParams) (*MockRadio, error) {
	r, err := m.Attach(name, p.Params)
	if err != nil {
		return nil, err
	}
	return &MockRadio{r: r, p: p}, nil
}

// Send puts the packet on the medium (lora.Radio.Send).
func (r *MockRadio) Send(packet []byte) error { return r.r.Send(packet) }

// Recv returns the next packet heard (lora.Radio.Recv).
func (r *MockRadio) Recv(ctx context.Context) ([]byte, error) {
	p, err := r.r.Recv(ctx)
	return p.Data, err
}

// Params are the settings the radio was attached with.
func (r *MockRadio) Params() RadioParams { return r.p }

// CarrierSense reports another radio's transmission on air.
func (r *MockRadio) CarrierSense() bool { return r.r.CarrierSense() }

// Close detaches the radio from the medium.
func (r *MockRadio) Close() error { return r.r.Close() }

// Radio is the medium's radio, for its Stats and Name.
func (r *MockRadio) Radio() *lora.Radio { return r.r }

// MockNetwork hands out one lora.Medium per channel name, so that the
// nodes of one process (the simulator, tests, several nodes with
// lora+mock://same-name) share a channel. It is safe for concurrent use.
type MockNetwork struct {
	mu    sync.Mutex
	opts  lora.MediumOptions
	media map[string]*lora.Medium
}

// NewMockNetwork returns a network whose media take o (a zero o is the
// real clock and random losses). When o.Rand is set, each medium gets its
// own source seeded from it in order of first use, so that a seeded run
// stays repeatable and media never share a source.
func NewMockNetwork(o lora.MediumOptions) *MockNetwork {
	return &MockNetwork{opts: o, media: map[string]*lora.Medium{}}
}

// Medium returns the medium of channel, creating it on first use.
func (n *MockNetwork) Medium(channel string) *lora.Medium {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m := n.media[channel]; m != nil {
		return m
	}
	o := n.opts
	if o.Rand != nil {
		o.Rand = rand.New(rand.NewPCG(o.Rand.Uint64(), o.Rand.Uint64()))
	}
	m := lora.NewMedium(o)
	n.media[channel] = m
	return m
}
