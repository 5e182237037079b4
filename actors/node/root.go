package node

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/actors/announcer"
	"github.com/quicprochat/qpc/actors/fapp"
	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/actors/internal/lifecycle"
	"github.com/quicprochat/qpc/actors/keys"
	"github.com/quicprochat/qpc/actors/links"
	"github.com/quicprochat/qpc/actors/mailbox"
	"github.com/quicprochat/qpc/actors/ratelimit"
	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/actors/shutdown"
	"github.com/quicprochat/qpc/actors/store"
	"github.com/quicprochat/qpc/messages"
)

// Child states as reported in status.
const (
	stateStarting   = "starting"
	stateRunning    = "running"
	stateRestarting = "restarting"
	stateStopped    = "stopped"
)

type child struct {
	name     string
	pid      *actor.PID
	state    string
	restarts int
}

// root is the node root actor; n is read-only configuration shared with it.
type root struct {
	n        *Node
	children []*child
	byID     map[string]*child
	history  *restartHistory
	stopping bool
}

var _ actor.SupervisorStrategy = (*root)(nil)

func (r *root) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		r.spawnChildren(ctx)
	case *messages.ActorUp:
		if c := r.find(m.Actor); c != nil {
			c.state = stateRunning
		}
		r.n.metrics.ActorsRunning.Set(float64(r.count(stateRunning)))
		if r.ready() {
			ctx.Send(r.find(links.Name).pid, &messages.StartLinks{})
			ctx.Send(r.find(fapp.Name).pid, &messages.StartLinks{}) // its first sends wait for it too
			ctx.Send(r.find(keys.Name).pid, &messages.StartLinks{}) // and the keys actor's
			r.n.markReady()
		}
	case *actor.Terminated:
		if c := r.byID[m.Who.Id]; c != nil {
			c.state = stateStopped
			r.n.metrics.ActorsRunning.Set(float64(r.count(stateRunning)))
		}
	case *messages.StatusRequest:
		st := &messages.ActorStates{Ready: r.ready()}
		for _, c := range r.children {
			st.Actors = append(st.Actors, messages.ActorState{Name: c.name, State: c.state, Restarts: c.restarts})
		}
		ctx.Respond(st)
	case *messages.PhaseChanged:
		r.n.onPhase(m.Phase)
	case *messages.CapabilitiesRequest:
		ctx.Respond(&messages.SetCapabilities{Caps: r.n.Capabilities()})
	case *messages.BeginShutdown:
		r.stopping = true
		ctx.Forward(r.find(shutdown.Name).pid)
	}
}

func (r *root) ready() bool {
	return !r.stopping && len(r.children) > 0 && r.count(stateRunning) == len(r.children)
}

func (r *root) count(state string) int {
	n := 0
	for _, c := range r.children {
		if c.state == state {
			n++
		}
	}
	return n
}

func (r *root) find(name string) *child {
	for _, c := range r.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (r *root) spawn(ctx actor.Context, name string, props *actor.Props) *actor.PID {
	props.Configure(actor.WithReceiverMiddleware(lifecycle.Middleware(name, r.n.opts.faults)))
	pid, err := ctx.SpawnNamed(props, name)
	if err != nil {
		// Names are fixed and unique under a fresh root: a bug if it happens.
		panic(fmt.Sprintf("node: spawn %s: %v", name, err))
	}
	// Export the per-actor series at zero so dashboards see them before
	// the first failure.
	r.n.metrics.ActorRestarts.WithLabelValues(name)
	r.n.metrics.ActorFailures.WithLabelValues(name)
	c := &child{name: name, pid: pid, state: stateStarting}
	r.children = append(r.children, c)
	r.byID[pid.Id] = c
	return pid
}

// spawnChildren builds the tree. Children's PIDs are known before they
// exist (root id + "/" + name), so each is handed the PIDs it sends to
// whatever the spawn order; nothing is sent before every child runs.
func (r *root) spawnChildren(ctx actor.Context) {
	n := r.n
	r.children, r.byID = nil, make(map[string]*child)
	pid := func(name string) *actor.PID { return actor.NewPID(ctx.Self().Address, ctx.Self().Id+"/"+name) }
	routerPID, storePID, linksPID := pid(router.Name), pid(store.Name), pid(links.Name)
	limitPID, announcerPID := pid(ratelimit.Name), pid(announcer.Name)
	cfg := n.cfg
	meshLog := func(c string) *slog.Logger { return n.log.With("component", c) }

	storePID = r.spawn(ctx, store.Name, store.New(store.Config{
		DB: n.db, Limits: store.Limits{PerDest: cfg.Store.MaxPerDest, Total: cfg.Store.MaxTotal, MaxFrame: cfg.Transports.MaxFrameSize},
		GCInterval: cfg.Store.GCInterval.D(), Router: routerPID, Clock: n.clock, Metrics: n.metrics.Mesh, Log: meshLog("store"),
	}))
	inboxPID := r.spawn(ctx, inbox.Name, inbox.New(inbox.Config{
		Store:       n.box,
		MaxMessages: cfg.Inbox.MaxMessages, MaxAge: cfg.Inbox.MaxAge.D(), Clock: n.clock, Log: meshLog("inbox"),
	}))
	keysPID := r.spawn(ctx, keys.Name, keys.New(n.keysConfig(routerPID, announcerPID)))
	var groupsIn *actor.PID // group and KeyPackage messages go to the keys actor only when groups are on
	if cfg.Groups.Enabled {
		groupsIn = keysPID
	}
	fappPID := r.spawn(ctx, fapp.Name, fapp.New(n.fappConfig(linksPID, routerPID)))
	var fappIn *actor.PID // FAPP frames go to the fapp actor only when FAPP is on
	if fappRoles(cfg.FAPP).Any() {
		fappIn = fappPID
	}
	r.spawn(ctx, router.Name, router.New(router.Config{
		Identity: n.id, Seal: n.seal, Clock: n.clock, DB: n.db,
		Table: router.TableConfig{MaxRoutes: cfg.Routing.MaxRoutes, TTL: cfg.Routing.RouteTTL.D()},
		Dedup: cfg.Routing.DedupCache, MaxHops: cfg.Announce.MaxHops, TTL: cfg.Store.TTL.D(), StoreOn: cfg.Store.Enabled, RelayStore: cfg.Store.RelayForOthers, SignedOnly: !cfg.Transports.LoRa.Compact,
		Outbox: router.OutboxLimits{MaxPending: cfg.Outbox.MaxPending, RetryBase: cfg.Outbox.RetryBase.D(), RetryMax: cfg.Outbox.RetryMax.D()},
		Links:  linksPID, Store: storePID, Inbox: n.box, InboxActor: inboxPID, Keys: n.keys, Groups: groupsIn,
		AnnounceMaxAge: cfg.Announce.MaxAge.D(), PQ: n.pqKey(),
		Metrics: n.metrics.Mesh, Log: meshLog("router"),
	}))
	r.spawn(ctx, ratelimit.Name, ratelimit.New(ratelimit.Config{
		Router: routerPID, Announcer: announcerPID, FAPP: fappIn, Limits: n.rateLimits(), Clock: n.clock, Metrics: n.metrics.Mesh,
		OnRefused: func(reason string) { n.metrics.FramesRefused.WithLabelValues(reason).Inc() },
		Tap:       n.opts.tap, Verify: n.verifier,
	}).Configure(actor.WithMailbox(mailbox.PriorityShedding(mailbox.Options{
		MaxMessages: 8 * cfg.Transports.QueueFrames,
		OnShed: func(m any, p messages.Priority) {
			n.metrics.FramesRefused.WithLabelValues("overload_" + p.String()).Inc()
			if f, ok := m.(*messages.InboundFrame); ok {
				f.Done()
			}
		},
	}))))
	r.spawn(ctx, announcer.Name, announcer.New(announcer.Config{
		Identity: n.id, SealPub: n.seal.Public(), Caps: n.Capabilities(), Clock: n.clock,
		Interval: cfg.Announce.Interval.D(), MaxAge: cfg.Announce.MaxAge.D(), MaxHops: cfg.Announce.MaxHops,
		Router: routerPID, Links: linksPID, Metrics: n.metrics.Mesh, Log: meshLog("announcer"),
	}))
	r.spawn(ctx, links.Name, links.New(n.linksConfig(limitPID)))
	// Drain from the edge inwards: stop taking frames first, then let the
	// router, store and the rest finish.
	parts := []shutdown.Participant{
		{Name: links.Name, PID: linksPID},
		{Name: ratelimit.Name, PID: limitPID},
		{Name: announcer.Name, PID: announcerPID},
		{Name: router.Name, PID: routerPID},
		{Name: store.Name, PID: storePID},
		{Name: inbox.Name, PID: inboxPID},
		{Name: keys.Name, PID: keysPID},
		{Name: fapp.Name, PID: fappPID},
	}
	r.spawn(ctx, shutdown.Name, shutdown.New(shutdown.Config{
		Participants: parts, Clock: n.clock, Log: n.log.With("component", "shutdown"), Notify: ctx.Self(),
	}))
}

// HandleFailure is the supervision strategy for the root's children; it
// runs on the root's goroutine, so it may touch the root's state.
func (r *root) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, pid *actor.PID, _ *actor.RestartStatistics, reason any, msg any) {
	c := r.byID[pid.Id]
	name := strings.TrimPrefix(pid.Id, ctxPrefix(pid))
	if c != nil {
		name = c.name
	}
	r.n.metrics.ActorFailures.WithLabelValues(name).Inc()
	log := r.n.log.With("component", "supervisor", "actor", name)
	if Decide(reason) == actor.StopDirective || damagedAtStart(reason, msg) {
		log.Error("actor failed fatally; stopping it", "reason", fmt.Sprint(reason), "message", fmt.Sprintf("%T", msg))
		sup.StopChildren(pid)
		r.n.failStart(name, reason)
		return
	}
	delay, giveUp := r.history.Fail(name, r.n.clock.Now())
	if giveUp {
		log.Error("actor failed too often; stopping it", "reason", fmt.Sprint(reason),
			"max_restarts", r.n.opts.restart.MaxRestarts, "window", r.n.opts.restart.Window)
		sup.StopChildren(pid)
		r.n.failStart(name, reason)
		return
	}
	if c != nil {
		c.state = stateRestarting
		c.restarts++
	}
	r.n.metrics.ActorRestarts.WithLabelValues(name).Inc()
	log.Warn("actor failed; restarting", "reason", fmt.Sprint(reason), "message", fmt.Sprintf("%T", msg), "after", delay)
	r.n.clock.AfterFunc(delay, func() { sup.RestartChildren(pid) })
}

func ctxPrefix(pid *actor.PID) string {
	if i := strings.LastIndexByte(pid.Id, '/'); i >= 0 {
		return pid.Id[:i+1]
	}
	return ""
}
