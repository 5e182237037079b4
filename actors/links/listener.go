package links

import (
	"context"
	"errors"
	"net"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
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
	slots  map[string]bool // link actors (by PID id) holding a slot of deps.inbound
}

func (l *listenerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		l.slots = make(map[string]bool)
		actx, cancel := context.WithCancel(context.Background())
		l.cancel = cancel
		go l.accept(actx, ctx.ActorSystem(), ctx.Self())
	case *accepted:
		if m.conn.Peer() == l.deps.self {
			l.deps.log.Warn("refusing a connection from ourselves", "remote", m.conn.RemoteAddr())
			l.deps.metrics.Refused.WithLabelValues(m.conn.Info().Name, "self").Inc()
			m.conn.Close()
			return
		}
		// Peers heard on a radio are not connections a stranger opens; the
		// radio transport bounds them itself (link.Options.MaxPeers).
		capped := m.conn.Info().Name != lora.InfoName
		if capped && !l.deps.inbound.tryAcquire() {
			l.deps.inbound.refuse(m.conn.Info().Name, m.conn.RemoteAddr(), m.conn.Peer())
			m.conn.Close()
			return
		}
		pid, _ := l.deps.spawnLink(ctx, m.conn, false)
		if capped {
			l.slots[pid.Id] = true
		}
	case *actor.Terminated:
		// A stopped link has closed its connection: its slot is free again.
		if l.slots[m.Who.Id] {
			delete(l.slots, m.Who.Id)
			l.deps.inbound.release()
		}
	case *quiesce:
		l.cancel()
	case *actor.Stopping, *actor.Restarting:
		// The accept loop ends; on a restart the next instance starts its
		// own. The links this one spawned stop with it, and their
		// Terminated (still delivered to this instance) free their slots.
		l.cancel()
	case *failForTest:
		panic("links: listener test fault")
	case *actor.Stopped:
		for id := range l.slots {
			delete(l.slots, id)
			l.deps.inbound.release()
		}
	}
}

// failForTest makes a listener or dialer panic (package tests only).
type failForTest struct{}

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
