package router

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/actors/internal/lifecycle"
	"github.com/quicprochat/qpc/actors/verify"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/pq"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
)

// Name is the actor's name under the node root.
const Name = "router"

// Config wires the router.
type Config struct {
	Identity *crypto.Identity
	Seal     *crypto.SealingKey
	Clock    clock.Clock
	DB       *persist.DB
	Table    TableConfig
	Dedup    int
	MaxHops  int
	TTL      time.Duration
	StoreOn  bool
	Outbox   OutboxLimits
	Links    *actor.PID
	Store    *actor.PID
	// Inbox is where delivered messages are written, in the router's
	// transactions; InboxActor is told about them after each commit.
	Inbox      *inbox.Store
	InboxActor *actor.PID
	// Keys is the directory the edge verifies against; the router
	// publishes the keys it learns there (nil: no edge verification).
	Keys *verify.Directory
	// AnnounceMaxAge is how old an announce may be: freshness records
	// older than that are pruned (default 30 minutes).
	AnnounceMaxAge time.Duration
	Metrics        *metrics.Mesh
	Log            *slog.Logger
	// RelayStore holds other nodes' envelopes without a route too
	// (store.relay); without it only this node's receipts and replies are
	// held, and the others' are dropped as store_relay_off.
	RelayStore bool
	// SignedOnly: own messages are always signed envelopes, never compact
	// ones (transports.lora.compact = false).
	SignedOnly bool
	// PQ is this node's X-Wing key when the post-quantum mode is on
	// (groups.pq); nil: off (pq.go).
	PQ *pq.PrivateKey
	// Groups is the keys actor: told after each commit that put MLS
	// messages in the group inbox (messages.GroupInbound), and handed
	// KeyPackage messages (messages.KeyPackageIn). Nil: none (group
	// messages wait in the group inbox; KeyPackage messages are
	// forwarded, and dropped when for this node).
	Groups *actor.PID
}

// Timers and replies the actor sends itself.
type (
	gcTick      struct{ owner *routerActor } // only the instance that armed it acts on it
	rebroadcast struct {
		frame  []byte
		except [16]byte
		dest   [16]byte // the announce's destination and its Flood id
		id     uint64
	}
	traceTimeout struct{ probe [16]byte }
	// flush commits the current batch; sent to itself when a batch
	// begins, so it comes after everything already in the mailbox.
	flush struct{}
	// retryTick: the outbox has messages due.
	retryTick struct {
		gen   uint64
		owner *routerActor
	}
	// publishKeys: the known keys changed; one snapshot for a burst.
	publishKeys struct{}
	// committed: the committer finished a job.
	committed struct{ job *commitJob }
	// lazyFlush writes state changes no batch has written yet.
	lazyFlush struct{}
)

// maxBatch bounds the envelopes and sends in one group commit.
const maxBatch = 512

// batch is the work since the last commit: what must wait until the
// transaction is durable.
type batch struct {
	n         int      // envelopes and sends in it
	acts      []Action // frames to send, store, acknowledge
	delivered []*messages.InboxMessage
	receipts  map[[16]byte][][16]byte // ids to acknowledge, by their sender
	replies   []sendReply
	queued    bool // a flush is in the mailbox, or on its way (gathering)
	gathering bool // the flush on its way comes from the gather timer
	// durable: something in the batch must be on disk before its effects
	// go out (a delivery and its receipt, a send and its answer, an
	// announce's freshness). A batch without (forwards, receipts for our
	// own messages) goes out at once; the outbox changes it made are
	// written with the next durable batch or by the lazy flush.
	durable bool
}

// sendReply is an answer that waits for the batch's commit: a
// *messages.SendResult or a *messages.SendBatchResult.
type sendReply struct {
	to      *actor.PID
	res     *messages.SendResult
	results *messages.SendBatchResult
}

// failed marks the answer's accepted messages as not stored.
func (rp sendReply) failed(err error) {
	err = fmt.Errorf("router: message not stored: %w", err)
	if rp.res != nil && rp.res.Err == nil {
		rp.res.Err = err
	}
	if rp.results != nil {
		for i := range rp.results.Results {
			if rp.results.Results[i].Err == nil {
				rp.results.Results[i].Err = err
			}
		}
	}
}

func (rp sendReply) msg() any {
	if rp.results != nil {
		return rp.results
	}
	return rp.res
}

// traceOwner is what the router keeps for a trace: who asked, and the
// trace's timeout.
type traceOwner struct {
	reply *actor.PID
	timer clock.Timer
}

type routerActor struct {
	held   Held // envelopes waiting for their sender's announce
	cfg    Config
	core   *Core
	sub    *eventstream.Subscription
	gc     clock.Timer
	traces Tracer
	flood  *Flood           // pending announce re-broadcasts (the managed flood)
	links  map[[16]byte]int // open links per neighbour
	last   TableStats       // what was last added to the lookup counters

	outbox     *Outbox
	batch      batch
	retry      clock.Timer
	retryAt    time.Time
	retryGen   uint64
	keysQueued bool
	fresh      freshRecords // newest announce sequences, until the next commit
	draining   bool         // after Drain: sends are refused
	freshGone  [][]byte     // freshness records to delete in the next commit
	tableDirty bool         // the table or the keys changed since they were written
	committer  *committer
	inflight   *commitJob // the transaction the committer is running
	lazy       clock.Timer
	carry      *handover // what this instance leaves its successor after a restart
}

// handover is what a router that fails hands to the instance its
// supervisor starts next (New's producer gives every instance the same
// one): the state that is not on disk. The table, the keys and the
// announce frames are on disk: the failing instance writes their snapshot
// before it goes. The outbox, the replay window and the inbox are only
// ever what their last commit wrote, so nothing the failed batch changed
// survives it (its senders are told the batch failed).
type handover struct {
	set     bool
	held    Held
	links   map[[16]byte]int
	classes LinkClasses
}

// syncStats moves the table's lookup counts into the metrics.
func (r *routerActor) syncStats() {
	st := r.core.Table.Stats()
	r.cfg.Metrics.Lookups.Add(float64(st.Lookups - r.last.Lookups))
	r.cfg.Metrics.LookupMisses.Add(float64(st.Misses - r.last.Misses))
	r.cfg.Metrics.Routes.Set(float64(st.Routes))
	r.last = st
}

var tableKey = []byte("router/table")

// New returns the router's Props.
func New(cfg Config) *actor.Props {
	carry := &handover{}
	return actor.PropsFromProducer(func() actor.Actor { return &routerActor{cfg: cfg, carry: carry} })
}

func (r *routerActor) Receive(ctx actor.Context) {
	now := r.cfg.Clock.Now()
	if r.core != nil {
		defer r.syncStats()
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		r.start(ctx)
	case *messages.AnnounceHeard:
		// A neighbour re-broadcasting what we are about to: the radio part
		// of ours is suppressed (the managed flood, flood.go).
		r.flood.Heard(m.Announce.Address(), m.Announce.UnixMilli, m.From, m.Signal)
		prev, known := r.core.Table.Seq(m.Announce.Address())
		fwd, change, err := r.core.HandleAnnounce(m, now)
		if err != nil {
			reason := "bad_route"
			switch {
			case errors.Is(err, ErrStale):
				reason = "stale" // older than one already seen: a replay
			case errors.Is(err, ErrHopsExceeded):
				reason = "hops"
			}
			r.cfg.Metrics.AnnouncesRefused.WithLabelValues(reason).Inc()
			return
		}
		if !known || m.Announce.UnixMilli > prev {
			r.fresh.note(m.Announce.Address(), m.Announce.UnixMilli, now)
			r.batch.durable = true
			r.ensureFlush(ctx)
		}
		if known && m.Announce.UnixMilli == prev && change == ChangeNone {
			// The same announce again: a flood copy through another
			// neighbour, or a replay. Nothing changed; count it.
			r.cfg.Metrics.AnnouncesRefused.WithLabelValues("duplicate").Inc()
		}
		r.cfg.Metrics.Routes.Set(float64(r.core.Table.Len()))
		r.tableChanged(ctx)
		if change == ChangeAdded || change == ChangeBest {
			r.cfg.Metrics.AnnouncesAccepted.Inc()
			r.routeUp(ctx, m.Announce.Address(), now)
		}
		r.release(ctx, m.Announce.Address(), now)
		if r.core.KeysChanged && !r.keysQueued && r.cfg.Keys != nil {
			r.keysQueued = true
			ctx.Send(ctx.Self(), &publishKeys{})
		}
		if fwd != nil {
			// A short random delay, so neighbours that heard the same
			// announce do not all re-broadcast in the same instant; over a
			// radio, weighted by the signal (Flood.Delay).
			dest := m.Announce.Address()
			d, id := r.flood.Schedule(dest, m.Announce.UnixMilli, m.From, m.Signal)
			self, sys := ctx.Self(), ctx.ActorSystem()
			rb := &rebroadcast{frame: fwd, except: m.From, dest: dest, id: id}
			r.cfg.Clock.AfterFunc(d, func() { sys.Root.Send(self, rb) })
		}
	case *rebroadcast:
		suppressed, ok := r.flood.Fire(m.dest, m.id)
		if !ok {
			return // replaced by a newer announce of the destination
		}
		if suppressed {
			r.cfg.Metrics.RebroadcastsSuppressed.Inc()
		} else {
			r.cfg.Metrics.Rebroadcasts.Inc()
		}
		ctx.Send(r.cfg.Links, &messages.BroadcastFrame{Data: m.frame, Priority: messages.Control, Except: m.except, SkipBroadcast: suppressed})
	case *messages.InboundFrame:
		defer m.Done() // the link may be read again
		acts := r.core.HandleEnvelope(m.Data, m.From, now)
		if len(acts) == 1 && acts[0].Kind == Drop && acts[0].Reason == DropUnknownSender {
			r.hold(acts[0].Dest, m, now)
			return
		}
		r.stage(ctx, acts, now)
	case *messages.VerifiedEnvelope:
		defer m.In.Done() // the link may be read again
		r.stage(ctx, r.core.HandleVerified(m, now), now)
	case *flush:
		r.batch.queued, r.batch.gathering = false, false
		r.startCommit(ctx, false)
	case *lazyFlush:
		r.lazy = nil
		r.startCommit(ctx, true)
	case *committed:
		r.committedJob(ctx, m.job)
	case *publishKeys:
		r.keysQueued = false
		r.publishKeys()
	case *retryTick:
		if m.gen == r.retryGen && m.owner == r {
			r.retry, r.retryAt = nil, time.Time{}
			r.retransmit(ctx, now)
		}
	case *messages.StoredFrames:
		for _, f := range m.Frames {
			// Held frames go out again like any other; the store keeps its
			// copy until a receipt comes back.
			r.do(ctx, r.core.HandleStored(f, m.Dest))
		}
	case *messages.SendText:
		if r.draining {
			ctx.Respond(&messages.SendResult{Err: ErrDraining})
			return
		}
		res := r.send(m, now)
		if m.Payload != messages.PayloadGroup && m.Frame == nil {
			r.do(ctx, r.core.PQAsk(m.To, now))
		}
		if res.Err != nil {
			ctx.Respond(res)
			return
		}
		r.batch.replies = append(r.batch.replies, sendReply{to: ctx.Sender(), res: res})
		r.ensureFlush(ctx)
	case *messages.SendBatch:
		out := &messages.SendBatchResult{Results: make([]messages.SendResult, len(m.Items))}
		if r.draining {
			for i := range out.Results {
				out.Results[i].Err = ErrDraining
			}
			ctx.Respond(out)
			return
		}
		out.Results = r.sendMany(m.Items, now)
		for i := range m.Items {
			if m.Items[i].Payload != messages.PayloadGroup && m.Items[i].Frame == nil {
				r.do(ctx, r.core.PQAsk(m.Items[i].To, now))
			}
		}
		r.batch.replies = append(r.batch.replies, sendReply{to: ctx.Sender(), results: out})
		r.ensureFlush(ctx)
	case *messages.MessageRequest:
		ctx.Respond(statusOf(r.outbox.Get(m.ID)))
	case *messages.OutboxRequest:
		out := &messages.OutboxReply{Pending: r.outbox.Pending()}
		for _, om := range r.outbox.List() {
			out.Messages = append(out.Messages, *statusOf(om, true))
		}
		ctx.Respond(out)
	case *messages.RoutesRequest:
		ctx.Respond(r.routes())
	case *messages.TraceRequest:
		r.startTrace(ctx, m)
	case *messages.SendReceipts:
		r.do(ctx, r.core.Receipts(m.To, m.IDs, now))
	case *messages.ClassesRequest:
		ctx.Respond(r.classes(ctx, m, now))
	case *messages.SendControl:
		r.do(ctx, r.core.Control(m.To, m.Payload, m.Data, now))
	case *messages.ForwardFrame:
		if !m.Expiry.IsZero() && !now.Before(m.Expiry) {
			r.do(ctx, []Action{{Kind: Drop, Reason: DropExpired}})
			return
		}
		r.do(ctx, r.core.routeFrom(m.Dest, m.ID, m.Frame, m.Expiry, true, m.From))
	case *traceTimeout:
		r.endTrace(ctx, m.probe, ErrTraceTimeout)
	case *messages.PeerUp:
		r.links[m.Link.Peer]++
		if m.Link.Broadcast {
			r.flood.RadioLink(m.Link.Peer, true)
		}
		r.core.Links.UpLink(m.Link)
		if _, ok := r.core.Relinked(m.Link, now, cmp.Or(r.cfg.AnnounceMaxAge, 30*time.Minute)); ok {
			r.cfg.Metrics.Routes.Set(float64(r.core.Table.Len()))
			r.tableChanged(ctx)
		}
		if r.core.Unlinked[m.Link.Peer] {
			// Back after our restart: what is held for the destinations
			// restored through it can go now.
			delete(r.core.Unlinked, m.Link.Peer)
			for _, d := range r.core.Table.DestsVia(m.Link.Peer) {
				if d != m.Link.Peer {
					r.routeUp(ctx, d, now)
				}
			}
		}
		// Tell the new neighbour what we know, so it need not wait for
		// everyone's next announce.
		for _, f := range r.core.Announces() {
			if fwd, err := messages.ForwardAnnounce(f); err == nil {
				// Over a radio, one broadcast for all new neighbours:
				// queued copies collapse (Broadcastable).
				ctx.Send(r.cfg.Links, &messages.SendFrame{Peer: m.Link.Peer, Data: fwd, Priority: messages.Control, Broadcastable: m.Link.Broadcast})
			}
		}
		r.routeUp(ctx, m.Link.Peer, now)
	case *messages.PeerDown:
		if m.Link.Broadcast {
			r.flood.RadioLink(m.Link.Peer, false)
		}
		r.core.Links.Down(m.Link.Peer, m.Link.ID)
		if r.links[m.Link.Peer]--; r.links[m.Link.Peer] <= 0 {
			delete(r.links, m.Link.Peer)
			r.core.Table.RemoveVia(m.Link.Peer)
			r.cfg.Metrics.Routes.Set(float64(r.core.Table.Len()))
			r.tableChanged(ctx)
		}
	case *gcTick:
		if m.owner != r {
			return // armed by an instance before a restart
		}
		if len(r.core.Table.Expire(now)) > 0 {
			r.tableChanged(ctx)
		}
		r.expireHeld(now)
		// Old freshness records go with the next group commit, off this
		// goroutine (a read here, the deletes there).
		if old, err := staleFresh(r.cfg.DB.DB, now, cmp.Or(r.cfg.AnnounceMaxAge, 30*time.Minute)); err != nil {
			r.cfg.Log.Warn("reading announce freshness records failed", "err", err)
		} else if len(old) > 0 {
			r.freshGone = append(r.freshGone, old...)
			r.armLazy(ctx)
		}
		if r.core.Replay.GC(now) > 0 {
			r.ensureFlush(ctx)
		}
		r.cfg.Metrics.Routes.Set(float64(r.core.Table.Len()))
		r.scheduleGC(ctx)
	case *messages.Drain:
		r.draining = true
		r.commitNow(ctx)
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		r.commitNow(ctx)
		ctx.Respond(&messages.Persisted{Actor: Name, Err: r.persist()})
	case *actor.Restarting:
		r.shutdown(ctx)
		r.handOver()
	case *actor.Stopping:
		r.shutdown(ctx)
	}
}

// handOver leaves the state a restart would lose to the next instance:
// the table's snapshot on disk (the lazy flush may not have written the
// latest routes), the held envelopes and the link counts in the handover.
func (r *routerActor) handOver() {
	if r.core == nil || r.carry == nil {
		return // failed before it started: nothing to hand over
	}
	if err := r.persist(); err != nil {
		r.cfg.Log.Error("routing table not written before the restart", "err", err)
	}
	*r.carry = handover{set: true, held: r.held, links: r.links, classes: r.core.Links}
}

// shutdown ends this instance (a restart or a stop): the job in flight is
// finished here, so its answers and receipts go out if it committed (and
// its senders hear it failed if not), the batch not yet committed is
// answered as not stored, and the subscription and timers go. Nothing of
// this instance reaches the next one.
func (r *routerActor) shutdown(ctx actor.Context) {
	if r.committer != nil {
		r.committer.stop()
		r.committer = nil
	}
	if j := r.inflight; j != nil {
		r.inflight = nil
		if j.err == nil {
			r.finish(ctx, j)
		} else {
			j.handled = true
			for _, rp := range j.batch.replies {
				rp.failed(j.err)
				ctx.Send(rp.to, rp.msg())
			}
		}
	}
	for _, rp := range r.batch.replies {
		rp.failed(errRouterStopped)
		ctx.Send(rp.to, rp.msg())
	}
	r.batch = batch{}
	for _, t := range []clock.Timer{r.lazy, r.retry, r.gc} {
		if t != nil {
			t.Stop()
		}
	}
	r.lazy, r.retry, r.gc = nil, nil, nil
	r.retryGen++ // a retry tick still on its way is stale
	if r.sub != nil {
		ctx.ActorSystem().EventStream.Unsubscribe(r.sub)
		r.sub = nil
	}
}

// errRouterStopped: the router stopped (or restarted) before the batch
// holding the message was written.
var errRouterStopped = errors.New("router stopped before the message was written")

func (r *routerActor) start(ctx actor.Context) {
	c := r.cfg
	// Refuse expiries further ahead than an envelope may live, with an
	// hour of slack for senders whose clocks run ahead.
	// The window of envelope version 0 (message ids, bucket router/replay)
	// means nothing for version 1: every version 0 envelope is refused.
	if err := c.DB.Update(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("router/replay")) == nil {
			return nil
		}
		return tx.DeleteBucket([]byte("router/replay"))
	}); err != nil {
		panic(err)
	}
	replay, err := crypto.NewReplayWindow(c.DB.DB, "router/seqwindow", crypto.ReplayLimits{MaxTTL: c.TTL + time.Hour})
	if err != nil {
		panic(err) // the database is ours and open: a bug or a broken disk
	}
	if r.outbox, err = OpenOutbox(c.DB.DB, c.Outbox); err != nil {
		panic(err)
	}
	r.core = &Core{
		ID: c.Identity, Seal: c.Seal, Table: NewTable(c.Table), Dedup: NewDedup(c.Dedup, 0), Loops: NewDedup(c.Dedup, LoopWindow),
		Replay: replay, MaxHops: c.MaxHops, TTL: c.TTL, StoreOn: c.StoreOn, RelayStore: c.RelayStore, SignedOnly: c.SignedOnly, MaxKeys: 4 * max(c.Table.MaxRoutes, 1024),
		KeyPackagesIn: c.Groups != nil, PQ: c.PQ,
	}
	c.Metrics.OutboxPending.Set(float64(r.outbox.Pending()))
	self, sys := ctx.Self(), ctx.ActorSystem()
	r.committer = startCommitter(c.DB.DB, func(j *commitJob) { sys.Root.Send(self, &committed{job: j}) })
	r.traces = Tracer{MaxHops: c.MaxHops}
	r.flood = NewFlood()
	r.links = make(map[[16]byte]int)
	if r.carry != nil && r.carry.set { // a restart: what the last instance left
		r.held, r.links, r.core.Links = r.carry.held, r.carry.links, r.carry.classes
		*r.carry = handover{}
	}
	c.Metrics.Held.Set(float64(r.held.Len()))
	if err := r.restore(); err != nil {
		c.Log.Warn("routing table not restored", "err", err)
	}
	for _, n := range r.core.Table.NextHops() {
		if r.links[n] == 0 {
			if r.core.Unlinked == nil {
				r.core.Unlinked = make(map[[16]byte]bool)
			}
			r.core.Unlinked[n] = true
		}
	}
	r.fresh = make(freshRecords)
	if _, err := loadFresh(c.DB.DB, r.core.Table); err != nil {
		c.Log.Warn("announce freshness records not loaded", "err", err)
	}
	c.Metrics.Routes.Set(float64(r.core.Table.Len()))
	r.publishKeys()
	me := c.Identity.Address()
	r.sub = lifecycle.SubscribePeerEvents(sys, self, me)
	r.scheduleGC(ctx)
	r.armRetry(ctx, c.Clock.Now()) // what was pending before a restart
}

// routeUp tells the store and the outbox that dest is reachable. The
// store is told after the current batch commits, behind the StoreFrames
// the batch may hold for dest, so its drain cannot miss them.
func (r *routerActor) routeUp(ctx actor.Context, dest [16]byte, now time.Time) {
	r.batch.acts = append(r.batch.acts, Action{Kind: NotifyRouteUp, Dest: dest})
	r.ensureFlush(ctx)
	r.outbox.RouteUp(dest, now, LoopWindow+time.Second)
	r.armRetry(ctx, now)
}

// stopCommitter ends the committer after its job in flight; that job's
// batch is not carried out (its senders retransmit what it held).
func (r *routerActor) stopCommitter() {
	if r.committer != nil {
		r.committer.stop()
		r.committer = nil
	}
}

// publishKeys gives the edge a fresh snapshot of the known keys.
func (r *routerActor) publishKeys() {
	if r.cfg.Keys != nil {
		r.cfg.Keys.Publish(r.core.KeySnapshot())
	}
	r.core.KeysChanged = false
}

func (r *routerActor) scheduleGC(ctx actor.Context) {
	self, sys := ctx.Self(), ctx.ActorSystem()
	r.gc = r.cfg.Clock.AfterFunc(time.Minute, func() { sys.Root.Send(self, &gcTick{owner: r}) })
}

// hold keeps an envelope whose sender is not known yet; what falls out
// is counted as dropped (unknown_sender): its sender retransmits it.
func (r *routerActor) hold(src [16]byte, m *messages.InboundFrame, now time.Time) {
	if n := r.held.Add(src, m.Data, m.From, now); n > 0 {
		r.cfg.Metrics.EnvelopesDropped.WithLabelValues(DropUnknownSender).Add(float64(n))
	}
	r.cfg.Metrics.Held.Set(float64(r.held.Len()))
}

// release routes the envelopes held for src, now that its keys are known.
// Frames that waited MaxAge or longer are dropped, not released.
func (r *routerActor) release(ctx actor.Context, src [16]byte, now time.Time) {
	r.expireHeld(now)
	fs := r.held.Take(src)
	if len(fs) == 0 {
		return
	}
	r.cfg.Metrics.Held.Set(float64(r.held.Len()))
	for _, f := range fs {
		r.stage(ctx, r.core.HandleEnvelope(f.Frame, f.From, now), now)
	}
}

// expireHeld drops the held envelopes older than their MaxAge, counted
// as unknown_sender, and returns how many.
func (r *routerActor) expireHeld(now time.Time) int {
	n := r.held.Expire(now)
	if n > 0 {
		r.cfg.Metrics.EnvelopesDropped.WithLabelValues(DropUnknownSender).Add(float64(n))
		r.cfg.Metrics.Held.Set(float64(r.held.Len()))
	}
	return n
}

// do carries out the core's actions.
func (r *routerActor) do(ctx actor.Context, acts []Action) {
	m := r.cfg.Metrics
	for _, a := range acts {
		switch a.Kind {
		case Drop:
			m.EnvelopesDropped.WithLabelValues(a.Reason).Inc()
			r.cfg.Log.Debug("envelope dropped", "reason", a.Reason)
		case Forward:
			m.Envelopes.WithLabelValues("forwarded").Inc()
			ctx.Send(r.cfg.Links, &messages.SendFrame{Peer: a.NextHop, Data: a.Frame, Priority: messages.Data})
		case Store:
			m.Envelopes.WithLabelValues("stored").Inc()
			ctx.Send(r.cfg.Store, &messages.StoreFrame{Dest: a.Dest, ID: a.ID, Frame: a.Frame, Expiry: a.Expiry})
		case Broadcast:
			m.Envelopes.WithLabelValues("broadcast").Inc()
			ctx.Send(r.cfg.Links, &messages.BroadcastFrame{Data: a.Frame, Priority: messages.Data, Except: a.Except})
		case NotifyRouteUp:
			ctx.Send(r.cfg.Store, &messages.RouteUp{Dest: a.Dest})
		case Ack:
			ctx.Send(r.cfg.Store, &messages.StoreAck{ID: a.ID, Dest: a.Dest})
		case TraceHop:
			r.traceHop(ctx, a)
		case KeyPackage:
			if r.cfg.Groups != nil {
				ctx.Send(r.cfg.Groups, a.KP)
			}
		case GroupFrame:
			if r.cfg.Groups != nil {
				ctx.Send(r.cfg.Groups, &messages.GroupFrameIn{Frame: a.Frame, ID: a.ID, From: a.From})
			}
		}
	}
}

func (r *routerActor) routes() *messages.RoutesReply {
	snap := r.core.Table.Snapshot()
	out := &messages.RoutesReply{}
	seen := map[[16]byte]bool{}
	for _, rt := range snap.Routes {
		if seen[rt.Address] {
			continue // best path first; the others are alternates
		}
		seen[rt.Address] = true
		out.Routes = append(out.Routes, messages.RouteInfo{
			Address: rt.Address, NextHop: rt.NextHop, Hops: int(rt.Hops), Link: rt.Link,
			Capabilities: rt.Capabilities, Seq: rt.Seq, Refreshed: rt.Refreshed,
		})
	}
	return out
}

// saved is what the router persists.
type saved struct {
	Table Snapshot
	Keys  map[string]KnownKeys
	// Announces are the last accepted announce frames, for the dump to a
	// neighbour that comes up: a router restored with its routes but not
	// these would refuse the same announces again as duplicates and
	// leave its neighbours without the routes.
	Announces map[string][]byte `json:",omitempty"`
}

// persist writes the routing table (with the sequence records that keep
// replayed announces out) and the known keys to the database.
func (r *routerActor) persist() error {
	b, err := r.snapshot()
	if err != nil {
		return err
	}
	return r.cfg.DB.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(routerBucket)
		if err != nil {
			return err
		}
		return bk.Put(tableKey, b)
	})
}

var routerBucket = []byte("router")

// snapshot encodes the routing table and the known keys. It is written at
// Persist, and between times by the lazy flush when the table changed (at
// most once per lazyDelay), so a router that crashed or restarts comes
// back with the routes and keys of a second ago, not with none.
func (r *routerActor) snapshot() ([]byte, error) {
	sv := saved{Table: r.core.Table.Snapshot(), Keys: make(map[string]KnownKeys, len(r.core.Keys)), Announces: map[string][]byte{}}
	for a, k := range r.core.Keys {
		sv.Keys[crypto.Address(a).String()] = k
	}
	for a, f := range r.core.AnnounceFrames() {
		sv.Announces[crypto.Address(a).String()] = f
	}
	return json.Marshal(sv)
}

func (r *routerActor) restore() error {
	var sv saved
	found := false
	err := r.cfg.DB.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("router"))
		if bk == nil {
			return nil
		}
		v := bk.Get(tableKey)
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &sv)
	})
	if err != nil || !found {
		return err
	}
	frames := make(map[[16]byte][]byte, len(sv.Announces))
	for s, f := range sv.Announces {
		if a, err := crypto.ParseAddress(s); err == nil && len(f) <= messages.MaxAnnounceSize {
			frames[a] = f
		}
	}
	r.core.RestoreAnnounceFrames(frames)
	r.core.Keys = make(map[[16]byte]KnownKeys, len(sv.Keys))
	for s, k := range sv.Keys {
		if a, err := crypto.ParseAddress(s); err == nil {
			r.core.Keys[a] = k
		}
	}
	return r.core.Table.Restore(sv.Table)
}

func (r *routerActor) startTrace(ctx actor.Context, m *messages.TraceRequest) {
	var probe [16]byte
	for i := range probe {
		probe[i] = byte(rand.UintN(256))
	}
	self, sys := ctx.Self(), ctx.ActorSystem()
	own := &traceOwner{reply: ctx.Sender()}
	own.timer = r.cfg.Clock.AfterFunc(m.Timeout, func() { sys.Root.Send(self, &traceTimeout{probe: probe}) })
	r.sendProbe(ctx, probe, r.traces.Start(probe, m.To, own))
}

func (r *routerActor) sendProbe(ctx actor.Context, probe [16]byte, t *Trace) {
	now := r.cfg.Clock.Now()
	acts, err := r.core.TraceProbe(t.To, t.Hop, probe, now)
	if err != nil {
		r.endTrace(ctx, probe, err)
		return
	}
	r.traces.Sent(probe, now)
	r.do(ctx, acts)
}

func (r *routerActor) traceHop(ctx actor.Context, a Action) {
	t, done := r.traces.Answer(a.ID, a.From, r.cfg.Clock.Now())
	switch {
	case t == nil:
	case done:
		own := t.Owner.(*traceOwner)
		own.timer.Stop()
		ctx.Send(own.reply, &t.Result)
	default:
		r.sendProbe(ctx, a.ID, t)
	}
}

// endTrace answers a trace that ended early (timeout, no route).
func (r *routerActor) endTrace(ctx actor.Context, probe [16]byte, err error) {
	if t := r.traces.End(probe, err); t != nil {
		own := t.Owner.(*traceOwner)
		own.timer.Stop()
		ctx.Send(own.reply, &t.Result)
	}
}
