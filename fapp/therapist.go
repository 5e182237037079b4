package fapp

import (
	"fmt"
	"sort"
	"time"

	"github.com/quicprochat/qpc/crypto"
)

// Practice is the therapist's side of FAPP as a plain state machine: the
// announced set of free slots, the reservations received and their
// answers. The actor (next to the node) feeds it frames and sends what it
// returns; it does no I/O and keeps no clock.
//
// The rules:
//   - Publish replaces the announced set; each new set gets the next
//     sequence number. Slots already confirmed stay out of it.
//   - A reservation (Receive) of a free slot is pending until Confirm or
//     Decline. Several patients may be pending on one slot.
//   - Confirm gives the slot to one reservation: it leaves the announced
//     set (a new announce, next sequence, so searches stop returning it),
//     and every other reservation pending on it is answered "taken". A
//     slot cannot be confirmed twice (ErrAlreadyConfirmed).
//   - A reservation of a slot already confirmed is answered "taken" at
//     once; of a slot not (any more) in the set, "declined".
//   - Decline of a pending reservation answers "declined". Decline of the
//     confirmed one cancels it and frees the slot: it is announced again.
//   - The same reservation received again gets the same answer again (or
//     nothing while pending): retransmissions are harmless.
//
// A Practice is not safe for concurrent use: one actor owns it.
type Practice struct {
	id   *crypto.Identity
	key  *crypto.SealingKey
	addr crypto.Address
	plz  PLZ
	appr Approbation
	seq  uint64

	// HopLimit is given to the frames the practice sends (default
	// DefaultAnnounceHops).
	HopLimit uint8

	free      map[uint32]Slot
	confirmed map[uint32]confirmation
	requests  map[[16]byte]*received
	order     [][16]byte // arrival order of requests
	// atOnce and decided count the requests in order answered at
	// receipt (a dedup window, never persisted) and those the therapist
	// answered (declined or taken, kept as history); both are bounded
	// (MaxAtOnceRequests, MaxDecidedRequests), the oldest going first.
	atOnce, decided int
}

// Bounds of a Practice's requests, so that no one outside can grow its
// state (and the record persisted after each change) without limit.
const (
	// MaxPendingPerSlot reservations may be pending on one slot, and
	// MaxPending in all; one beyond is answered declined at once
	// (ReceiveRefused).
	MaxPendingPerSlot = 8
	MaxPending        = 256
	// MaxAtOnceRequests requests answered at receipt (taken, not
	// available, refused) are remembered, so that a retransmission gets
	// the same answer; they are not persisted.
	MaxAtOnceRequests = 1024
	// MaxDecidedRequests requests the therapist declined (or that were
	// answered taken at a confirm) are kept, for the list and for
	// retransmissions; confirmed ones are all kept.
	MaxDecidedRequests = 512
)

// Answers to a refused reservation (over MaxPendingPerSlot or MaxPending).
const RefusedText = "too many pending reservations"

// ReceiveOutcome says what Receive did with a reservation.
type ReceiveOutcome uint8

const (
	// ReceivePending: a new request, pending; the state changed.
	ReceivePending ReceiveOutcome = iota
	// ReceiveRepeat: a request received before; its answer (if any) again.
	ReceiveRepeat
	// ReceiveAtOnce: answered at once, taken or not available.
	ReceiveAtOnce
	// ReceiveRefused: declined at once, too many pending.
	ReceiveRefused
)

func (o ReceiveOutcome) String() string {
	switch o {
	case ReceivePending:
		return "pending"
	case ReceiveRepeat:
		return "repeat"
	case ReceiveAtOnce:
		return "at_once"
	case ReceiveRefused:
		return "refused"
	}
	return "unknown"
}

type confirmation struct {
	rid  [16]byte
	slot Slot
}

type received struct {
	Request
	at     time.Time
	answer []byte // the last answer sent, for retransmissions
	atOnce bool   // answered at receipt: in the dedup window only
}

// NewPractice starts the therapist's state. lastSeq is the highest
// sequence number this identity ever announced (persisted by the caller:
// a restarted practice must not reuse one, or relays refuse its sets as
// stale or conflicting).
func NewPractice(id *crypto.Identity, plz PLZ, appr Approbation, lastSeq uint64) (*Practice, error) {
	if !plz.Valid() {
		return nil, fmt.Errorf("%w: PLZ %q, want five digits", ErrBadValue, plz)
	}
	if err := appr.Check(); err != nil {
		return nil, err
	}
	key, err := crypto.SealingKeyFor(id)
	if err != nil {
		return nil, err
	}
	return &Practice{
		id: id, key: key, addr: id.Address(), plz: plz, appr: appr, seq: lastSeq, HopLimit: DefaultAnnounceHops,
		free: map[uint32]Slot{}, confirmed: map[uint32]confirmation{}, requests: map[[16]byte]*received{},
	}, nil
}

// Address is the therapist's address.
func (p *Practice) Address() crypto.Address { return p.addr }

// Seq is the sequence number of the last announce made.
func (p *Practice) Seq() uint64 { return p.seq }

// Free is the announced set, sorted by id.
func (p *Practice) Free() []Slot {
	out := make([]Slot, 0, len(p.free))
	for _, s := range p.free {
		out = append(out, s)
	}
	sortSlotsByID(out)
	return out
}

// Publish replaces the announced set with slots (minus those already
// confirmed) and returns the signed announce of the next sequence,
// expiring at expires.
func (p *Practice) Publish(slots []Slot, expires time.Time) ([]byte, error) {
	if len(slots) > MaxSlotsPerAnnounce {
		return nil, fmt.Errorf("%w: %d slots, at most %d per announce", ErrBadValue, len(slots), MaxSlotsPerAnnounce)
	}
	next := map[uint32]Slot{}
	for _, s := range slots {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadValue, err)
		}
		if _, dup := next[s.ID]; dup {
			return nil, fmt.Errorf("%w: slot id %d twice", ErrBadValue, s.ID)
		}
		if _, gone := p.confirmed[s.ID]; gone {
			continue
		}
		next[s.ID] = s
	}
	old := p.free
	p.free = next
	frame, err := p.Announce(expires)
	if err != nil {
		p.free = old
	}
	return frame, err
}

// Announce signs the current set under the next sequence number.
func (p *Practice) Announce(expires time.Time) ([]byte, error) {
	a := NewSlotAnnounce(p.id.PublicKey(), p.key.Public(), p.seq+1, expires, p.plz, p.appr, p.Free())
	a.HopLimit = p.hopLimit()
	if err := a.Sign(p.id.Sign); err != nil {
		return nil, err
	}
	frame, err := EncodeSlotAnnounce(a)
	if err != nil {
		return nil, err
	}
	p.seq = a.Seq
	return frame, nil
}

func (p *Practice) hopLimit() uint8 {
	if p.HopLimit == 0 || p.HopLimit > MaxHopLimit {
		return DefaultAnnounceHops
	}
	return p.HopLimit
}

// Receive opens a reservation for this therapist and returns it, with the
// answer to send at once: "taken" for a confirmed slot, "declined" for a
// slot not in the set, the earlier answer for a retransmission, nil for a
// new pending request. Errors: the decoder's, ErrOpen (not for us, does
// not open, or a reservation id reused with another reply key).
func (p *Practice) Receive(frame []byte, at time.Time) (Request, []byte, error) {
	r, a, _, err := p.ReceiveOutcome(frame, at)
	return r, a, err
}

// ReceiveOutcome is Receive that also says what became of the
// reservation: only ReceivePending changes the state that is persisted.
func (p *Practice) ReceiveOutcome(frame []byte, at time.Time) (Request, []byte, ReceiveOutcome, error) {
	req, err := OpenReserve(p.key, p.addr, frame)
	if err != nil {
		return Request{}, nil, 0, err
	}
	if r := p.requests[req.ID]; r != nil {
		if r.ReplyKey != req.ReplyKey || r.Slot != req.Slot {
			return Request{}, nil, 0, fmt.Errorf("%w: reservation id reused with another reply key or slot", ErrOpen)
		}
		return r.Request, r.answer, ReceiveRepeat, nil
	}
	r := &received{Request: req, at: at}
	oc := ReceivePending
	switch _, free := p.free[req.Slot]; {
	case p.isConfirmed(req.Slot):
		oc, err = ReceiveAtOnce, p.answer(r, Taken, "")
	case !free:
		oc, err = ReceiveAtOnce, p.answer(r, Declined, "slot not available")
	default:
		if n, slot := p.pending(req.Slot); n >= MaxPending || slot >= MaxPendingPerSlot {
			oc, err = ReceiveRefused, p.answer(r, Declined, RefusedText)
		}
	}
	if err != nil {
		return Request{}, nil, 0, err
	}
	r.atOnce = oc != ReceivePending
	p.requests[req.ID] = r
	p.order = append(p.order, req.ID)
	if r.atOnce {
		p.atOnce++
	}
	p.prune()
	return r.Request, r.answer, oc, nil
}

// pending counts the pending requests, in all and on slot.
func (p *Practice) pending(slot uint32) (all, onSlot int) {
	all = len(p.requests) - p.atOnce - p.decided - len(p.confirmed)
	for _, r := range p.requests {
		if r.Status == Pending && r.Slot == slot {
			onSlot++
		}
	}
	return all, onSlot
}

// prune forgets the oldest requests answered at once beyond
// MaxAtOnceRequests and the oldest decided ones beyond
// MaxDecidedRequests. Pending and confirmed requests stay.
func (p *Practice) prune() {
	if p.atOnce <= MaxAtOnceRequests && p.decided <= MaxDecidedRequests {
		return
	}
	keep := p.order[:0]
	for _, id := range p.order {
		r := p.requests[id]
		switch {
		case r.atOnce && p.atOnce > MaxAtOnceRequests:
			p.atOnce--
			delete(p.requests, id)
			continue
		case !r.atOnce && p.isDecided(r) && p.decided > MaxDecidedRequests:
			p.decided--
			delete(p.requests, id)
			continue
		}
		keep = append(keep, id)
	}
	clear(p.order[len(keep):])
	p.order = keep
}

// isDecided: answered by the therapist (declined or taken), not the
// confirmed one.
func (p *Practice) isDecided(r *received) bool {
	return r.Status == Declined || r.Status == Taken
}

func (p *Practice) isConfirmed(slot uint32) bool { _, ok := p.confirmed[slot]; return ok }

func (p *Practice) answer(r *received, st Status, text string) error {
	frame, err := SealAnswer(p.key, p.addr, r.Request, st, text, p.hopLimit())
	if err != nil {
		return err
	}
	r.Status, r.answer = st, frame
	return nil
}

// Confirm gives the reservation's slot to it. It returns the answer for
// the patient, the new announce (the slot left the set) and "taken"
// answers for the other reservations pending on the slot.
func (p *Practice) Confirm(rid [16]byte, text string, expires time.Time) (answer, announce []byte, taken [][]byte, err error) {
	r := p.requests[rid]
	switch {
	case r == nil:
		return nil, nil, nil, fmt.Errorf("%w: %x", ErrUnknownReservation, rid[:4])
	case r.Status != Pending:
		return nil, nil, nil, fmt.Errorf("%w: %x is %s", ErrNotPending, rid[:4], r.Status)
	case p.isConfirmed(r.Slot):
		return nil, nil, nil, fmt.Errorf("%w: slot %d", ErrAlreadyConfirmed, r.Slot)
	}
	slot, ok := p.free[r.Slot]
	if !ok {
		return nil, nil, nil, fmt.Errorf("%w: slot %d is no longer in the set", ErrUnknownSlot, r.Slot)
	}
	if err := checkText("answer text", text); err != nil {
		return nil, nil, nil, err
	}
	delete(p.free, r.Slot)
	if announce, err = p.Announce(expires); err != nil {
		p.free[r.Slot] = slot
		return nil, nil, nil, err
	}
	p.confirmed[r.Slot] = confirmation{rid: rid, slot: slot}
	if err := p.answer(r, Confirmed, text); err != nil {
		return nil, nil, nil, err
	}
	for _, id := range p.order {
		o := p.requests[id]
		if o.ID != rid && o.Slot == r.Slot && o.Status == Pending {
			if err := p.answer(o, Taken, ""); err != nil {
				return nil, nil, nil, err
			}
			p.decided++
			taken = append(taken, o.answer)
		}
	}
	p.prune()
	return r.answer, announce, taken, nil
}

// Decline answers a pending reservation "declined", or cancels the
// confirmed one: then the slot is free again and announce is the new set
// that holds it.
func (p *Practice) Decline(rid [16]byte, text string, expires time.Time) (answer, announce []byte, err error) {
	r := p.requests[rid]
	if r == nil {
		return nil, nil, fmt.Errorf("%w: %x", ErrUnknownReservation, rid[:4])
	}
	if err := checkText("answer text", text); err != nil {
		return nil, nil, err
	}
	switch r.Status {
	case Pending:
	case Confirmed:
		c := p.confirmed[r.Slot]
		delete(p.confirmed, r.Slot)
		p.free[r.Slot] = c.slot
		if announce, err = p.Announce(expires); err != nil {
			delete(p.free, r.Slot)
			p.confirmed[r.Slot] = c
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("%w: %x is %s", ErrNotPending, rid[:4], r.Status)
	}
	if err := p.answer(r, Declined, text); err != nil {
		return nil, nil, err
	}
	p.decided++
	p.prune()
	return r.answer, announce, nil
}

// RequestInfo is one received reservation, for `qpc fapp requests`.
type RequestInfo struct {
	Request
	At time.Time
}

// Requests lists the reservations received, in arrival order.
func (p *Practice) Requests() []RequestInfo {
	out := make([]RequestInfo, 0, len(p.order))
	for _, id := range p.order {
		r := p.requests[id]
		out = append(out, RequestInfo{Request: r.Request, At: r.at})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// Checkpoint records the practice's state and returns a function that
// puts it back: a caller that could not persist a change (Publish,
// Confirm, Decline, Announce) undoes it, so memory is never ahead of disk.
// An announce made since is then not to be sent (its sequence is reused).
func (p *Practice) Checkpoint() (undo func()) {
	seq, atOnce, decided := p.seq, p.atOnce, p.decided
	free := make(map[uint32]Slot, len(p.free))
	for k, v := range p.free {
		free[k] = v
	}
	confirmed := make(map[uint32]confirmation, len(p.confirmed))
	for k, v := range p.confirmed {
		confirmed[k] = v
	}
	requests := make(map[[16]byte]*received, len(p.requests))
	for k, v := range p.requests {
		c := *v
		requests[k] = &c
	}
	order := append([][16]byte(nil), p.order...)
	return func() {
		p.seq, p.atOnce, p.decided = seq, atOnce, decided
		p.free, p.confirmed, p.requests, p.order = free, confirmed, requests, order
	}
}
