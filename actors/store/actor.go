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
	// OnCommit, when set, is called after each write transaction of the
	// queue commits (Queue.OnCommit); tests count fsyncs with it.
	OnCommit func()
}

// The actor's messages to itself.
type (
	gcTick struct{}
	// flush writes what is pending. One is in the mailbox whenever
	// something is pending; the mailbox is FIFO, so it comes after
	// everything that was queued when it was posted.
	flush struct{}
	// drainNext hands back the next batch of dest's pass, the frames
	// after the key after (from the oldest when nil).
	drainNext struct {
		dest  [16]byte
		after []byte
	}
	// redrainTick hands dest's held frames back again (redrain).
	redrainTick struct {
		dest [16]byte
		gen  uint64
	}
)

// A pass hands every held frame to the router, which may still lose it
// on the way out: a link queue full of the pass itself sheds the lowest
// priority (data), and the frame stays held here without anything that
// would send it again until the destination's next RouteUp. So while
// frames stay held for a destination after a pass, another pass follows
// after RedrainBase, doubling up to RedrainMax, reset by a RouteUp and
// ended when nothing is held for it. Frames that did arrive are acked
// (and deleted) long before, so the next pass carries only what was lost
// or is still unacknowledged; a copy that arrives twice is dropped by the
// destination's replay window.
const (
	RedrainBase = 10 * time.Second
	RedrainMax  = 5 * time.Minute
)

type redrain struct {
	wait  time.Duration
	gen   uint64
	timer clock.Timer
}

type storeActor struct {
	cfg     Config
	q       *Queue
	timer   clock.Timer
	pending pending
	posted  bool // a *flush is in the mailbox
	drains  drains
	redrain map[[16]byte]*redrain
	gen     uint64
}

// New returns the store's Props.
func New(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &storeActor{cfg: cfg} })
}

// drainBatch bounds the frames handed back in one *messages.StoredFrames;
// a RouteUp hands back everything held, one batch per message the actor
// sends itself, so other work interleaves.
const drainBatch = 256

func (s *storeActor) Receive(ctx actor.Context) {
	now := s.cfg.Clock.Now()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		q, err := NewQueue(s.cfg.DB.DB, s.cfg.Limits)
		if err != nil {
			panic(err) // our own open database: a bug or a broken disk
		}
		q.OnCommit = s.cfg.OnCommit
		s.q = q
		s.gauge()
		s.schedule(ctx)
	case *messages.StoreFrame:
		s.pending.put(Item{Dest: m.Dest, ID: m.ID, Frame: m.Frame, Expiry: m.Expiry})
		s.accepted(ctx, now)
	case *messages.StoreAck:
		s.pending.ack(Ack{ID: m.ID, Dest: m.Dest})
		s.accepted(ctx, now)
	case *flush:
		s.posted = false
		s.flush(now)
	case *messages.RouteUp:
		s.stopRedrain(m.Dest) // a fresh start: the back-off begins again
		if s.drains.start(m.Dest) {
			s.drainStep(ctx, m.Dest, nil, now)
		}
	case *drainNext:
		s.drains.resume(m.dest)
		s.drainStep(ctx, m.dest, m.after, now)
	case *redrainTick:
		if r := s.redrain[m.dest]; r == nil || r.gen != m.gen {
			return // stopped, or armed again since
		}
		if s.drains.start(m.dest) {
			s.drainStep(ctx, m.dest, nil, now)
		}
	case *gcTick:
		if n, err := s.q.Expire(now); err != nil {
			s.cfg.Log.Error("store expiry failed", "err", err)
		} else if n > 0 {
			// The gauge first: whoever sees the counter move sees the
			// store already shrunk.
			s.gauge()
			s.cfg.Metrics.StoreEvents.WithLabelValues("expired").Add(float64(n))
		}
		s.schedule(ctx)
	case *messages.Drain:
		// What was accepted is written before the node goes on to stop.
		s.flush(now)
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		ctx.Respond(&messages.Persisted{Actor: Name, Err: s.flush(now)})
	case *actor.Stopping, *actor.Restarting:
		// Stopped without Drain, or failed: keep what was accepted.
		s.flush(now)
		if s.timer != nil {
			s.timer.Stop()
		}
		for d := range s.redrain {
			s.stopRedrain(d)
		}
	}
}

// accepted follows a put or ack added to pending: it writes at once when
// enough wait, else makes sure a flush is in the mailbox.
func (s *storeActor) accepted(ctx actor.Context, now time.Time) {
	switch {
	case s.pending.full():
		s.flush(now)
	case !s.posted:
		s.posted = true
		ctx.Send(ctx.Self(), &flush{})
	}
}

// flush writes what is pending in one transaction and counts the result.
func (s *storeActor) flush(now time.Time) error {
	if s.q == nil || s.pending.len() == 0 {
		return nil
	}
	puts, acks := s.pending.take()
	res, err := applyBatch(s.q, puts, acks, now)
	// The gauge before the counters: a reader that sees a counter move
	// sees the store's size after the batch.
	s.gauge()
	ev := s.cfg.Metrics.StoreEvents
	if res.Stored > 0 {
		ev.WithLabelValues("put").Add(float64(res.Stored))
	}
	failed := 0
	for i, e := range res.Errs {
		switch {
		case e == nil || errors.Is(e, ErrDuplicate):
		case refusal(e):
			ev.WithLabelValues("refused").Inc()
			s.cfg.Log.Warn("envelope not stored", "dest", crypto.Address(puts[i].Dest).Short(), "err", e)
		default:
			// Its transaction failed: not held, and nothing said it was;
			// its sender retransmits it.
			failed++
		}
	}
	if failed > 0 {
		ev.WithLabelValues("write_failed").Add(float64(failed))
	}
	if res.Acked > 0 {
		ev.WithLabelValues("delivered").Add(float64(res.Acked))
	}
	if err != nil {
		// A receipt not written leaves its frame held: it goes out again
		// at the next RouteUp, and the destination's replay window drops
		// the second copy.
		s.cfg.Log.Error("store write failed", "puts", len(puts), "not_stored", failed, "acks", len(acks), "err", err)
	}
	return err
}

// drainStep hands back one batch of dest's pass, the frames after the key
// after, and sends itself the next step while the pass goes on.
func (s *storeActor) drainStep(ctx actor.Context, dest [16]byte, after []byte, now time.Time) {
	s.flush(now) // hand back what was accepted, and not what was acked
	if s.q.LenFor(dest) == 0 {
		s.drains.stop(dest)
		s.stopRedrain(dest)
		return
	}
	items, cursor, err := s.q.PeekAfter(dest, after, drainBatch, now)
	if err != nil {
		// The frames stay held; the next RouteUp for dest starts a pass
		// again.
		s.cfg.Metrics.StoreEvents.WithLabelValues("read_failed").Inc()
		s.cfg.Log.Error("store peek failed", "dest", crypto.Address(dest).Short(), "err", err)
		s.drains.stop(dest)
		return
	}
	if len(items) > 0 {
		frames := make([][]byte, len(items))
		for i, it := range items {
			frames[i] = it.Frame
		}
		s.cfg.Log.Debug("handing back held envelopes", "dest", crypto.Address(dest).Short(), "n", len(frames))
		ctx.Send(s.cfg.Router, &messages.StoredFrames{Dest: dest, Frames: frames})
	}
	if next, more := s.drains.next(dest, cursor); more {
		ctx.Send(ctx.Self(), &drainNext{dest: dest, after: next})
	} else {
		s.armRedrain(ctx, dest)
	}
}

// armRedrain schedules another pass for dest (see RedrainBase): after
// RedrainBase the first time, twice the last wait after that.
func (s *storeActor) armRedrain(ctx actor.Context, dest [16]byte) {
	if s.redrain == nil {
		s.redrain = make(map[[16]byte]*redrain)
	}
	r := s.redrain[dest]
	if r == nil {
		r = &redrain{wait: RedrainBase}
		s.redrain[dest] = r
	} else {
		r.wait = min(2*r.wait, RedrainMax)
		if r.timer != nil {
			r.timer.Stop()
		}
	}
	s.gen++
	r.gen = s.gen
	self, sys, tick := ctx.Self(), ctx.ActorSystem(), &redrainTick{dest: dest, gen: r.gen}
	r.timer = s.cfg.Clock.AfterFunc(r.wait, func() { sys.Root.Send(self, tick) })
}

func (s *storeActor) stopRedrain(dest [16]byte) {
	if r := s.redrain[dest]; r != nil {
		if r.timer != nil {
			r.timer.Stop()
		}
		delete(s.redrain, dest)
	}
}

// refusal reports whether e, a put's entry in Applied.Errs, is the
// queue's refusal (a cap, a size, an expiry) rather than the failure of
// the transaction that was to write it.
func refusal(e error) bool {
	return errors.Is(e, ErrFull) || errors.Is(e, ErrTooLarge) || errors.Is(e, ErrExpired)
}

func (s *storeActor) gauge() { s.cfg.Metrics.Stored.Set(float64(s.q.Len())) }

func (s *storeActor) schedule(ctx actor.Context) {
	self, sys := ctx.Self(), ctx.ActorSystem()
	s.timer = s.cfg.Clock.AfterFunc(s.cfg.GCInterval, func() { sys.Root.Send(self, &gcTick{}) })
}
