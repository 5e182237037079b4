package links

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// within bounds every wait of these tests in real time; nothing here
// waits for the clock to pass, only for actors to run.
const within = 10 * time.Second

// rig is a transports subtree on a manual clock, with what it publishes
// and logs captured, for tests that drive its dialers and links.
type rig struct {
	sys      *actor.ActorSystem
	pid      *actor.PID
	id       *crypto.Identity
	clk      *clock.Manual
	metrics  *metrics.Links
	log      *syncBuffer
	ups      chan *messages.PeerUp
	downs    chan *messages.PeerDown
	received chan *messages.InboundFrame // what the links hand to ratelimit
}

// startRig starts the subtree of cfg; it fills in an identity when cfg has
// none, a manual clock unless cfg has one (from newManual), the log,
// metrics and ratelimit, and DefaultBackoff when cfg.Backoff.Min is zero.
func startRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	if cfg.Identity == nil {
		cfg.Identity = newIdentity(t)
	}
	r := &rig{
		id:       cfg.Identity,
		metrics:  metrics.New(metrics.Options{}).Links,
		log:      &syncBuffer{},
		ups:      make(chan *messages.PeerUp, 64),
		downs:    make(chan *messages.PeerDown, 64),
		received: make(chan *messages.InboundFrame, 1024),
	}
	r.clk, _ = cfg.Clock.(*clock.Manual)
	if r.clk == nil {
		r.clk = newManual()
	}
	r.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	sub := r.sys.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.PeerUp:
			r.ups <- e
		case *messages.PeerDown:
			r.downs <- e
		}
	})
	cfg.Ratelimit = r.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if f, ok := ctx.Message().(*messages.InboundFrame); ok {
			r.received <- f
		}
	}))
	cfg.Metrics, cfg.Clock = r.metrics, r.clk
	cfg.Log = slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if cfg.Backoff.Min == 0 {
		cfg.Backoff = DefaultBackoff
	}
	pid, err := r.sys.Root.SpawnNamed(New(cfg), Name)
	if err != nil {
		t.Fatal(err)
	}
	r.pid = pid
	t.Cleanup(func() {
		r.sys.Root.StopFuture(pid).Wait()
		r.sys.EventStream.Unsubscribe(sub)
		for _, b := range cfg.Listeners {
			b.Listener.Close()
		}
	})
	r.sys.Root.Send(pid, &messages.StartLinks{})
	return r
}

// newManual is the manual clock of a rig, at a fixed start.
func newManual() *clock.Manual { return clock.NewManual(time.Unix(1_800_000_000, 0)) }

// reply asks the manager for its links and peers.
func (r *rig) reply(t *testing.T) *messages.LinksReply {
	t.Helper()
	res, err := r.sys.Root.RequestFuture(r.pid, &messages.LinksRequest{}, within).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res.(*messages.LinksReply)
}

// peer is the configured peer uri as qpc status shows it.
func (r *rig) peer(t *testing.T, uri string) messages.PeerStatus {
	t.Helper()
	for _, p := range r.reply(t).Peers {
		if p.URI == uri {
			return p
		}
	}
	t.Fatalf("peer %s not listed", uri)
	return messages.PeerStatus{}
}

// waitPeer probes until the peer uri satisfies ok, and returns it.
func (r *rig) waitPeer(t *testing.T, uri, what string, ok func(messages.PeerStatus) bool) messages.PeerStatus {
	t.Helper()
	var st messages.PeerStatus
	if !probe.Wait(within, func() bool { st = r.peer(t, uri); return ok(st) }) {
		t.Fatalf("%s: peer %s is %+v", what, uri, st)
	}
	return st
}

// logLines are the captured log lines with message msg.
func (r *rig) logLines(msg string) []string {
	var out []string
	for _, l := range strings.Split(r.log.String(), "\n") {
		if strings.Contains(l, fmt.Sprintf("msg=%q", msg)) {
			out = append(out, l)
		}
	}
	return out
}

func (r *rig) up(t *testing.T, what string) *messages.PeerUp {
	t.Helper()
	select {
	case u := <-r.ups:
		return u
	case <-time.After(within):
		t.Fatalf("%s: no PeerUp", what)
		return nil
	}
}

func (r *rig) down(t *testing.T, what string) *messages.PeerDown {
	t.Helper()
	select {
	case d := <-r.downs:
		return d
	case <-time.After(within):
		t.Fatalf("%s: no PeerDown; log:\n%s", what, r.log.String())
		return nil
	}
}

// readResult is one ReadFrame of a fakeConn: a frame or an error.
type readResult struct {
	frame []byte
	err   error
}

// fakeConn is a connection whose peer is scripted: what ReadFrame returns
// comes from reads, and WriteFrame fails with writeErr when set.
type fakeConn struct {
	peer     crypto.Address
	info     transports.Info
	remote   string
	reads    chan readResult
	writeErr error
	closed   chan struct{}
	once     sync.Once
}

var fakeConns atomic.Uint64

func newFakeConn(peer crypto.Address) *fakeConn {
	return &fakeConn{
		peer:   peer,
		info:   transports.Info{Name: transports.SchemeMem, MTU: 1 << 20, Bitrate: 1e9, FlowControl: true}.WithClass(),
		remote: fmt.Sprintf("fake-%d", fakeConns.Add(1)),
		reads:  make(chan readResult, 2*InboundCredit),
		closed: make(chan struct{}),
	}
}

func (c *fakeConn) ReadFrame() ([]byte, error) {
	select {
	case <-c.closed:
		return nil, fmt.Errorf("fake: read: %w", net.ErrClosed)
	default:
	}
	select {
	case r := <-c.reads:
		return r.frame, r.err
	case <-c.closed:
		return nil, fmt.Errorf("fake: read: %w", net.ErrClosed)
	}
}

func (c *fakeConn) WriteFrame([]byte) error {
	select {
	case <-c.closed:
		return fmt.Errorf("fake: write: %w", net.ErrClosed)
	default:
	}
	return c.writeErr
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *fakeConn) waitClosed(t *testing.T, what string) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(within):
		t.Fatalf("%s: the connection was not closed", what)
	}
}

func (c *fakeConn) Peer() crypto.Address       { return c.peer }
func (c *fakeConn) PeerKey() ed25519.PublicKey { return nil }
func (c *fakeConn) LocalAddr() string          { return "fake-local" }
func (c *fakeConn) RemoteAddr() string         { return c.remote }
func (c *fakeConn) Info() transports.Info      { return c.info }

// send queues frames for the link's reader, as the peer sending them.
func (c *fakeConn) send(frames ...[]byte) {
	for _, f := range frames {
		c.reads <- readResult{frame: f}
	}
}

// chanListener accepts the connections a test puts in conns, and fails
// an Accept with each error put in errs.
type chanListener struct {
	conns chan transports.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan transports.Conn, 8), errs: make(chan error, 8), done: make(chan struct{})}
}

func (l *chanListener) Accept(ctx context.Context) (transports.Conn, error) {
	select {
	case err := <-l.errs:
		return nil, err
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, fmt.Errorf("chan listener: %w", net.ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *chanListener) Addr() string { return "fake" }

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}
