package fapp

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/actors/internal/lifecycle"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "fapp"

// SweepInterval is how often reverse paths and the store's expired sets
// are swept.
const SweepInterval = 30 * time.Second

// Config wires the actor. Roles empty: FAPP is off and the actor only
// takes part in shutdown (FAPP frames are then refused by ratelimit).
type Config struct {
	Identity *crypto.Identity
	Roles    Roles
	DB       *bolt.DB
	Clock    clock.Clock
	Metrics  *metrics.FAPP
	Links    *actor.PID
	// Router, when set, is asked for its table every sweep (the next hop
	// towards a therapist whose announce path is not known).
	Router *actor.PID
	Log    *slog.Logger

	// The therapist's data.
	PLZ         fapp.PLZ
	Licence     string
	AnnounceTTL time.Duration
	// QueryHops is the hop limit of own queries; MaxSlots bounds the
	// relay store.
	QueryHops int
	MaxSlots  int
	// Notify is called (on the actor's goroutine; must not block) when a
	// reservation's status or the therapist's requests changed.
	Notify func()
	// engine overrides the engine's bounds (tests).
	Engine func(*EngineConfig)
}

type fappActor struct {
	cfg Config
	// live is shared by the actor's instances: set once the root said
	// every actor of the node runs (StartLinks); a restarted instance
	// may send at once, the first waits for it.
	live     *liveness
	eng      *Engine
	sub      *eventstream.Subscription
	sweep    clock.Timer
	renew    clock.Timer
	renewGen uint64
	pace     clock.Timer
	paceGen  uint64
	draining bool
}

type liveness struct{ running bool }

type sweepTick struct{}
type renewTick struct{ gen uint64 }
type paceTick struct{ gen uint64 }

// New returns the actor's Props.
func New(cfg Config) *actor.Props {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	live := &liveness{}
	return actor.PropsFromProducer(func() actor.Actor { return &fappActor{cfg: cfg, live: live} })
}

func (a *fappActor) Receive(ctx actor.Context) {
	if !a.cfg.Roles.Any() {
		lifecycle.AckStateless(ctx, Name)
		if m, ok := ctx.Message().(*messages.InboundFrame); ok {
			m.Done()
		}
		if _, ok := ctx.Message().(*actor.Started); !ok {
			a.refuseOff(ctx)
		}
		return
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if err := a.start(ctx); err != nil {
			// An error, so supervision can tell a damaged record
			// (fapp.ErrDamagedRecord: stopped, the node's Start fails)
			// from a failure a restart may mend.
			panic(fmt.Errorf("fapp: start: %w", err))
		}
	case *messages.StartLinks:
		// Every actor of the node runs: the router and the links may be
		// sent to (sending to a PID whose actor is still being spawned
		// races inside protoactor's mailbox).
		if !a.live.running {
			a.live.running = true
			a.begin(ctx)
		}
	case *messages.InboundFrame:
		if !a.draining {
			kind, _, _, _ := fapp.Peek(m.Data)
			a.send(ctx, a.eng.Handle(m.From, m.Data))
			if kind == fapp.KindAnswer || kind == fapp.KindReserve {
				a.notify()
			}
		}
		m.Done()
	case *messages.PeerUp:
		if a.eng.LinkUp(m.Link.Peer, m.Link.ID, constrainedClass(m.Link.Class)) {
			a.send(ctx, a.eng.PeerUp(m.Link.Peer))
		}
	case *messages.PeerDown:
		a.eng.LinkDown(m.Link.Peer, m.Link.ID)
	case sweepTick:
		a.send(ctx, a.eng.Sweep())
		a.askRoutes(ctx)
		a.armSweep(ctx)
	case *messages.RoutesReply:
		a.eng.SetRoutes(m.Routes)
	case renewTick:
		if m.gen == a.renewGen {
			a.send(ctx, a.eng.Reannounce())
			a.armRenew(ctx)
		}
	case paceTick:
		if m.gen == a.paceGen {
			a.send(ctx, a.eng.FlushAnnounce())
			a.armPace(ctx)
		}
	case *Publish:
		seq, exp, outs, err := a.eng.Publish(m.Slots)
		a.send(ctx, outs)
		if err == nil {
			a.armRenew(ctx)
		}
		ctx.Respond(&PublishReply{Seq: seq, Expires: exp, Slots: a.eng.Free(), Err: err})
	case *SearchStart:
		id, outs, err := a.eng.StartSearch(m.Filter)
		a.send(ctx, outs)
		ctx.Respond(&SearchStarted{ID: id, Err: err})
	case *SearchEnd:
		rs, err := a.eng.EndSearch(m.ID)
		ctx.Respond(&SearchResults{Results: rs, Err: err})
	case *Reserve:
		r, outs, err := a.eng.Reserve(m.Slot, m.Note)
		a.send(ctx, outs)
		ctx.Respond(reservationReply(r, err))
	case *StatusRequest:
		r, err := a.eng.Reservation(m.ID)
		ctx.Respond(reservationReply(r, err))
	case *RequestsRequest:
		rs, err := a.eng.Requests()
		ctx.Respond(&RequestsReply{Requests: rs, Err: err})
	case *AnswerRequest:
		st, outs, err := a.eng.Answer(m.ID, m.Confirm, m.Text)
		a.send(ctx, outs)
		if err == nil {
			a.armRenew(ctx)
			a.notify()
		}
		ctx.Respond(&ReservationReply{Info: ReservationInfo{ID: m.ID, Status: st}, Err: err})
	case *messages.Drain:
		a.draining = true
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		ctx.Respond(&messages.Persisted{Actor: Name, Err: a.eng.savePractice()})
	case *actor.Restarting:
		a.stop(ctx)
	case *actor.Stopping:
		a.stop(ctx)
	}
}

// refuseOff answers an API request while FAPP is off.
func (a *fappActor) refuseOff(ctx actor.Context) {
	err := fmt.Errorf("%w: FAPP is off (no fapp.role)", ErrRole)
	switch ctx.Message().(type) {
	case *Publish:
		ctx.Respond(&PublishReply{Err: err})
	case *SearchStart:
		ctx.Respond(&SearchStarted{Err: err})
	case *SearchEnd:
		ctx.Respond(&SearchResults{Err: err})
	case *Reserve, *StatusRequest, *AnswerRequest:
		ctx.Respond(&ReservationReply{Err: err})
	case *RequestsRequest:
		ctx.Respond(&RequestsReply{Err: err})
	}
}

// constrainedClass: the transports' link classes that get short
// responses (transports.ClassOf: LoRa).
func constrainedClass(c string) bool { return c == "constrained" || c == "severely-constrained" }

func reservationReply(r *fapp.Reservation, err error) *ReservationReply {
	if err != nil {
		return &ReservationReply{Err: err}
	}
	return &ReservationReply{Info: ReservationInfo{ID: r.ID, Slot: r.Slot, Status: r.Status, Text: r.Text}}
}

func (a *fappActor) notify() {
	if a.cfg.Notify != nil {
		a.cfg.Notify()
	}
}

func (a *fappActor) start(ctx actor.Context) error {
	c := a.cfg
	st := &boltState{db: c.DB}
	ec := EngineConfig{
		Self: c.Identity.Address(), Roles: c.Roles, Clock: c.Clock, Metrics: c.Metrics, Rand: rand.Reader, State: st, Log: c.Log,
		QueryHops: uint8(c.QueryHops), AnnounceTTL: c.AnnounceTTL,
	}
	if err := st.init(); err != nil {
		return err
	}
	if c.Roles.Relay {
		lim := fapp.DefaultLimits
		if c.MaxSlots > 0 {
			lim.MaxSlots = c.MaxSlots
		}
		s, err := fapp.Open(c.DB, c.Clock, lim)
		if err != nil {
			return err
		}
		if d := s.Damaged(); len(d) > 0 {
			c.Log.Warn("damaged FAPP store records left alone", "count", len(d))
		}
		ec.Store = s
	}
	if c.Roles.Therapist {
		p, err := st.practice(c.Identity, c.PLZ, c.Licence)
		if err != nil {
			return err
		}
		ec.Practice = p
	}
	if c.Roles.Patient {
		rs, err := st.reservations()
		if err != nil {
			return err
		}
		ec.Reservations = rs
		if ec.Retries, err = st.retries(); err != nil {
			return err
		}
		if st.damaged > 0 {
			c.Log.Warn("damaged FAPP reservation records left alone", "count", st.damaged)
		}
	}
	if c.Engine != nil {
		c.Engine(&ec)
	}
	a.eng = NewEngine(ec)
	a.eng.storeGauges()

	sys, self, me := ctx.ActorSystem(), ctx.Self(), c.Identity.Address()
	a.sub = lifecycle.SubscribePeerEvents(sys, self, me)
	a.armSweep(ctx)
	if a.live.running {
		a.begin(ctx) // a restart: the others run already
	}
	return nil
}

// begin sends what the actor sends first, once every actor of the node
// runs: the question for the router's table, and a restarted therapist's
// set (its announce is in the practice state, its expiry is not).
func (a *fappActor) begin(ctx actor.Context) {
	a.askRoutes(ctx)
	if p := a.eng.cfg.Practice; p != nil && p.Seq() > 0 {
		a.send(ctx, a.eng.Reannounce())
		a.armRenew(ctx)
	}
}

func (a *fappActor) stop(ctx actor.Context) {
	if a.sub != nil {
		ctx.ActorSystem().EventStream.Unsubscribe(a.sub)
		a.sub = nil
	}
	for _, t := range []clock.Timer{a.sweep, a.renew, a.pace} {
		if t != nil {
			t.Stop()
		}
	}
	a.sweep, a.renew, a.pace = nil, nil, nil
	a.renewGen++
	a.paceGen++
}

// askRoutes asks the router for its table; the answer comes as a
// message (never waited for in Receive).
func (a *fappActor) askRoutes(ctx actor.Context) {
	if a.cfg.Router != nil && (a.cfg.Roles.Relay || a.cfg.Roles.Patient) {
		ctx.Request(a.cfg.Router, &messages.RoutesRequest{})
	}
}

func (a *fappActor) armSweep(ctx actor.Context) {
	sys, self := ctx.ActorSystem(), ctx.Self()
	a.sweep = a.cfg.Clock.AfterFunc(SweepInterval, func() { sys.Root.Send(self, sweepTick{}) })
}

// armPace arms the timer for an own announce held back by the pace
// (Engine.AnnounceDue); nothing when none waits.
func (a *fappActor) armPace(ctx actor.Context) {
	if a.pace != nil {
		a.pace.Stop()
		a.pace = nil
	}
	a.paceGen++
	d := a.eng.AnnounceDue()
	if d <= 0 {
		return
	}
	sys, self, gen := ctx.ActorSystem(), ctx.Self(), a.paceGen
	a.pace = a.cfg.Clock.AfterFunc(d, func() { sys.Root.Send(self, paceTick{gen: gen}) })
}

func (a *fappActor) armRenew(ctx actor.Context) {
	a.armPace(ctx)
	if a.renew != nil {
		a.renew.Stop()
	}
	a.renewGen++
	d := a.eng.ReannounceIn()
	if d <= 0 {
		return
	}
	sys, self, gen := ctx.ActorSystem(), ctx.Self(), a.renewGen
	a.renew = a.cfg.Clock.AfterFunc(d, func() { sys.Root.Send(self, renewTick{gen: gen}) })
}

// send hands the engine's frames to the links actor.
func (a *fappActor) send(ctx actor.Context, outs []Out) {
	for _, o := range outs {
		prio := messages.Data
		if o.Kind == fapp.KindAnnounce {
			prio = messages.Bulk
		}
		if o.All {
			ctx.Send(a.cfg.Links, &messages.BroadcastFrame{Data: o.Data, Except: o.Except, Priority: prio})
		} else {
			ctx.Send(a.cfg.Links, &messages.SendFrame{Peer: o.Peer, Data: o.Data, Priority: prio})
		}
	}
}
