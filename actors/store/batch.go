package store

import (
	"errors"
	"time"
)

// maxPending bounds the puts and acks the actor accepts before it writes
// them: it writes at its next flush message or when this many wait,
// whichever comes first.
const maxPending = 256

// pending is what the actor accepted and has not written yet: the puts
// and acks since its last flush, in the order they came. It is plain
// state owned by the actor.
type pending struct {
	puts []Item
	acks []Ack
}

func (p *pending) put(it Item) { p.puts = append(p.puts, it) }

func (p *pending) ack(a Ack) { p.acks = append(p.acks, a) }

func (p *pending) len() int { return len(p.puts) + len(p.acks) }

// full reports whether the list should be written now.
func (p *pending) full() bool { return p.len() >= maxPending }

// take empties the list and returns what it held.
func (p *pending) take() (puts []Item, acks []Ack) {
	puts, acks = p.puts, p.acks
	p.puts, p.acks = nil, nil
	return puts, acks
}

// applyBatch writes puts and acks in one transaction (Queue.Apply). If
// that transaction fails it writes them again one per transaction, so
// that one bad record (a corrupt index entry an ack runs into) costs only
// its own item and not the whole batch. In the result, Errs has one entry
// per put (a refusal, or the failure of its transaction); err joins the
// failures of transactions, nil when everything was written.
func applyBatch(q *Queue, puts []Item, acks []Ack, now time.Time) (Applied, error) {
	res, err := q.Apply(puts, acks, now)
	if err == nil || len(puts)+len(acks) <= 1 {
		if err != nil {
			res = Applied{Errs: make([]error, len(puts))}
			for i := range res.Errs {
				res.Errs[i] = err
			}
		}
		return res, err
	}
	errs := []error{err}
	res = Applied{Errs: make([]error, len(puts))}
	// The acks first, as Apply does, so the room they free is open to the
	// puts; and again after them, for an id whose put is in this batch.
	failed := make([]bool, len(acks))
	ackAll := func() {
		for i, a := range acks {
			if failed[i] {
				continue
			}
			n, err := q.Ack(a.Dest, a.ID)
			if err != nil {
				failed[i] = true
				errs = append(errs, err)
			}
			res.Acked += n
		}
	}
	ackAll()
	for i, it := range puts {
		r, err := q.Apply([]Item{it}, nil, now)
		switch {
		case err != nil:
			res.Errs[i] = err
			errs = append(errs, err)
		case r.Errs[0] != nil:
			res.Errs[i] = r.Errs[0]
		default:
			res.Stored++
		}
	}
	if res.Stored > 0 {
		ackAll()
	}
	return res, errors.Join(errs...)
}
