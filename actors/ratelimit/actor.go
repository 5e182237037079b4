package ratelimit

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/actors/verify"
	"github.com/quicprochat/qpc/crypto/mlslite"
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
	// FAPP takes admitted FAPP frames (messages.FrameFAPP); nil: FAPP is
	// off and they are refused as of an unknown type.
	FAPP    *actor.PID
	Limits  PerPeerConfig
	Clock   clock.Clock
	Metrics *metrics.Mesh
	// OnRefused counts a frame refused (draining); must not block.
	OnRefused func(reason string)
	// Tap, when set, sees every admitted frame first and may take it
	// (returns true): a hook for link-level tests and benchmarks.
	Tap func(*messages.InboundFrame) bool
	// Verify, when set, takes admitted envelopes to be checked on its
	// workers, which hand them on to the router; without it the router
	// verifies them itself.
	Verify *verify.Pool
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
	case messages.FrameEnvelope, messages.FrameCompact, mlslite.FrameMLSLite:
		return ClassEnvelope, true
	case messages.FrameAnnounce:
		return ClassAnnounce, true
	case messages.FrameKeyPkgReq:
		return ClassKeyPackage, true
	case messages.FrameFAPP:
		return ClassFAPP, true
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
			m.Done()
			return
		}
		tag, err := messages.FrameTag(m.Data)
		if err != nil {
			l.cfg.Metrics.EnvelopesDropped.WithLabelValues("malformed").Inc()
			m.Done()
			return
		}
		class, ok := classOf(tag.Type())
		if class == ClassFAPP && l.cfg.FAPP == nil {
			ok = false
		}
		if !ok {
			l.cfg.Metrics.EnvelopesDropped.WithLabelValues("unknown_type").Inc()
			m.Done()
			return
		}
		// Envelopes from a link with flow control are paced by its credit
		// (the link is not read while the node is busy with its frames), so
		// they need no bucket: dropping them would only make their senders
		// retransmit. Announces and KeyPackage requests are bucketed on
		// every link, and so is everything from links that cannot be
		// slowed (radios) or handed in by the Go API.
		paced := class == ClassEnvelope && m.Release != nil
		if !paced && !l.peers.Allow(m.From, class, l.cfg.Clock.Now()) {
			l.cfg.Metrics.RateLimited.WithLabelValues(class.String()).Inc()
			m.Done()
			return
		}
		if l.cfg.Tap != nil && l.cfg.Tap(m) {
			m.Done()
			return
		}
		switch {
		case class == ClassAnnounce:
			ctx.Send(l.cfg.Announcer, m)
		case class == ClassFAPP:
			ctx.Send(l.cfg.FAPP, m)
		case class == ClassEnvelope && l.cfg.Verify != nil:
			l.cfg.Verify.Submit(m)
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
