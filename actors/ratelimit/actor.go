package ratelimit

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "ratelimit"

// Config wires the limiter.
type Config struct {
	Router *actor.PID
	// OnRefused counts a frame refused (draining); must not block.
	OnRefused func(reason string)
}

type limiter struct {
	cfg      Config
	draining bool
}

// New returns the limiter's Props.
func New(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &limiter{cfg: cfg} })
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
		ctx.Send(l.cfg.Router, m)
	case *messages.Drain:
		l.draining = true
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		ctx.Respond(&messages.Persisted{Actor: Name})
	}
}
