package discovery

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
)

// DefaultGroup is the IPv4 multicast group and port of qpc beacons:
// 239.255.0.0/16 is the IPv4 site-local ("local scope") block of RFC 2365.
var DefaultGroup = netip.MustParseAddrPort("239.255.70.77:7779")

// Defaults for the zero values of Options.
const (
	DefaultInterval    = 5 * time.Second
	DefaultDedupWindow = 60 * time.Second
	DefaultSourceRate  = 2.0 // beacons per second per source IP
	DefaultSourceBurst = 10
	DefaultTotalRate   = 100.0 // beacons per second from all sources together
	DefaultMaxSources  = 1024
	DefaultMaxPeers    = 4096
)

// Errors of the discovery service.
var (
	// ErrBadOptions: Options (or MulticastConfig) are invalid; the message
	// names the field.
	ErrBadOptions = errors.New("discovery: bad options")
	// ErrNothingToAnnounce: in ModeOn, none of Options.Listen can go in a
	// beacon (all loopback, or no tcp/quic listener).
	ErrNothingToAnnounce = errors.New("discovery: no listen address to announce")
)

// Mode switches the service on, to listening only, or off.
type Mode uint8

const (
	// ModeOn sends beacons and listens for others' (the zero value).
	ModeOn Mode = iota
	// ModePassive listens only: it finds peers without revealing itself.
	ModePassive
	// ModeOff does nothing: Start and Close return nil at once.
	ModeOff
)

func (m Mode) String() string {
	switch m {
	case ModeOn:
		return "on"
	case ModePassive:
		return "passive"
	case ModeOff:
		return "off"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Signer is the node identity: *crypto.Identity.
type Signer interface {
	PublicKey() ed25519.PublicKey
	Sign(msg []byte) []byte
}

// Options configure a Service. The zero value of each field is its default.
type Options struct {
	Mode Mode
	// Identity signs our beacons and recognises them when they loop back.
	// Required unless Mode is ModeOff.
	Identity Signer
	// Listen are the node's listen URIs; the tcp:// and quic:// ones go in
	// the beacon (see the package documentation for which and how).
	Listen []string

	// Group is the multicast group and port; zero means DefaultGroup.
	Group netip.AddrPort
	// Interfaces names the interfaces to use; empty means all that are up
	// and multicast-capable. IncludeLoopback adds loopback to those, and
	// also advertises loopback listeners (with their address) in the beacon.
	Interfaces      []string
	IncludeLoopback bool
	// Conn replaces the multicast socket (tests, the simulator). When set,
	// Group and Interfaces are not used.
	Conn Conn

	// Interval between beacons, each jittered by ±25 %.
	Interval time.Duration
	// DedupWindow: a peer is reported at most once per window, unless its
	// URIs change.
	DedupWindow time.Duration
	// MaxSkew, if > 0, drops beacons whose time is further than this from
	// ours (limits replays). Zero accepts any time: LAN devices often have
	// no real-time clock.
	MaxSkew time.Duration

	// SourceRate and SourceBurst shape the per-source-IP token bucket;
	// TotalRate bounds the beacons checked per second from all sources.
	// MaxSources bounds the table of buckets, MaxPeers the dedup table.
	SourceRate  float64
	SourceBurst int
	TotalRate   float64
	MaxSources  int
	MaxPeers    int

	// OnDiscovered is called for every newly discovered (or changed) peer,
	// on the receive goroutine. It must not block: hand the value on (an
	// actor Send, a buffered channel) and return.
	OnDiscovered func(Discovered)

	Clock  clock.Clock  // nil: the real clock
	Logger *slog.Logger // nil: discard
}

// Discovered is a peer heard on the LAN.
type Discovered struct {
	Address   crypto.Address
	PublicKey ed25519.PublicKey
	// URIs to dial, with empty beacon hosts replaced by Source's address,
	// such as "tcp://192.168.1.20:7701".
	URIs []string
	// Source is where the beacon came from; SentAt is the time it carries
	// (the peer's clock), Seen the time we got it (ours).
	Source netip.AddrPort
	SentAt time.Time
	Seen   time.Time
}

// Stats counts what the service did; read it with Service.Stats.
type Stats struct {
	Sent       uint64 // beacons handed to the socket (once, whatever the interface count)
	SendErrors uint64 // beacons that failed to build, or to send on an interface
	Received   uint64 // datagrams read
	ReadErrors uint64

	TooLarge     uint64 // longer than messages.MaxBeaconSize
	RateLimited  uint64 // dropped by a token bucket, before decoding
	Malformed    uint64 // not a valid beacon (or another type or version)
	BadSignature uint64 // unsigned, or the signature does not verify
	Own          uint64 // our own beacons, looped back
	Stale        uint64 // outside MaxSkew
	Unreachable  uint64 // valid, but no URI we could dial
	Duplicate    uint64 // same peer and URIs within DedupWindow
	Discovered   uint64 // reported to OnDiscovered
}

// Service sends and receives beacons. Make it with New; Start and Close it
// once each.
type Service struct {
	opts      Options
	clock     clock.Clock
	log       *slog.Logger
	pub       ed25519.PublicKey
	listeners []messages.BeaconListener

	conn  Conn
	done  chan struct{}
	tick  chan struct{} // the timer pokes the sender through it
	wg    sync.WaitGroup
	mu    sync.Mutex // guards timer and state
	timer clock.Timer
	state int // 0 new, 1 started, 2 closed

	// Owned by the receive goroutine.
	limiter *sourceLimiter
	seen    map[crypto.Address]seenPeer

	afterHandle func()                // tests: called after each datagram is handled
	isLocal     func(netip.Addr) bool // is this address ours? (isLocalAddr; tests replace it)

	stats struct {
		sent, sendErrors, received, readErrors              atomic.Uint64
		tooLarge, rateLimited, malformed, badSignature, own atomic.Uint64
		stale, unreachable, duplicate, discovered           atomic.Uint64
	}
}

type seenPeer struct {
	at   time.Time
	uris []string
}

// New checks opts and fills in defaults. It opens nothing; Start does.
func New(opts Options) (*Service, error) {
	if opts.Mode > ModeOff {
		return nil, fmt.Errorf("%w: mode %d", ErrBadOptions, opts.Mode)
	}
	s := &Service{opts: opts, done: make(chan struct{}), tick: make(chan struct{}, 1), isLocal: isLocalAddr}
	if opts.Mode == ModeOff {
		return s, nil
	}
	if opts.Identity == nil {
		return nil, fmt.Errorf("%w: Identity is required", ErrBadOptions)
	}
	s.pub = opts.Identity.PublicKey()
	if len(s.pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: Identity public key has %d bytes", ErrBadOptions, len(s.pub))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", opts.Interval}, {"DedupWindow", opts.DedupWindow}, {"MaxSkew", opts.MaxSkew}} {
		if d.v < 0 {
			return nil, fmt.Errorf("%w: %s is %v, want >= 0", ErrBadOptions, d.name, d.v)
		}
	}
	if opts.SourceRate < 0 || opts.TotalRate < 0 || opts.SourceBurst < 0 || opts.MaxSources < 0 || opts.MaxPeers < 0 {
		return nil, fmt.Errorf("%w: rates and limits must be >= 0", ErrBadOptions)
	}
	if opts.Group.IsValid() && (!opts.Group.Addr().Is4() || !opts.Group.Addr().IsMulticast()) {
		return nil, fmt.Errorf("%w: Group %s is not an IPv4 multicast address", ErrBadOptions, opts.Group)
	}
	s.opts.Interval = orDefault(opts.Interval, DefaultInterval)
	s.opts.DedupWindow = orDefault(opts.DedupWindow, DefaultDedupWindow)
	s.opts.SourceRate = orDefault(opts.SourceRate, DefaultSourceRate)
	s.opts.SourceBurst = orDefault(opts.SourceBurst, DefaultSourceBurst)
	s.opts.TotalRate = orDefault(opts.TotalRate, DefaultTotalRate)
	s.opts.MaxSources = orDefault(opts.MaxSources, DefaultMaxSources)
	s.opts.MaxPeers = orDefault(opts.MaxPeers, DefaultMaxPeers)
	s.clock = opts.Clock
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	s.log = opts.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "discovery")

	var err error
	if s.listeners, err = advertised(opts.Listen, opts.IncludeLoopback); err != nil {
		return nil, err
	}
	if opts.Mode == ModeOn && len(s.listeners) == 0 {
		return nil, fmt.Errorf("%w: of %v, only tcp:// and quic:// listeners that are not loopback can be announced (or set IncludeLoopback)", ErrNothingToAnnounce, opts.Listen)
	}
	s.limiter = newSourceLimiter(s.opts.SourceRate, s.opts.SourceBurst, s.opts.TotalRate, s.opts.MaxSources, s.clock.Now())
	s.seen = make(map[crypto.Address]seenPeer)
	return s, nil
}

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// Start opens the socket (unless Options.Conn is set), sends the first
// beacon at once and starts the send and receive goroutines. In ModeOff it
// does nothing.
func (s *Service) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != 0 {
		return fmt.Errorf("discovery: Start called twice, or after Close")
	}
	s.state = 1
	if s.opts.Mode == ModeOff {
		return nil
	}
	s.conn = s.opts.Conn
	if s.conn == nil {
		conn, err := ListenMulticast(MulticastConfig{Group: s.opts.Group, Interfaces: s.opts.Interfaces, IncludeLoopback: s.opts.IncludeLoopback})
		if err != nil {
			s.state = 2
			return err
		}
		s.conn = conn
	}
	s.wg.Add(1)
	go s.receiveLoop()
	if s.opts.Mode == ModeOn {
		s.tick <- struct{}{} // the first beacon goes out now
		s.wg.Add(1)
		go s.sendLoop()
	}
	s.log.Debug("started", "mode", s.opts.Mode, "listeners", len(s.listeners))
	return nil
}

// Close stops the goroutines and closes the socket, and returns once they
// have finished. OnDiscovered is not called after Close returns.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.state != 1 || s.opts.Mode == ModeOff {
		s.state = 2
		s.mu.Unlock()
		return nil
	}
	s.state = 2
	close(s.done)
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	err := s.conn.Close()
	s.wg.Wait()
	return err
}

// Stats returns the counters so far.
func (s *Service) Stats() Stats {
	c := &s.stats
	return Stats{
		Sent: c.sent.Load(), SendErrors: c.sendErrors.Load(), Received: c.received.Load(), ReadErrors: c.readErrors.Load(),
		TooLarge: c.tooLarge.Load(), RateLimited: c.rateLimited.Load(), Malformed: c.malformed.Load(),
		BadSignature: c.badSignature.Load(), Own: c.own.Load(), Stale: c.stale.Load(),
		Unreachable: c.unreachable.Load(), Duplicate: c.duplicate.Load(), Discovered: c.discovered.Load(),
	}
}

// --- sending ---------------------------------------------------------------

// sendLoop sends a beacon each time the timer fires, then arms it again.
func (s *Service) sendLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.tick:
		}
		if err := s.sendBeacon(); err != nil {
			s.log.Debug("send beacon", "err", err)
		}
		s.mu.Lock()
		if s.state == 1 {
			s.timer = s.clock.AfterFunc(jitter(s.opts.Interval), func() {
				select {
				case s.tick <- struct{}{}:
				default:
				}
			})
		}
		s.mu.Unlock()
	}
}

// jitter spreads d uniformly over [0.75 d, 1.25 d).
func jitter(d time.Duration) time.Duration {
	if d < 4 {
		return d
	}
	return d*3/4 + rand.N(d/2)
}

// beacon builds and signs a beacon for now.
func (s *Service) beacon() ([]byte, error) {
	b := messages.NewBeacon(s.pub, s.clock.Now(), s.listeners)
	if err := b.Sign(s.opts.Identity.Sign); err != nil {
		return nil, err
	}
	return messages.EncodeBeacon(b)
}

func (s *Service) sendBeacon() error {
	pkt, err := s.beacon()
	if err != nil {
		s.stats.sendErrors.Add(1)
		return err
	}
	s.stats.sent.Add(1)
	if err := s.conn.Send(pkt); err != nil {
		s.stats.sendErrors.Add(1)
		return err
	}
	return nil
}

// --- receiving -------------------------------------------------------------

func (s *Service) receiveLoop() {
	defer s.wg.Done()
	buf := make([]byte, messages.MaxBeaconSize+1) // one more, to see a datagram that is too large
	for {
		n, src, err := s.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.stats.readErrors.Add(1)
			s.log.Debug("read", "err", err)
			s.pause(100 * time.Millisecond) // don't spin on a persistent error
			continue
		}
		s.handle(buf[:n], src)
	}
}

// pause waits for d on the service clock, or until Close.
func (s *Service) pause(d time.Duration) {
	c := make(chan struct{})
	t := s.clock.AfterFunc(d, func() { close(c) })
	defer t.Stop()
	select {
	case <-c:
	case <-s.done:
	}
}

// handle runs one datagram through the checks, cheapest first, and reports
// the peer if it passes them all.
func (s *Service) handle(pkt []byte, src netip.AddrPort) {
	if s.afterHandle != nil {
		defer s.afterHandle()
	}
	s.stats.received.Add(1)
	now := s.clock.Now()
	if len(pkt) > messages.MaxBeaconSize {
		s.stats.tooLarge.Add(1)
		return
	}
	ip := src.Addr().Unmap()
	if !s.limiter.allow(ip, now) {
		s.stats.rateLimited.Add(1)
		return
	}
	b, err := messages.DecodeBeacon(pkt)
	switch {
	case errors.Is(err, messages.ErrBadSignature):
		s.stats.badSignature.Add(1)
		s.log.Debug("beacon dropped", "src", src, "err", err)
		return
	case err != nil:
		s.stats.malformed.Add(1)
		s.log.Debug("beacon dropped", "src", src, "err", err)
		return
	}
	if bytes.Equal(b.PublicKey, s.pub) {
		s.stats.own.Add(1)
		return
	}
	sentAt := b.SentAt()
	if s.opts.MaxSkew > 0 && (sentAt.Before(now.Add(-s.opts.MaxSkew)) || sentAt.After(now.Add(s.opts.MaxSkew))) {
		s.stats.stale.Add(1)
		return
	}
	uris := resolve(b.Listeners, ip, s.isLocal)
	if len(uris) == 0 {
		s.stats.unreachable.Add(1)
		return
	}
	addr := crypto.AddressOf(b.PublicKey)
	if !s.remember(addr, uris, now) {
		s.stats.duplicate.Add(1)
		return
	}
	s.stats.discovered.Add(1)
	if s.opts.OnDiscovered != nil {
		s.opts.OnDiscovered(Discovered{
			Address: addr, PublicKey: ed25519.PublicKey(b.PublicKey), URIs: uris,
			Source: src, SentAt: sentAt, Seen: now,
		})
	}
}

// remember records that addr was heard with uris, and reports whether that
// is news: a peer not reported within DedupWindow, or with other URIs. The
// table holds at most MaxPeers: when full, expired entries go, then the
// oldest.
func (s *Service) remember(addr crypto.Address, uris []string, now time.Time) bool {
	if p, ok := s.seen[addr]; ok && now.Sub(p.at) < s.opts.DedupWindow && slices.Equal(p.uris, uris) {
		return false
	}
	if _, ok := s.seen[addr]; !ok && len(s.seen) >= s.opts.MaxPeers {
		var oldest crypto.Address
		var oldestAt time.Time
		for a, p := range s.seen {
			if now.Sub(p.at) >= s.opts.DedupWindow {
				delete(s.seen, a)
				continue
			}
			if oldestAt.IsZero() || p.at.Before(oldestAt) {
				oldest, oldestAt = a, p.at
			}
		}
		if len(s.seen) >= s.opts.MaxPeers {
			delete(s.seen, oldest)
		}
	}
	s.seen[addr] = seenPeer{at: now, uris: uris}
	return true
}
