package mlslite

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// FrameMLSLite is the frame type of MLS-Lite in the registry of
// messages/doc.go.
const FrameMLSLite messages.FrameType = 0x8

// Tag is version 0 of FrameMLSLite: one byte (0x08) on the wire.
const Tag = messages.Tag(FrameMLSLite) // messages.MakeTag(FrameMLSLite, 0)

// Domain prefixes the AEAD's associated data, the signed bytes and the
// message id preimage, so none of them can be taken for another type's.
const Domain = "qpc/mls-lite/v0\x00"

// Limits. MaxFrameSize is checked before any decoding; it is what a few
// LoRa packets carry. A ciphertext is at least TagSize bytes (an empty
// text).
const (
	MaxFrameSize  = 512
	SignatureSize = ed25519.SignatureSize
	// Overhead is the frame around a text shorter than 8 bytes (the
	// ciphertext length head grows by one byte from 24 bytes of
	// ciphertext), hop counts, hop limit, epoch and counter below 24,
	// unsigned: 62 bytes plus the text; a signature adds 66.
	Overhead = 1 + 1 + 1 + 1 + 17 + 17 + 5 + 1 + 1 + 1 + TagSize
)

// A Frame is an MLS-Lite frame as a relay sees it: the header in the
// clear, the ciphertext and, if the sender signed, its signature.
//
// Wire form, a CBOR array in Core Deterministic Encoding:
//
//	[ tag: uint = 0x08,
//	  hops: uint .le hop_limit,           ; relays add one; not authenticated
//	  hop_limit: uint .le 255,
//	  source: bstr .size 16,              ; the sender's address
//	  destination: bstr .size 16,         ; one member; never broadcast
//	  group_ref: bstr .size 4,            ; GroupRefOf(group id)
//	  epoch: uint,                        ; MLS epoch
//	  counter: uint .le 0xFFFFFFFF,       ; per sender per epoch
//	  ciphertext: bstr,                   ; AES-128-GCM ciphertext ‖ tag (16)
//	  ? signature: bstr .size 64 ]        ; Ed25519 by the source's identity
type Frame struct {
	Hops, HopLimit uint8
	Source         crypto.Address
	Destination    crypto.Address
	GroupRef       [GroupRefSize]byte
	Epoch          uint64
	Counter        uint32
	Ciphertext     []byte
	Signature      []byte // nil: unsigned
}

// Signed reports whether the frame carries a sender signature.
func (f Frame) Signed() bool { return f.Signature != nil }

// wireUnsigned and wireSigned are the two encodings (9 and 10 elements).
type wireUnsigned struct {
	_           struct{} `cbor:",toarray"`
	Tag         messages.Tag
	Hops        uint8
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	GroupRef    [GroupRefSize]byte
	Epoch       uint64
	Counter     uint32
	Ciphertext  []byte
}

type wireSigned struct {
	_           struct{} `cbor:",toarray"`
	Tag         messages.Tag
	Hops        uint8
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	GroupRef    [GroupRefSize]byte
	Epoch       uint64
	Counter     uint32
	Ciphertext  []byte
	Signature   []byte
}

// aadInput is what the AEAD authenticates besides the text: every field
// but the hop count and the ciphertext, and whether the frame is signed.
type aadInput struct {
	_           struct{} `cbor:",toarray"`
	Tag         messages.Tag
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	GroupRef    [GroupRefSize]byte
	Epoch       uint64
	Counter     uint32
	Signed      bool
}

// tbsInput is what the signature covers (after Domain): every element but
// the hop count and the signature. It is also the id preimage of an
// unsigned frame.
type tbsInput struct {
	_           struct{} `cbor:",toarray"`
	Tag         messages.Tag
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	GroupRef    [GroupRefSize]byte
	Epoch       uint64
	Counter     uint32
	Ciphertext  []byte
}

// idSigned is the id preimage of a signed frame: every element but hops.
type idSigned struct {
	_           struct{} `cbor:",toarray"`
	Tag         messages.Tag
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	GroupRef    [GroupRefSize]byte
	Epoch       uint64
	Counter     uint32
	Ciphertext  []byte
	Signature   []byte
}

func mustMarshal(v any) []byte {
	b, err := messages.Marshal(v)
	if err != nil {
		// Fixed-size arrays, uints, bools and byte strings cannot fail.
		panic("mlslite: " + err.Error())
	}
	return b
}

// AAD is the AEAD's associated data: Domain ‖ CBOR [tag, hop_limit,
// source, destination, group_ref, epoch, counter, signed]. Everything but
// the hop count is bound, so a relay cannot redirect the frame to another
// member, move it to another epoch or counter, or strip a signature (the
// signed flag changes the AAD).
func (f Frame) AAD() []byte {
	return append([]byte(Domain), mustMarshal(aadInput{Tag: Tag, HopLimit: f.HopLimit, Source: f.Source,
		Destination: f.Destination, GroupRef: f.GroupRef, Epoch: f.Epoch, Counter: f.Counter, Signed: f.Signed()})...)
}

// TBS is what the sender signs: Domain ‖ CBOR [tag, hop_limit, source,
// destination, group_ref, epoch, counter, ciphertext].
func (f Frame) TBS() []byte {
	return append([]byte(Domain), mustMarshal(f.tbs())...)
}

func (f Frame) tbs() tbsInput {
	return tbsInput{Tag: Tag, HopLimit: f.HopLimit, Source: f.Source, Destination: f.Destination,
		GroupRef: f.GroupRef, Epoch: f.Epoch, Counter: f.Counter, Ciphertext: f.Ciphertext}
}

// ID is the message id: the first 16 bytes of SHA-256(Domain ‖ CBOR of
// every element but the hop count), so the same at every hop. A changed
// ciphertext, header field or signature changes it; relays may
// deduplicate on it, receivers report it.
func (f Frame) ID() [16]byte {
	var b []byte
	if f.Signed() {
		t := f.tbs()
		b = mustMarshal(idSigned{Tag: t.Tag, HopLimit: t.HopLimit, Source: t.Source, Destination: t.Destination,
			GroupRef: t.GroupRef, Epoch: t.Epoch, Counter: t.Counter, Ciphertext: t.Ciphertext, Signature: f.Signature})
	} else {
		b = mustMarshal(f.tbs())
	}
	h := sha256.New()
	h.Write([]byte(Domain))
	h.Write(b)
	var id [16]byte
	copy(id[:], h.Sum(nil))
	return id
}

// validate checks the fields a decoder and an encoder both refuse.
func (f *Frame) validate() error {
	switch {
	case f.Hops > f.HopLimit:
		return fmt.Errorf("%w: %d hops, over the hop limit %d", ErrMalformed, f.Hops, f.HopLimit)
	case f.Source == crypto.Address(messages.BroadcastAddress):
		return fmt.Errorf("%w: source is the broadcast address", ErrMalformed)
	case f.Destination == crypto.Address(messages.BroadcastAddress):
		return fmt.Errorf("%w: destination is the broadcast address (a frame is for one member)", ErrMalformed)
	case len(f.Ciphertext) < TagSize:
		return fmt.Errorf("%w: ciphertext of %d bytes, at least %d", ErrMalformed, len(f.Ciphertext), TagSize)
	case len(f.Ciphertext) > MaxFrameSize:
		return fmt.Errorf("%w: ciphertext of %d bytes, limit %d", ErrTooLarge, len(f.Ciphertext), MaxFrameSize)
	case f.Signature != nil && len(f.Signature) != SignatureSize:
		return fmt.Errorf("%w: signature of %d bytes, want %d", ErrMalformed, len(f.Signature), SignatureSize)
	}
	return nil
}

// encode is the frame's canonical encoding.
func encode(f Frame) ([]byte, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	var out []byte
	if f.Signed() {
		out = mustMarshal(wireSigned{Tag: Tag, Hops: f.Hops, HopLimit: f.HopLimit, Source: f.Source, Destination: f.Destination,
			GroupRef: f.GroupRef, Epoch: f.Epoch, Counter: f.Counter, Ciphertext: f.Ciphertext, Signature: f.Signature})
	} else {
		out = mustMarshal(wireUnsigned{Tag: Tag, Hops: f.Hops, HopLimit: f.HopLimit, Source: f.Source, Destination: f.Destination,
			GroupRef: f.GroupRef, Epoch: f.Epoch, Counter: f.Counter, Ciphertext: f.Ciphertext})
	}
	if len(out) > MaxFrameSize {
		return nil, fmt.Errorf("%w: frame encodes to %d bytes, limit %d", ErrTooLarge, len(out), MaxFrameSize)
	}
	return out, nil
}

// Decode reads an MLS-Lite frame without keys, for relays and routing.
// In order it refuses: more than MaxFrameSize bytes (ErrTooLarge, before
// any decoding), another frame type or version, anything but the
// canonical encoding of a 9- or 10-element frame, a hop count over the hop
// limit, a broadcast source or destination, a ciphertext shorter than the
// tag and a signature not of 64 bytes (ErrMalformed). It authenticates
// nothing; only a member can (Epoch.Open). It never panics.
func Decode(frame []byte) (Frame, error) {
	if len(frame) > MaxFrameSize {
		return Frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(frame), MaxFrameSize)
	}
	tag, err := messages.FrameTag(frame)
	if err != nil {
		return Frame{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := messages.CheckTag(uint64(tag), Tag); err != nil {
		return Frame{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var f Frame
	switch frame[0] { // FrameTag checked it is an array head
	case 0x89:
		var w wireUnsigned
		if err := messages.UnmarshalCanonical(frame, &w); err != nil {
			return Frame{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		f = Frame{Hops: w.Hops, HopLimit: w.HopLimit, Source: w.Source, Destination: w.Destination,
			GroupRef: w.GroupRef, Epoch: w.Epoch, Counter: w.Counter, Ciphertext: w.Ciphertext}
	case 0x8a:
		var w wireSigned
		if err := messages.UnmarshalCanonical(frame, &w); err != nil {
			return Frame{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		f = Frame{Hops: w.Hops, HopLimit: w.HopLimit, Source: w.Source, Destination: w.Destination,
			GroupRef: w.GroupRef, Epoch: w.Epoch, Counter: w.Counter, Ciphertext: w.Ciphertext, Signature: w.Signature}
		if f.Signature == nil { // an empty byte string
			f.Signature = []byte{}
		}
	default:
		return Frame{}, fmt.Errorf("%w: array head 0x%02x, want 9 or 10 elements", ErrMalformed, frame[0])
	}
	if err := f.validate(); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// IsMLSLite reports whether frame carries the MLS-Lite tag (it reads the
// tag only).
func IsMLSLite(frame []byte) bool {
	t, err := messages.FrameTag(frame)
	return err == nil && t == Tag
}

// Forward returns a copy of frame with the hop count raised by one, for a
// relay: it reads the array head, the tag, the hop count and the hop limit
// and nothing else, so it neither decodes nor re-encodes the rest. A frame
// whose hop count has reached its hop limit is ErrHopLimit (deliver it if
// it is for this node, else drop it); a hop count over it, a wrong tag or
// bad hop fields are ErrMalformed; more than MaxFrameSize bytes, before or
// after (the hop count takes two bytes from 24), ErrTooLarge. The id and
// the AAD do not change. frame is not modified.
func Forward(frame []byte) ([]byte, error) {
	if len(frame) > MaxFrameSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(frame), MaxFrameSize)
	}
	tag, err := messages.FrameTag(frame)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := messages.CheckTag(uint64(tag), Tag); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if frame[0] != 0x89 && frame[0] != 0x8a {
		return nil, fmt.Errorf("%w: array head 0x%02x, want 9 or 10 elements", ErrMalformed, frame[0])
	}
	// FrameTag checked the one-byte array head and the tag; the tag of
	// version 0 is one byte.
	start := 2
	hops, rest, err := messages.ReadUint8(frame[start:], "hop count")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	end := len(frame) - len(rest)
	limit, _, err := messages.ReadUint8(rest, "hop limit")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch {
	case hops > limit:
		return nil, fmt.Errorf("%w: %d hops, over the hop limit %d", ErrMalformed, hops, limit)
	case hops == limit:
		return nil, fmt.Errorf("%w: %d hops, hop limit %d", ErrHopLimit, hops, limit)
	}
	var out bytes.Buffer
	out.Grow(len(frame) + 1)
	out.Write(frame[:start])
	out.Write(messages.AppendUint8(nil, hops+1))
	out.Write(frame[end:])
	if out.Len() > MaxFrameSize {
		return nil, fmt.Errorf("%w: forwarded frame of %d bytes, limit %d", ErrTooLarge, out.Len(), MaxFrameSize)
	}
	return out.Bytes(), nil
}
