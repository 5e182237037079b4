package router

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/messages"
)

// This file is the router's group commit and its outbox handling: what an
// envelope, a send or an announce changes on disk (replay window, inbox,
// outbox, announce freshness) is
// collected into a batch and written in one bbolt transaction — one fsync
// for everything that arrived meanwhile — before any receipt, forward or
// API answer that depends on it goes out.

// stage adds an envelope's actions to the current batch.
func (r *routerActor) stage(ctx actor.Context, acts []Action, now time.Time) {
	b := &r.batch
	b.n++
	for _, a := range acts {
		switch a.Kind {
		case Deliver:
			b.delivered = append(b.delivered, a.Inbox)
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

// ensureFlush makes sure the batch is committed: at once when it is full,
// otherwise after what is already in the mailbox.
func (r *routerActor) ensureFlush(ctx actor.Context) {
	if r.batch.n >= maxBatch {
		r.commit(ctx)
		return
	}
	if !r.batch.queued {
		r.batch.queued = true
		ctx.Send(ctx.Self(), &flush{})
	}
}

// commit writes the batch in one transaction, then carries out what
// waited for it. If the database refuses, nothing of the batch went out:
// the senders' outboxes retransmit what it held; the router restarts from
// what is on disk.
func (r *routerActor) commit(ctx actor.Context) {
	b := &r.batch
	m := r.cfg.Metrics
	var err error
	if len(b.delivered) > 0 || len(r.fresh) > 0 || r.core.Replay.Dirty() || r.outbox.Dirty() {
		err = r.cfg.DB.Update(r.write)
		if err == nil {
			m.Commits.Inc()
			m.CommitOps.Add(float64(b.n))
		}
	}
	if err != nil {
		for _, rp := range b.replies {
			rp.res.Err = fmt.Errorf("router: message not stored: %w", err)
			ctx.Send(rp.to, rp.res)
		}
		r.batch = batch{queued: b.queued}
		// Memory is ahead of the disk now: start again from the disk.
		panic(fmt.Errorf("router: group commit failed: %w", err))
	}
	r.core.Replay.Committed()
	clear(r.fresh)
	if len(b.delivered) > 0 {
		m.Envelopes.WithLabelValues("delivered").Add(float64(len(b.delivered)))
		ctx.Send(r.cfg.InboxActor, &messages.Delivered{Msgs: b.delivered})
	}
	r.do(ctx, b.acts)
	// One signed receipt per sender for what this batch delivered (and
	// the duplicates it saw), sent only now that it is durable.
	now := r.cfg.Clock.Now()
	for src, ids := range b.receipts {
		r.do(ctx, r.core.Receipts(src, ids, now))
	}
	for _, rp := range b.replies {
		ctx.Send(rp.to, rp.res)
	}
	m.OutboxPending.Set(float64(r.outbox.Pending()))
	r.batch = batch{queued: b.queued}
	r.armRetry(ctx, r.cfg.Clock.Now())
}

// write is the batch's transaction: replay window, inbox, outbox.
func (r *routerActor) write(tx *bolt.Tx) error {
	if err := r.core.Replay.Commit(tx); err != nil {
		return fmt.Errorf("replay window: %w", err)
	}
	for _, msg := range r.batch.delivered {
		if err := r.cfg.Inbox.AddTx(tx, msg); err != nil {
			return fmt.Errorf("inbox: %w", err)
		}
	}
	if err := r.outbox.Commit(tx); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := writeFresh(tx, r.fresh); err != nil {
		return fmt.Errorf("announce freshness: %w", err)
	}
	return nil
}

// send seals a message, keeps it in the outbox and transmits it if it
// can; the answer goes out once the outbox record is durable.
func (r *routerActor) send(ctx actor.Context, m *messages.SendText, now time.Time) {
	res := &messages.SendResult{}
	if r.outbox.Full() {
		r.cfg.Metrics.OutboxFull.Inc()
		res.Err = fmt.Errorf("%w: %d messages wait for receipts", ErrOutboxFull, r.outbox.Pending())
		ctx.Respond(res)
		return
	}
	if _, ok := r.core.SealingKeyOf(m.To); !ok {
		res.Err = fmt.Errorf("%w: %x", ErrUnknownDestination, m.To)
		ctx.Respond(res)
		return
	}
	seq := r.outbox.NextSeq(m.To)
	var frame []byte
	var id [16]byte
	var expiry time.Time
	var err error
	if m.Sealed != nil {
		frame, id, expiry, err = r.core.SignSealed(m.To, seq, m.Sealed, now)
	} else {
		frame, id, expiry, err = r.core.SealText(m.To, seq, m.Text, now)
	}
	if err != nil {
		res.Err = err
		ctx.Respond(res)
		return
	}
	om := &OutMsg{ID: id, To: m.To, Seq: seq, Frame: frame, Expiry: expiry}
	if err := r.outbox.Add(om, now); err != nil {
		res.Err = err
		ctx.Respond(res)
		return
	}
	r.cfg.Metrics.Messages.WithLabelValues("accepted").Inc()
	if !r.transmit(om, now) {
		r.outbox.Defer(om, now)
	}
	res.ID, res.Status = id, om.State
	r.batch.replies = append(r.batch.replies, sendReply{to: ctx.Sender(), res: res})
	r.batch.n++
	r.ensureFlush(ctx)
}

// transmit sends an own message towards its destination if there is a
// route and the outbox lets it go now; the frame goes out after the
// batch's commit, with the attempt recorded.
func (r *routerActor) transmit(om *OutMsg, now time.Time) bool {
	hop, ok := r.core.NextHop(om.To)
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
	r.retry = r.cfg.Clock.AfterFunc(max(at.Sub(now), 0), func() { sys.Root.Send(self, &retryTick{gen: gen}) })
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
