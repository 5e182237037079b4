// Package tcp is the TCP transport: length-prefixed frames over a TCP
// connection, after a mutual Ed25519 handshake (see the transports package
// documentation for both byte layouts).
//
// TCP carries no encryption here. The handshake proves who is at the other
// end when the connection opens; it does not protect the frames that
// follow from an on-path attacker. What travels in them is protected end to
// end (sealed messages, signed announces); prefer quic where links should
// also be confidential.
package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/internal/acceptq"
	"github.com/quicprochat/qpc/transports/internal/streamconn"
)

const prefix = "transports/tcp"

// Options configure a Transport. Only Identity is required.
type Options struct {
	// Identity is the node's key; the handshake proves it to peers.
	Identity *crypto.Identity
	// MaxFrameSize is the largest frame sent or accepted, in bytes.
	// Zero means transports.DefaultMaxFrameSize.
	MaxFrameSize int
	// HandshakeTimeout bounds the identity handshake of each outbound
	// connection. Zero means transports.DefaultHandshakeTimeout (10 s).
	HandshakeTimeout time.Duration
	// AcceptTimeout bounds the handshake of each inbound connection, from
	// accept to the verified signature: how long a stranger that sends
	// nothing holds a handshake slot. Zero means
	// transports.DefaultAcceptTimeout (3 s).
	AcceptTimeout time.Duration
	// KeepAlive is the TCP keep-alive period, which detects dead peers on
	// idle links. Zero means 15 s; negative disables keep-alives.
	KeepAlive time.Duration
	// Linger bounds how long Conn.Close waits for queued frames to reach
	// the kernel. Zero means transports.DefaultLinger (1 s).
	Linger time.Duration
	// Bitrate is the nominal link rate reported in Info, in bit/s. Zero
	// means transports.DefaultBitrate (100 Mbit/s).
	Bitrate int64
	// MaxPending bounds a listener's concurrent handshakes plus connections
	// waiting for Accept. Zero means transports.DefaultMaxPending (64).
	MaxPending int
	// MaxPendingPerSource bounds those from one source address (an IPv4
	// address, an IPv6 /64); connections beyond it are closed at once.
	// Zero means transports.DefaultMaxPendingPerSource (8).
	MaxPendingPerSource int
	// ReservedPending slots beyond MaxPending are kept for sources that
	// completed a handshake recently (the listener remembers the last
	// 1024). Zero means a quarter of MaxPending; negative means none.
	ReservedPending int
	// FrameTimeout bounds the reading of one frame once its first byte has
	// arrived; a peer that stalls inside a frame for longer fails the read
	// with transports.ErrFrameTimeout. Zero means
	// transports.DefaultFrameTimeout (30 s); negative disables it.
	FrameTimeout time.Duration
	// FrameBudget, when set, is shared by every connection (of this and
	// other transports) for the frames they are reading: a frame above
	// 64 KiB reserves its length from it before its body is read, and
	// waits, within FrameTimeout, while the budget is used up.
	FrameBudget *transports.FrameBudget
	// OnHandshakeError, when set, is called (on a listener goroutine) for
	// every inbound connection that failed its handshake or was refused
	// for lack of slots (an error matching transports.ErrListenerBusy), for
	// metrics.
	OnHandshakeError func(remoteAddr string, err error)
	// Logger receives debug lines about failed inbound handshakes. Nil
	// means no logging.
	Logger *slog.Logger
}

// Transport is the TCP transport. It is safe for concurrent use.
type Transport struct {
	opts Options
	info transports.Info
}

var _ transports.Transport = (*Transport)(nil)

// New validates opts, fills in defaults and returns the transport.
func New(opts Options) (*Transport, error) {
	if opts.Identity == nil {
		return nil, fmt.Errorf("%s: %w: Identity is required", prefix, transports.ErrBadOptions)
	}
	limit, err := transports.FrameLimit(opts.MaxFrameSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	opts.MaxFrameSize = limit
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = transports.DefaultHandshakeTimeout
	}
	if opts.AcceptTimeout <= 0 {
		opts.AcceptTimeout = transports.DefaultAcceptTimeout
	}
	if opts.FrameTimeout == 0 {
		opts.FrameTimeout = transports.DefaultFrameTimeout
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.Linger <= 0 {
		opts.Linger = transports.DefaultLinger
	}
	if opts.Bitrate <= 0 {
		opts.Bitrate = transports.DefaultBitrate
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = transports.DefaultMaxPending
	}
	info := transports.Info{Name: transports.SchemeTCP, MTU: limit, MaxFrame: limit, Bitrate: opts.Bitrate, FlowControl: true}
	return &Transport{opts: opts, info: info.WithClass()}, nil
}

// Info describes the links of this transport.
func (t *Transport) Info() transports.Info { return t.info }

// Dial connects to addr (host:port) and runs the handshake as the dialer.
func (t *Transport) Dial(ctx context.Context, addr string) (transports.Conn, error) {
	d := net.Dialer{KeepAlive: t.opts.KeepAlive}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s: %w", prefix, addr, err)
	}
	return t.upgrade(ctx, raw, roleDialer, t.opts.HandshakeTimeout)
}

// Listen binds addr (host:port; port 0 picks a free one) and accepts
// connections, running the handshake as the listener for each.
func (t *Transport) Listen(ctx context.Context, addr string) (transports.Listener, error) {
	lc := net.ListenConfig{KeepAlive: t.opts.KeepAlive}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", prefix, addr, err)
	}
	q := acceptq.Start(acceptq.Config[net.Conn]{
		Prefix:   prefix,
		Accept:   ln.Accept,
		IsClosed: func(err error) bool { return errors.Is(err, net.ErrClosed) },
		Upgrade: func(ctx context.Context, raw net.Conn) (transports.Conn, error) {
			return t.upgrade(ctx, raw, roleListener, t.opts.AcceptTimeout)
		},
		Remote: func(raw net.Conn) net.Addr { return raw.RemoteAddr() },
		Refuse: func(raw net.Conn) { raw.Close() },
		Limits: acceptq.Limits{
			MaxPending: t.opts.MaxPending,
			PerSource:  t.opts.MaxPendingPerSource,
			Reserved:   t.opts.ReservedPending,
		},
		OnError: t.reportHandshakeError,
	})
	return &listener{ln: ln, q: q}, nil
}

func (t *Transport) reportHandshakeError(remote string, err error) {
	if t.opts.Logger != nil {
		t.opts.Logger.Debug("inbound connection failed", "component", "transports/tcp", "remote", remote, "err", err)
	}
	if t.opts.OnHandshakeError != nil {
		t.opts.OnHandshakeError(remote, err)
	}
}

// aLongTimeAgo is a deadline in the past: setting it unblocks I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// upgrade runs the handshake on raw within timeout and ctx, and wraps the
// result in a Conn. It closes raw on failure.
func (t *Transport) upgrade(ctx context.Context, raw net.Conn, r role, timeout time.Duration) (transports.Conn, error) {
	remote := raw.RemoteAddr().String()
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(aLongTimeAgo) })
	peerKey, err := handshake(raw, t.opts.Identity, r, deadline)
	if !stop() {
		// ctx ended during the handshake; its deadline may have been set
		// after the handshake cleared ours, so the socket is unusable.
		raw.Close()
		return nil, fmt.Errorf("%s: handshake with %s: %w: %w", prefix, remote, transports.ErrHandshake, context.Cause(ctx))
	}
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("%s: handshake with %s: %w", prefix, remote, err)
	}
	return streamconn.New(streamconn.Config{
		Prefix:          prefix,
		Stream:          raw,
		Close:           func(bool) error { return raw.Close() },
		PeerKey:         peerKey,
		Info:            t.info,
		LocalAddr:       raw.LocalAddr().String(),
		RemoteAddr:      remote,
		MaxFrameSize:    t.opts.MaxFrameSize,
		Linger:          t.opts.Linger,
		FrameTimeout:    t.opts.FrameTimeout,
		FrameBudget:     t.opts.FrameBudget,
		SetReadDeadline: raw.SetReadDeadline,
	}), nil
}

type listener struct {
	ln net.Listener
	q  *acceptq.Queue
}

func (l *listener) Accept(ctx context.Context) (transports.Conn, error) { return l.q.Accept(ctx) }
func (l *listener) Addr() string                                        { return l.ln.Addr().String() }

func (l *listener) Close() error {
	l.ln.Close() // a second Close reports net.ErrClosed; the contract says nil
	l.q.Close()
	return nil
}
