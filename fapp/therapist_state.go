package fapp

import (
	"bytes"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

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

// MaxPracticeState bounds a state record (checked before decoding). The
// Practice's bounds (MaxPending, MaxDecidedRequests; the requests answered
// at once are not persisted) keep a record far below it: at most about
// 400 KiB with the longest notes and texts, whatever arrives from outside
// (TestPracticeBoundedUnderHostileReservations).
const MaxPracticeState = 1 << 20

// maxStateRequests bounds the requests in a record (the decoder refuses
// more before allocating them).
const maxStateRequests = 8192

// stateDec is the strict decoder of messages (no indefinite lengths, no
// tags, no duplicate keys, no unknown fields, valid UTF-8) with room for
// a state record, which is larger than any frame (messages.MaxFrameSize).
var stateDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   8,
		MaxArrayElements:  maxStateRequests,
		MaxMapPairs:       16,
		UTF8:              cbor.UTF8RejectInvalid,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic("fapp: state DecMode: " + err.Error()) // a bug in the options above
	}
	return dm
}()

// unmarshalState decodes a state record strictly and canonically.
func unmarshalState(data []byte, st *practiceState) error {
	if err := stateDec.Unmarshal(data, st); err != nil {
		return fmt.Errorf("%w: %w", messages.ErrMalformed, err)
	}
	again, err := messages.Marshal(st)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, data) {
		return fmt.Errorf("%w: not in canonical (deterministic) encoding", messages.ErrMalformed)
	}
	return nil
}

// MarshalState encodes the practice's state for persisting.
func (p *Practice) MarshalState() ([]byte, error) {
	st := practiceState{Version: practiceStateVersion, Seq: p.seq, Free: p.Free()}
	for _, c := range p.confirmed {
		st.Confirmed = append(st.Confirmed, confirmedState{Slot: c.slot, RID: c.rid})
	}
	sortConfirmed(st.Confirmed)
	for _, id := range p.order {
		r := p.requests[id]
		if r.atOnce {
			continue // the dedup window is not persisted
		}
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
	if err := unmarshalState(state, &st); err != nil {
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
		if r.Status == Declined || r.Status == Taken {
			p.decided++
		}
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
	for _, r := range p.requests {
		if c, ok := p.confirmed[r.Slot]; r.Status == Confirmed && (!ok || c.rid != r.ID) {
			return nil, bad("request %x confirmed without its confirmation", r.ID[:4])
		}
	}
	// A record written before the bounds (every request kept) is cut to
	// them here; the next write is the bounded one.
	p.prune()
	return p, nil
}
