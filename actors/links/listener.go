package links

import (
	"context"
	"errors"
	"net"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/transports"
)

// accepted is sent by the accept goroutine for each new connection.
type accepted struct{ conn transports.Conn }

// listenerActor accepts connections on one bound listener and is the
// parent of their link actors.
type listenerActor struct {
	deps   *deps
	ln     transports.Listener
	name   string
	cancel context.CancelFunc
	links  int // inbound link actors spawned and not yet terminated, each holding a slot of deps.inbound
}

func (l *listenerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		actx, cancel := context.WithCancel(context.Background())
		l.cancel = cancel
		go l.accept(actx, ctx.ActorSystem(), ctx.Self())
	case *accepted:
		if m.conn.Peer() == l.deps.self {
			l.deps.log.Warn("refusing a connection from ourselves", "remote", m.conn.RemoteAddr())
			m.conn.Close()
			return
		}
		if !l.deps.inbound.tryAcquire() {
			l.deps.inbound.refuse(m.conn.Info().Name, m.conn.RemoteAddr(), m.conn.Peer())
			m.conn.Close()
			return
		}
		l.links++
		l.deps.spawnLink(ctx, m.conn, false)
	case *actor.Terminated:
		// Only link actors are children of a listener; a stopped link has
		// closed its connection, so its slot is free again.
		if l.links > 0 {
			l.links--
			l.deps.inbound.release()
		}
	case *quiesce:
		l.cancel()
	case *actor.Stopping:
		l.cancel()
	case *actor.Stopped:
		for ; l.links > 0; l.links-- {
			l.deps.inbound.release()
		}
	}
}

// accept runs until the listener closes or the actor stops.
func (l *listenerActor) accept(ctx context.Context, sys *actor.ActorSystem, self *actor.PID) {
	for {
		c, err := l.ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			l.deps.log.Warn("accept failed", "listener", l.name, "err", err)
			continue
		}
		if ctx.Err() != nil {
			c.Close()
			return
		}
		sys.Root.Send(self, &accepted{conn: c})
	}
}
