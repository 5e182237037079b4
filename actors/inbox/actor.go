package inbox

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "inbox"

// Config wires the inbox actor.
type Config struct {
	Store *Store
	// Out receives every delivered message (the Go API's Deliveries); a
	// full channel does not block: OnDropped counts what it missed.
	Out       chan<- *messages.InboxMessage
	OnHanded  func()
	OnDropped func()
}

type inboxActor struct{ cfg Config }

// New returns the actor's Props.
func New(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &inboxActor{cfg: cfg} })
}

func (a *inboxActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Delivered:
		a.cfg.Store.Notify()
		for _, msg := range m.Msgs {
			select {
			case a.cfg.Out <- msg:
				if a.cfg.OnHanded != nil {
					a.cfg.OnHanded()
				}
			default:
				if a.cfg.OnDropped != nil {
					a.cfg.OnDropped()
				}
			}
		}
	case *messages.Drain:
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		// Entries are written in the router's transactions.
		ctx.Respond(&messages.Persisted{Actor: Name})
	}
}
