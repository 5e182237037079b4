// Package lifecycle is the receiver middleware every top-level actor of a
// node runs under. It tells the node root when the actor has (re)started,
// and turns messages.InjectFault into a panic when fault injection is on,
// so supervision can be exercised on the real actors.
package lifecycle

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"

	"github.com/quicprochat/qpc/messages"
)

// Middleware reports *messages.ActorUp to the parent on every Started and,
// with faults enabled, panics on *messages.InjectFault.
func Middleware(name string, faults bool) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			switch m := env.Message.(type) {
			case *actor.Started:
				next(c, env)
				if p := c.Parent(); p != nil {
					c.ActorSystem().Root.Send(p, &messages.ActorUp{Actor: name})
				}
				return
			case *messages.InjectFault:
				if faults {
					panic(fmt.Sprintf("%s: injected fault: %s", name, m.Reason))
				}
				return
			}
			next(c, env)
		}
	}
}

// AckStateless answers Drain and Persist for an actor that holds nothing
// to drain or persist yet. It reports whether it handled the message.
func AckStateless(ctx actor.Context, name string) bool {
	switch ctx.Message().(type) {
	case *messages.Drain:
		ctx.Respond(&messages.Drained{Actor: name})
	case *messages.Persist:
		ctx.Respond(&messages.Persisted{Actor: name})
	default:
		return false
	}
	return true
}

// SubscribePeerEvents forwards the PeerUp and PeerDown events of node me
// from the actor system's event stream to self (the stream is shared by
// every node of a simulation, so each filters on its own address; the
// handler runs on the publisher's goroutine and only sends).
func SubscribePeerEvents(sys *actor.ActorSystem, self *actor.PID, me [16]byte) *eventstream.Subscription {
	return sys.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.PeerUp:
			if e.Node == me {
				sys.Root.Send(self, e)
			}
		case *messages.PeerDown:
			if e.Node == me {
				sys.Root.Send(self, e)
			}
		}
	})
}
