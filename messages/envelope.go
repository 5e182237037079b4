package messages

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math"
	"time"
)

// An Envelope is one routed message: from a source node to a destination
// node (or to everyone: BroadcastAddress), over up to HopLimit relays,
// until its expiry. The payload is opaque to relays; PayloadType tells the
// destination what it is (PayloadSealed: an HPKE-sealed 1:1 message, ...).
//
// Wire form, a CBOR array (Core Deterministic Encoding):
//
//	[ tag: uint = TagEnvelope,
//	  hops: uint .le hop_limit,            ; relays add one; not signed
//	  hop_limit: uint .le 255,             ; how often it may be forwarded
//	  source: bstr .size 16,               ; AddressOf(sender's Ed25519 key)
//	  destination: bstr .size 16,          ; BroadcastAddress for everyone
//	  expiry: uint .le 0xFFFFFFFF,         ; unix seconds
//	  seq: uint,                           ; per (source, destination); 0: none
//	  payload_type: uint .ge 1 .le 255,
//	  payload: bstr .size (0..MaxPayloadSize),
//	  signature: bstr .size 64 ]           ; Ed25519 over SigningBytes
//
// There is no message id on the wire: ID derives it from the signed bytes.
//
// Seq numbers a source's envelopes to one destination, from 1, and is
// signed. The destination's replay window is a sliding bitmap over it (as
// in WireGuard and IPsec, RFC 6479): any number of messages per second are
// accepted exactly once in bounded memory, and a retransmission (the same
// signed envelope, so the same Seq and ID) is recognised. Receipts, trace
// probes and broadcasts carry 0: they need no replay protection beyond
// dedup. Version 0 of the envelope had no seq; version 1 added it (one to
// five bytes on the wire for the first 2^32 messages to a destination).
//
// The signature is the source's: a receiver verifies it with the Ed25519
// key from the source's announce (Verify), which also proves the source
// address is the signer's. The hop limit is signed, so a relay cannot give
// an envelope a longer life; only the hop count is not.
//
// Expiry is absolute, so it is signed and stays the same along the path (a
// relative time-to-live would have to change at every hop). Seconds in a
// uint32 cover dates until 2106 in 5 bytes on the wire; milliseconds would
// cost 9, and an expiry needs no more than a second's precision. Nodes'
// clocks must agree to within a small part of the envelopes' lifetimes.
type Envelope struct {
	_           struct{} `cbor:",toarray"`
	Tag         Tag
	Hops        uint8
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	Expiry      uint32
	Seq         uint64
	PayloadType PayloadType
	Payload     []byte
	Signature   []byte
}

// TagEnvelope is version 1 of FrameEnvelope (version 0 had no Seq).
const TagEnvelope Tag = Tag(1<<4 | FrameEnvelope) // MakeTag(FrameEnvelope, 1)

// Envelope limits. MaxEnvelopeSize is checked before decoding. It is
// MaxFrameSize, the limit of the strict decoder; MaxPayloadSize leaves room
// for the other fields (at most 125 bytes), so every envelope that
// EncodeEnvelope accepts also decodes. Larger content is split by the
// application before it is sealed.
const (
	MaxEnvelopeSize = MaxFrameSize
	MaxPayloadSize  = MaxEnvelopeSize - 128
	// DefaultHopLimit is the hop limit a node gives the envelopes it sends
	// unless configured otherwise (the Rust QuicProChat's default).
	DefaultHopLimit = 8
)

// EnvelopeDomain prefixes the bytes an envelope signature covers, so that
// an envelope signature can never be taken for a signature on anything
// else (an announce, a beacon).
const EnvelopeDomain = "qpc/envelope/v1\x00"

// BroadcastAddress as an envelope's destination means every node. No key
// has it as its address (that would need a 2^128 preimage search), and an
// envelope with it as the source is refused.
var BroadcastAddress = [16]byte{
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
}

// PayloadType says what an envelope's payload is. Relays forward every
// type, known or not; the destination refuses types it does not know. 0 is
// never valid. Types below 24 take one byte on the wire: keep them for the
// frequent ones.
type PayloadType uint8

// Payload types. 12–23 are free for the next frequent ones; 24–255 cost
// one byte more.
const (
	PayloadSealed     PayloadType = 1 // an HPKE-sealed (X25519, ChaCha20-Poly1305) 1:1 message
	PayloadReceipt    PayloadType = 2 // delivery receipts: 1 to MaxReceiptIDs envelope IDs, 16 bytes each
	PayloadTrace      PayloadType = 3 // a trace probe: relays on the way answer
	PayloadTraceReply PayloadType = 4 // the answer to a trace probe
	// PayloadGroup is an MLS group message (welcome, commit, application)
	// for one member, sealed to it as PayloadSealed is (keypackage.go): it
	// has a seq, is acknowledged and retransmitted as a 1:1 message, and
	// is handed to the keys actor instead of the inbox.
	PayloadGroup PayloadType = 5
	// KeyPackage messages (keypackage.go), signed and not sealed: a relay
	// holding the KeyPackage asked for answers in its owner's place.
	PayloadKeyPackageRequest     PayloadType = 6 // owner ‖ KeyPackage hash: "send me this one"
	PayloadKeyPackage            PayloadType = 7 // owner ‖ KeyPackage
	PayloadKeyPackageUnavailable PayloadType = 8 // owner ‖ KeyPackage hash: "none to give"
	// PayloadSealedPQ is a 1:1 text sealed with the post-quantum hybrid
	// (crypto/pq: X-Wing, X25519 + ML-KEM-768; 1,136 bytes of overhead):
	// otherwise a PayloadSealed message (seq, receipt, retransmission).
	PayloadSealedPQ PayloadType = 9
	// PQ key messages, signed and not sealed: a request (the owner's
	// address, 16 bytes) and the owner's signed record (crypto/pq,
	// RecordSize bytes).
	PayloadPQKeyRequest PayloadType = 10
	PayloadPQKey        PayloadType = 11
)

// Sealed reports whether payloads of type p are sealed to their
// destination with a seq: delivered exactly once through the replay
// window, acknowledged and retransmitted.
func (p PayloadType) Sealed() bool {
	return p == PayloadSealed || p == PayloadGroup || p == PayloadSealedPQ
}

// MaxReceiptIDs is how many message ids one receipt envelope may carry. A
// destination acknowledges what one batch delivered from a sender in one
// signed receipt (one signature and one verification per hop for up to
// 32 messages instead of one each); 32 ids are 512 bytes.
const MaxReceiptIDs = 32

// ReceiptIDs splits a receipt payload into its message ids; a payload that
// is empty, longer than MaxReceiptIDs ids or not a whole number of ids is
// ErrMalformed.
func ReceiptIDs(payload []byte) ([][16]byte, error) {
	if len(payload) == 0 || len(payload)%16 != 0 || len(payload) > 16*MaxReceiptIDs {
		return nil, fmt.Errorf("%w: receipt payload of %d bytes, want 16 to %d in steps of 16", ErrMalformed, len(payload), 16*MaxReceiptIDs)
	}
	ids := make([][16]byte, len(payload)/16)
	for i := range ids {
		copy(ids[i][:], payload[16*i:])
	}
	return ids, nil
}

func (p PayloadType) String() string {
	switch p {
	case PayloadSealed:
		return "sealed"
	case PayloadReceipt:
		return "receipt"
	case PayloadTrace:
		return "trace"
	case PayloadTraceReply:
		return "trace-reply"
	case PayloadGroup:
		return "group"
	case PayloadKeyPackageRequest:
		return "keypackage-request"
	case PayloadKeyPackage:
		return "keypackage"
	case PayloadKeyPackageUnavailable:
		return "keypackage-unavailable"
	case PayloadSealedPQ:
		return "sealed-pq"
	case PayloadPQKeyRequest:
		return "pq-key-request"
	case PayloadPQKey:
		return "pq-key"
	}
	return fmt.Sprintf("payload%d", uint8(p))
}

// NewEnvelope fills in an unsigned envelope with hop count 0; Sign it with
// the key of src before EncodeEnvelope. The expiry is expires in unix
// seconds, clamped to 0..2^32-1.
func NewEnvelope(src, dst [16]byte, hopLimit uint8, expires time.Time, pt PayloadType, payload []byte) Envelope {
	var exp uint32
	switch s := expires.Unix(); {
	case s > math.MaxUint32:
		exp = math.MaxUint32
	case s > 0:
		exp = uint32(s)
	}
	return Envelope{Tag: TagEnvelope, HopLimit: hopLimit, Source: src, Destination: dst, Expiry: exp, PayloadType: pt, Payload: payload}
}

// IsBroadcast reports whether the envelope is for every node.
func (e Envelope) IsBroadcast() bool { return e.Destination == BroadcastAddress }

// ExpiresAt is the instant from which the envelope is expired.
func (e Envelope) ExpiresAt() time.Time { return time.Unix(int64(e.Expiry), 0) }

// Expired reports whether the envelope is expired at now: from ExpiresAt
// on, nodes drop it instead of forwarding, storing or delivering it.
func (e Envelope) Expired(now time.Time) bool { return !now.Before(e.ExpiresAt()) }

// envelopeTBS is the envelope without its hop count and signature: what the
// signature covers.
type envelopeTBS struct {
	_           struct{} `cbor:",toarray"`
	Tag         Tag
	HopLimit    uint8
	Source      [16]byte
	Destination [16]byte
	Expiry      uint32
	Seq         uint64
	PayloadType PayloadType
	Payload     []byte
}

// SigningBytes is the canonical to-be-signed byte string: EnvelopeDomain
// followed by the deterministic CBOR encoding of the array [tag, hop_limit,
// source, destination, expiry, seq, payload_type, payload]: every field but the
// hop count and the signature.
func (e Envelope) SigningBytes() ([]byte, error) {
	body, err := Marshal(envelopeTBS{
		Tag: e.Tag, HopLimit: e.HopLimit, Source: e.Source, Destination: e.Destination,
		Expiry: e.Expiry, Seq: e.Seq, PayloadType: e.PayloadType, Payload: e.Payload,
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(EnvelopeDomain), body...), nil
}

// ID is the envelope's message id: the first 16 bytes of the SHA-256 of
// SigningBytes. Routers deduplicate on it and receipts name it.
//
// It is the same at every hop, because the hop count is the one field the
// signed bytes leave out, and it does not depend on the signature, so the
// sender knows it before signing and no one can change it without
// breaking the signature. Two envelopes have the same ID only if they carry
// the same signed content, which makes them the same message: a sealed
// payload starts with a fresh ephemeral key, and other payloads that may
// repeat (trace probes) must carry a nonce. Finding two different contents
// with one ID takes about 2^64 SHA-256 evaluations, and a node can only
// collide with envelopes it signs itself.
//
// An envelope with a forged signature has the ID of the real one: mark an
// ID as seen only after Verify succeeded. Skipping Verify for an ID already
// seen and verified is safe.
//
// ID encodes the signed fields again (about a microsecond for a small
// envelope); compute it once per envelope.
func (e Envelope) ID() [16]byte {
	tbs, err := e.SigningBytes()
	if err != nil {
		// Encoding fixed-size arrays, uints and a byte string cannot fail.
		panic("messages: envelope ID: " + err.Error())
	}
	sum := sha256.Sum256(tbs)
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}

// Sign sets the signature with sign, which signs with the private key whose
// address is e.Source (for example (*crypto.Identity).Sign).
func (e *Envelope) Sign(sign func(msg []byte) []byte) error {
	if err := e.validate(); err != nil {
		return err
	}
	tbs, err := e.SigningBytes()
	if err != nil {
		return err
	}
	e.Signature = sign(tbs)
	return nil
}

// Verify checks the signature with pub, the sender's Ed25519 key as its
// announce carried it, and that pub is the source's key: AddressOf(pub) ==
// Source. A key of the wrong length, a key of another node, an unsigned
// envelope and a wrong signature all give ErrBadSignature.
func (e Envelope) Verify(pub ed25519.PublicKey) error {
	_, err := e.VerifyID(pub)
	return err
}

// VerifyID is Verify that also returns the envelope's ID, from the same
// encoding of the signed bytes (one encoding instead of two).
func (e Envelope) VerifyID(pub ed25519.PublicKey) ([16]byte, error) {
	var id [16]byte
	if len(pub) != ed25519.PublicKeySize { // ed25519.Verify panics on other lengths
		return id, fmt.Errorf("%w: verification key has %d bytes, want %d", ErrBadSignature, len(pub), ed25519.PublicKeySize)
	}
	if AddressOf(pub) != e.Source {
		return id, fmt.Errorf("%w: verification key is not the key of source %x", ErrBadSignature, e.Source[:4])
	}
	if len(e.Signature) == 0 {
		return id, fmt.Errorf("%w: envelope is unsigned", ErrBadSignature)
	}
	if len(e.Signature) != ed25519.SignatureSize {
		return id, fmt.Errorf("%w: envelope signature has %d bytes, want %d", ErrBadSignature, len(e.Signature), ed25519.SignatureSize)
	}
	tbs, err := e.SigningBytes()
	if err != nil {
		return id, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !ed25519.Verify(pub, tbs, e.Signature) {
		return id, fmt.Errorf("%w: envelope signature does not verify", ErrBadSignature)
	}
	sum := sha256.Sum256(tbs)
	copy(id[:], sum[:16])
	return id, nil
}

// validate checks everything but the signature.
func (e *Envelope) validate() error {
	if err := CheckTag(uint64(e.Tag), TagEnvelope); err != nil {
		return err
	}
	if e.Hops > e.HopLimit {
		return fmt.Errorf("%w: envelope has %d hops, over its hop limit %d", ErrMalformed, e.Hops, e.HopLimit)
	}
	if e.Source == BroadcastAddress {
		return fmt.Errorf("%w: envelope source is the broadcast address", ErrMalformed)
	}
	if e.PayloadType == 0 {
		return fmt.Errorf("%w: envelope payload type 0", ErrMalformed)
	}
	if len(e.Payload) > MaxPayloadSize {
		return fmt.Errorf("%w: envelope payload of %d bytes, limit %d", ErrTooLarge, len(e.Payload), MaxPayloadSize)
	}
	return nil
}

// EncodeEnvelope encodes a signed envelope. It refuses an unsigned one
// (ErrBadSignature), out-of-range fields (ErrMalformed) and a payload over
// MaxPayloadSize (ErrTooLarge). It does not verify the signature.
func EncodeEnvelope(e Envelope) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	if len(e.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: envelope is unsigned", ErrBadSignature)
	}
	out, err := Marshal(e)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxEnvelopeSize { // cannot happen with the checks above; kept as the invariant
		return nil, fmt.Errorf("%w: envelope encodes to %d bytes, limit %d", ErrTooLarge, len(out), MaxEnvelopeSize)
	}
	return out, nil
}

// DecodeEnvelope decodes an envelope received from the network. In order,
// it refuses: more than MaxEnvelopeSize bytes (ErrTooLarge, before any
// decoding), another frame type (ErrUnknownType) or envelope version
// (ErrUnsupportedVersion), anything but the canonical encoding of a valid
// envelope (ErrMalformed; a payload over MaxPayloadSize is ErrTooLarge), and
// a missing signature (ErrBadSignature). It never panics.
//
// It cannot verify the signature, which needs the source's key: look the
// key up by Source (from the source's announce) and call Verify before
// acting on the envelope. Expiry is not checked either (see Expired).
func DecodeEnvelope(data []byte) (Envelope, error) {
	var e Envelope
	if err := decodeFrame(data, MaxEnvelopeSize, "envelope", TagEnvelope, &e); err != nil {
		return Envelope{}, err
	}
	if err := e.validate(); err != nil {
		return Envelope{}, err
	}
	if len(e.Signature) != ed25519.SignatureSize {
		return Envelope{}, fmt.Errorf("%w: envelope signature has %d bytes, want %d", ErrBadSignature, len(e.Signature), ed25519.SignatureSize)
	}
	return e, nil
}

// ForwardEnvelope returns a copy of an encoded envelope with its hop count
// raised by one, for a relay to send on. It rewrites one or two bytes near
// the start of the frame and leaves the signed fields, and so the ID, as
// they are; frame itself is not modified (it may be queued on other links).
// Call it only on a frame DecodeEnvelope (or DecodeCompact: a compact
// envelope is forwarded the same way, as it is) accepted: it reads just
// the tag, the hop count and the hop limit. An envelope whose hop count
// has reached its hop limit gives ErrHopLimit.
func ForwardEnvelope(frame []byte) ([]byte, error) {
	if len(frame) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope of %d bytes, limit %d", ErrTooLarge, len(frame), MaxEnvelopeSize)
	}
	want := TagEnvelope
	if IsCompact(frame) {
		want = TagCompact
	}
	h, err := readHops(frame, want)
	if err != nil {
		return nil, err
	}
	if h.hops >= h.limit {
		return nil, fmt.Errorf("%w: envelope has %d hops, hop limit %d", ErrHopLimit, h.hops, h.limit)
	}
	out := h.with(frame, h.hops+1)
	if len(out) > MaxEnvelopeSize { // a 1-byte longer hop count on a frame at the limit
		return nil, fmt.Errorf("%w: forwarded envelope of %d bytes, limit %d", ErrTooLarge, len(out), MaxEnvelopeSize)
	}
	return out, nil
}
