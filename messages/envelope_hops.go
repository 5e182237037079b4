package messages

import (
	"errors"
	"fmt"
)

// Hop counts of announces and envelopes are the only fields relays change.
// They are left out of the signatures and sit right after the tag, the
// second element of the frame's array, so ForwardAnnounce and
// ForwardEnvelope can raise them by rewriting a byte or two of the encoded
// frame: no decoding, no re-encoding of the payload, no re-signing.

// ErrHopLimit is returned by ForwardAnnounce and ForwardEnvelope for a frame
// that may not travel further: an envelope whose hop count has reached its
// hop limit, or an announce with 255 hops. It is a routing decision, not a
// bad frame: the router drops the frame (or delivers it, if it is for this
// node) and counts it.
var ErrHopLimit = errors.New("messages: hop limit reached")

// hopField is where a frame's hop count is: the byte range [start, end) of
// its encoding, and its value. For an envelope, limit is the hop limit that
// follows it.
type hopField struct {
	start, end int
	hops       uint8
	limit      uint8
}

// readHops reads the head of an announce or envelope frame (want): the
// array header, the tag, the hop count and, for an envelope, the hop limit.
// It refuses a wrong tag (ErrUnknownType, ErrUnsupportedVersion) and hop
// fields that are not uints of at most 255 in their shortest encoding
// (ErrMalformed), and reads nothing further.
func readHops(frame []byte, want Tag) (hopField, error) {
	tag, err := FrameTag(frame)
	if err != nil {
		return hopField{}, err
	}
	if err := CheckTag(uint64(tag), want); err != nil {
		return hopField{}, err
	}
	// FrameTag has checked the array head and the tag; skip them.
	n, rest, _ := CBORHead(frame[0]&0x1F, frame[1:])
	_, rest, _ = CBORHead(rest[0]&0x1F, rest[1:])
	fields := uint64(3) // tag, hops, hop limit
	if want.Type() == FrameAnnounce {
		fields = 2
	}
	if n < fields {
		return hopField{}, fmt.Errorf("%w: frame of %d elements is too short for its hop fields", ErrMalformed, n)
	}
	var h hopField
	h.start = len(frame) - len(rest)
	hops, rest, err := ReadUint8(rest, "hop count")
	if err != nil {
		return hopField{}, err
	}
	h.hops, h.end = hops, len(frame)-len(rest)
	if want.Type() == FrameEnvelope || want.Type() == FrameCompact {
		if h.limit, _, err = ReadUint8(rest, "hop limit"); err != nil {
			return hopField{}, err
		}
	}
	return h, nil
}

// ReadUint8 reads a CBOR unsigned integer of at most 255 in its shortest
// form from the start of b, for the hop fields relays rewrite without
// decoding a frame (here and in fapp); what names the field in the error.
func ReadUint8(b []byte, what string) (uint8, []byte, error) {
	if len(b) == 0 || b[0]>>5 != 0 {
		return 0, nil, fmt.Errorf("%w: %s is not an unsigned integer", ErrMalformed, what)
	}
	v, rest, ok := CBORHead(b[0]&0x1F, b[1:])
	if !ok {
		return 0, nil, fmt.Errorf("%w: truncated %s", ErrMalformed, what)
	}
	if v > 0xFF || len(b)-len(rest) != len(AppendUint8(nil, uint8(v))) {
		return 0, nil, fmt.Errorf("%w: %s 0x%X is out of range or not in its shortest form", ErrMalformed, what, v)
	}
	return uint8(v), rest, nil
}

// AppendUint8 appends the shortest CBOR encoding of v.
func AppendUint8(b []byte, v uint8) []byte {
	if v < 24 {
		return append(b, v)
	}
	return append(b, 0x18, v)
}

// with returns a new frame with the hop count set to hops. frame is not
// modified.
func (h hopField) with(frame []byte, hops uint8) []byte {
	out := make([]byte, 0, len(frame)+1)
	out = append(out, frame[:h.start]...)
	out = AppendUint8(out, hops)
	return append(out, frame[h.end:]...)
}
