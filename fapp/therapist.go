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
}

type confirmation struct {
	rid  [16]byte
	slot Slot
}

type received struct {
	Request
	at     time.Time
	answer []byte // the last answer sent, for retransmissions
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
	req, err := OpenReserve(p.key, p.addr, frame)
	if err != nil {
		return Request{}, nil, err
	}
	if r := p.requests[req.ID]; r != nil {
		if r.ReplyKey != req.ReplyKey || r.Slot != req.Slot {
			return Request{}, nil, fmt.Errorf("%w: reservation id reused with another reply key or slot", ErrOpen)
		}
		return r.Request, r.answer, nil
	}
	r := &received{Request: req, at: at}
	p.requests[req.ID] = r
	p.order = append(p.order, req.ID)
	switch _, free := p.free[req.Slot]; {
	case p.isConfirmed(req.Slot):
		err = p.answer(r, Taken, "")
	case !free:
		err = p.answer(r, Declined, "slot not available")
	}
	if err != nil {
		return Request{}, nil, err
	}
	return r.Request, r.answer, nil
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
			taken = append(taken, o.answer)
		}
	}
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
