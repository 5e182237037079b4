package links

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/actors/internal/lifecycle"
)

// Name is the actor's name under the node root.
const Name = "transports"

type shell struct{}

// New returns the actor's Props.
func New() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &shell{} })
}

func (s *shell) Receive(ctx actor.Context) {
	lifecycle.AckStateless(ctx, Name)
}
