package store

import (
	"errors"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "store"

// Config wires the store.
type Config struct {
	DB         *persist.DB
	Limits     Limits
	GCInterval time.Duration
	Router     *actor.PID
	Clock      clock.Clock
	Metrics    *metrics.Mesh
	Log        *slog.Logger
}

type gcTick struct{}

type storeActor struct {
	cfg   Config
	q     *Queue
	timer clock.Timer
}

// New returns the store's Props.
func New(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &storeActor{cfg: cfg} })
}

// drainBatch bounds the frames handed back per RouteUp.
const drainBatch = 256

func (s *storeActor) Receive(ctx actor.Context) {
	now := s.cfg.Clock.Now()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		q, err := NewQueue(s.cfg.DB.DB, s.cfg.Limits)
		if err != nil {
			panic(err) // our own open database: a bug or a broken disk
		}
		s.q = q
		s.gauge()
		s.schedule(ctx)
	case *messages.StoreFrame:
		err := s.q.Put(Item{Dest: m.Dest, ID: m.ID, Frame: m.Frame, Expiry: m.Expiry}, now)
		switch {
		case err == nil:
			s.cfg.Metrics.StoreEvents.WithLabelValues("put").Inc()
		case errors.Is(err, ErrDuplicate):
		default:
			s.cfg.Metrics.StoreEvents.WithLabelValues("refused").Inc()
			s.cfg.Log.Warn("envelope not stored", "dest", crypto.Address(m.Dest).Short(), "err", err)
		}
		s.gauge()
	case *messages.RouteUp:
		items, err := s.q.Peek(m.Dest, drainBatch, now)
		if err != nil {
			s.cfg.Log.Error("store peek failed", "err", err)
			return
		}
		if len(items) == 0 {
			return
		}
		frames := make([][]byte, len(items))
		for i, it := range items {
			frames[i] = it.Frame
		}
		s.cfg.Log.Debug("handing back held envelopes", "dest", crypto.Address(m.Dest).Short(), "n", len(frames))
		ctx.Send(s.cfg.Router, &messages.StoredFrames{Dest: m.Dest, Frames: frames})
	case *messages.StoreAck:
		if n, err := s.q.AckID(m.ID); err != nil {
			s.cfg.Log.Error("store ack failed", "err", err)
		} else if n > 0 {
			s.cfg.Metrics.StoreEvents.WithLabelValues("delivered").Inc()
			s.gauge()
		}
	case *gcTick:
		if n, err := s.q.Expire(now); err != nil {
			s.cfg.Log.Error("store expiry failed", "err", err)
		} else if n > 0 {
			s.cfg.Metrics.StoreEvents.WithLabelValues("expired").Add(float64(n))
			s.gauge()
		}
		s.schedule(ctx)
	case *messages.Drain:
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		// Every operation was its own bbolt transaction: nothing to write.
		ctx.Respond(&messages.Persisted{Actor: Name})
	case *actor.Stopping:
		if s.timer != nil {
			s.timer.Stop()
		}
	}
}

func (s *storeActor) gauge() { s.cfg.Metrics.Stored.Set(float64(s.q.Len())) }

func (s *storeActor) schedule(ctx actor.Context) {
	self, sys := ctx.Self(), ctx.ActorSystem()
	s.timer = s.cfg.Clock.AfterFunc(s.cfg.GCInterval, func() { sys.Root.Send(self, &gcTick{}) })
}
