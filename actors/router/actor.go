package router

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/actors/internal/lifecycle"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "router"

// Config wires the router.
type Config struct {
	Clock clock.Clock
	// Deliver hands a frame to the node's inbox. It must not block.
	Deliver func(*messages.Delivered)
}

type router struct {
	cfg Config
}

// New returns the router's Props.
func New(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &router{cfg: cfg} })
}

func (r *router) Receive(ctx actor.Context) {
	if lifecycle.AckStateless(ctx, Name) {
		return
	}
	switch m := ctx.Message().(type) {
	case *messages.InboundFrame:
		r.cfg.Deliver(&messages.Delivered{Link: m.Link, From: m.From, Data: m.Data, At: r.cfg.Clock.Now()})
	}
}
