package ratelimit

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "ratelimit"

// Config wires the limiter.
type Config struct {
	Router    *actor.PID
	Announcer *actor.PID
	Limits    PerPeerConfig
	Clock     clock.Clock
	Metrics   *metrics.Mesh
	// OnRefused counts a frame refused (draining); must not block.
	OnRefused func(reason string)
	// Tap, when set, sees every admitted frame first and may take it
	// (returns true): a hook for link-level tests and benchmarks.
	Tap func(*messages.InboundFrame) bool
}

type limiter struct {
	cfg      Config
	peers    *PerPeer
	draining bool
}

// New returns the limiter's Props.
func New(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &limiter{cfg: cfg, peers: NewPerPeer(cfg.Limits)} })
}

// classOf maps a frame's type to its bucket.
func classOf(t messages.FrameType) (Class, bool) {
	switch t {
	case messages.FrameEnvelope:
		return ClassEnvelope, true
	case messages.FrameAnnounce:
		return ClassAnnounce, true
	case messages.FrameKeyPkgReq:
		return ClassKeyPackage, true
	}
	return 0, false
}

func (l *limiter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.InboundFrame:
		if l.draining {
			if l.cfg.OnRefused != nil {
				l.cfg.OnRefused("draining")
			}
			return
		}
		tag, err := messages.FrameTag(m.Data)
		if err != nil {
			l.cfg.Metrics.EnvelopesDropped.WithLabelValues("malformed").Inc()
			return
		}
		class, ok := classOf(tag.Type())
		if !ok {
			l.cfg.Metrics.EnvelopesDropped.WithLabelValues("unknown_type").Inc()
			return
		}
		if !l.peers.Allow(m.From, class, l.cfg.Clock.Now()) {
			l.cfg.Metrics.RateLimited.WithLabelValues(class.String()).Inc()
			return
		}
		if l.cfg.Tap != nil && l.cfg.Tap(m) {
			return
		}
		switch class {
		case ClassAnnounce:
			ctx.Send(l.cfg.Announcer, m)
		default:
			ctx.Send(l.cfg.Router, m)
		}
	case *messages.Drain:
		l.draining = true
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		ctx.Respond(&messages.Persisted{Actor: Name})
	}
}
