package fapp

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// A SlotAnnounce is a therapist's current set of free slots, signed by the
// therapist's identity. It replaces every earlier announce of the same
// therapist with a lower sequence number. Relays cache it (Store) and
// flood it with the hop count raised (Forward), without re-signing.
//
// Wire form, a CBOR array (Core Deterministic Encoding):
//
//	[ tag: uint = TagFAPP (0x06),
//	  kind: uint = KindAnnounce (1),
//	  hops: uint .le hop_limit,        ; relays add one; not signed
//	  hop_limit: uint .le 16,          ; signed: a relay cannot extend it
//	  public_key: bstr .size 32,       ; the therapist's Ed25519 identity
//	  seal_key: bstr .size 32,         ; X25519 key reservations are sealed to
//	  seq: uint .ge 1,                 ; increases with every new set
//	  expiry: uint .le 0xFFFFFFFF,     ; unix seconds; relays drop it then
//	  plz: tstr .size 5,               ; the practice's PLZ, five digits
//	  approbation: [ salt: bstr .size 16, hash: bstr .size 16 ],
//	  slots: [ * slot ] .le 32,        ; ids strictly increasing
//	  signature: bstr .size 64 ]       ; Ed25519 over SigningBytes
//
//	slot = [ id: uint .le 0xFFFFFFFF,  ; unique within the therapist, kept across sets
//	         start: uint,              ; unix seconds
//	         minutes: uint 1..480,
//	         type: uint,               ; SlotType
//	         fachrichtung: uint,       ; Fachrichtung (KJP is bit 3)
//	         modalitaet: uint,         ; Modalitaet bits, not empty
//	         kostentraeger: uint ]     ; Kostentraeger bits, not empty
//
// The therapist's address is AddressOf(public_key); it is not sent.
type SlotAnnounce struct {
	_           struct{} `cbor:",toarray"`
	Tag         messages.Tag
	Kind        Kind
	Hops        uint8
	HopLimit    uint8
	PublicKey   []byte
	SealKey     []byte
	Seq         uint64
	Expiry      uint32
	PLZ         PLZ
	Approbation Approbation
	Slots       []Slot
	Signature   []byte
}

// Slot is one free appointment in a SlotAnnounce.
type Slot struct {
	_             struct{} `cbor:",toarray"`
	ID            uint32
	Start         uint32 // unix seconds
	Minutes       uint16
	Type          SlotType
	Fachrichtung  Fachrichtung
	Modalitaet    Modalitaet
	Kostentraeger Kostentraeger
}

// SlotAnnounce limits. MaxSlotAnnounceSize is checked before decoding; the
// largest valid announce (32 slots, every number at its widest) is 772
// bytes.
const (
	MaxSlotsPerAnnounce = 32
	MaxSlotMinutes      = 480
	MaxSlotAnnounceSize = 800
	// ApprobationSaltSize and ApprobationHashSize are the two halves of the
	// Approbation binding.
	ApprobationSaltSize = 16
	ApprobationHashSize = 16
)

// AnnounceDomain prefixes the bytes a SlotAnnounce signature covers, so it
// can never be taken for a signature on anything else (a node announce, an
// envelope).
const AnnounceDomain = "qpc/fapp/announce/v0\x00"

// StartTime is the slot's start time.
func (s Slot) StartTime() time.Time { return time.Unix(int64(s.Start), 0) }

// End is when the slot ends.
func (s Slot) End() time.Time {
	return s.StartTime().Add(time.Duration(s.Minutes) * time.Minute)
}

func (s Slot) validate() error {
	switch {
	case s.Start == 0:
		return fmt.Errorf("%w: slot %d has no start time", messages.ErrMalformed, s.ID)
	case s.Minutes == 0 || s.Minutes > MaxSlotMinutes:
		return fmt.Errorf("%w: slot %d lasts %d minutes, want 1 to %d", messages.ErrMalformed, s.ID, s.Minutes, MaxSlotMinutes)
	case !s.Type.Valid():
		return fmt.Errorf("%w: slot %d type %d", messages.ErrMalformed, s.ID, uint8(s.Type))
	case !s.Fachrichtung.Valid():
		return fmt.Errorf("%w: slot %d fachrichtung %d", messages.ErrMalformed, s.ID, uint8(s.Fachrichtung))
	case s.Modalitaet == 0 || !s.Modalitaet.Valid():
		return fmt.Errorf("%w: slot %d modalitaet 0x%x, want a non-empty set of %s", messages.ErrMalformed, s.ID, uint8(s.Modalitaet), strings.Join(modalitaetNames, ", "))
	case s.Kostentraeger == 0 || !s.Kostentraeger.Valid():
		return fmt.Errorf("%w: slot %d kostentraeger 0x%x, want a non-empty set of %s", messages.ErrMalformed, s.ID, uint8(s.Kostentraeger), strings.Join(kostentraegerNames, ", "))
	}
	return nil
}

// Approbation binds an announce to the therapist's licence (Approbation)
// without revealing it: Hash = Argon2id(ApprobationDomain ‖ licence id,
// Salt), 16 bytes, with a random 16-byte Salt per therapist. A relay
// checks that the binding is present and well-formed (and refuses an
// announce without it, ErrUnbound); whoever knows the licence id (the
// therapist, a chamber that keeps the register) can check that it matches
// (Matches). The salt stops one table from serving every therapist, and
// Argon2id (memory-hard) makes guessing a licence id from the hash
// expensive; it cannot make a low-entropy id secret against a determined
// guesser, which docs/fapp.md says.
type Approbation struct {
	_    struct{} `cbor:",toarray"`
	Salt []byte
	Hash []byte
}

// ApprobationDomain prefixes the licence id in the Approbation hash.
const ApprobationDomain = "qpc/fapp/approbation/v0\x00"

// Argon2id parameters of the Approbation hash (OWASP's minimum: 19 MiB, 2
// passes, 1 lane). Part of the protocol: changing them changes every hash.
const (
	approbationTime    = 2
	approbationMemory  = 19 * 1024 // KiB
	approbationThreads = 1
)

// NewApprobation draws a fresh salt from rnd and hashes the licence id. A
// therapist does this once and keeps the result (the salt is its own; a
// new salt makes its announces unlinkable to its old ones only if the
// identity changes too).
func NewApprobation(licence string, rnd io.Reader) (Approbation, error) {
	salt := make([]byte, ApprobationSaltSize)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return Approbation{}, fmt.Errorf("fapp: approbation salt: %w", err)
	}
	return ApprobationWithSalt(licence, salt)
}

// ApprobationWithSalt hashes the licence id with a given salt.
func ApprobationWithSalt(licence string, salt []byte) (Approbation, error) {
	licence = strings.TrimSpace(licence)
	if licence == "" {
		return Approbation{}, fmt.Errorf("%w: empty Approbation (licence) id", ErrBadValue)
	}
	if len(salt) != ApprobationSaltSize {
		return Approbation{}, fmt.Errorf("%w: Approbation salt of %d bytes, want %d", ErrBadValue, len(salt), ApprobationSaltSize)
	}
	h := argon2.IDKey([]byte(ApprobationDomain+licence), salt, approbationTime, approbationMemory, approbationThreads, ApprobationHashSize)
	return Approbation{Salt: append([]byte(nil), salt...), Hash: h}, nil
}

// Matches reports whether licence is the id the binding was made from.
func (a Approbation) Matches(licence string) bool {
	if a.Check() != nil {
		return false
	}
	b, err := ApprobationWithSalt(licence, a.Salt)
	return err == nil && subtle.ConstantTimeCompare(a.Hash, b.Hash) == 1
}

// Check is what a relay can verify: salt and hash present, of the right
// sizes, and neither all zeros. Anything else is ErrUnbound.
func (a Approbation) Check() error {
	if len(a.Salt) != ApprobationSaltSize || len(a.Hash) != ApprobationHashSize {
		return fmt.Errorf("%w: salt of %d and hash of %d bytes, want %d and %d", ErrUnbound, len(a.Salt), len(a.Hash), ApprobationSaltSize, ApprobationHashSize)
	}
	zero := make([]byte, ApprobationHashSize)
	if bytes.Equal(a.Salt, zero[:ApprobationSaltSize]) || bytes.Equal(a.Hash, zero) {
		return fmt.Errorf("%w: all-zero salt or hash", ErrUnbound)
	}
	return nil
}

// NewSlotAnnounce fills in an unsigned announce with hop count 0. Slots are
// sorted by id; Sign it before EncodeSlotAnnounce.
func NewSlotAnnounce(pub ed25519.PublicKey, sealKey []byte, seq uint64, expires time.Time, plz PLZ, appr Approbation, slots []Slot) SlotAnnounce {
	var exp uint32
	switch s := expires.Unix(); {
	case s > math.MaxUint32:
		exp = math.MaxUint32
	case s > 0:
		exp = uint32(s)
	}
	sorted := append([]Slot(nil), slots...)
	sortSlotsByID(sorted)
	return SlotAnnounce{
		Tag: TagFAPP, Kind: KindAnnounce, HopLimit: DefaultAnnounceHops,
		PublicKey: pub, SealKey: sealKey, Seq: seq, Expiry: exp, PLZ: plz, Approbation: appr, Slots: sorted,
	}
}

func sortSlotsByID(s []Slot) {
	for i := 1; i < len(s); i++ { // insertion sort: at most 32 slots
		for j := i; j > 0 && s[j].ID < s[j-1].ID; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Therapist is the announcing therapist's address.
func (a *SlotAnnounce) Therapist() crypto.Address {
	return crypto.Address(messages.AddressOf(a.PublicKey))
}

// ExpiresAt is the instant from which the announce is expired.
func (a *SlotAnnounce) ExpiresAt() time.Time { return time.Unix(int64(a.Expiry), 0) }

// Slot returns the slot with the given id.
func (a *SlotAnnounce) Slot(id uint32) (Slot, bool) {
	for _, s := range a.Slots {
		if s.ID == id {
			return s, true
		}
	}
	return Slot{}, false
}

type announceTBS struct {
	_           struct{} `cbor:",toarray"`
	Tag         messages.Tag
	Kind        Kind
	HopLimit    uint8
	PublicKey   []byte
	SealKey     []byte
	Seq         uint64
	Expiry      uint32
	PLZ         PLZ
	Approbation Approbation
	Slots       []Slot
}

// SigningBytes is AnnounceDomain followed by the deterministic CBOR array
// [tag, kind, hop_limit, public_key, seal_key, seq, expiry, plz,
// approbation, slots]: every field but the hop count and the signature.
func (a *SlotAnnounce) SigningBytes() ([]byte, error) {
	body, err := messages.Marshal(announceTBS{
		Tag: a.Tag, Kind: a.Kind, HopLimit: a.HopLimit, PublicKey: a.PublicKey, SealKey: a.SealKey,
		Seq: a.Seq, Expiry: a.Expiry, PLZ: a.PLZ, Approbation: a.Approbation, Slots: a.Slots,
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(AnnounceDomain), body...), nil
}

// Sign sets the signature with sign, which signs with the private key of
// a.PublicKey ((*crypto.Identity).Sign).
func (a *SlotAnnounce) Sign(sign func([]byte) []byte) error {
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

// Verify checks the signature against the announce's own public key
// (messages.ErrBadSignature).
func (a *SlotAnnounce) Verify() error {
	if len(a.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: FAPP announce public key has %d bytes, want %d", messages.ErrMalformed, len(a.PublicKey), ed25519.PublicKeySize)
	}
	if len(a.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: FAPP announce signature has %d bytes, want %d", messages.ErrBadSignature, len(a.Signature), ed25519.SignatureSize)
	}
	tbs, err := a.SigningBytes()
	if err != nil {
		return fmt.Errorf("%w: %w", messages.ErrMalformed, err)
	}
	if !ed25519.Verify(a.PublicKey, tbs, a.Signature) {
		return fmt.Errorf("%w: FAPP announce signature does not verify", messages.ErrBadSignature)
	}
	return nil
}

// validate checks everything but the signature.
func (a *SlotAnnounce) validate() error {
	if err := checkHead(a.Tag, a.Kind, KindAnnounce, a.Hops, a.HopLimit); err != nil {
		return err
	}
	if len(a.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: FAPP announce public key has %d bytes, want %d", messages.ErrMalformed, len(a.PublicKey), ed25519.PublicKeySize)
	}
	if err := crypto.ValidateSealingPublic(a.SealKey); err != nil {
		return fmt.Errorf("%w: FAPP announce sealing key: %w", messages.ErrMalformed, err)
	}
	if a.Seq == 0 {
		return fmt.Errorf("%w: FAPP announce sequence 0", messages.ErrMalformed)
	}
	if a.Expiry == 0 {
		return fmt.Errorf("%w: FAPP announce has no expiry", messages.ErrMalformed)
	}
	if !a.PLZ.Valid() {
		return fmt.Errorf("%w: FAPP announce PLZ %q, want five digits", messages.ErrMalformed, a.PLZ)
	}
	if err := a.Approbation.Check(); err != nil {
		return err
	}
	if len(a.Slots) > MaxSlotsPerAnnounce {
		return fmt.Errorf("%w: FAPP announce with %d slots, limit %d", messages.ErrTooLarge, len(a.Slots), MaxSlotsPerAnnounce)
	}
	for i, s := range a.Slots {
		if err := s.validate(); err != nil {
			return err
		}
		if i > 0 && s.ID <= a.Slots[i-1].ID {
			return fmt.Errorf("%w: FAPP announce slot ids not strictly increasing (%d after %d)", messages.ErrMalformed, s.ID, a.Slots[i-1].ID)
		}
	}
	return nil
}

// EncodeSlotAnnounce encodes a signed announce; it refuses an unsigned one
// (messages.ErrBadSignature) and invalid fields. It does not verify the
// signature.
func EncodeSlotAnnounce(a SlotAnnounce) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	if len(a.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: FAPP announce is unsigned", messages.ErrBadSignature)
	}
	return encodeFrame(a, KindAnnounce, MaxSlotAnnounceSize)
}

// DecodeSlotAnnounce decodes and verifies an announce from the network.
// In order it refuses: more than MaxSlotAnnounceSize bytes
// (messages.ErrTooLarge, before any decoding), another frame type or kind
// (messages.ErrUnknownType) or version (messages.ErrUnsupportedVersion),
// anything but the canonical encoding of a valid announce
// (messages.ErrMalformed), a missing or malformed Approbation binding
// (ErrUnbound), and a bad signature (messages.ErrBadSignature). It never
// panics. Sequence, expiry and TTL need state and a clock: Store checks
// them.
func DecodeSlotAnnounce(data []byte) (SlotAnnounce, error) {
	var a SlotAnnounce
	if err := decodeFrame(data, MaxSlotAnnounceSize, KindAnnounce, &a); err != nil {
		return SlotAnnounce{}, err
	}
	if err := a.validate(); err != nil {
		return SlotAnnounce{}, err
	}
	if err := a.Verify(); err != nil {
		return SlotAnnounce{}, err
	}
	return a, nil
}

// SlotID names one slot in the mesh: the therapist's address and the
// slot's id within the therapist's sets. It stays the same across the
// therapist's announces, so a reservation made from an older set still
// names the slot. Its text form is "<32 hex digits>-<id>".
type SlotID struct {
	Therapist crypto.Address
	Slot      uint32
}

func (s SlotID) String() string {
	return s.Therapist.String() + "-" + strconv.FormatUint(uint64(s.Slot), 10)
}

// ParseSlotID parses the text form of a SlotID.
func ParseSlotID(s string) (SlotID, error) {
	addr, num, ok := strings.Cut(s, "-")
	bad := fmt.Errorf("%w: slot %q, want <32 hex digits>-<number> as search lists it", ErrBadValue, s)
	if !ok || len(addr) != 2*crypto.AddressSize {
		return SlotID{}, bad
	}
	var id SlotID
	if _, err := hex.Decode(id.Therapist[:], []byte(addr)); err != nil {
		return SlotID{}, bad
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != num {
		return SlotID{}, bad
	}
	id.Slot = uint32(n)
	return id, nil
}

// MarshalText is String.
func (s SlotID) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText is ParseSlotID.
func (s *SlotID) UnmarshalText(b []byte) error {
	v, err := ParseSlotID(string(b))
	if err == nil {
		*s = v
	}
	return err
}
