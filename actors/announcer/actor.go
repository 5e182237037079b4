package announcer

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "announcer"

// Config wires the announcer.
type Config struct {
	Identity *crypto.Identity
	SealPub  []byte
	// Caps is what to announce at the first start. A (re)started announcer
	// under a parent also asks it (messages.CapabilitiesRequest), so it
	// keeps capabilities changed at run time.
	Caps     messages.Capabilities
	Clock    clock.Clock
	Interval time.Duration
	MaxAge   time.Duration
	MaxHops  int
	Router   *actor.PID
	Links    *actor.PID
	Metrics  *metrics.Mesh
	Log      *slog.Logger
}

type tick struct{}

type announcer struct {
	cfg      Config
	last     *uint64 // the newest own announce's time (ms), shared by the instances New's producer makes
	lastSeq  uint64
	kp       *[16]byte // the KeyPackage hash to announce (zero: none), shared as last is
	own      []byte    // the current own announce frame
	timer    clock.Timer
	sub      *eventstream.Subscription
	draining bool
}

// New returns the announcer's Props.
func New(cfg Config) *actor.Props {
	last, kp := new(uint64), new([16]byte)
	return actor.PropsFromProducer(func() actor.Actor { return &announcer{cfg: cfg, last: last, kp: kp} })
}

func (a *announcer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if a.last != nil {
			// After a restart: the next announce must be newer than the
			// last one sent, even within the same millisecond, or
			// receivers refuse it as a duplicate.
			a.lastSeq = *a.last
		}
		if ctx.Parent() != nil {
			ctx.Request(ctx.Parent(), &messages.CapabilitiesRequest{})
		}
		self, sys, me := ctx.Self(), ctx.ActorSystem(), a.cfg.Identity.Address()
		a.sub = sys.EventStream.Subscribe(func(ev any) {
			if up, ok := ev.(*messages.PeerUp); ok && up.Node == me {
				sys.Root.Send(self, up)
			}
		})
		a.refresh()
		a.schedule(ctx)
	case *tick:
		if a.draining {
			return
		}
		a.refresh()
		ctx.Send(a.cfg.Links, &messages.BroadcastFrame{Data: a.own, Priority: messages.Control})
		a.cfg.Metrics.AnnouncesSent.Inc()
		a.schedule(ctx)
	case *messages.PeerUp:
		// A new neighbour learns about us at once, not at the next tick.
		if !a.draining {
			// Over a radio, one broadcast for all the neighbours that
			// come up together: queued copies collapse (Broadcastable).
			ctx.Send(a.cfg.Links, &messages.SendFrame{Peer: m.Link.Peer, Data: a.own, Priority: messages.Control, Broadcastable: m.Link.Broadcast})
			a.cfg.Metrics.AnnouncesSent.Inc()
		}
	case *messages.InboundFrame:
		defer m.Done() // the link may be read again, also if heard panics
		a.heard(ctx, m)
	case *messages.SetKeyPackageHash:
		if m.Hash != *a.kp && !a.draining {
			*a.kp = m.Hash
			a.refresh()
			ctx.Send(a.cfg.Links, &messages.BroadcastFrame{Data: a.own, Priority: messages.Control})
			a.cfg.Metrics.AnnouncesSent.Inc()
		}
	case *messages.SetCapabilities:
		if m.Caps != a.cfg.Caps && !a.draining {
			a.cfg.Caps = m.Caps
			a.refresh()
			ctx.Send(a.cfg.Links, &messages.BroadcastFrame{Data: a.own, Priority: messages.Control})
			a.cfg.Metrics.AnnouncesSent.Inc()
		}
	case *messages.Drain:
		a.draining = true
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		ctx.Respond(&messages.Persisted{Actor: Name})
	case *actor.Stopping, *actor.Restarting:
		// A restarted instance arms its own timer and subscription; this
		// one's must not go on delivering to the same PID.
		if a.timer != nil {
			a.timer.Stop()
		}
		if a.sub != nil {
			ctx.ActorSystem().EventStream.Unsubscribe(a.sub)
		}
	}
}

// refresh signs a new own announce with a time later than the last one.
func (a *announcer) refresh() {
	now := a.cfg.Clock.Now()
	at := now
	if ms := uint64(max(now.UnixMilli(), 0)); ms <= a.lastSeq {
		at = time.UnixMilli(int64(a.lastSeq + 1))
	}
	var kp []byte
	if *a.kp != ([16]byte{}) {
		kp = a.kp[:]
	}
	ann := messages.NewAnnounce(a.cfg.Identity.PublicKey(), a.cfg.SealPub, a.cfg.Caps, kp, at)
	if err := ann.Sign(a.cfg.Identity.Sign); err != nil {
		panic(err) // our own key and fields: a bug
	}
	frame, err := messages.EncodeAnnounce(ann)
	if err != nil {
		panic(err)
	}
	a.lastSeq, a.own = ann.UnixMilli, frame
	if a.last != nil {
		*a.last = a.lastSeq
	}
}

func (a *announcer) schedule(ctx actor.Context) {
	d := a.cfg.Interval
	d += time.Duration((rand.Float64()*0.2 - 0.1) * float64(d)) // ±10 %
	self, sys := ctx.Self(), ctx.ActorSystem()
	a.timer = a.cfg.Clock.AfterFunc(d, func() { sys.Root.Send(self, &tick{}) })
}

func (a *announcer) heard(ctx actor.Context, m *messages.InboundFrame) {
	ann, err := Check(m.Data, a.cfg.Clock.Now(), Limits{Self: a.cfg.Identity.Address(), MaxAge: a.cfg.MaxAge, MaxHops: a.cfg.MaxHops})
	if err != nil {
		var r *Refusal
		if errors.As(err, &r) {
			a.cfg.Metrics.AnnouncesRefused.WithLabelValues(r.Reason).Inc()
			if r.Reason != ReasonOwn {
				a.cfg.Log.Debug("announce refused", "reason", r.Reason, "from", crypto.Address(m.From).Short(), "err", r.Err)
			}
		}
		return
	}
	ctx.Send(a.cfg.Router, &messages.AnnounceHeard{Announce: ann, Frame: m.Data, From: m.From, Link: m.Link, Signal: m.Signal})
}
