// Package quic is the QUIC transport (quic-go): one QUIC connection per
// link, TLS 1.3 with each node's Ed25519 identity key in a self-signed
// certificate on both sides (no CA; the certificate's key is the
// identity), ALPN "qpc/1", and the frames on one long-lived bidirectional
// stream with the same length prefix as tcp (see the transports package
// documentation for the byte layout).
//
// Sockets: a listener bound to a wildcard address (":7702", "[::]:7702")
// is also used to dial while it is open, so peers see our listening port
// as the source of outbound connections (one UDP socket per node, friendlier
// to NATs). Otherwise each dial gets its own socket. A socket is closed
// when the last connection or listener using it is closed; closing a
// listener leaves the connections it accepted open.
package quic

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"golang.org/x/crypto/hkdf"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/internal/acceptq"
	"github.com/quicprochat/qpc/transports/internal/streamconn"
)

const prefix = "transports/quic"

// streamFrames is the byte the dialer writes first on the frame stream,
// so the listener sees the stream open without waiting for a frame. Other
// values are reserved for future streams (e.g. a priority stream).
const streamFrames = 0x01

// Application error codes sent in CONNECTION_CLOSE.
const (
	codeClosed   quicgo.ApplicationErrorCode = 0 // normal close
	codeProtocol quicgo.ApplicationErrorCode = 1 // the peer broke the stream setup
	codeBusy     quicgo.ApplicationErrorCode = 2 // too many pending setups (from the peer's source)
)

// Options configure a Transport. Only Identity is required.
type Options struct {
	// Identity is the node's key; TLS proves it to peers.
	Identity *crypto.Identity
	// MaxFrameSize is the largest frame sent or accepted, in bytes.
	// Zero means transports.DefaultMaxFrameSize.
	MaxFrameSize int
	// HandshakeTimeout bounds the TLS handshake plus the stream setup.
	// Zero means transports.DefaultHandshakeTimeout (10 s).
	HandshakeTimeout time.Duration
	// AcceptTimeout bounds, on a listener, the wait for an authenticated
	// peer to open its frame stream after TLS (the slot it holds meanwhile).
	// Zero means transports.DefaultAcceptTimeout (3 s).
	AcceptTimeout time.Duration
	// MaxIdleTimeout closes a connection that received nothing for this
	// long (the smaller of both sides' values applies). Zero means 15 s:
	// three missed keep-alives, so a peer that died is noticed within 15 s.
	MaxIdleTimeout time.Duration
	// KeepAlivePeriod is how often an idle connection sends a PING so it
	// stays up (and NAT bindings with it). Zero means 5 s; negative
	// disables keep-alives. The stateless reset key is derived from the
	// identity, so a node restarted on the same port resets connections of
	// its previous run as soon as they send it data (quic-go does not answer
	// packets as small as a bare keep-alive with a reset).
	KeepAlivePeriod time.Duration
	// Linger bounds how long Conn.Close waits for queued frames to be
	// handed to quic-go (only long when flow control is exhausted). Zero
	// means transports.DefaultLinger (1 s).
	Linger time.Duration
	// Bitrate is the nominal link rate reported in Info, in bit/s. Zero
	// means transports.DefaultBitrate (100 Mbit/s).
	Bitrate int64
	// MaxPending bounds a listener's concurrent stream setups plus
	// connections waiting for Accept. Zero means DefaultMaxPending (64).
	MaxPending int
	// MaxPendingPerSource bounds those from one source address (an IPv4
	// address, an IPv6 /64); connections beyond it are closed at once with
	// application error code 2 (busy). Zero means
	// transports.DefaultMaxPendingPerSource (8).
	MaxPendingPerSource int
	// ReservedPending slots beyond MaxPending are kept for sources that
	// completed a stream setup recently. Zero means a quarter of
	// MaxPending; negative means none.
	ReservedPending int
	// FrameTimeout and FrameBudget are as in tcp.Options: a deadline on a
	// frame once its first byte arrived (zero: transports.DefaultFrameTimeout;
	// negative: none), and the budget large frames reserve from.
	FrameTimeout time.Duration
	FrameBudget  *transports.FrameBudget
	// OnHandshakeError, when set, is called (on a listener goroutine) for
	// every inbound connection that failed its stream setup after TLS, for
	// metrics. Connections that TLS refuses (no or bad certificate, other
	// ALPN) never leave quic-go and are not reported.
	OnHandshakeError func(remoteAddr string, err error)
	// Logger receives debug lines about failed inbound connections. Nil
	// means no logging.
	Logger *slog.Logger
}

// Transport is the QUIC transport. It is safe for concurrent use.
type Transport struct {
	opts Options
	info transports.Info
	tls  *tls.Config
	conf *quicgo.Config

	resetKey *quicgo.StatelessResetKey

	mu     sync.Mutex
	shared *endpoint // a wildcard listener's socket, used to dial while open
}

// resetKeyFor derives the QUIC stateless reset key from the identity, so
// a restarted node can reset connections its previous run held.
func resetKeyFor(id *crypto.Identity) (*quicgo.StatelessResetKey, error) {
	var k quicgo.StatelessResetKey
	r := hkdf.New(sha256.New, id.PrivateKey().Seed(), nil, []byte("qpc/quic/stateless-reset/v1"))
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return nil, err
	}
	return &k, nil
}

var _ transports.Transport = (*Transport)(nil)

// New validates opts, fills in defaults, makes the identity certificate
// and returns the transport.
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
	if opts.MaxIdleTimeout <= 0 {
		opts.MaxIdleTimeout = 15 * time.Second
	}
	switch {
	case opts.KeepAlivePeriod == 0:
		opts.KeepAlivePeriod = 5 * time.Second
	case opts.KeepAlivePeriod < 0:
		opts.KeepAlivePeriod = 0 // quic-go: zero disables
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
	resetKey, err := resetKeyFor(opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("%s: reset key: %w", prefix, err)
	}
	cert, err := certificate(opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("%s: identity certificate: %w", prefix, err)
	}
	info := transports.Info{Name: transports.SchemeQUIC, MTU: limit, MaxFrame: limit, Bitrate: opts.Bitrate, FlowControl: true}
	return &Transport{
		resetKey: resetKey,
		opts:     opts,
		info:     info.WithClass(),
		tls:      tlsConfig(cert, opts.Identity.PublicKey()),
		conf: &quicgo.Config{
			// quic-go aborts after twice this without completing.
			HandshakeIdleTimeout:  opts.HandshakeTimeout / 2,
			MaxIdleTimeout:        opts.MaxIdleTimeout,
			KeepAlivePeriod:       opts.KeepAlivePeriod,
			MaxIncomingStreams:    4, // one frame stream now, room for a priority stream later
			MaxIncomingUniStreams: -1,
		},
	}, nil
}

// Info describes the links of this transport.
func (t *Transport) Info() transports.Info { return t.info }

// Listen binds a UDP socket at addr (host:port; port 0 picks a free one)
// and accepts QUIC connections on it.
func (t *Transport) Listen(ctx context.Context, addr string) (transports.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", prefix, addr, err)
	}
	ep, err := newEndpoint(addr, t.resetKey)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", prefix, addr, err)
	}
	ln, err := ep.tr.Listen(t.tls, t.conf)
	if err != nil {
		ep.release()
		return nil, fmt.Errorf("%s: listen %s: %w", prefix, addr, err)
	}
	if ip := ep.udp.LocalAddr().(*net.UDPAddr).IP; ip.IsUnspecified() {
		t.mu.Lock()
		if t.shared == nil {
			t.shared = ep
		}
		t.mu.Unlock()
	}
	q := acceptq.Start(acceptq.Config[*quicgo.Conn]{
		Prefix:   prefix,
		Accept:   func() (*quicgo.Conn, error) { return ln.Accept(context.Background()) },
		IsClosed: func(err error) bool { return errors.Is(err, net.ErrClosed) },
		Upgrade: func(ctx context.Context, qc *quicgo.Conn) (transports.Conn, error) {
			return t.acceptStream(ctx, ep, qc)
		},
		Remote: func(qc *quicgo.Conn) net.Addr { return qc.RemoteAddr() },
		Refuse: func(qc *quicgo.Conn) { qc.CloseWithError(codeBusy, "busy") },
		Limits: acceptq.Limits{
			MaxPending: t.opts.MaxPending,
			PerSource:  t.opts.MaxPendingPerSource,
			Reserved:   t.opts.ReservedPending,
		},
		OnError: t.reportHandshakeError,
	})
	return &listener{t: t, ep: ep, ln: ln, q: q}, nil
}

func (t *Transport) reportHandshakeError(remote string, err error) {
	if t.opts.Logger != nil {
		t.opts.Logger.Debug("inbound connection failed", "component", "transports/quic", "remote", remote, "err", err)
	}
	if t.opts.OnHandshakeError != nil {
		t.opts.OnHandshakeError(remote, err)
	}
}

// acceptStream finishes an inbound connection whose TLS handshake is done:
// it waits for the dialer's frame stream and its first byte.
func (t *Transport) acceptStream(ctx context.Context, ep *endpoint, qc *quicgo.Conn) (transports.Conn, error) {
	remote := qc.RemoteAddr().String()
	fail := func(code quicgo.ApplicationErrorCode, err error) (transports.Conn, error) {
		qc.CloseWithError(code, "")
		return nil, fmt.Errorf("%s: accept from %s: %w", prefix, remote, err)
	}
	if !ep.acquire() {
		return fail(codeClosed, net.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.AcceptTimeout)
	defer cancel()
	st, err := qc.AcceptStream(ctx)
	if err != nil {
		ep.release()
		return fail(codeProtocol, fmt.Errorf("%w: no frame stream: %w", transports.ErrHandshake, err))
	}
	stop := context.AfterFunc(ctx, func() { st.SetReadDeadline(aLongTimeAgo) })
	var kind [1]byte
	_, err = io.ReadFull(st, kind[:])
	if !stop() && err == nil {
		err = context.Cause(ctx)
	}
	if err == nil && kind[0] != streamFrames {
		err = fmt.Errorf("unknown stream type %#x", kind[0])
	}
	if err != nil {
		ep.release()
		return fail(codeProtocol, fmt.Errorf("%w: frame stream: %w", transports.ErrHandshake, err))
	}
	st.SetReadDeadline(time.Time{})
	return t.newConn(ep, qc, st)
}

// aLongTimeAgo is a deadline in the past: setting it unblocks I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// Dial connects to addr (host:port), proves identities both ways through
// TLS and opens the frame stream.
func (t *Transport) Dial(ctx context.Context, addr string) (transports.Conn, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s: %w", prefix, addr, err)
	}
	t.mu.Lock()
	ep := t.shared
	if ep != nil && !ep.acquire() {
		ep = nil
	}
	t.mu.Unlock()
	if ep == nil {
		if ep, err = newEndpoint(":0", t.resetKey); err != nil {
			return nil, fmt.Errorf("%s: dial %s: %w", prefix, addr, err)
		}
	}
	return t.dialOn(ctx, ep, udpAddr, addr)
}

// dialOn dials udpAddr from ep, whose reference it takes over.
func (t *Transport) dialOn(ctx context.Context, ep *endpoint, udpAddr *net.UDPAddr, addr string) (transports.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.opts.HandshakeTimeout)
	defer cancel()
	qc, err := ep.tr.Dial(ctx, udpAddr, t.tls, t.conf)
	if err != nil {
		ep.release()
		if isHandshakeError(err) {
			return nil, fmt.Errorf("%s: dial %s: %w: %w", prefix, addr, transports.ErrHandshake, err)
		}
		return nil, fmt.Errorf("%s: dial %s: %w", prefix, addr, err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err == nil {
		_, err = st.Write([]byte{streamFrames})
	}
	if err != nil {
		qc.CloseWithError(codeProtocol, "")
		ep.release()
		return nil, fmt.Errorf("%s: dial %s: open frame stream: %w", prefix, addr, err)
	}
	return t.newConn(ep, qc, st)
}

// isHandshakeError reports whether a dial failed because TLS rejected
// the peer (or the peer us), or the handshake timed out.
func isHandshakeError(err error) bool {
	var te *quicgo.TransportError
	var hte *quicgo.HandshakeTimeoutError
	return (errors.As(err, &te) && te.ErrorCode.IsCryptoError()) || errors.As(err, &hte)
}

// newConn wraps an established connection and its frame stream. The
// Conn holds one reference to ep, released when it closes.
func (t *Transport) newConn(ep *endpoint, qc *quicgo.Conn, st *quicgo.Stream) (transports.Conn, error) {
	certs := qc.ConnectionState().TLS.PeerCertificates
	raw := make([][]byte, len(certs))
	for i, c := range certs {
		raw[i] = c.Raw
	}
	key, err := peerKey(raw, t.opts.Identity.PublicKey())
	if err != nil { // cannot happen: TLS ran the same check
		qc.CloseWithError(codeProtocol, "")
		ep.release()
		return nil, fmt.Errorf("%s: %s: %w", prefix, qc.RemoteAddr(), err)
	}
	return streamconn.New(streamconn.Config{
		Prefix: prefix,
		Stream: stream{st},
		Close: func(flushed bool) error {
			if flushed {
				st.Close() // FIN after the last frame
			} else {
				// A Write is still blocked on flow control. Stream.Close
				// must not race with it (quic-go would leave it blocked);
				// CancelWrite makes it return.
				st.CancelWrite(quicgo.StreamErrorCode(codeClosed))
			}
			err := qc.CloseWithError(codeClosed, "")
			ep.release()
			return err
		},
		PeerKey:         key,
		Info:            t.info,
		LocalAddr:       qc.LocalAddr().String(),
		RemoteAddr:      qc.RemoteAddr().String(),
		MaxFrameSize:    t.opts.MaxFrameSize,
		Linger:          t.opts.Linger,
		FrameTimeout:    t.opts.FrameTimeout,
		FrameBudget:     t.opts.FrameBudget,
		SetReadDeadline: st.SetReadDeadline,
	}), nil
}

// stream maps quic-go's end-of-connection errors to what the transports
// contract promises: the peer closing normally is io.EOF on read and
// io.ErrClosedPipe on write.
type stream struct{ *quicgo.Stream }

func (s stream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if err != nil && closedByPeer(err) {
		err = io.EOF
	}
	return n, err
}

func (s stream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	if err != nil && closedByPeer(err) {
		err = io.ErrClosedPipe
	}
	return n, err
}

func closedByPeer(err error) bool {
	var ae *quicgo.ApplicationError
	return errors.As(err, &ae) && ae.Remote && ae.ErrorCode == codeClosed
}

type listener struct {
	t    *Transport
	ep   *endpoint
	ln   *quicgo.Listener
	q    *acceptq.Queue
	once sync.Once
}

func (l *listener) Accept(ctx context.Context) (transports.Conn, error) { return l.q.Accept(ctx) }
func (l *listener) Addr() string                                        { return l.ep.udp.LocalAddr().String() }

func (l *listener) Close() error {
	l.once.Do(func() {
		l.t.mu.Lock()
		if l.t.shared == l.ep {
			l.t.shared = nil
		}
		l.t.mu.Unlock()
		l.ln.Close()
		l.q.Close()
		l.ep.release()
	})
	return nil
}

// endpoint is a UDP socket with its quic-go Transport, shared by a
// listener and the connections using the socket, and closed with the last
// of them.
type endpoint struct {
	udp *net.UDPConn
	tr  *quicgo.Transport

	mu   sync.Mutex
	refs int
}

// newEndpoint binds addr and returns an endpoint holding one reference.
func newEndpoint(addr string, resetKey *quicgo.StatelessResetKey) (*endpoint, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return nil, err
	}
	return &endpoint{udp: udp, tr: &quicgo.Transport{Conn: udp, StatelessResetKey: resetKey}, refs: 1}, nil
}

// acquire takes a reference; it fails once the endpoint is closed.
func (e *endpoint) acquire() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refs == 0 {
		return false
	}
	e.refs++
	return true
}

// release drops a reference and closes the socket with the last one.
func (e *endpoint) release() {
	e.mu.Lock()
	e.refs--
	last := e.refs == 0
	e.mu.Unlock()
	if last {
		e.tr.Close()
		e.udp.Close()
	}
}
