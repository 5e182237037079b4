package links

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// Messages of a dialer to itself.
type (
	dialNow    struct{}
	dialResult struct {
		conn  transports.Conn
		err   error
		owner *dialerActor // the instance that dialled (a restart makes a new one)
	}
)

// dialerActor keeps one peer URI connected: it dials, spawns the link,
// watches it, and re-dials with capped exponential back-off after a
// failure or a lost link. A discovered peer's dialer (once) gives up when
// its link ends or after a few failures; the next beacon starts a new one.
// A dial that reaches this node itself (transports.ErrSelf) gives up at
// once: the URI would reach us again.
type dialerActor struct {
	deps      *deps
	uri       string
	transport transports.Transport
	addr      string
	want      crypto.Address // zero: any peer
	once      bool

	attempt int
	lastErr string // the last dial error told at info level
	link    *actor.PID
	timer   clock.Timer
	cancel  context.CancelFunc
	drained bool // quiesce received: no new link
}

// maxDiscoveredAttempts bounds the dials of a discovered peer's dialer.
const maxDiscoveredAttempts = 4

func (d *dialerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		d.dial(ctx)
	case *dialNow:
		d.timer = nil
		if d.once && d.attempt >= maxDiscoveredAttempts {
			return // quiesced
		}
		d.dial(ctx)
	case *dialResult:
		// Dialled by the instance before a restart, or done after a drain
		// (its dial was cancelled, but a handshake may just have finished).
		if m.owner != d || d.drained {
			if m.conn != nil {
				m.conn.Close()
			}
			return
		}
		d.cancel = nil
		d.onResult(ctx, m)
	case *actor.Terminated:
		if d.link != nil && m.Who.Equal(d.link) {
			d.link = nil
			if d.once {
				ctx.Stop(ctx.Self())
				return
			}
			d.attempt = 0
			next := d.schedule(ctx)
			d.report(ctx, peerEvent{kind: evWaiting, next: next})
		}
	case *quiesce:
		d.drained = true
		d.once = true // no re-dial once the link ends
		d.attempt = maxDiscoveredAttempts
		if d.timer != nil {
			d.timer.Stop()
		}
		if d.cancel != nil {
			d.cancel()
		}
	case *actor.Stopping, *actor.Restarting:
		// A dial in flight ends, and its late result is not for the next
		// instance: it would count an attempt that instance did not make.
		if d.cancel != nil {
			d.cancel()
		}
		if d.timer != nil {
			d.timer.Stop()
		}
	case *failForTest:
		panic("links: dialer test fault")
	}
}

// dial starts one attempt in a goroutine; its result comes back as a
// message, so Receive never blocks on the network.
func (d *dialerActor) dial(ctx actor.Context) {
	d.report(ctx, peerEvent{kind: evDialling})
	dctx, cancel := context.WithTimeout(context.Background(), 2*transports.DefaultHandshakeTimeout)
	d.cancel = cancel
	sys, self, owner := ctx.ActorSystem(), ctx.Self(), d
	t, addr, want := d.transport, d.addr, d.want
	go func() {
		defer cancel()
		var c transports.Conn
		var err error
		if want.IsZero() {
			c, err = t.Dial(dctx, addr)
		} else {
			c, err = transports.DialPeer(dctx, t, addr, want)
		}
		if err != nil && dctx.Err() != nil && errors.Is(err, context.Canceled) {
			return // the dialer stopped
		}
		sys.Root.Send(self, &dialResult{conn: c, err: err, owner: owner})
	}()
}

func (d *dialerActor) onResult(ctx actor.Context, m *dialResult) {
	name := d.transport.Info().Name
	if errors.Is(m.err, transports.ErrSelf) { // the transport's handshake saw our own identity
		d.reachedSelf(ctx, name)
		return
	}
	if m.err != nil {
		d.deps.metrics.Dials.WithLabelValues(name, "error").Inc()
		d.attempt++
		if d.once && d.attempt >= maxDiscoveredAttempts {
			d.deps.log.Info("giving up on discovered peer", "uri", d.uri, "err", m.err)
			ctx.Stop(ctx.Self())
			return
		}
		// The first failure and every change of cause are news for the
		// operator; the same failure again is not.
		if cause := dialCause(m.err); cause != d.lastErr {
			d.lastErr = cause
			d.deps.log.Info("cannot dial peer; retrying with back-off", "uri", d.uri, "attempt", d.attempt, "err", m.err)
		} else {
			d.deps.log.Debug("dial failed", "uri", d.uri, "attempt", d.attempt, "err", m.err)
		}
		next := d.schedule(ctx)
		d.report(ctx, peerEvent{kind: evFailed, err: m.err.Error(), next: next})
		return
	}
	if d.lastErr != "" {
		d.deps.log.Info("peer reachable again", "uri", d.uri, "after_failed_attempts", d.attempt)
		d.lastErr = ""
	}
	if m.conn.Peer() == d.deps.self { // a transport that does not check
		m.conn.Close()
		d.reachedSelf(ctx, name)
		return
	}
	d.deps.metrics.Dials.WithLabelValues(name, "ok").Inc()
	var info messages.LinkInfo
	d.link, info = d.deps.spawnLink(ctx, m.conn, true)
	ctx.Watch(d.link)
	d.report(ctx, peerEvent{kind: evUp, peer: info.Peer, link: info.ID})
}

// reachedSelf gives up on a URI that reaches this node itself: every dial
// would reach us again.
func (d *dialerActor) reachedSelf(ctx actor.Context, name string) {
	d.deps.metrics.Dials.WithLabelValues(name, "self").Inc()
	d.deps.log.Warn("peer URI reaches this node itself; not dialing it again", "uri", d.uri)
	d.report(ctx, peerEvent{kind: evGaveUp, err: "the URI reaches this node itself"})
	ctx.Stop(ctx.Self())
}

// dialCause is err's text without the local end of the socket, which
// changes with every attempt: "read tcp 127.0.0.1:41234->10.0.0.2:7701:
// read: connection reset by peer" is the same cause at the next attempt
// from another ephemeral port.
func dialCause(err error) string {
	msg := err.Error()
	var op *net.OpError
	if errors.As(err, &op) && op.Source != nil && op.Addr != nil {
		msg = strings.Replace(msg, op.Source.String()+"->"+op.Addr.String(), op.Addr.String(), 1)
	}
	return msg
}

// schedule arms the next dial and returns when it is due.
func (d *dialerActor) schedule(ctx actor.Context) time.Time {
	delay := d.deps.backoff.Delay(max(d.attempt-1, 0))
	sys, self := ctx.ActorSystem(), ctx.Self()
	d.timer = d.deps.clock.AfterFunc(delay, func() { sys.Root.Send(self, &dialNow{}) })
	return d.deps.clock.Now().Add(delay)
}

// report tells the manager a step with this peer (for qpc status).
func (d *dialerActor) report(ctx actor.Context, e peerEvent) {
	e.uri, e.at = d.uri, d.deps.clock.Now()
	ctx.Send(d.deps.manager, &e)
}
