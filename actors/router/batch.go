package router

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// This file is the router's group commit and its outbox handling: what an
// envelope, a send or an announce changes on disk (replay window, inbox,
// outbox, announce freshness) is collected into a batch and written in one
// bbolt transaction — one fsync for everything that arrived meanwhile —
// before any receipt, forward or API answer that depends on it goes out.
// The transaction runs on the committer's goroutine while the router goes
// on deciding: at most one is in flight, and the next batch is what
// gathered during it.

// stage adds an envelope's actions to the current batch.
func (r *routerActor) stage(ctx actor.Context, acts []Action, now time.Time) {
	b := &r.batch
	b.n++
	for _, a := range acts {
		switch a.Kind {
		case Deliver:
			b.delivered = append(b.delivered, a.Inbox)
			b.durable = true
		case ReceiptDue:
			if b.receipts == nil {
				b.receipts = make(map[[16]byte][][16]byte)
			}
			b.receipts[a.Dest] = append(b.receipts[a.Dest], a.ID)
		case Receipt:
			r.cfg.Metrics.Receipts.Inc()
			if m, opened := r.outbox.Delivered(a.ID, a.From, now); m != nil {
				r.cfg.Metrics.Messages.WithLabelValues(StateDelivered).Inc()
				for _, o := range opened {
					r.transmit(o, now)
				}
			}
		default:
			b.acts = append(b.acts, a)
		}
	}
	r.ensureFlush(ctx)
}

// Deliveries that nobody waits on gather for up to gatherDelay (or
// gatherMin of them) before their commit: the fsync is most of a
// delivered message's cost after its crypto, and ten milliseconds more
// before a receipt leaves cost a mesh nothing. Sends (an API call waits)
// and forwards go at once.
const (
	gatherDelay = 10 * time.Millisecond
	gatherMin   = 64
)

// ensureFlush makes sure the batch is committed: after what is already
// in the mailbox (or after gathering, for deliveries alone), or at once
// when it is full and no commit is in flight.
func (r *routerActor) ensureFlush(ctx actor.Context) {
	b := &r.batch
	if b.n >= maxBatch && r.inflight == nil {
		r.startCommit(ctx, false)
		return
	}
	gather := b.durable && len(b.replies) == 0 && b.n < gatherMin
	switch {
	case b.queued && (gather || !b.gathering):
		// A flush is on its way, soon enough.
	case gather:
		b.queued, b.gathering = true, true
		self, sys := ctx.Self(), ctx.ActorSystem()
		r.cfg.Clock.AfterFunc(gatherDelay, func() { sys.Root.Send(self, &flush{}) })
	default:
		// Not (or no longer) worth waiting for: flush after the mailbox.
		b.queued, b.gathering = true, false
		ctx.Send(ctx.Self(), &flush{})
	}
}

// pending reports whether the batch has anything to write or carry out.
func (r *routerActor) pending() bool {
	b := &r.batch
	return b.n > 0 || len(b.acts) > 0 || len(b.replies) > 0 || len(b.receipts) > 0 || len(b.delivered) > 0 ||
		len(r.fresh) > 0 || len(r.freshGone) > 0 || r.tableDirty || r.core.Replay.Dirty() || r.outbox.Dirty()
}

// prepare takes the batch out of the way of the next one and, when it is
// durable (or force), encodes every write that is due.
func (r *routerActor) prepare(force bool) *commitJob {
	j := &commitJob{batch: r.batch, done: make(chan struct{})}
	r.batch = batch{queued: r.batch.queued, gathering: r.batch.gathering}
	if !j.batch.durable && !force {
		return j
	}
	j.replay = r.core.Replay.Prepare()
	for _, msg := range j.batch.delivered {
		if msg.Payload == messages.PayloadGroup {
			k, v, err := r.cfg.Inbox.EncodeGroup(msg)
			if err != nil {
				panic(fmt.Errorf("router: group inbox entry: %w", err)) // JSON of our own struct: a bug
			}
			j.writes.put(inbox.GroupBucket, k, v)
			continue
		}
		k, v, err := r.cfg.Inbox.Encode(msg)
		if err != nil {
			panic(fmt.Errorf("router: inbox entry: %w", err)) // JSON of our own struct: a bug
		}
		j.writes.put(inbox.Bucket, k, v)
	}
	r.outbox.Prepare(&j.writes)
	r.fresh.prepare(&j.writes)
	for _, k := range r.freshGone {
		j.writes.del(freshBucket, k)
	}
	r.freshGone = nil
	if r.tableDirty && force {
		if b, err := r.snapshot(); err != nil {
			r.cfg.Log.Warn("routing table not written", "err", err)
		} else {
			j.writes.put(routerBucket, tableKey, b)
			r.tableDirty = false
		}
	}
	return j
}

// empty reports whether a job writes nothing (a relay's batch of
// forwards): it needs no transaction.
func (j *commitJob) empty() bool { return j.replay.Len() == 0 && len(j.writes.ops) == 0 }

// startCommit hands the batch to the committer; what waits for it is
// carried out when it reports back (committed). With a commit in flight
// it does nothing: the batch goes when that one is done, so batches take
// effect in order. A batch that needs nothing on disk (and no force) takes
// effect at once.
func (r *routerActor) startCommit(ctx actor.Context, force bool) {
	if r.inflight != nil || !r.pending() {
		return
	}
	j := r.prepare(force)
	if j.empty() {
		close(j.done)
		r.finish(ctx, j)
		return
	}
	r.inflight = j
	r.committer.submit(j)
}

// committedJob is the committer's report, as a message to the router.
// Only the job in flight counts: a report finished already (commitNow,
// shutdown) or meant for an earlier instance of the router is ignored.
func (r *routerActor) committedJob(ctx actor.Context, j *commitJob) {
	if j.handled || j != r.inflight {
		return
	}
	r.inflight = nil
	r.finish(ctx, j)
	r.startCommit(ctx, false) // what gathered meanwhile
}

// commitNow commits everything now, waiting for the disk: at Drain and
// Persist, so nothing accepted is left unwritten.
func (r *routerActor) commitNow(ctx actor.Context) {
	if j := r.inflight; j != nil {
		<-j.done
		r.inflight = nil
		r.finish(ctx, j)
	}
	if !r.pending() {
		return
	}
	j := r.prepare(true)
	if !j.empty() {
		j.err = r.cfg.DB.Update(j.write)
	}
	close(j.done)
	r.finish(ctx, j)
}

// finish carries out what waited for a job's transaction. If the database
// refused, nothing of the batch went out: the senders' outboxes retransmit
// what it held, and the router restarts from what is on disk.
func (r *routerActor) finish(ctx actor.Context, j *commitJob) {
	j.handled = true
	b := &j.batch
	m := r.cfg.Metrics
	if j.err != nil {
		for _, rp := range b.replies {
			rp.failed(j.err)
			ctx.Send(rp.to, rp.msg())
		}
		// Memory is ahead of the disk now: start again from the disk.
		panic(fmt.Errorf("router: group commit failed: %w", j.err))
	}
	if !j.empty() {
		r.core.Replay.Committed()
		m.Commits.Inc()
		m.CommitOps.Add(float64(b.n))
	}
	if len(b.delivered) > 0 {
		m.Envelopes.WithLabelValues("delivered").Add(float64(len(b.delivered)))
		texts, groups := b.delivered, 0
		for _, msg := range b.delivered {
			if msg.Payload == messages.PayloadGroup {
				groups++
			}
		}
		if groups > 0 {
			texts = make([]*messages.InboxMessage, 0, len(b.delivered)-groups)
			for _, msg := range b.delivered {
				if msg.Payload != messages.PayloadGroup {
					texts = append(texts, msg)
				}
			}
			if r.cfg.Groups != nil {
				ctx.Send(r.cfg.Groups, &messages.GroupInbound{})
			}
		}
		if len(texts) > 0 {
			ctx.Send(r.cfg.InboxActor, &messages.Delivered{Msgs: texts})
		}
	}
	r.do(ctx, b.acts)
	// One signed receipt per sender for what this batch delivered (and
	// the duplicates it saw), sent only now that it is durable.
	now := r.cfg.Clock.Now()
	for src, ids := range b.receipts {
		r.do(ctx, r.core.Receipts(src, ids, now))
	}
	for _, rp := range b.replies {
		ctx.Send(rp.to, rp.msg())
	}
	m.OutboxPending.Set(float64(r.outbox.Pending()))
	r.armRetry(ctx, now)
	r.armLazy(ctx)
}

// lazyDelay is how long state changes that need not be durable at once
// (an own message marked delivered, an attempt counted) wait for a durable
// batch to take them along before they are written on their own. Losing
// them in a crash costs a retransmission, answered with a receipt.
const lazyDelay = time.Second

// tableChanged notes that the routing table or the keys changed: the
// lazy flush writes a snapshot.
func (r *routerActor) tableChanged(ctx actor.Context) {
	r.tableDirty = true
	r.armLazy(ctx)
}

func (r *routerActor) armLazy(ctx actor.Context) {
	if r.lazy != nil || !(r.outbox.Dirty() || r.core.Replay.Dirty() || len(r.fresh) > 0 || len(r.freshGone) > 0 || r.tableDirty) {
		return
	}
	self, sys := ctx.Self(), ctx.ActorSystem()
	r.lazy = r.cfg.Clock.AfterFunc(lazyDelay, func() { sys.Root.Send(self, &lazyFlush{}) })
}

// send seals a message, keeps it in the outbox and transmits it if it
// can. A result without Err must be answered once the batch is durable
// (batch.replies); one with Err was refused and may be answered at once.
func (r *routerActor) send(m *messages.SendText, now time.Time) *messages.SendResult {
	res := &messages.SendResult{}
	seq, ok := r.admit(m, res)
	if !ok {
		return res
	}
	var sg signed
	switch {
	case m.Frame != nil:
		sg = r.core.keepFrame(m, now)
	case m.Payload != messages.PayloadGroup && r.pqSeal(m, seq, &sg, now):
	case m.Payload == messages.PayloadGroup:
		// Group messages are signed envelopes whatever the first hop.
		if m.Sealed != nil {
			sg.frame, sg.id, sg.expiry, sg.err = r.core.SignSealedAs(m.Payload, m.To, seq, m.Sealed, now)
		} else {
			sg.frame, sg.id, sg.expiry, sg.err = r.core.SealAs(m.Payload, m.To, seq, m.Text, now)
		}
	case r.core.CompactTo(m.To):
		// The first hop is a radio: compact, sealed here in auth mode
		// (a payload sealed by the caller in base mode is not used).
		sg.frame, sg.id, sg.expiry, sg.err = r.core.SealCompact(m.To, seq, m.Text, now)
	case m.Sealed != nil:
		sg.frame, sg.id, sg.expiry, sg.err = r.core.SignSealed(m.To, seq, m.Sealed, now)
	default:
		sg.frame, sg.id, sg.expiry, sg.err = r.core.SealText(m.To, seq, m.Text, now)
	}
	r.keep(m, seq, sg, res, now)
	return res
}

// signed is one own envelope, signed (or why not).
type signed struct {
	frame  []byte
	id     [16]byte
	expiry time.Time
	err    error
}

// sendMany is send for a batch: the envelopes of sealed texts are signed
// on all cores (signing is most of what the router does for a send), the
// rest in order on this goroutine as send does.
func (r *routerActor) sendMany(items []messages.SendText, now time.Time) []messages.SendResult {
	out := make([]messages.SendResult, len(items))
	seqs := make([]uint64, len(items))
	sgs := make([]signed, len(items))
	var work []int // admitted items with a sealed payload
	for i := range items {
		seq, ok := r.admit(&items[i], &out[i])
		if !ok {
			continue
		}
		seqs[i] = seq
		if items[i].Frame != nil {
			sgs[i] = r.core.keepFrame(&items[i], now)
			continue
		}
		if items[i].Payload != messages.PayloadGroup && r.pqSeal(&items[i], seq, &sgs[i], now) {
			continue
		}
		if items[i].Payload == messages.PayloadGroup {
			if items[i].Sealed == nil {
				sgs[i].frame, sgs[i].id, sgs[i].expiry, sgs[i].err = r.core.SealAs(items[i].Payload, items[i].To, seq, items[i].Text, now)
				continue
			}
			work = append(work, i)
			continue
		}
		if r.core.CompactTo(items[i].To) { // as in send
			sgs[i].frame, sgs[i].id, sgs[i].expiry, sgs[i].err = r.core.SealCompact(items[i].To, seq, items[i].Text, now)
			continue
		}
		if items[i].Sealed == nil {
			sgs[i].frame, sgs[i].id, sgs[i].expiry, sgs[i].err = r.core.SealText(items[i].To, seq, items[i].Text, now)
			continue
		}
		work = append(work, i)
	}
	workers := min(runtime.GOMAXPROCS(0), (len(work)+7)/8)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < len(work); k += workers {
				i := work[k]
				sgs[i].frame, sgs[i].id, sgs[i].expiry, sgs[i].err = r.core.SignSealedAs(payloadOf(items[i]), items[i].To, seqs[i], items[i].Sealed, now)
			}
		}()
	}
	wg.Wait()
	for i := range items {
		if out[i].Err == nil {
			r.keep(&items[i], seqs[i], sgs[i], &out[i], now)
		}
	}
	return out
}

// admit refuses a send the outbox cannot take or whose destination has
// no known key (res.Err), or hands out its seq.
func (r *routerActor) admit(m *messages.SendText, res *messages.SendResult) (uint64, bool) {
	if r.outbox.Full() {
		r.cfg.Metrics.OutboxFull.Inc()
		res.Err = fmt.Errorf("%w: %d messages wait for receipts", ErrOutboxFull, r.outbox.Pending())
		return 0, false
	}
	if _, ok := r.core.SealingKeyOf(m.To); !ok {
		res.Err = fmt.Errorf("%w: %x", ErrUnknownDestination, m.To)
		return 0, false
	}
	return r.outbox.NextSeq(m.To), true
}

// keep puts a signed own envelope in the outbox and transmits it if it
// can (after the batch's commit).
func (r *routerActor) keep(m *messages.SendText, seq uint64, sg signed, res *messages.SendResult, now time.Time) {
	if sg.err != nil {
		res.Err = sg.err
		return
	}
	frame, id, expiry := sg.frame, sg.id, sg.expiry
	if hop, ok := r.core.NextHop(m.To); ok {
		if limit, ok := r.core.Links.MaxFrame(hop); ok && len(frame) > limit {
			// It could never leave over what links there are now. (With
			// no route, or no link yet, it is kept: a later route may
			// carry it, and if none does it fails at its expiry.)
			res.Err = fmt.Errorf("%w: the envelope is %d bytes, the links to %s carry at most %d (send a shorter text)",
				ErrTooLargeForLink, len(frame), crypto.Address(hop).Short(), limit)
			return
		}
	}
	om := &OutMsg{ID: id, To: m.To, Seq: seq, Frame: frame, Expiry: expiry}
	if err := r.outbox.Add(om, now); err != nil {
		res.Err = err
		return
	}
	r.cfg.Metrics.Messages.WithLabelValues("accepted").Inc()
	if messages.IsCompact(frame) {
		r.cfg.Metrics.CompactSent.Inc()
	}
	if !r.transmit(om, now) {
		r.outbox.Defer(om, now)
	}
	res.ID, res.Status = id, om.State
	r.batch.n++
	r.batch.durable = true
}

// transmit sends an own message towards its destination if there is a
// route and the outbox lets it go now; the frame goes out after the
// batch's commit, with the attempt recorded.
func (r *routerActor) transmit(om *OutMsg, now time.Time) bool {
	hop, ok := r.core.NextHopFor(om.To, om.Attempts)
	if !ok || !r.outbox.Transmit(om, now) {
		return false
	}
	if om.Attempts > 1 {
		r.cfg.Metrics.Retransmits.Inc()
	}
	r.core.Loops.Seen(om.ID, now) // our own copy coming back is a loop
	r.batch.acts = append(r.batch.acts, Action{Kind: Forward, Frame: om.Frame, NextHop: hop, Dest: om.To, ID: om.ID})
	return true
}

// retransmit handles what the outbox has due: retransmissions, and
// failures of messages that expired without a receipt.
func (r *routerActor) retransmit(ctx actor.Context, now time.Time) {
	due, failed := r.outbox.Due(now)
	for _, om := range failed {
		r.cfg.Metrics.Messages.WithLabelValues(StateFailed).Inc()
		r.cfg.Log.Info("message failed", "id", fmt.Sprintf("%x", om.ID[:4]), "to", fmt.Sprintf("%x", om.To[:4]), "reason", om.Reason)
	}
	for _, om := range due {
		if !r.transmit(om, now) {
			r.outbox.Defer(om, now)
		}
	}
	if len(due)+len(failed) > 0 {
		r.ensureFlush(ctx)
	}
	r.armRetry(ctx, now)
}

// armRetry sets the timer for the outbox's next due message.
func (r *routerActor) armRetry(ctx actor.Context, now time.Time) {
	at := r.outbox.NextDue()
	if at.IsZero() || (r.retry != nil && !at.Before(r.retryAt)) {
		return
	}
	if r.retry != nil {
		r.retry.Stop()
	}
	r.retryGen++
	gen, self, sys := r.retryGen, ctx.Self(), ctx.ActorSystem()
	r.retryAt = at
	r.retry = r.cfg.Clock.AfterFunc(max(at.Sub(now), 0), func() { sys.Root.Send(self, &retryTick{gen: gen, owner: r}) })
}

// statusOf turns an outbox record into the bus type.
func statusOf(m OutMsg, found bool) *messages.MessageStatus {
	if !found {
		return &messages.MessageStatus{}
	}
	return &messages.MessageStatus{
		Found: true, ID: m.ID, To: m.To, Seq: m.Seq, State: m.State, Attempts: m.Attempts,
		Created: m.Created, Expiry: m.Expiry, NextRetry: m.NextRetry, Done: m.Done, Reason: m.Reason,
	}
}

// payloadOf is the payload type of an own message: a text unless it says.
func payloadOf(m messages.SendText) messages.PayloadType {
	if m.Payload == 0 {
		return messages.PayloadSealed
	}
	return m.Payload
}
