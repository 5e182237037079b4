package fapp

import (
	"fmt"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// A Practice's state survives a restart as one CBOR record (the actor
// keeps it in the node's database): the last sequence, the free set, the
// confirmed slots and the requests with the answers sent. The identity,
// PLZ and Approbation come from the configuration, not from the record.

type practiceState struct {
	_         struct{} `cbor:",toarray"`
	Version   uint8
	Seq       uint64
	Free      []Slot
	Confirmed []confirmedState
	Requests  []requestState
}

type confirmedState struct {
	_    struct{} `cbor:",toarray"`
	Slot Slot
	RID  [16]byte
}

type requestState struct {
	_        struct{} `cbor:",toarray"`
	ID       [16]byte
	Slot     uint32
	Seq      uint64
	Note     string
	ReplyKey [32]byte
	Status   Status
	AtMilli  int64
	Answer   []byte
}

const practiceStateVersion = 1

// MaxPracticeState bounds a state record (checked before decoding).
const MaxPracticeState = 4 << 20

// MarshalState encodes the practice's state for persisting.
func (p *Practice) MarshalState() ([]byte, error) {
	st := practiceState{Version: practiceStateVersion, Seq: p.seq, Free: p.Free()}
	for _, c := range p.confirmed {
		st.Confirmed = append(st.Confirmed, confirmedState{Slot: c.slot, RID: c.rid})
	}
	sortConfirmed(st.Confirmed)
	for _, id := range p.order {
		r := p.requests[id]
		st.Requests = append(st.Requests, requestState{ID: r.ID, Slot: r.Slot, Seq: r.Seq, Note: r.Note, ReplyKey: r.ReplyKey,
			Status: r.Status, AtMilli: r.at.UnixMilli(), Answer: r.answer})
	}
	return messages.Marshal(st)
}

func sortConfirmed(c []confirmedState) {
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j].Slot.ID < c[j-1].Slot.ID; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
}

// RestorePractice rebuilds a practice from its configuration and a state
// record MarshalState wrote. A record that does not decode, or does not
// hold together (a confirmed slot that is also free, a confirmation
// without its request), is ErrDamagedRecord.
func RestorePractice(id *crypto.Identity, plz PLZ, appr Approbation, state []byte) (*Practice, error) {
	if len(state) > MaxPracticeState {
		return nil, fmt.Errorf("%w: practice state of %d bytes, limit %d", ErrDamagedRecord, len(state), MaxPracticeState)
	}
	var st practiceState
	if err := messages.UnmarshalCanonical(state, &st); err != nil {
		return nil, fmt.Errorf("%w: practice state: %w", ErrDamagedRecord, err)
	}
	if st.Version != practiceStateVersion {
		return nil, fmt.Errorf("%w: practice state version %d", ErrDamagedRecord, st.Version)
	}
	p, err := NewPractice(id, plz, appr, st.Seq)
	if err != nil {
		return nil, err
	}
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w: practice state: %s", ErrDamagedRecord, fmt.Sprintf(f, a...))
	}
	for _, s := range st.Free {
		if err := s.validate(); err != nil {
			return nil, bad("%v", err)
		}
		if _, dup := p.free[s.ID]; dup {
			return nil, bad("slot %d twice", s.ID)
		}
		p.free[s.ID] = s
	}
	for _, r := range st.Requests {
		if _, dup := p.requests[r.ID]; dup || r.Status > Taken {
			return nil, bad("request %x", r.ID[:4])
		}
		p.requests[r.ID] = &received{
			Request: Request{ID: r.ID, Slot: r.Slot, Seq: r.Seq, Note: r.Note, ReplyKey: r.ReplyKey, Status: r.Status},
			at:      time.UnixMilli(r.AtMilli), answer: r.Answer,
		}
		p.order = append(p.order, r.ID)
	}
	for _, c := range st.Confirmed {
		r := p.requests[c.RID]
		_, free := p.free[c.Slot.ID]
		_, dup := p.confirmed[c.Slot.ID]
		if r == nil || r.Status != Confirmed || r.Slot != c.Slot.ID || free || dup || c.Slot.validate() != nil {
			return nil, bad("confirmation of slot %d", c.Slot.ID)
		}
		p.confirmed[c.Slot.ID] = confirmation{rid: c.RID, slot: c.Slot}
	}
	return p, nil
}
