package inbox

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "inbox"

// Config wires the inbox actor.
type Config struct {
	Store *Store
	// Retention: every PruneEvery (default a minute) the oldest entries go
	// while more than MaxMessages are kept or they are older than MaxAge.
	// Zero MaxMessages keeps everything.
	MaxMessages int
	MaxAge      time.Duration
	PruneEvery  time.Duration
	Clock       clock.Clock
	Log         *slog.Logger
}

type pruneTick struct{}

type inboxActor struct {
	cfg   Config
	timer clock.Timer
}

// New returns the actor's Props.
func New(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &inboxActor{cfg: cfg} })
}

func (a *inboxActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		a.schedule(ctx)
	case *pruneTick:
		if n, err := a.cfg.Store.Prune(a.cfg.Clock.Now(), a.cfg.MaxMessages, a.cfg.MaxAge); err != nil {
			a.cfg.Log.Warn("inbox retention failed", "err", err)
		} else if n > 0 {
			a.cfg.Log.Debug("inbox retention", "deleted", n)
		}
		a.schedule(ctx)
	case *actor.Stopping, *actor.Restarting:
		if a.timer != nil {
			a.timer.Stop()
			a.timer = nil
		}
	case *messages.Delivered:
		// The messages are on disk: readers (long polls, the Go API's
		// Deliveries feed) read them from there. No copy is kept here.
		a.cfg.Store.Notify()
	case *messages.Drain:
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		// Entries are written in the router's transactions.
		ctx.Respond(&messages.Persisted{Actor: Name})
	}
}

func (a *inboxActor) schedule(ctx actor.Context) {
	if a.cfg.MaxMessages <= 0 || a.cfg.Clock == nil {
		return
	}
	every := a.cfg.PruneEvery
	if every <= 0 {
		every = time.Minute
	}
	self, sys := ctx.Self(), ctx.ActorSystem()
	a.timer = a.cfg.Clock.AfterFunc(every, func() { sys.Root.Send(self, &pruneTick{}) })
}
