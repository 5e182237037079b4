// Package mem is the in-process transport, the in-memory twin of tcp and
// quic for tests and the simulator. A Network is a registry of listeners
// by name; transports made from it dial each other by name. There is no
// crypto: the dialer hands over its public key and the listener its own,
// which is sound because both live in the same process.
//
// A connection is a pair of bounded frame queues. It starts no goroutine,
// so hundreds of nodes cost only their queues, and nothing outlives Close.
//
// # Link models
//
// By default a link is instant: a written frame is readable at once. A
// LinkModel (Network.SetModel per pair of names, WithModel for all) makes
// it behave like a TCP or QUIC stream in time, on the network's clock
// (WithClock; the simulator passes its clock.Manual) with jitter and loss
// drawn from the network's seeded random source (WithRand, WithSeed):
//
//   - The link stays reliable and ordered, as the streams it stands for:
//     frames are never dropped, duplicated or reordered.
//   - Each direction is a FIFO with one transmitter. A frame of n bytes
//     written at t starts sending at max(t, the time the previous frame
//     finished) and takes n*8/Bandwidth to send (none when Bandwidth is 0).
//   - It is delivered Latency after it finished sending, plus a jitter
//     uniform in [0, Jitter], plus one RTO (LinkModel.RTO, by default
//     max(3*Latency, MinRTO) = max(3*Latency, 200ms)) for every loss: with
//     probability Loss the transmission is lost and retried, drawn again
//     for the retry (a geometric number of RTOs, no backoff; retransmissions
//     take no bandwidth). Delivery time is then raised to the previous
//     frame's delivery time if it came out earlier, so nothing reorders.
//   - Delivery is a clock.AfterFunc: one pending timer per direction, no
//     goroutine per frame, no sleeping. Frames in flight count toward the
//     direction's queue (Options.QueueFrames) like delivered unread ones:
//     WriteFrame blocks when the queue is full, exactly as on an instant
//     link, until the reader takes a frame.
//   - Close (of either end) discards the frames still in flight both ways
//     and stops the timers, as a reset would; frames already delivered are
//     still read by the peer before io.EOF. Partition resets a link
//     (ErrReset on both ends, nothing more is read) and refuses new dials
//     between the names until Heal.
//
// A model is fixed when a connection is dialed: SetModel, like SetLink,
// applies to connections dialed afterwards. A model with Bandwidth and no
// SetLink for the pair makes the link's Info report Bandwidth as Bitrate.
// Names are the dialer's transport Name and the address it dials, as for
// SetLink.
package mem

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/transports"
)

const prefix = "transports/mem"

// Errors of the mem transport.
var (
	// ErrRefused: no listener has that name, or its backlog is full.
	ErrRefused = errors.New("connection refused")
	// ErrAddrInUse: a listener already has that name.
	ErrAddrInUse = errors.New("address already in use")
)

// Defaults of the mem transport.
const (
	DefaultQueueFrames = 64  // frames buffered per direction of a link
	DefaultBacklog     = 128 // connections waiting for Accept per listener
	// DefaultBitrate is what mem links report unless told otherwise:
	// 1 Gbit/s, i.e. "fast" (mem paces frames only under a LinkModel).
	DefaultBitrate = 1_000_000_000
)

// Network is a set of named listeners that mem transports dial, with
// optional per-link properties. The zero value is not usable; call
// NewNetwork. A Network is safe for concurrent use.
type Network struct {
	mu        sync.Mutex
	listeners map[string]*listener
	links     map[[2]string]transports.Info
	models    map[[2]string]LinkModel
	cut       map[[2]string]bool
	live      map[[2]string]map[*pair]struct{} // open links, for Partition
	names     atomic.Uint64                    // for generated names

	clk      clock.Clock
	defModel LinkModel
	rndMu    sync.Mutex
	rnd      *rand.Rand
}

// NewNetwork returns an empty network: instant links on the real clock
// unless opts say otherwise.
func NewNetwork(opts ...NetworkOption) *Network {
	n := &Network{
		listeners: map[string]*listener{},
		links:     map[[2]string]transports.Info{},
		models:    map[[2]string]LinkModel{},
		cut:       map[[2]string]bool{},
		live:      map[[2]string]map[*pair]struct{}{},
		clk:       clock.Real{},
	}
	for _, o := range opts {
		o(n)
	}
	if n.rnd == nil {
		n.rnd = rand.New(rand.NewPCG(DefaultSeed, DefaultSeed))
	}
	return n
}

// SetLink gives links between the transport named a and the listener named
// b (in either direction) the properties info, instead of the dialer's
// Options.Info. It applies to connections dialed afterwards. info.Class is
// recomputed from info.
func (n *Network) SetLink(a, b string, info transports.Info) {
	if a > b {
		a, b = b, a
	}
	if info.Name == "" {
		info.Name = transports.SchemeMem
	}
	n.mu.Lock()
	n.links[[2]string{a, b}] = info.WithClass()
	n.mu.Unlock()
}

func (n *Network) linkInfo(a, b string) (transports.Info, bool) {
	if a > b {
		a, b = b, a
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	info, ok := n.links[[2]string{a, b}]
	return info, ok
}

// Options configure a mem Transport. Only Identity is required.
type Options struct {
	// Identity is the node's key, handed to peers as is.
	Identity *crypto.Identity
	// Name is the node's name on the network: what Listen(ctx, "") binds
	// and what dialed connections report as LocalAddr. Empty means a
	// generated "mem-N".
	Name string
	// MaxFrameSize is the largest frame this side sends. Zero means
	// transports.DefaultMaxFrameSize. A link's limit is the smaller of both
	// sides' and of its Info.Limit().
	MaxFrameSize int
	// Info is the default link properties (MTU, bitrate) of connections
	// this transport dials; zero fields get MTU = MaxFrameSize and
	// DefaultBitrate. Network.SetLink overrides it per link.
	Info transports.Info
	// QueueFrames is the number of frames buffered per direction; a writer
	// blocks when the queue is full. Zero means DefaultQueueFrames.
	QueueFrames int
	// Backlog is the number of dialed connections a listener holds until
	// Accept; further dials are refused. Zero means DefaultBacklog.
	Backlog int
}

// Transport is a node's endpoint on a Network.
type Transport struct {
	net   *Network
	opts  Options
	info  transports.Info
	conns atomic.Uint64 // for local names of dialed connections
}

var _ transports.Transport = (*Transport)(nil)

// NewTransport returns a transport on n.
func (n *Network) NewTransport(opts Options) (*Transport, error) {
	if opts.Identity == nil {
		return nil, fmt.Errorf("%s: %w: Identity is required", prefix, transports.ErrBadOptions)
	}
	limit, err := transports.FrameLimit(opts.MaxFrameSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	opts.MaxFrameSize = limit
	if opts.Name == "" {
		opts.Name = "mem-" + strconv.FormatUint(n.names.Add(1), 10)
	}
	if opts.QueueFrames <= 0 {
		opts.QueueFrames = DefaultQueueFrames
	}
	if opts.Backlog <= 0 {
		opts.Backlog = DefaultBacklog
	}
	info := opts.Info
	if info.Name == "" {
		info.Name = transports.SchemeMem
	}
	if info.MTU <= 0 {
		info.MTU = limit
	}
	if info.Bitrate <= 0 {
		info.Bitrate = DefaultBitrate
	}
	return &Transport{net: n, opts: opts, info: info.WithClass()}, nil
}

// Info describes the links this transport dials by default.
func (t *Transport) Info() transports.Info { return t.info }

// Name is the transport's name on the network.
func (t *Transport) Name() string { return t.opts.Name }

// Listen registers a listener under addr; an empty addr means the
// transport's Name. A name can be listened on once at a time.
func (t *Transport) Listen(ctx context.Context, addr string) (transports.Listener, error) {
	if addr == "" {
		addr = t.opts.Name
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", prefix, addr, err)
	}
	l := &listener{
		net:     t.net,
		t:       t,
		addr:    addr,
		backlog: make(chan *conn, t.opts.Backlog),
		done:    make(chan struct{}),
	}
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	if _, taken := t.net.listeners[addr]; taken {
		return nil, fmt.Errorf("%s: listen %s: %w", prefix, addr, ErrAddrInUse)
	}
	t.net.listeners[addr] = l
	return l, nil
}

// Dial connects to the listener named addr. It never blocks: a missing
// listener or a full backlog is refused at once (ErrRefused).
func (t *Transport) Dial(ctx context.Context, addr string) (transports.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: dial %s: %w", prefix, addr, err)
	}
	key := linkKey(t.opts.Name, addr)
	t.net.mu.Lock()
	l := t.net.listeners[addr]
	cut := t.net.cut[key]
	model, ok := t.net.models[key]
	if !ok {
		model = t.net.defModel
	}
	t.net.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("%s: dial %s: %w: no listener", prefix, addr, ErrRefused)
	}
	if cut {
		return nil, fmt.Errorf("%s: dial %s: %w: partitioned", prefix, addr, ErrRefused)
	}
	if l.t.opts.Identity.Address() == t.opts.Identity.Address() {
		return nil, fmt.Errorf("%s: dial %s: %w: %w", prefix, addr, transports.ErrHandshake, transports.ErrSelf)
	}

	info, ok := t.net.linkInfo(t.opts.Name, addr)
	if !ok {
		info = t.info
		if model.Bandwidth > 0 {
			info.Bitrate = model.Bandwidth
			info = info.WithClass()
		}
	}
	limit := min(t.opts.MaxFrameSize, l.t.opts.MaxFrameSize, info.Limit())
	local := t.opts.Name + "#" + strconv.FormatUint(t.conns.Add(1), 10)
	p := &pair{net: t.net, key: key, cut: make(chan struct{})}
	client, server := newPair(p, model, info, limit, t.opts.QueueFrames,
		t.opts.Identity.PublicKey(), l.t.opts.Identity.PublicKey(), local, addr)
	// Register the link for Partition; a partition that came meanwhile wins.
	t.net.mu.Lock()
	if t.net.cut[key] {
		t.net.mu.Unlock()
		return nil, fmt.Errorf("%s: dial %s: %w: partitioned", prefix, addr, ErrRefused)
	}
	set := t.net.live[key]
	if set == nil {
		set = map[*pair]struct{}{}
		t.net.live[key] = set
	}
	set[p] = struct{}{}
	t.net.mu.Unlock()
	if err := l.enqueue(server); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s: dial %s: %w", prefix, addr, err)
	}
	return client, nil
}

type listener struct {
	net     *Network
	t       *Transport
	addr    string
	backlog chan *conn

	mu     sync.RWMutex // held for reading while enqueuing, for writing by Close
	closed bool
	done   chan struct{}
}

func (l *listener) enqueue(c *conn) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return fmt.Errorf("%w: listener closed", ErrRefused)
	}
	select {
	case l.backlog <- c:
		return nil
	default:
		return fmt.Errorf("%w: backlog full", ErrRefused)
	}
}

func (l *listener) Accept(ctx context.Context) (transports.Conn, error) {
	select {
	case <-l.done:
		return nil, fmt.Errorf("%s: accept %s: %w", prefix, l.addr, net.ErrClosed)
	default:
	}
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("%s: accept %s: %w", prefix, l.addr, net.ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *listener) Addr() string { return l.addr }

func (l *listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock() // no enqueue is in progress from here on

	l.net.mu.Lock()
	if l.net.listeners[l.addr] == l {
		delete(l.net.listeners, l.addr)
	}
	l.net.mu.Unlock()
	for {
		select {
		case c := <-l.backlog:
			c.Close() // never accepted: the dialer sees EOF
		default:
			return nil
		}
	}
}

// conn is one end of an in-memory link. in and out are the two frame
// queues; the channels are never closed (a send on a closed channel would
// panic), the done channels say who has closed instead. On a modelled link
// inM and outM are the pipes that fill in and take what is written to out.
type conn struct {
	in, out    chan []byte
	inM, outM  *pipe // nil on an instant link
	pair       *pair
	done       chan struct{} // closed by our Close
	peerDone   chan struct{} // closed by the peer's Close
	closeOnce  sync.Once
	info       transports.Info
	limit      int
	peerKey    ed25519.PublicKey
	peer       crypto.Address
	local, rem string
}

func newPair(p *pair, model LinkModel, info transports.Info, limit, queue int, dialerKey, listenerKey ed25519.PublicKey, dialerName, listenerName string) (dialer, listener *conn) {
	aToB, bToA := make(chan []byte, queue), make(chan []byte, queue)
	aDone, bDone := make(chan struct{}), make(chan struct{})
	dialer = &conn{in: bToA, out: aToB, pair: p, done: aDone, peerDone: bDone, info: info, limit: limit,
		peerKey: listenerKey, peer: crypto.AddressOf(listenerKey), local: dialerName, rem: listenerName}
	listener = &conn{in: aToB, out: bToA, pair: p, done: bDone, peerDone: aDone, info: info, limit: limit,
		peerKey: dialerKey, peer: crypto.AddressOf(dialerKey), local: listenerName, rem: dialerName}
	if model != (LinkModel{}) {
		p.aToB, p.bToA = newPipe(p.net, model, aToB), newPipe(p.net, model, bToA)
		dialer.outM, dialer.inM = p.aToB, p.bToA
		listener.outM, listener.inM = p.bToA, p.aToB
	}
	return dialer, listener
}

func (c *conn) WriteFrame(p []byte) error {
	if len(p) > c.limit {
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, &transports.FrameTooLargeError{Size: uint64(len(p)), Limit: c.limit})
	}
	select {
	case <-c.done:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, net.ErrClosed)
	case <-c.peerDone:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, io.ErrClosedPipe)
	case <-c.pair.cut:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, ErrReset)
	default:
	}
	f := append([]byte{}, p...)
	if c.outM != nil {
		return c.writeModelled(f)
	}
	select {
	case c.out <- f:
		return nil
	case <-c.done:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, net.ErrClosed)
	case <-c.peerDone:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, io.ErrClosedPipe)
	case <-c.pair.cut:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, ErrReset)
	}
}

// writeModelled takes a slot of the queue (blocking while it is full of
// frames in flight or unread) and hands f to the pipe.
func (c *conn) writeModelled(f []byte) error {
	select {
	case c.outM.slots <- struct{}{}:
	case <-c.done:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, net.ErrClosed)
	case <-c.peerDone:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, io.ErrClosedPipe)
	case <-c.pair.cut:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, ErrReset)
	}
	if !c.outM.schedule(f) {
		// Closed or reset since the checks above: say which.
		select {
		case <-c.pair.cut:
			return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, ErrReset)
		case <-c.done:
			return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, net.ErrClosed)
		default:
			return fmt.Errorf("%s: write to %s: %w", prefix, c.rem, io.ErrClosedPipe)
		}
	}
	return nil
}

// got is called for every frame read: it frees the frame's slot.
func (c *conn) got(f []byte) []byte {
	if c.inM != nil {
		select {
		case <-c.inM.slots:
		default:
		}
	}
	return f
}

func (c *conn) ReadFrame() ([]byte, error) {
	select {
	case <-c.done:
		return nil, fmt.Errorf("%s: read from %s: %w", prefix, c.rem, net.ErrClosed)
	case <-c.pair.cut:
		return nil, fmt.Errorf("%s: read from %s: %w", prefix, c.rem, ErrReset)
	default:
	}
	select {
	case f := <-c.in:
		return c.got(f), nil
	case <-c.done:
		return nil, fmt.Errorf("%s: read from %s: %w", prefix, c.rem, net.ErrClosed)
	case <-c.pair.cut:
		return nil, fmt.Errorf("%s: read from %s: %w", prefix, c.rem, ErrReset)
	case <-c.peerDone:
		// Frames the peer queued before closing are still delivered.
		select {
		case f := <-c.in:
			return c.got(f), nil
		default:
			return nil, io.EOF
		}
	}
}

// Close closes this end; on a modelled link the frames in flight either
// way are discarded.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.pair.stop()
	})
	return nil
}

func (c *conn) Peer() crypto.Address       { return c.peer }
func (c *conn) PeerKey() ed25519.PublicKey { return c.peerKey }
func (c *conn) LocalAddr() string          { return c.local }
func (c *conn) RemoteAddr() string         { return c.rem }
func (c *conn) Info() transports.Info      { return c.info }
