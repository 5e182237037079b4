package messages

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// This file holds the one CBOR encoding and the one strict decoding that
// every wire type uses, and the frame type/version tag that starts every
// frame. Wire types call Marshal, Unmarshal (or UnmarshalCanonical) and
// CheckTag; nothing else in qpc creates its own cbor mode.

// MaxFrameSize bounds any input to Unmarshal. Each wire type has its own,
// usually much smaller, limit that its decoder checks first (MaxBeaconSize,
// ...). Larger payloads are fragmented before they become frames.
const MaxFrameSize = 64 << 10

// Limits of the strict decoder. They bound the work and memory a hostile
// input can cost before a type's own checks run; the well-formedness pass of
// the cbor library also refuses lengths that run past the input, so a byte
// or text string can never be longer than the input that carries it.
const (
	maxNestedLevels  = 8    // frame array → list → item → ... (library minimum is 4)
	maxArrayElements = 1024 // per array
	maxMapPairs      = 256  // per map
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	// RFC 8949 §4.2.1 Core Deterministic Encoding: shortest integers and
	// lengths, sorted map keys, no indefinite lengths. On top of it: a nil
	// slice encodes as an empty one (so there is one encoding of "empty"),
	// and no CBOR tags at all.
	eo := cbor.CoreDetEncOptions()
	eo.NilContainers = cbor.NilContainerAsEmpty
	eo.TagsMd = cbor.TagsForbidden
	if encMode, err = eo.EncMode(); err != nil {
		panic("messages: cbor EncMode: " + err.Error()) // a bug in the options above
	}
	do := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   maxNestedLevels,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       maxMapPairs,
		UTF8:              cbor.UTF8RejectInvalid,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic("messages: cbor DecMode: " + err.Error()) // a bug in the options above
	}
}

// Marshal encodes v with Core Deterministic Encoding: equal values always
// give equal bytes, so encodings can be signed, hashed and compared.
// Wire structs are encoded as arrays (`cbor:",toarray"`) or with small
// integer keys (`cbor:"1,keyasint"`).
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("messages: encode %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes one CBOR item from data into v (a pointer) with the
// strict decoder: longer than MaxFrameSize, duplicate map keys, indefinite
// lengths, tags, invalid UTF-8, unknown struct fields, nesting deeper than
// 8, and bytes after the item are all refused. Errors wrap ErrTooLarge or
// ErrMalformed.
//
// Unmarshal accepts non-shortest forms of integers and lengths, and it
// silently pads or truncates a byte string decoded into a Go byte array
// ([16]byte). Use UnmarshalCanonical, or []byte fields with explicit length
// checks, where that matters (anything signed or hashed).
func Unmarshal(data []byte, v any) error {
	if len(data) > MaxFrameSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxFrameSize)
	}
	if err := decMode.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// UnmarshalCanonical is Unmarshal followed by a check that re-encoding v
// gives exactly data. It refuses every encoding but the deterministic one,
// so a frame has one byte string per meaning: no malleability for dedup
// hashes, and a wrong-length byte string in a [N]byte field is caught.
func UnmarshalCanonical(data []byte, v any) error {
	if err := Unmarshal(data, v); err != nil {
		return err
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: re-encode: %w", ErrMalformed, err)
	}
	if !bytes.Equal(again, data) {
		return fmt.Errorf("%w: not in canonical (deterministic) encoding", ErrMalformed)
	}
	return nil
}

// FrameType is the low nibble of a Tag: which wire type a frame is. The
// registry of types is in doc.go; 0 is never valid.
type FrameType uint8

// FrameBeacon is the LAN discovery beacon (beacon.go).
const FrameBeacon FrameType = 0xF

// Tag is the first field of every frame: version in the high nibble (0 is a
// type's first version), FrameType in the low nibble. Version 0 tags are
// 0x01..0x0F and so take one byte on the wire.
type Tag uint8

// MakeTag builds the tag of version v (0..15) of frame type t (1..15).
func MakeTag(t FrameType, v uint8) Tag { return Tag(v<<4 | uint8(t)&0x0F) }

// Type is the frame type of the tag.
func (t Tag) Type() FrameType { return FrameType(t & 0x0F) }

// Version is the version of the tag's frame type.
func (t Tag) Version() uint8 { return uint8(t) >> 4 }

func (t Tag) String() string {
	return fmt.Sprintf("type 0x%X version %d", uint8(t.Type()), t.Version())
}

// decodeFrame is the front of every frame decoder, in the order their docs
// give: a frame longer than limit is refused before anything is read
// (ErrTooLarge, naming what), then one of another frame type or version
// (FrameTag, CheckTag), then anything but the canonical encoding, decoded
// into v.
func decodeFrame(data []byte, limit int, what string, want Tag, v any) error {
	if len(data) > limit {
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLarge, what, len(data), limit)
	}
	tag, err := FrameTag(data)
	if err != nil {
		return err
	}
	if err := CheckTag(uint64(tag), want); err != nil {
		return err
	}
	return UnmarshalCanonical(data, v)
}

// CheckTag reports whether the tag read from a frame (got, as decoded) is
// want: a different type gives ErrUnknownType, the same type with another
// version ErrUnsupportedVersion.
func CheckTag(got uint64, want Tag) error {
	if got > 0xFF || Tag(got).Type() != want.Type() {
		return fmt.Errorf("%w: tag 0x%X, want %s", ErrUnknownType, got, want)
	}
	if Tag(got) != want {
		return fmt.Errorf("%w: %s, this node speaks version %d", ErrUnsupportedVersion, Tag(got), want.Version())
	}
	return nil
}

// FrameTag reads the tag of a frame (the first element of its top-level
// CBOR array) without decoding the rest, so a receiver can pick the decoder,
// or reject an unknown type or version before any allocation. It returns
// ErrMalformed if data does not start with a definite-length array whose
// first element is an unsigned integer, and ErrUnknownType if that integer
// is larger than a tag.
func FrameTag(data []byte) (Tag, error) {
	if len(data) == 0 {
		return 0, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	hdr := data[0]
	if hdr>>5 != 4 { // major type 4: array
		return 0, fmt.Errorf("%w: frame is not a CBOR array", ErrMalformed)
	}
	n, rest, ok := CBORHead(hdr&0x1F, data[1:])
	if !ok || n == 0 {
		return 0, fmt.Errorf("%w: bad frame array header", ErrMalformed)
	}
	if len(rest) == 0 || rest[0]>>5 != 0 { // major type 0: unsigned integer
		return 0, fmt.Errorf("%w: frame does not start with a tag", ErrMalformed)
	}
	tag, _, ok := CBORHead(rest[0]&0x1F, rest[1:])
	if !ok {
		return 0, fmt.Errorf("%w: truncated tag", ErrMalformed)
	}
	if tag > 0xFF || tag&0x0F == 0 {
		return 0, fmt.Errorf("%w: tag 0x%X", ErrUnknownType, tag)
	}
	return Tag(tag), nil
}

// CBORHead decodes the argument of a CBOR head whose additional information
// is ai and whose following bytes are b. Indefinite lengths (31) and the
// reserved values 28..30 are refused.
func CBORHead(ai byte, b []byte) (v uint64, rest []byte, ok bool) {
	var size int
	switch {
	case ai < 24:
		return uint64(ai), b, true
	case ai == 24:
		size = 1
	case ai == 25:
		size = 2
	case ai == 26:
		size = 4
	case ai == 27:
		size = 8
	default:
		return 0, nil, false
	}
	if len(b) < size {
		return 0, nil, false
	}
	for _, c := range b[:size] {
		v = v<<8 | uint64(c)
	}
	return v, b[size:], true
}

// Frame types reserved in the registry (doc.go) for frames between nodes.
const (
	FrameEnvelope   FrameType = 0x1
	FrameAnnounce   FrameType = 0x2
	FrameFragment   FrameType = 0x3
	FrameKeyPkgReq  FrameType = 0x4
	FrameKeyPkgResp FrameType = 0x5
	FrameFAPP       FrameType = 0x6
	// FrameCompact (0x7, compact.go) is the compact sealed envelope;
	// 0x8 is MLS-Lite (crypto/mlslite.FrameMLSLite, which uses this
	// package's helpers, so the constant lives there).
	lastLinkFrameTyp FrameType = 0x8
)

// OnLinks reports whether frames of type t may travel on a link between
// nodes (the registry's types 0x1–0x8; the beacon is LAN UDP only).
func (t FrameType) OnLinks() bool { return t >= FrameEnvelope && t <= lastLinkFrameTyp }
