package keys

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/actors/internal/lifecycle"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/mls"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "keys"

// Config wires the keys actor. Enabled false: a shell that takes part in
// shutdown and answers every request with ErrOff.
type Config struct {
	Enabled   bool
	Engine    EngineConfig
	Router    *actor.PID
	Announcer *actor.PID
	Clock     clock.Clock
	Log       *slog.Logger
}

// ErrOff answers requests when groups are off (groups.enabled = false).
var ErrOff = errors.New("keys: groups are off on this node (groups.enabled = false)")

// ErrKeyPackageUnavailable: no KeyPackage of an address could be fetched.
var ErrKeyPackageUnavailable = errors.New("keys: KeyPackage unavailable")

// Requests the node sends (RequestFuture); each is answered with the
// reply named.
type (
	// CreateRequest → *GroupReply.
	CreateRequest struct{ Name string }
	// ListRequest → *ListReply.
	ListRequest struct{}
	// ShowRequest → *GroupReply.
	ShowRequest struct{ ID [16]byte }
	// FetchRequest → *FetchReply: owner's KeyPackage, fetched over the
	// mesh when it is not cached, waiting up to Wait.
	FetchRequest struct {
		Owner crypto.Address
		Wait  time.Duration
	}
	// AddRequest → *ChangeReply. PQ: the X-Wing keys of the members (the
	// joiner too) the PQ option may reach (Engine.Add).
	AddRequest struct {
		ID [16]byte
		KP *mls.KeyPackage
		PQ PQKeys
	}
	// RemoveRequest → *ChangeReply; PQ as for AddRequest.
	RemoveRequest struct {
		ID   [16]byte
		Addr crypto.Address
		PQ   PQKeys
	}
	// SendRequest → *ChangeReply. Modes says, by member, how its copy is
	// protected (ModeFor the class of its route's first link; absent:
	// MLS).
	SendRequest struct {
		ID    [16]byte
		Text  []byte
		Modes map[crypto.Address]Mode
	}
)

// Replies.
type (
	GroupReply struct {
		Info GroupInfo
		Err  error
	}
	ListReply struct {
		Groups []GroupInfo
		Err    error
	}
	FetchReply struct {
		KP  *mls.KeyPackage
		Err error
	}
	// ChangeReply carries the group messages to send, one per member:
	// the node hands them to the router (their state is written already).
	ChangeReply struct {
		Info  GroupInfo
		Sends []messages.SendText
		Err   error
	}
)

// Timers the actor sends itself.
type (
	refetchTick struct {
		owner crypto.Address
		gen   uint64
	}
	fetchTimeout struct {
		owner crypto.Address
		gen   uint64
	}
	pruneTick struct{ owner *keysActor }
)

// refetchEvery is how often an unanswered KeyPackage request is sent
// again while someone waits for it.
const refetchEvery = 5 * time.Second

type waiter struct {
	reply *actor.PID
	timer clock.Timer
}

type fetch struct {
	gen     uint64
	waiters []waiter
	retry   clock.Timer
}

type keysActor struct {
	cfg      Config
	eng      *Engine
	fetches  map[crypto.Address]*fetch
	gen      uint64
	running  bool
	draining bool
	prune    clock.Timer
}

// New returns the actor's Props.
func New(cfg Config) *actor.Props {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Engine.Log == nil {
		cfg.Engine.Log = cfg.Log
	}
	return actor.PropsFromProducer(func() actor.Actor { return &keysActor{cfg: cfg} })
}

func (a *keysActor) Receive(ctx actor.Context) {
	if !a.cfg.Enabled {
		lifecycle.AckStateless(ctx, Name)
		a.refuseOff(ctx)
		return
	}
	now := a.cfg.Clock.Now()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		eng, err := NewEngine(a.cfg.Engine)
		if err != nil {
			panic(fmt.Errorf("keys: start: %w", err))
		}
		a.eng, a.fetches = eng, map[crypto.Address]*fetch{}
	case *messages.StartLinks:
		// Every actor of the node runs: the router and the announcer may
		// be sent to.
		if !a.running {
			a.running = true
			h, err := a.eng.EnsureKeyPackages(now)
			if err != nil {
				panic(fmt.Errorf("keys: KeyPackages: %w", err))
			}
			if h == nil {
				kh := a.eng.KeyPackageHash()
				h = &kh
			}
			ctx.Send(a.cfg.Announcer, &messages.SetKeyPackageHash{Hash: *h})
			a.process(ctx, now)
			a.armPrune(ctx)
		}
	case *messages.GroupInbound:
		if a.running {
			a.process(ctx, now)
		}
	case *messages.GroupFrameIn:
		if a.running && !a.draining {
			fx, err := a.eng.HandleLite(m, now)
			a.carryOut(ctx, fx)
			if err != nil {
				// The database refused: nothing was delivered or
				// acknowledged; the sender retransmits.
				a.cfg.Log.Warn("MLS-Lite frame not delivered", "err", err)
			}
		}
	case *messages.KeyPackageIn:
		if a.running && !a.draining {
			a.carryOut(ctx, a.eng.HandleKeyPackage(m, now))
		}
	case *CreateRequest:
		gi, err := a.eng.Create(m.Name)
		ctx.Respond(&GroupReply{Info: gi, Err: err})
	case *ListRequest:
		ctx.Respond(&ListReply{Groups: a.eng.Groups()})
	case *ShowRequest:
		gi, err := a.eng.Group(m.ID)
		ctx.Respond(&GroupReply{Info: gi, Err: err})
	case *FetchRequest:
		a.startFetch(ctx, m, now)
	case *AddRequest:
		gi, fx, err := a.eng.Add(m.ID, m.KP, m.PQ)
		ctx.Respond(&ChangeReply{Info: gi, Sends: fx.Sends, Err: err})
	case *RemoveRequest:
		gi, fx, err := a.eng.Remove(m.ID, m.Addr, m.PQ)
		ctx.Respond(&ChangeReply{Info: gi, Sends: fx.Sends, Err: err})
	case *SendRequest:
		gi, fx, err := a.eng.Send(m.ID, m.Text, m.Modes)
		ctx.Respond(&ChangeReply{Info: gi, Sends: fx.Sends, Err: err})
	case refetchTick:
		if f := a.fetches[m.owner]; f != nil && f.gen == m.gen {
			if _, ctl := a.eng.Fetch(m.owner, now); ctl != nil {
				ctx.Send(a.cfg.Router, ctl)
			}
			a.armRefetch(ctx, m.owner, f)
		}
	case fetchTimeout:
		if f := a.fetches[m.owner]; f != nil && f.gen == m.gen {
			a.eng.m.KeyPackages.WithLabelValues("fetch_timeouts").Inc()
			a.endFetch(ctx, m.owner, nil, fmt.Errorf("%w: no answer from %s or a relay holding its KeyPackage", ErrKeyPackageUnavailable, m.owner))
		}
	case pruneTick:
		if m.owner == a {
			a.eng.Prune(now)
			a.armPrune(ctx)
		}
	case *messages.Drain:
		a.draining = true
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		// Every change is written when it is made.
		ctx.Respond(&messages.Persisted{Actor: Name})
	case *actor.Restarting, *actor.Stopping:
		a.stop(ctx)
	}
}

// process applies the group inbox and carries out what that asks for.
func (a *keysActor) process(ctx actor.Context, now time.Time) {
	fx, err := a.eng.ProcessInbox(now)
	a.carryOut(ctx, fx)
	if err != nil {
		// The database refused: the entries stay in the group inbox and
		// are processed again by the restarted actor.
		panic(fmt.Errorf("keys: group inbox: %w", err))
	}
}

// carryOut does what an engine call returned.
func (a *keysActor) carryOut(ctx actor.Context, fx Effects) {
	for i := range fx.Controls {
		ctx.Send(a.cfg.Router, &fx.Controls[i])
	}
	for i := range fx.Forwards {
		ctx.Send(a.cfg.Router, &fx.Forwards[i])
	}
	if fx.Announce != nil {
		ctx.Send(a.cfg.Announcer, &messages.SetKeyPackageHash{Hash: *fx.Announce})
	}
	if fx.Inbox {
		a.cfg.Engine.Inbox.Notify()
	}
	for i := range fx.Receipts {
		ctx.Send(a.cfg.Router, &fx.Receipts[i])
	}
	for _, kp := range fx.Fetched {
		a.endFetch(ctx, kp.Owner, kp, nil)
	}
	for _, o := range fx.Unavailable {
		a.endFetch(ctx, o, nil, fmt.Errorf("%w: %s has none to give", ErrKeyPackageUnavailable, crypto.Address(o)))
	}
}

func (a *keysActor) startFetch(ctx actor.Context, m *FetchRequest, now time.Time) {
	if m.Owner == a.eng.cfg.Identity.Address() {
		ctx.Respond(&FetchReply{Err: fmt.Errorf("%w: this node's own", ErrKeyPackageUnavailable)})
		return
	}
	kp, ctl := a.eng.Fetch(m.Owner, now)
	if kp != nil {
		ctx.Respond(&FetchReply{KP: kp})
		return
	}
	f := a.fetches[m.Owner]
	if f == nil {
		a.gen++
		f = &fetch{gen: a.gen}
		a.fetches[m.Owner] = f
		ctx.Send(a.cfg.Router, ctl)
		a.armRefetch(ctx, m.Owner, f)
	}
	self, sys := ctx.Self(), ctx.ActorSystem()
	owner, gen := m.Owner, f.gen
	w := waiter{reply: ctx.Sender()}
	w.timer = a.cfg.Clock.AfterFunc(m.Wait, func() { sys.Root.Send(self, fetchTimeout{owner: owner, gen: gen}) })
	f.waiters = append(f.waiters, w)
}

func (a *keysActor) armRefetch(ctx actor.Context, owner crypto.Address, f *fetch) {
	self, sys := ctx.Self(), ctx.ActorSystem()
	gen := f.gen
	f.retry = a.cfg.Clock.AfterFunc(refetchEvery, func() { sys.Root.Send(self, refetchTick{owner: owner, gen: gen}) })
}

// endFetch answers everyone waiting for owner's KeyPackage. A timeout
// ends the whole fetch: waiters that came later had shorter waits or
// share the answer.
func (a *keysActor) endFetch(ctx actor.Context, owner crypto.Address, kp *mls.KeyPackage, err error) {
	f := a.fetches[owner]
	if f == nil {
		return
	}
	delete(a.fetches, owner)
	if f.retry != nil {
		f.retry.Stop()
	}
	for _, w := range f.waiters {
		w.timer.Stop()
		if w.reply != nil {
			ctx.Send(w.reply, &FetchReply{KP: kp, Err: err})
		}
	}
}

func (a *keysActor) armPrune(ctx actor.Context) {
	self, sys := ctx.Self(), ctx.ActorSystem()
	a.prune = a.cfg.Clock.AfterFunc(10*time.Minute, func() { sys.Root.Send(self, pruneTick{owner: a}) })
}

func (a *keysActor) stop(ctx actor.Context) {
	if a.prune != nil {
		a.prune.Stop()
	}
	for o := range a.fetches {
		a.endFetch(ctx, o, nil, fmt.Errorf("%w: the keys actor stopped", ErrKeyPackageUnavailable))
	}
}

// refuseOff answers requests while groups are off.
func (a *keysActor) refuseOff(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *CreateRequest, *ShowRequest:
		ctx.Respond(&GroupReply{Err: ErrOff})
	case *ListRequest:
		ctx.Respond(&ListReply{Err: ErrOff})
	case *FetchRequest:
		ctx.Respond(&FetchReply{Err: ErrOff})
	case *AddRequest, *RemoveRequest, *SendRequest:
		ctx.Respond(&ChangeReply{Err: ErrOff})
	}
}
