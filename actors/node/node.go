package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/actors/links"
	"github.com/quicprochat/qpc/actors/ratelimit"
	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/actors/verify"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/logging"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora/link"
)

// Errors of the node lifecycle.
var (
	ErrAlreadyStarted = errors.New("node: already started")
	ErrNotRunning     = errors.New("node: not running")
)

// Node is one qpc node: its identity, database, admin API and actor tree.
type Node struct {
	opts    options
	cfg     config.Config
	log     *slog.Logger
	clock   clock.Clock
	id      *crypto.Identity
	seal    *crypto.SealingKey
	metrics *metrics.Node

	system    *actor.ActorSystem
	ownSystem bool
	rootPID   *actor.PID
	db        *persist.DB
	api       *api.Server
	startedAt time.Time

	transports map[string]transports.Transport
	listeners  []links.Bound
	radios     []*link.Transport
	loraRadios []*loraRadio // the same radios, for status and metrics (radios.go)

	// deliveries feeds inbox (Deliveries, unbuffered) from box.
	deliveries deliveryFeed

	inbox     chan *messages.InboxMessage
	box       *inbox.Store
	keys      *verify.Directory
	verifier  *verify.Pool
	deadSub   *eventstream.Subscription
	readyOnce sync.Once
	readyCh   chan struct{}
	startFail chan error // a child stopped for good before the tree was ready
	phase     atomic.Int32
	started   atomic.Bool
	running   atomic.Bool
	stopOnce  sync.Once
	capsMu    sync.Mutex
	stopErr   error
	done      chan struct{}
	// draining is closed when the shutdown starts: long polls end then,
	// so the API can close within the shutdown's deadline.
	draining  chan struct{}
	drainOnce sync.Once
	// fappChanged wakes FAPPStatus long polls when a reservation moves.
	fappChanged changeFeed
}

// New checks the options and prepares a node; nothing runs until Start.
func New(opts ...Option) (*Node, error) {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	if !o.capsSet && !(o.cfg.Store.Enabled && o.cfg.Store.RelayForOthers) {
		o.caps &^= messages.CapStore // it holds nothing for others: do not announce it
	}
	o.caps |= fappCaps(o.cfg.FAPP) // the FAPP roles are the config's
	if o.cfg.Groups.PQ {
		o.caps |= messages.CapPQ
	}
	n := &Node{
		opts: o, cfg: o.cfg, log: o.log, clock: o.clock, id: o.identity,
		inbox: make(chan *messages.InboxMessage), readyCh: make(chan struct{}), startFail: make(chan error, 1), done: make(chan struct{}),
		draining: make(chan struct{}),
	}
	if n.log == nil {
		var err error
		if n.log, err = logging.New(os.Stderr, o.cfg.Logging.Level, o.cfg.Logging.Format); err != nil {
			return nil, err
		}
	}
	n.metrics = metrics.New(metrics.Options{Process: o.processMetrics, Version: o.version})
	return n, nil
}

// Start loads (or creates) the identity, opens the database, binds the
// admin API and starts the actor tree. It returns once every actor has
// started, or with an error (and everything it opened closed again).
func (n *Node) Start(ctx context.Context) (err error) {
	if !n.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	defer func() {
		if err != nil {
			n.cleanup(context.Background())
			close(n.done)
		}
	}()
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("node: data dir %s: %w", n.cfg.DataDir, err)
	}
	keyFileKept := false // the identity is a key file that was there before
	if n.id == nil {
		if n.id, keyFileKept, err = n.loadIdentity(); err != nil {
			return err
		}
	}
	n.log = n.log.With("node", n.id.Address().Short())
	if n.seal, err = crypto.SealingKeyFor(n.id); err != nil {
		return err
	}
	if err := n.openDB(keyFileKept); err != nil {
		return err
	}
	if n.box, err = inbox.Open(n.db.DB); err != nil {
		return err
	}
	n.inboxOpened()
	// Before the API serves: its handlers read the directory.
	n.keys = verify.NewDirectory(n.id.PublicKey())
	if err := n.openTransports(ctx); err != nil {
		return err
	}
	n.startedAt = n.clock.Now()
	n.metrics.StartTime.Set(float64(n.startedAt.Unix()))
	if n.cfg.API.Addr != "" {
		var backend api.Backend = n
		if !fappRoles(n.cfg.FAPP).Any() {
			backend = api.WithoutFAPP(n) // /v1/fapp/ answers 404 fapp_off
		}
		n.api, err = api.Listen(api.Options{
			Addr: n.cfg.API.Addr, Token: n.cfg.API.Token, AllowedHosts: n.cfg.API.AllowedHosts, Metrics: n.metrics,
			Log: n.log.With("component", "api"),
		}, backend)
		if err != nil {
			return err
		}
	}
	n.system = n.opts.system
	if n.system == nil {
		base := n.log.Handler()
		n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(logging.Demote(base)).With("component", "protoactor")
		}))
		n.ownSystem = true
	}
	// The edge verifies envelopes on every core against the keys the
	// router publishes, and hands them to the router.
	rootID := "node-" + n.id.Address().String()
	// A frame sent to one of this node's actors that is gone for good
	// (its supervisor gave up on it) still gives its link's credit back,
	// so the link is not stalled by an actor that no longer reads.
	prefix := rootID + "/"
	n.deadSub = n.system.EventStream.Subscribe(func(ev any) {
		dl, ok := ev.(*actor.DeadLetterEvent)
		if !ok || dl.PID == nil || !strings.HasPrefix(dl.PID.Id, prefix) {
			return
		}
		switch m := dl.Message.(type) {
		case *messages.InboundFrame:
			m.Done()
		case *messages.VerifiedEnvelope:
			m.In.Done()
		}
	})
	routerPID := actor.NewPID(n.system.Address(), rootID+"/"+router.Name)
	n.verifier = verify.NewPool(verify.PoolConfig{
		Dir: n.keys, Self: n.id.Address(), Seal: n.seal,
		Out:  func(m any) { n.system.Root.Send(routerPID, m) },
		Drop: func(reason string) { n.metrics.Mesh.EnvelopesDropped.WithLabelValues(reason).Inc() },
	})
	props := actor.PropsFromProducer(func() actor.Actor {
		// A restarted root gets fresh state (and respawns its children).
		return &root{n: n, history: newRestartHistory(n.opts.restart)}
	})
	n.rootPID, err = n.system.Root.SpawnNamed(props, rootID)
	if err != nil {
		return fmt.Errorf("node: spawn root: %w", err)
	}
	select {
	case <-n.readyCh:
	case err := <-n.startFail:
		return err
	case <-ctx.Done():
		return fmt.Errorf("node: waiting for actors to start: %w", ctx.Err())
	}
	n.running.Store(true)
	attrs := []any{"address", n.id.Address().String(), "profile", n.cfg.Profile, "data_dir", n.cfg.DataDir}
	if n.api != nil {
		attrs = append(attrs, "api", n.api.Addr())
	}
	n.log.Info("node started", attrs...)
	return nil
}

func (n *Node) markReady() { n.readyOnce.Do(func() { close(n.readyCh) }) }

// failStart ends a Start still waiting for the tree: the child name was
// stopped for good (a fatal failure, or too many) before every actor ran.
// After the tree was ready it does nothing.
func (n *Node) failStart(name string, reason any) {
	select {
	case <-n.readyCh:
		return
	default:
	}
	err, ok := reason.(error)
	if !ok {
		err = fmt.Errorf("%v", reason)
	}
	select {
	case n.startFail <- fmt.Errorf("node: %s failed while starting: %w", name, err):
	default: // the first one is reported
	}
}

// Stop runs the shutdown cascade: Draining and Persisting (bounded by the
// configured timeout and ctx), then Cleanup (actor tree, API, database),
// then Complete. It is safe to call more than once; later calls wait for
// the first and return its result.
func (n *Node) Stop(ctx context.Context) error {
	if !n.running.Load() {
		if n.started.Load() {
			<-n.done
			return n.stopErr
		}
		return ErrNotRunning
	}
	n.stopOnce.Do(func() {
		n.stopErr = n.stop(ctx)
		close(n.done)
	})
	<-n.done
	return n.stopErr
}

func (n *Node) stop(ctx context.Context) error {
	deadline := n.clock.Now().Add(n.cfg.Shutdown.Timeout.D())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	n.log.Info("shutdown started", "deadline", n.cfg.Shutdown.Timeout.D())
	// The coordinator times the phases out itself; the future's own timeout
	// only guards against a coordinator that is gone.
	wait := time.Until(deadline) + time.Second
	res, err := n.system.Root.RequestFuture(n.rootPID, &messages.BeginShutdown{Deadline: deadline}, wait).Result()
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("node: shutdown coordinator: %w", err))
	} else if r, ok := res.(*messages.ShutdownReady); ok && len(r.Late) > 0 {
		n.log.Warn("shutdown deadline passed for some actors", "late", r.Late)
	}
	n.onPhase(messages.PhaseCleanup)
	if err := n.cleanup(ctx); err != nil {
		errs = append(errs, err)
	}
	n.running.Store(false)
	n.onPhase(messages.PhaseComplete)
	return errors.Join(errs...)
}

// cleanup stops the actor tree (children first), then the API and the
// database. It tolerates parts that never started.
func (n *Node) cleanup(ctx context.Context) error {
	var errs []error
	if n.rootPID != nil {
		if err := n.system.Root.StopFuture(n.rootPID).Wait(); err != nil {
			errs = append(errs, fmt.Errorf("node: stop actors: %w", err))
		}
	}
	if n.verifier != nil {
		n.verifier.Close()
	}
	if n.deadSub != nil {
		n.system.EventStream.Unsubscribe(n.deadSub)
	}
	if n.ownSystem && n.system != nil {
		n.system.Shutdown()
	}
	if err := n.closeListeners(); err != nil {
		errs = append(errs, err)
	}
	if n.api != nil {
		// Requests in flight get a second to finish (long polls ended when
		// draining began); what is still open then is cut.
		actx, cancel := context.WithTimeout(ctx, time.Second)
		err := n.api.Close(actx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("node: close api: %w", err))
		}
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: close database: %w", err))
		} else {
			n.log.Info("database closed", "file", n.db.Path())
		}
	}
	return errors.Join(errs...)
}

// onPhase logs a shutdown phase and records it; called from the shutdown
// coordinator's goroutine and from stop.
func (n *Node) onPhase(p messages.Phase) {
	if p >= messages.PhaseDraining {
		n.drainOnce.Do(func() { close(n.draining) })
	}
	n.phase.Store(int32(p))
	n.metrics.ShutdownPhase.Set(float64(p))
	n.log.Info("shutdown phase", "phase", p.String())
}

// Done is closed when the node has stopped (or failed to start).
func (n *Node) Done() <-chan struct{} { return n.done }

// Inject hands the node a frame as if it had arrived on a link named link
// from the peer from. It goes through admission and routing like any
// other frame.
func (n *Node) Inject(link string, from crypto.Address, frame []byte) error {
	if !n.running.Load() {
		return ErrNotRunning
	}
	n.metrics.FramesInjected.Inc()
	pid := actor.NewPID(n.rootPID.Address, n.rootPID.Id+"/"+ratelimit.Name)
	n.system.Root.Send(pid, &messages.InboundFrame{Link: link, From: from, Data: frame})
	return nil
}

// Address is the node's mesh address (valid after Start, or when an
// identity was given).
func (n *Node) Address() crypto.Address {
	if n.id == nil {
		return crypto.Address{}
	}
	return n.id.Address()
}

// Metrics exposes the node's metrics (tests, the simulator).
func (n *Node) Metrics() *metrics.Node { return n.metrics }

// Gatherer is the node's Prometheus registry.
func (n *Node) Gatherer() prometheus.Gatherer { return n.metrics.Registry }

// APIAddr is the bound admin API address, or "" when it is off.
func (n *Node) APIAddr() string {
	if n.api == nil {
		return ""
	}
	return n.api.Addr()
}

// Phase is the current shutdown phase.
func (n *Node) Phase() messages.Phase { return messages.Phase(n.phase.Load()) }

func (n *Node) actorStates(ctx context.Context) (*messages.ActorStates, error) {
	if !n.running.Load() && n.rootPID == nil {
		return nil, ErrNotRunning
	}
	timeout := 2 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	res, err := n.system.Root.RequestFuture(n.rootPID, &messages.StatusRequest{}, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("node: ask root for status: %w", err)
	}
	st, ok := res.(*messages.ActorStates)
	if !ok {
		return nil, fmt.Errorf("node: unexpected status reply %T", res)
	}
	return st, nil
}

// Ready reports whether every actor runs and no shutdown began.
func (n *Node) Ready(ctx context.Context) bool {
	if !n.running.Load() || n.Phase() != messages.PhaseRunning {
		return false
	}
	st, err := n.actorStates(ctx)
	return err == nil && st.Ready
}

// Status describes the node for /v1/status and `qpc status`.
func (n *Node) Status(ctx context.Context) (api.Status, error) {
	st := api.Status{
		Address:   n.id.Address().String(),
		PublicKey: fmt.Sprintf("%x", []byte(n.id.PublicKey())),
		Version:   n.opts.version,
		Profile:   n.cfg.Profile,
		Caps:      n.Capabilities().Names(),
		StartedAt: n.startedAt,
		Phase:     n.Phase().String(),
		Listeners: []api.Listener{},
		Radios:    n.radioStatus(),
		Links:     []api.Link{},
		Peers:     []api.Peer{},
		Actors:    []api.ActorStatus{},
	}
	up := n.clock.Now().Sub(n.startedAt)
	st.Uptime, st.UptimeSec = up.Round(time.Second).String(), up.Seconds()
	if !n.running.Load() {
		return st, nil
	}
	as, err := n.actorStates(ctx)
	if err != nil {
		return st, err
	}
	st.Ready = as.Ready && n.Phase() == messages.PhaseRunning
	if st.Listeners, st.Links, st.Peers, err = n.statusLinks(ctx); err != nil {
		return st, err
	}
	for _, a := range as.Actors {
		st.Actors = append(st.Actors, api.ActorStatus{Name: a.Name, State: a.State, Restarts: a.Restarts})
	}
	return st, nil
}

// Fault sends messages.InjectFault to the named top-level actor; it panics
// there only when the node was built WithFaultInjection.
func (n *Node) Fault(actorName, reason string) error {
	if !n.running.Load() {
		return ErrNotRunning
	}
	pid := actor.NewPID(n.rootPID.Address, n.rootPID.Id+"/"+actorName)
	n.system.Root.Send(pid, &messages.InjectFault{Reason: reason})
	return nil
}
