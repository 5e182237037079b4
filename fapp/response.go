package fapp

import (
	"fmt"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// A SlotResponse answers a SlotQuery: the signed SlotAnnounces that hold
// the matching slots, as they were received, sealed to the query's reply
// key. The patient opens it, verifies every announce's signature itself
// and applies its filter again (Open), so a relay can neither forge slots
// nor (beyond leaving some out) bias the result; nodes on the way back see
// only ciphertext and the query id.
//
// Wire form:
//
//	[ tag: uint = TagFAPP (0x06),
//	  kind: uint = KindResponse (3),
//	  hops: uint .le hop_limit,
//	  hop_limit: uint .le 16,
//	  query_id: bstr .size 16,
//	  sealed: bstr ]     ; HPKE base mode to reply_key (crypto.Seal):
//	                     ; enc (32) ‖ ciphertext ‖ tag (16)
//
// The plaintext is the CBOR array [ * announce: bstr ] of at most
// MaxResponseAnnounces encoded SlotAnnounces; the AAD is ResponseDomain ‖
// query_id, so a response cannot be replayed as the answer to another
// query.
type SlotResponse struct {
	_        struct{} `cbor:",toarray"`
	Tag      messages.Tag
	Kind     Kind
	Hops     uint8
	HopLimit uint8
	QueryID  [16]byte
	Sealed   []byte
}

// SlotResponse limits. MaxSlotResponseSize is checked before decoding:
// MaxResponseAnnounces of the largest announces, sealed, fit.
const (
	MaxResponseAnnounces = 8
	MaxSlotResponseSize  = 6656
	// MaxFrameSize is the largest FAPP frame of any kind.
	MaxFrameSize = MaxSlotResponseSize
)

// ResponseDomain prefixes a response's AAD.
const ResponseDomain = "qpc/fapp/response/v0\x00"

func responseAAD(qid [16]byte) []byte { return append([]byte(ResponseDomain), qid[:]...) }

// NewSlotResponse seals the announces (encoded frames, as a Store holds
// them) to the query's reply key. A relay calls it with what its store
// found for the query; hopLimit is how far the answer may travel back
// (the query's hop count when it arrived is enough).
func NewSlotResponse(q *SlotQuery, announces [][]byte, hopLimit uint8) ([]byte, error) {
	if len(announces) > MaxResponseAnnounces {
		return nil, fmt.Errorf("%w: response with %d announces, limit %d", messages.ErrTooLarge, len(announces), MaxResponseAnnounces)
	}
	if announces == nil {
		announces = [][]byte{}
	}
	pt, err := messages.Marshal(announces)
	if err != nil {
		return nil, err
	}
	sealed, err := crypto.Seal(q.ReplyKey[:], pt, responseAAD(q.QueryID))
	if err != nil {
		return nil, fmt.Errorf("fapp: seal response: %w", err)
	}
	r := SlotResponse{Tag: TagFAPP, Kind: KindResponse, HopLimit: min(hopLimit, MaxHopLimit), QueryID: q.QueryID, Sealed: sealed}
	return EncodeSlotResponse(r)
}

func (r *SlotResponse) validate() error {
	if err := checkHead(r.Tag, r.Kind, KindResponse, r.Hops, r.HopLimit); err != nil {
		return err
	}
	if len(r.Sealed) < crypto.SealOverhead {
		return fmt.Errorf("%w: FAPP response sealed part of %d bytes, at least %d", messages.ErrMalformed, len(r.Sealed), crypto.SealOverhead)
	}
	return nil
}

// EncodeSlotResponse encodes a response.
func EncodeSlotResponse(r SlotResponse) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return encodeFrame(r, KindResponse, MaxSlotResponseSize)
}

// DecodeSlotResponse decodes a response from the network (limits and
// errors as DecodeSlotQuery). It does not open it: only the patient can.
func DecodeSlotResponse(data []byte) (SlotResponse, error) {
	var r SlotResponse
	if err := decodeFrame(data, MaxSlotResponseSize, KindResponse, &r); err != nil {
		return SlotResponse{}, err
	}
	if err := r.validate(); err != nil {
		return SlotResponse{}, err
	}
	return r, nil
}

// Result is one slot found by a search.
type Result struct {
	ID       SlotID
	Slot     Slot
	Announce *SlotAnnounce // the signed set it came from: seq, PLZ, sealing key
	Frame    []byte        // the announce as received, for a reservation later
}

// Open opens a response to this query and returns the matching slots of
// the announces it carries, each verified (an announce that does not
// decode or verify is skipped and counted in bad), filtered with the
// query's filter, without slots that started before now, sorted by start
// time. A response to another query, or one that does not open, is
// ErrOpen.
func (p *PendingQuery) Open(frame []byte, now time.Time) (results []Result, bad int, err error) {
	r, err := DecodeSlotResponse(frame)
	if err != nil {
		return nil, 0, err
	}
	if r.QueryID != p.Query.QueryID {
		return nil, 0, fmt.Errorf("%w: response to another query", ErrOpen)
	}
	pt, err := p.key.Open(r.Sealed, responseAAD(r.QueryID))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: response: %w", ErrOpen, err)
	}
	var frames [][]byte
	if err := messages.UnmarshalCanonical(pt, &frames); err != nil {
		return nil, 0, fmt.Errorf("%w: response plaintext: %w", messages.ErrMalformed, err)
	}
	if len(frames) > MaxResponseAnnounces {
		return nil, 0, fmt.Errorf("%w: response with %d announces, limit %d", messages.ErrTooLarge, len(frames), MaxResponseAnnounces)
	}
	f := p.Query.Filter()
	if f.From.Before(now) {
		f.From = now
	}
	for _, fr := range frames {
		a, err := DecodeSlotAnnounce(fr)
		if err != nil {
			bad++
			continue
		}
		ap := &a
		for _, s := range a.Slots {
			if f.Matches(a.PLZ, s) {
				results = append(results, Result{ID: SlotID{Therapist: ap.Therapist(), Slot: s.ID}, Slot: s, Announce: ap, Frame: fr})
			}
		}
	}
	SortResults(results)
	if len(results) > f.Limit() {
		results = results[:f.Limit()]
	}
	return results, bad, nil
}
