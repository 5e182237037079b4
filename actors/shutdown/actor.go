package shutdown

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "shutdown"

// Participant is an actor that takes part in draining and persisting.
type Participant struct {
	Name string
	PID  *actor.PID
}

// Config wires the coordinator.
type Config struct {
	Participants []Participant
	Clock        clock.Clock
	Log          *slog.Logger
	// Notify, when set, is sent *messages.PhaseChanged each time the phase
	// changes to Draining or Persisting.
	Notify *actor.PID
}

// phaseTimeout is sent to self when a phase's share of the deadline ends.
type phaseTimeout struct{ phase messages.Phase }

type coordinator struct {
	cfg       Config
	seq       *Sequence
	byPID     map[string]string
	requester *actor.PID
	deadline  time.Time
	timer     clock.Timer
}

// New returns the coordinator's Props.
func New(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		names := make([]string, len(cfg.Participants))
		byPID := make(map[string]string, len(cfg.Participants))
		for i, p := range cfg.Participants {
			names[i] = p.Name
			byPID[p.PID.String()] = p.Name
		}
		return &coordinator{cfg: cfg, seq: NewSequence(names), byPID: byPID}
	})
}

func (c *coordinator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		// A participant that stops (given up by its supervisor) must not
		// hold the shutdown until its deadline.
		for _, p := range c.cfg.Participants {
			ctx.Watch(p.PID)
		}
	case *actor.Terminated:
		if name, ok := c.byPID[m.Who.String()]; ok {
			before := c.seq.Phase()
			if c.seq.Gone(name) != before {
				c.enterPhase(ctx)
			}
		}
	case *messages.BeginShutdown:
		if !c.seq.Begin() {
			return // already under way; the first requester gets the answer
		}
		c.requester = ctx.Sender()
		c.deadline = m.Deadline
		c.enterPhase(ctx)
	case *messages.Drained:
		c.ack(ctx, m.Actor, messages.PhaseDraining)
	case *messages.Persisted:
		if m.Err != nil {
			c.cfg.Log.Error("persist failed", "actor", m.Actor, "err", m.Err)
		}
		c.ack(ctx, m.Actor, messages.PhasePersisting)
	case *phaseTimeout:
		if c.seq.Phase() == m.phase {
			c.cfg.Log.Warn("shutdown phase deadline passed", "phase", m.phase.String(), "waiting_for", c.seq.Pending())
		}
		before := c.seq.Phase()
		if c.seq.Timeout(m.phase) != before {
			c.enterPhase(ctx)
		}
	}
}

func (c *coordinator) ack(ctx actor.Context, name string, p messages.Phase) {
	before := c.seq.Phase()
	if c.seq.Ack(name, p) != before {
		c.enterPhase(ctx)
	}
}

// enterPhase announces the current phase and sends its request to every
// participant, or answers the requester once Persisting is over.
func (c *coordinator) enterPhase(ctx actor.Context) {
	p := c.seq.Phase()
	if c.cfg.Notify != nil && (p == messages.PhaseDraining || p == messages.PhasePersisting) {
		ctx.Send(c.cfg.Notify, &messages.PhaseChanged{Phase: p}) // Cleanup and Complete are the node's to announce
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	var msg any
	switch p {
	case messages.PhaseDraining:
		msg = &messages.Drain{}
	case messages.PhasePersisting:
		msg = &messages.Persist{}
	default:
		if c.requester != nil {
			ctx.Send(c.requester, &messages.ShutdownReady{Late: c.seq.Late()})
		}
		return
	}
	// Draining may use half of what is left, Persisting all of the rest.
	left := c.deadline.Sub(c.cfg.Clock.Now())
	if p == messages.PhaseDraining {
		left /= 2
	}
	self, sys := ctx.Self(), ctx.ActorSystem()
	c.timer = c.cfg.Clock.AfterFunc(max(left, 0), func() {
		sys.Root.Send(self, &phaseTimeout{phase: p})
	})
	for _, part := range c.cfg.Participants {
		if c.seq.Waiting(part.Name) {
			ctx.Request(part.PID, msg)
		}
	}
}
