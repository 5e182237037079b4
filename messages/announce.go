package messages

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math"
	"time"
)

// An Announce tells the mesh that a node exists, how to seal 1:1 messages
// to it and what it offers. The announcer sends one periodically; relays
// forward it with the hop count raised by one, without re-signing.
//
// Wire form, a CBOR array (Core Deterministic Encoding):
//
//	[ tag: uint = TagAnnounce,
//	  hops: uint .le 255,                  ; relays add one; not signed
//	  public_key: bstr .size 32,           ; Ed25519 identity key
//	  seal_key: bstr .size 32,             ; X25519 key 1:1 payloads are sealed to
//	  capabilities: uint .le 0xFFFF,       ; Capabilities bits
//	  keypackage_hash: bstr .size (0 / 16 / 32),
//	  time: uint,                          ; unix milliseconds when signed
//	  signature: bstr .size 64 ]           ; Ed25519 over SigningBytes
//
// The node's address is not carried: it is AddressOf(public_key), so it can
// never disagree with the key. The hop count comes right after the tag, at
// a fixed place in the frame, so ForwardAnnounce can raise it without
// decoding the rest.
//
// Time must increase with every announce of one identity: a receiver keeps
// the newest time it accepted per address and refuses an announce whose
// time is not larger, so a recorded announce cannot be replayed to poison
// routes. Milliseconds (not seconds) let a node that restarts or changes its
// capabilities announce again at once; the time also tells a receiver how
// old the announce is. Both checks need state and a clock, so they belong to
// the announcer, not to DecodeAnnounce.
//
// KeyPackageHash names the node's current MLS KeyPackage, so a peer can tell
// whether the one it cached is stale before it sends a KeyPackage request.
// It is empty (no KeyPackage published), 16 bytes (what qpc sends: the first
// half of the MLS KeyPackageRef, which keeps the announce within Reticulum's
// 167 bytes) or 32 bytes (a whole KeyPackageRef). Sixteen bytes are enough:
// a KeyPackage fetched later must match a hash its owner signed, and making
// another one that matches is a 2^128 second-preimage search; only the owner
// could profit from a 2^64 collision, and the owner signs announces anyway.
type Announce struct {
	_              struct{} `cbor:",toarray"`
	Tag            Tag
	Hops           uint8
	PublicKey      []byte
	SealKey        []byte
	Capabilities   Capabilities
	KeyPackageHash []byte
	UnixMilli      uint64
	Signature      []byte
}

// TagAnnounce is version 0 of FrameAnnounce.
const TagAnnounce Tag = Tag(FrameAnnounce) // MakeTag(FrameAnnounce, 0)

// Announce limits. MaxAnnounceSize is checked before decoding; the largest
// valid announce (255 hops, capabilities above 0xFF, a 32-byte KeyPackage
// hash) is 184 bytes.
const (
	MaxAnnounceSize = 192
	// SealKeySize is the length of an X25519 public key.
	SealKeySize = 32
	// KeyPackageHashSize is the KeyPackage hash length qpc sends. Decoders
	// also accept 0 and MaxKeyPackageHashSize.
	KeyPackageHashSize    = 16
	MaxKeyPackageHashSize = 32
)

// AnnounceDomain prefixes the bytes an announce signature covers, so that
// an announce signature can never be taken for a signature on anything else.
const AnnounceDomain = "qpc/announce/v0\x00"

// AddressOf is the mesh address of an Ed25519 public key: the first 16
// bytes of its SHA-256. It is the same function as crypto.AddressOf, here
// because messages imports nothing else of qpc.
func AddressOf(pub ed25519.PublicKey) [16]byte {
	sum := sha256.Sum256(pub)
	var a [16]byte
	copy(a[:], sum[:16])
	return a
}

// NewAnnounce fills in an unsigned announce with hop count 0; Sign it before
// EncodeAnnounce. The time is at's unix milliseconds (0 before 1970).
// kpHash may be nil.
func NewAnnounce(pub ed25519.PublicKey, sealKey []byte, caps Capabilities, kpHash []byte, at time.Time) Announce {
	var ms uint64
	if m := at.UnixMilli(); m > 0 {
		ms = uint64(m)
	}
	return Announce{Tag: TagAnnounce, PublicKey: pub, SealKey: sealKey, Capabilities: caps, KeyPackageHash: kpHash, UnixMilli: ms}
}

// Address is the announcing node's address, AddressOf(PublicKey).
func (a Announce) Address() [16]byte { return AddressOf(a.PublicKey) }

// SentAt is the announce's timestamp.
func (a Announce) SentAt() time.Time {
	if a.UnixMilli > math.MaxInt64 {
		return time.UnixMilli(math.MaxInt64)
	}
	return time.UnixMilli(int64(a.UnixMilli))
}

// announceTBS is the announce without its hop count and signature: what the
// signature covers.
type announceTBS struct {
	_              struct{} `cbor:",toarray"`
	Tag            Tag
	PublicKey      []byte
	SealKey        []byte
	Capabilities   Capabilities
	KeyPackageHash []byte
	UnixMilli      uint64
}

// SigningBytes is the canonical to-be-signed byte string: AnnounceDomain
// followed by the deterministic CBOR encoding of the array [tag,
// public_key, seal_key, capabilities, keypackage_hash, time]: every field
// but the hop count and the signature.
func (a Announce) SigningBytes() ([]byte, error) {
	body, err := Marshal(announceTBS{
		Tag: a.Tag, PublicKey: a.PublicKey, SealKey: a.SealKey,
		Capabilities: a.Capabilities, KeyPackageHash: a.KeyPackageHash, UnixMilli: a.UnixMilli,
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(AnnounceDomain), body...), nil
}

// Sign sets the signature with sign, which signs with the private key of
// a.PublicKey (for example (*crypto.Identity).Sign).
func (a *Announce) Sign(sign func(msg []byte) []byte) error {
	if err := a.validate(); err != nil {
		return err
	}
	tbs, err := a.SigningBytes()
	if err != nil {
		return err
	}
	a.Signature = sign(tbs)
	return nil
}

// Verify checks the signature against the announce's own public key. An
// unsigned announce and a wrong signature both give ErrBadSignature; a
// public key of the wrong length gives ErrMalformed.
func (a Announce) Verify() error {
	if len(a.PublicKey) != ed25519.PublicKeySize { // ed25519.Verify panics on other lengths
		return fmt.Errorf("%w: announce public key has %d bytes, want %d", ErrMalformed, len(a.PublicKey), ed25519.PublicKeySize)
	}
	if len(a.Signature) == 0 {
		return fmt.Errorf("%w: announce is unsigned", ErrBadSignature)
	}
	if len(a.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: announce signature has %d bytes, want %d", ErrBadSignature, len(a.Signature), ed25519.SignatureSize)
	}
	tbs, err := a.SigningBytes()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !ed25519.Verify(a.PublicKey, tbs, a.Signature) {
		return fmt.Errorf("%w: announce signature does not verify", ErrBadSignature)
	}
	return nil
}

// validate checks everything but the signature.
func (a *Announce) validate() error {
	if err := CheckTag(uint64(a.Tag), TagAnnounce); err != nil {
		return err
	}
	if len(a.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: announce public key has %d bytes, want %d", ErrMalformed, len(a.PublicKey), ed25519.PublicKeySize)
	}
	if len(a.SealKey) != SealKeySize {
		return fmt.Errorf("%w: announce sealing key has %d bytes, want %d", ErrMalformed, len(a.SealKey), SealKeySize)
	}
	if n := len(a.KeyPackageHash); n != 0 && n != KeyPackageHashSize && n != MaxKeyPackageHashSize {
		return fmt.Errorf("%w: announce KeyPackage hash has %d bytes, want 0, %d or %d", ErrMalformed, n, KeyPackageHashSize, MaxKeyPackageHashSize)
	}
	return nil
}

// EncodeAnnounce encodes a signed announce. It refuses an unsigned one
// (ErrBadSignature) and out-of-range fields (ErrMalformed). It does not
// verify the signature.
func EncodeAnnounce(a Announce) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	if len(a.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: announce is unsigned", ErrBadSignature)
	}
	out, err := Marshal(a)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxAnnounceSize { // cannot happen with the checks above; kept as the invariant
		return nil, fmt.Errorf("%w: announce encodes to %d bytes, limit %d", ErrTooLarge, len(out), MaxAnnounceSize)
	}
	return out, nil
}

// DecodeAnnounce decodes and verifies an announce received from the
// network. In order, it refuses: more than MaxAnnounceSize bytes
// (ErrTooLarge, before any decoding), another frame type (ErrUnknownType)
// or announce version (ErrUnsupportedVersion), anything but the canonical
// encoding of a valid announce (ErrMalformed), and a missing or wrong
// signature (ErrBadSignature). It never panics.
//
// It does not check that the time increased since the last announce of the
// same address, nor how old the announce is: that is the announcer's job.
func DecodeAnnounce(data []byte) (Announce, error) {
	var a Announce
	if err := decodeFrame(data, MaxAnnounceSize, "announce", TagAnnounce, &a); err != nil {
		return Announce{}, err
	}
	if err := a.validate(); err != nil {
		return Announce{}, err
	}
	if err := a.Verify(); err != nil {
		return Announce{}, err
	}
	return a, nil
}

// ForwardAnnounce returns a copy of an encoded announce with its hop count
// raised by one, for a relay to send on. It rewrites one or two bytes near
// the start of the frame and leaves the signed fields as they are, so the
// result still verifies; frame itself is not modified (it may be queued on
// other links). Call it only on a frame DecodeAnnounce accepted: it reads
// just the tag and the hop count. At 255 hops it returns ErrHopLimit.
func ForwardAnnounce(frame []byte) ([]byte, error) {
	if len(frame) > MaxAnnounceSize {
		return nil, fmt.Errorf("%w: announce of %d bytes, limit %d", ErrTooLarge, len(frame), MaxAnnounceSize)
	}
	h, err := readHops(frame, TagAnnounce)
	if err != nil {
		return nil, err
	}
	if h.hops == math.MaxUint8 {
		return nil, fmt.Errorf("%w: announce has %d hops", ErrHopLimit, h.hops)
	}
	out := h.with(frame, h.hops+1)
	if len(out) > MaxAnnounceSize {
		return nil, fmt.Errorf("%w: forwarded announce of %d bytes, limit %d", ErrTooLarge, len(out), MaxAnnounceSize)
	}
	return out, nil
}
