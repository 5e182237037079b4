package messages

import (
	"crypto/sha256"
	"fmt"
	"math"
	"time"
)

// A Compact is the compact sealed envelope: a 1:1 sealed message for
// constrained links (LoRa), authenticated to its destination by HPKE auth
// mode (crypto.SealingKey.SealAuth) instead of an Ed25519 signature. It is
// 67 bytes shorter than the signed Envelope for the same text: 126 bytes
// for a sealed 32-byte text instead of 193. The sender picks it when the
// first hop of the route is a constrained link; relays forward it as it is.
//
// Wire form, a CBOR array (Core Deterministic Encoding):
//
//	[ tag: uint = TagCompact (0x07),
//	  hops: uint .le hop_limit,            ; relays add one; not authenticated
//	  hop_limit: uint .le 255,
//	  source: bstr .size 16,               ; the sender's address
//	  destination: bstr .size 16,          ; never BroadcastAddress
//	  expiry: uint .le 0xFFFFFFFF,         ; unix seconds
//	  seq: uint .ge 1,                     ; per (source, destination)
//	  sealed: bstr ]                       ; enc (32) || ciphertext || tag (16)
//
// There is no payload type (it is always a sealed text) and no signature.
// Everything but the hop count is bound into the HPKE ciphertext as its
// associated data (AAD): a relay or anyone else that changes the source,
// destination, hop limit, expiry or seq makes it fail to open. But only
// the destination can check that, so relays cannot tell a forged compact
// envelope from a real one; docs/wire-format.md says how they are
// protected instead.
//
// The destination finds the sender's sealing key by Source (from its
// signed announce) and opens the payload with it; what opens was sealed by
// the holder of that key, with this header. It then handles it as a
// verified sealed Envelope (AsEnvelope): replay window on Seq, delivery,
// the usual signed receipt naming ID.
type Compact struct {
	_           struct{} `cbor:",toarray"`
	Tag         Tag
	Hops        uint8
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	Expiry      uint32
	Seq         uint64
	Sealed      []byte
}

// FrameCompact is the frame type of the compact sealed envelope.
const FrameCompact FrameType = 0x7

// TagCompact is version 0 of FrameCompact: one byte on the wire.
const TagCompact Tag = Tag(FrameCompact) // MakeTag(FrameCompact, 0)

// CompactDomain prefixes the AAD and the id preimage of a compact
// envelope, so neither can be taken for anything else's.
const CompactDomain = "qpc/compact/v0\x00"

// Compact limits. MaxCompactSize is checked before decoding; the sealed
// payload is at least CompactSealOverhead bytes (an empty text) and at
// most MaxPayloadSize, as an envelope's.
const (
	MaxCompactSize = MaxEnvelopeSize
	// CompactSealOverhead is what HPKE adds to the text: the 32-byte
	// encapsulated ephemeral key and the 16-byte tag (crypto.SealOverhead).
	CompactSealOverhead = sealOverhead
)

// NewCompact fills in the header of a compact envelope with hop count 0;
// seal the text with AAD() as associated data and set Sealed before
// EncodeCompact. The expiry is clamped to 0..2^32-1 as NewEnvelope's.
func NewCompact(src, dst [16]byte, hopLimit uint8, expires time.Time, seq uint64) Compact {
	var exp uint32
	switch s := expires.Unix(); {
	case s > math.MaxUint32:
		exp = math.MaxUint32
	case s > 0:
		exp = uint32(s)
	}
	return Compact{Tag: TagCompact, HopLimit: hopLimit, Source: src, Destination: dst, Expiry: exp, Seq: seq}
}

// ExpiresAt is the instant from which the compact envelope is expired.
func (c Compact) ExpiresAt() time.Time { return time.Unix(int64(c.Expiry), 0) }

// compactHeader is what the AAD covers: every field but the hop count and
// the sealed payload.
type compactHeader struct {
	_           struct{} `cbor:",toarray"`
	Tag         Tag
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	Expiry      uint32
	Seq         uint64
}

// compactIDInput is what the id covers: every field but the hop count.
type compactIDInput struct {
	_           struct{} `cbor:",toarray"`
	Tag         Tag
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	Expiry      uint32
	Seq         uint64
	Sealed      []byte
}

// AAD is the associated data the payload is sealed with: CompactDomain
// followed by the CBOR array [tag, hop_limit, source, destination, expiry,
// seq]. 58 bytes for seq below 24; it is not sent.
func (c Compact) AAD() []byte {
	b, err := Marshal(compactHeader{Tag: c.Tag, HopLimit: c.HopLimit, Source: c.Source, Destination: c.Destination, Expiry: c.Expiry, Seq: c.Seq})
	if err != nil {
		// Encoding fixed-size arrays and uints cannot fail.
		panic("messages: compact AAD: " + err.Error())
	}
	return append([]byte(CompactDomain), b...)
}

// ID is the compact envelope's message id: the first 16 bytes of the
// SHA-256 of CompactDomain followed by the CBOR array [tag, hop_limit,
// source, destination, expiry, seq, sealed]. Like Envelope.ID it is the
// same at every hop (the hop count is left out) and the sender knows it
// before sending; the sealed payload starts with a fresh ephemeral key, so
// two messages never share one. Any change to the frame but the hop count
// changes the id, so a forged copy cannot take a real message's id: a
// relay may deduplicate on it although it cannot authenticate the frame.
// Receipts name it.
func (c Compact) ID() [16]byte {
	b, err := Marshal(compactIDInput{Tag: c.Tag, HopLimit: c.HopLimit, Source: c.Source, Destination: c.Destination, Expiry: c.Expiry, Seq: c.Seq, Sealed: c.Sealed})
	if err != nil {
		panic("messages: compact ID: " + err.Error())
	}
	h := sha256.New()
	h.Write([]byte(CompactDomain))
	h.Write(b)
	var id [16]byte
	copy(id[:], h.Sum(nil))
	return id
}

// AsEnvelope is the compact envelope as the Envelope fields a router
// decides on: Tag TagCompact, payload type PayloadSealed, the sealed
// payload as Payload, no signature. It is a view for routing and delivery
// only: EncodeEnvelope refuses it and its Envelope.ID is not the message's
// id (use Compact.ID).
func (c Compact) AsEnvelope() Envelope {
	return Envelope{Tag: TagCompact, Hops: c.Hops, HopLimit: c.HopLimit, Source: c.Source, Destination: c.Destination,
		Expiry: c.Expiry, Seq: c.Seq, PayloadType: PayloadSealed, Payload: c.Sealed}
}

// validate checks every field.
func (c *Compact) validate() error {
	if err := CheckTag(uint64(c.Tag), TagCompact); err != nil {
		return err
	}
	if c.Hops > c.HopLimit {
		return fmt.Errorf("%w: compact envelope has %d hops, over its hop limit %d", ErrMalformed, c.Hops, c.HopLimit)
	}
	if c.Source == BroadcastAddress {
		return fmt.Errorf("%w: compact envelope source is the broadcast address", ErrMalformed)
	}
	if c.Destination == BroadcastAddress {
		return fmt.Errorf("%w: compact envelope to the broadcast address (it is sealed to one key)", ErrMalformed)
	}
	if c.Seq == 0 {
		return fmt.Errorf("%w: compact envelope without a seq", ErrMalformed)
	}
	if len(c.Sealed) > MaxPayloadSize {
		return fmt.Errorf("%w: compact sealed payload of %d bytes, limit %d", ErrTooLarge, len(c.Sealed), MaxPayloadSize)
	}
	if len(c.Sealed) < CompactSealOverhead {
		return fmt.Errorf("%w: compact sealed payload of %d bytes, at least %d", ErrMalformed, len(c.Sealed), CompactSealOverhead)
	}
	return nil
}

// EncodeCompact encodes a compact envelope. It refuses out-of-range
// fields and a sealed payload shorter than CompactSealOverhead
// (ErrMalformed) or over MaxPayloadSize (ErrTooLarge). It cannot check the
// sealing.
func EncodeCompact(c Compact) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	out, err := Marshal(c)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxCompactSize { // cannot happen with the checks above
		return nil, fmt.Errorf("%w: compact envelope encodes to %d bytes, limit %d", ErrTooLarge, len(out), MaxCompactSize)
	}
	return out, nil
}

// DecodeCompact decodes a compact envelope received from the network. In
// order, it refuses: more than MaxCompactSize bytes (ErrTooLarge, before
// any decoding), another frame type (ErrUnknownType) or version
// (ErrUnsupportedVersion), anything but the canonical encoding of a valid
// compact envelope (ErrMalformed; a sealed payload over MaxPayloadSize is
// ErrTooLarge). It never panics. It cannot authenticate: only the
// destination can, by opening Sealed with AAD() and the source's announced
// sealing key.
func DecodeCompact(data []byte) (Compact, error) {
	var c Compact
	if err := decodeFrame(data, MaxCompactSize, "compact envelope", TagCompact, &c); err != nil {
		return Compact{}, err
	}
	if err := c.validate(); err != nil {
		return Compact{}, err
	}
	return c, nil
}

// IsCompact reports whether frame carries the compact envelope's tag (it
// reads the tag only).
func IsCompact(frame []byte) bool {
	t, err := FrameTag(frame)
	return err == nil && t == TagCompact
}
