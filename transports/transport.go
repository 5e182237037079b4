package transports

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// Transport opens links of one kind (TCP, QUIC, in-memory, LoRa). It is
// the seam between the node and the network: everything above it sees
// authenticated frames, everything below it is bytes.
//
// Contract, for implementers and callers:
//
//   - A Transport is safe for concurrent use by multiple goroutines.
//   - addr is transport-specific and never carries a scheme: "host:port"
//     for tcp and quic, a name for mem. ParseURI turns a URI into
//     (scheme, addr).
//   - Listen and Dial honour ctx for the setup only (binding, connecting,
//     the identity handshake). The returned Listener or Conn lives until
//     its Close, whatever happens to ctx afterwards.
//   - Dial returns only after the peer proved its identity: Conn.Peer is
//     authenticated (by the TCP handshake, by TLS 1.3 for QUIC, or trusted
//     in-process for mem). A failed proof returns an error matching
//     ErrHandshake and leaves nothing open; a peer that presents our own
//     identity (the address reaches this node itself) fails so too, with
//     an error that also matches ErrSelf.
//   - Info describes the links this transport makes by default; a Conn's
//     own Info may differ (a mem network can give each link its own
//     properties).
type Transport interface {
	Info() Info
	Listen(ctx context.Context, addr string) (Listener, error)
	Dial(ctx context.Context, addr string) (Conn, error)
}

// Listener accepts authenticated connections.
//
// Contract:
//
//   - Accept returns the next connection whose identity handshake
//     succeeded. Handshakes run concurrently inside the listener, so one
//     slow or hostile client never delays the others; failed handshakes are
//     not returned by Accept (transports report them through an option
//     such as OnHandshakeError).
//   - Accept returns ctx.Err() when ctx ends first, and an error matching
//     net.ErrClosed once the listener is closed. Accept may be called from
//     several goroutines.
//   - Addr is the address actually bound, so Listen(ctx, "127.0.0.1:0")
//     followed by Dial(ctx, l.Addr()) works.
//   - Close stops accepting and unblocks pending Accept calls; connections
//     already returned by Accept stay open. Handshakes still in progress
//     are aborted. Close may be called more than once; when it returns, the
//     listener's goroutines have exited.
type Listener interface {
	Accept(ctx context.Context) (Conn, error)
	Addr() string
	Close() error
}

// Conn is an authenticated, ordered, reliable link to one peer that carries
// whole frames (byte strings of at most the transport's frame limit).
//
// Contract:
//
//   - WriteFrame may be called by one goroutine at a time (a link's writer);
//     ReadFrame by one goroutine at a time (a link's reader). The two may
//     run concurrently with each other. Close, Peer, PeerKey, LocalAddr,
//     RemoteAddr and Info may be called from any goroutine at any time.
//   - WriteFrame does not retain p after it returns. A nil error means the
//     frame was queued for sending, not that the peer received it; a later
//     WriteFrame or ReadFrame reports a failure of the link. WriteFrame may
//     block while the send queue is full (that is the backpressure). A
//     frame longer than the limit is refused with an error matching
//     ErrFrameTooLarge and nothing is sent.
//   - ReadFrame returns the next frame; the caller owns the returned slice.
//     A declared length above the limit returns an error matching
//     ErrFrameTooLarge before anything is allocated for it; a malformed
//     length prefix returns ErrBadFrame. After either, the connection is
//     unusable: close it and log the error. ReadFrame returns io.EOF (not
//     wrapped) when the peer closed the link cleanly between frames.
//   - After Close, ReadFrame and WriteFrame return an error matching
//     net.ErrClosed, and calls blocked in them return with it. Close may be
//     called more than once and from any goroutine; only the first call
//     does anything, later ones return nil. Frames queued but not yet
//     delivered when Close is called may be lost (TCP tries to flush them
//     for a bounded time first); a sender that needs delivery must get an
//     acknowledgement from the peer.
//   - Peer and PeerKey are the authenticated identity of the other side and
//     never change: Peer == crypto.AddressOf(PeerKey).
type Conn interface {
	WriteFrame(p []byte) error
	ReadFrame() ([]byte, error)
	Peer() crypto.Address
	PeerKey() ed25519.PublicKey
	LocalAddr() string
	RemoteAddr() string
	Info() Info
	Close() error
}

// Broadcaster is implemented by transports whose medium reaches every
// peer in range with one transmission (LoRa: one radio, one channel). The
// node sends frames meant for every neighbour (announces, their
// re-broadcasts, flooded envelopes) once per Broadcaster instead of once
// per peer (issue 12).
//
// Contract:
//
//   - Broadcast queues frame for every peer of the transport at once and
//     does not retain it. It never blocks: when the send queue is full
//     and lower-priority frames cannot make room it returns an error
//     (LoRa: lora.ErrQueueFull) and sends nothing; a frame over the
//     transport's limit is refused with ErrFrameTooLarge.
//   - A broadcast is best effort: no acknowledgement, no retransmission,
//     and every node in range receives it, also one the caller would
//     rather leave out (the sender of a re-broadcast announce): receivers
//     drop such copies by their own deduplication.
//   - A broadcast frame arrives at each receiver on the Conn of the
//     sending peer, like the peer's other frames.
type Broadcaster interface {
	Broadcast(frame []byte, prio messages.Priority) error
}

// BroadcastConn is implemented by the Conns of a Broadcaster: Broadcaster
// returns the transport that reaches this Conn's peer with a broadcast.
type BroadcastConn interface {
	Broadcaster() Broadcaster
}

// SignalReader is implemented by Conns over a radio: ReadFrameSignal is
// ReadFrame that also reports how the frame was received (SNR, RSSI,
// airtime; messages.Signal), for the managed flood of announces.
type SignalReader interface {
	ReadFrameSignal() ([]byte, messages.Signal, error)
}

// Frame limits.
const (
	// DefaultMaxFrameSize is the frame limit when an option leaves it zero:
	// a 1 MiB body plus 4 KiB of room for the envelope around it.
	DefaultMaxFrameSize = 1<<20 + 4<<10

	// MaxFrameSizeCap is the largest frame limit a transport accepts. It
	// keeps the length prefix at MaxFramePrefix bytes.
	MaxFrameSizeCap = 1 << 30
)

// Defaults shared by the stream transports (tcp, quic).
const (
	// DefaultHandshakeTimeout bounds an outbound connection's handshake.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultAcceptTimeout bounds an inbound connection's handshake, from
	// accept to the proven identity (TCP) or to the frame stream (QUIC,
	// after TLS). The exchange is one and a half round trips of 132 bytes
	// each way: even at a 1 s round trip with one lost segment resent
	// after TCP's 1 s initial RTO it is done in 2.5 s, and every second
	// more is a second an idle connection holds a slot.
	DefaultAcceptTimeout = 3 * time.Second
	DefaultLinger        = 1 * time.Second
	// DefaultMaxPending bounds a listener's pending handshakes (plus
	// connections waiting for Accept) from all sources.
	DefaultMaxPending = 64
	// DefaultMaxPendingPerSource bounds those from one source (an IPv4
	// address or an IPv6 /64). An honest handshake takes a round trip or
	// two, so even many peers behind one NAT rarely have 8 in flight.
	DefaultMaxPendingPerSource = 8
	// DefaultFrameTimeout bounds the reading of one frame once its first
	// byte arrived: a 1 MiB frame needs 280 kbit/s to make it.
	DefaultFrameTimeout = 30 * time.Second
	// DefaultBitrate is the nominal bitrate (bit/s) an IP transport reports
	// when not told its real uplink speed: 100 Mbit/s.
	DefaultBitrate = 100_000_000
)

// FrameLimit returns the effective frame limit for an option value: the
// default for zero, an error matching ErrBadOptions for a negative value
// or one above MaxFrameSizeCap.
func FrameLimit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultMaxFrameSize, nil
	case n < 0 || n > MaxFrameSizeCap:
		return 0, fmt.Errorf("%w: MaxFrameSize %d, want 1 to %d (0 for the default %d)",
			ErrBadOptions, n, MaxFrameSizeCap, DefaultMaxFrameSize)
	}
	return n, nil
}

// DialPeer dials addr and checks that the peer is the identity want. On a
// mismatch it closes the connection and returns an error matching
// ErrPeerMismatch. Nothing is written to the connection before the check.
func DialPeer(ctx context.Context, t Transport, addr string, want crypto.Address) (Conn, error) {
	c, err := t.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	if got := c.Peer(); got != want {
		c.Close()
		return nil, fmt.Errorf("transports/%s: dial %s: %w: want %s, got %s",
			t.Info().Name, addr, ErrPeerMismatch, want, got)
	}
	return c, nil
}
