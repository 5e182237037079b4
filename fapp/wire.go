package fapp

import (
	"fmt"

	"github.com/quicprochat/qpc/messages"
)

// Every FAPP message is a frame of the type the messages registry reserves
// for FAPP (messages.FrameFAPP, 0x6), so a node that does not speak FAPP
// recognises and refuses it like any other type, and FAPP adds message
// kinds without spending the registry's scarce type numbers (16 in all).
// The frame is a CBOR array whose first four elements are always
//
//	[ tag: uint = TagFAPP (0x06),
//	  kind: uint,              ; KindAnnounce, KindQuery, ...
//	  hops: uint .le hop_limit, ; relays add one; never signed or sealed
//	  hop_limit: uint .le 255,
//	  ... ]
//
// so a relay reads the kind and raises the hop count (Forward) without
// decoding the rest, as messages.ForwardAnnounce does for announces.

// TagFAPP is version 0 of messages.FrameFAPP: one byte on the wire.
const TagFAPP = messages.Tag(messages.FrameFAPP) // messages.MakeTag(messages.FrameFAPP, 0)

// Kind is the FAPP message kind, element 1 of every FAPP frame.
type Kind uint8

// FAPP message kinds on the wire. SlotConfirm and SlotDecline are not
// kinds of their own: both travel sealed inside a KindAnswer frame, so a
// relay cannot tell a confirmation from a decline (see SlotAnswer).
const (
	KindAnnounce Kind = 1 // SlotAnnounce: a therapist's signed set of free slots, flooded
	KindQuery    Kind = 2 // SlotQuery: a patient's anonymous search, forwarded a bounded number of hops
	KindResponse Kind = 3 // SlotResponse: matching announces, sealed to the query's key, back along the reverse path
	KindReserve  Kind = 4 // SlotReserve: a reservation sealed to the therapist
	KindAnswer   Kind = 5 // SlotAnswer: a SlotConfirm or SlotDecline sealed to the reservation's reply key
)

func (k Kind) String() string {
	switch k {
	case KindAnnounce:
		return "announce"
	case KindQuery:
		return "query"
	case KindResponse:
		return "response"
	case KindReserve:
		return "reserve"
	case KindAnswer:
		return "answer"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// Hop limits. A therapist's announce and a patient's query carry the hop
// limit their sender chose, up to MaxHopLimit; relays may lower what they
// forward but cannot raise a signed announce's.
const (
	DefaultAnnounceHops = 8
	DefaultQueryHops    = 4
	MaxHopLimit         = 16
)

// frameHead is what Peek reads from a FAPP frame.
type frameHead struct {
	kind      Kind
	hops      uint8
	limit     uint8
	hopsStart int // byte offset of the hop count's encoding
	hopsEnd   int
}

// Peek reads a FAPP frame's kind, hop count and hop limit without decoding
// the rest: for a relay's dispatch and forwarding decision. It refuses
// another frame type (messages.ErrUnknownType), another FAPP version
// (messages.ErrUnsupportedVersion) and anything else that is not the start
// of a FAPP frame (messages.ErrMalformed). It reads at most the first 13
// bytes.
func Peek(frame []byte) (kind Kind, hops, hopLimit uint8, err error) {
	h, err := peek(frame)
	return h.kind, h.hops, h.limit, err
}

func peek(frame []byte) (frameHead, error) {
	tag, err := messages.FrameTag(frame)
	if err != nil {
		return frameHead{}, err
	}
	if err := messages.CheckTag(uint64(tag), TagFAPP); err != nil {
		return frameHead{}, err
	}
	n, rest, ok := messages.CBORHead(frame[0]&0x1F, frame[1:])
	if !ok || n < 4 {
		return frameHead{}, fmt.Errorf("%w: FAPP frame of %d elements, want at least 4", messages.ErrMalformed, n)
	}
	rest = rest[1:] // the tag: FrameTag read it, and a version-0 tag is one byte
	var h frameHead
	var k uint8
	if k, rest, err = messages.ReadUint8(rest, "FAPP kind"); err != nil {
		return frameHead{}, err
	}
	h.kind = Kind(k)
	h.hopsStart = len(frame) - len(rest)
	if h.hops, rest, err = messages.ReadUint8(rest, "FAPP hop count"); err != nil {
		return frameHead{}, err
	}
	h.hopsEnd = len(frame) - len(rest)
	if h.limit, _, err = messages.ReadUint8(rest, "FAPP hop limit"); err != nil {
		return frameHead{}, err
	}
	if h.hops > h.limit {
		return frameHead{}, fmt.Errorf("%w: FAPP frame has %d hops, over its hop limit %d", messages.ErrMalformed, h.hops, h.limit)
	}
	return h, nil
}

// Forward returns a copy of a FAPP frame with its hop count raised by one,
// for a relay to send on; frame is not modified. It rewrites one or two
// bytes and leaves everything signed or sealed as it is. A frame whose hop
// count has reached its hop limit gives messages.ErrHopLimit. Call it only
// on a frame its kind's decoder accepted.
func Forward(frame []byte) ([]byte, error) {
	if len(frame) > MaxFrameSize {
		return nil, fmt.Errorf("%w: FAPP frame of %d bytes, limit %d", messages.ErrTooLarge, len(frame), MaxFrameSize)
	}
	h, err := peek(frame)
	if err != nil {
		return nil, err
	}
	if h.hops >= h.limit {
		return nil, fmt.Errorf("%w: FAPP %s has %d hops, hop limit %d", messages.ErrHopLimit, h.kind, h.hops, h.limit)
	}
	out := make([]byte, 0, len(frame)+1)
	out = append(out, frame[:h.hopsStart]...)
	out = messages.AppendUint8(out, h.hops+1)
	return append(out, frame[h.hopsEnd:]...), nil
}

// decodeFrame is the common start of every FAPP decoder: the size limit
// (before anything else), the tag, the kind, then the canonical decoding
// into v.
func decodeFrame(data []byte, limit int, want Kind, v any) error {
	if len(data) > limit {
		return fmt.Errorf("%w: FAPP %s of %d bytes, limit %d", messages.ErrTooLarge, want, len(data), limit)
	}
	h, err := peek(data)
	if err != nil {
		return err
	}
	if h.kind != want {
		return fmt.Errorf("%w: FAPP %s, want %s", messages.ErrUnknownType, h.kind, want)
	}
	return messages.UnmarshalCanonical(data, v)
}

// checkHead checks the four common fields of a frame being encoded or
// just decoded.
func checkHead(tag messages.Tag, kind, want Kind, hops, limit uint8) error {
	if err := messages.CheckTag(uint64(tag), TagFAPP); err != nil {
		return err
	}
	if kind != want {
		return fmt.Errorf("%w: FAPP %s, want %s", messages.ErrUnknownType, kind, want)
	}
	if limit > MaxHopLimit {
		return fmt.Errorf("%w: FAPP %s hop limit %d, at most %d", messages.ErrMalformed, want, limit, MaxHopLimit)
	}
	if hops > limit {
		return fmt.Errorf("%w: FAPP %s has %d hops, over its hop limit %d", messages.ErrMalformed, want, hops, limit)
	}
	return nil
}

// encodeFrame marshals v and checks the kind's limit.
func encodeFrame(v any, kind Kind, limit int) ([]byte, error) {
	out, err := messages.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: FAPP %s encodes to %d bytes, limit %d", messages.ErrTooLarge, kind, len(out), limit)
	}
	return out, nil
}
