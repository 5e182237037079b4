package link

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/transports/lora"
)

// Options configure a Transport. Only Identity is required (and Medium
// for NewMock); zero fields take the defaults below.
type Options struct {
	// Identity is the node's key: it signs the HELLOs, and its address's
	// first bytes are the node's hint on air.
	Identity *crypto.Identity

	// Channel names the radio's channel: what Listener.Addr returns and
	// what Listen and Dial accept (their addr may also be empty). For
	// lora+mock the channel name, for lora+serial the device path.
	// Default "lora".
	Channel string

	// Medium is the simulated channel NewMock attaches the radio to.
	Medium *lora.Medium
	// Name is the radio's name on Medium; default the identity's address
	// in hex. It appears in lora.Packet.From and Medium.SetLoss.
	Name string
	// Radio is the modulation and frequency NewMock attaches with; zero
	// fields take DefaultSF, DefaultBandwidth, DefaultCR,
	// lora.DefaultPreamble and DefaultFrequency. New takes them from
	// Radio.Params instead.
	Radio RadioParams

	// Region is the regulatory region; the zero Region means lora.EU868.
	Region lora.Region
	// DataShare is the share of the duty-cycle budget reserved for user
	// data (0 < share < 1): control traffic (HELLOs, ACKs, NACKs, BYEs and
	// frames of priority messages.Control) may use only the rest. Zero
	// means lora.DefaultDataShare (half).
	DataShare float64

	// AnnounceShare caps the airtime of announces at this share of the
	// channel's time (0 < share <= 1; 1: no cap): an announce waits until
	// the share allows it, and a queued announce is replaced by a newer
	// one of its destination. Zero means DefaultAnnounceShare (2 %, as
	// Reticulum).
	AnnounceShare float64

	// MTU is the largest radio packet in bytes, MinMTU..255. Zero means
	// lora.MTUFor(Radio) (51 at SF12, else 255), lowered to what fits the
	// region's dwell time (US915: 400 ms).
	MTU int
	// MaxFrameSize is the largest frame WriteFrame accepts and a peer may
	// send; zero (or anything larger) means FrameLimit(MTU).
	MaxFrameSize int

	// QueueFrames and QueueBytes bound the radio's outbound queue (all of
	// its connections together). Zero means DefaultQueueFrames and
	// DefaultQueueBytes.
	QueueFrames int
	QueueBytes  int
	// RecvQueue is the number of received frames buffered per connection
	// until ReadFrame takes them; frames beyond it are not acknowledged
	// (the sender retries). Zero means DefaultRecvQueue.
	RecvQueue int
	// MaxPeers bounds the peers remembered from their HELLOs. Zero means
	// DefaultMaxPeers.
	MaxPeers int

	// HelloInterval is the period of the node's HELLO (±10 %). Zero means
	// DefaultHelloInterval.
	HelloInterval time.Duration
	// MaxClockSkew refuses HELLOs whose timestamp is further than this
	// from our clock. Zero means DefaultMaxClockSkew; a negative value
	// turns the check off (for nodes without a set clock).
	MaxClockSkew time.Duration
	// MaxRounds is how many times a frame is sent in all (the first send
	// included) without an acknowledgement before it is given up: dropped
	// (Stats.FramesDropped) when the peer was heard within PeerSilence,
	// else its connection fails with ErrPeerLost. Zero means
	// lora.DefaultMaxRounds (8).
	MaxRounds int
	// PeerSilence is how long a peer must have been silent (no packet of
	// it verified: no HELLO, no DATA, ACK, NACK or BYE with its MAC, no
	// broadcast) for a frame given up on to fail its connection with
	// ErrPeerLost. A peer heard more recently is alive on a busy channel:
	// only the frame is dropped, the connection stays, and the end-to-end
	// retransmission recovers the message. Zero (or negative) means two
	// HELLO intervals (20 minutes by default): a live peer HELLOs every
	// interval ±10 %, so one lost HELLO does not make it silent.
	PeerSilence time.Duration
	// ReportTimeout is how long the sender waits for an ACK or NACK after
	// a round's last packet has gone out. Zero means twice the airtime of
	// the longest NACK plus 250 ms.
	ReportTimeout time.Duration

	// Clock is the time source; default clock.Real{}. Tests and the
	// simulator pass the Medium's manual clock.
	Clock clock.Clock
	// Rand draws the jitter and back-off times and the first message id;
	// default a randomly seeded PCG. The transport uses it under its own
	// lock: do not share it.
	Rand *rand.Rand
	// Logger receives debug lines about dropped packets; default none.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultQueueFrames   = 64
	DefaultQueueBytes    = 128 << 10 // two of the largest frames
	DefaultRecvQueue     = 64
	DefaultMaxPeers      = 64
	DefaultHelloInterval = 10 * time.Minute
	DefaultMaxClockSkew  = time.Hour
	DefaultChannel       = "lora"

	// reportGuard is the part of the default ReportTimeout that is not
	// airtime: the peer's processing and a serial modem's latency.
	reportGuard = 250 * time.Millisecond
)
