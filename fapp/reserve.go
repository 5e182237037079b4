package fapp

import (
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// Reserve and confirm, end to end. The patient makes a fresh X25519 key
// pair for each reservation; its public half is the reply key. The
// reservation is sealed to the therapist's announced sealing key in HPKE
// auth mode with that fresh key as the sender key (crypto.SealAuth), so
// only the therapist opens it and what opens was made by the holder of the
// reply key: no relay can swap in a reply key of its own. The answer (a
// SlotConfirm or a SlotDecline) is sealed to the reply key in auth mode
// with the therapist's sealing key as the sender key, and HPKE's fresh
// ephemeral key per message: only the patient opens it, it opens only if
// the therapist sealed it, and once the patient drops the reply key (after
// the answer) and the therapist's ephemeral key is gone, nothing left on
// either side opens it again (forward secrecy). Relays see the therapist's
// address, a random reservation id, a one-time reply key and ciphertext.

// A SlotReserve asks a therapist for a slot.
//
// Wire form:
//
//	[ tag: uint = TagFAPP (0x06),
//	  kind: uint = KindReserve (4),
//	  hops: uint .le hop_limit,
//	  hop_limit: uint .le 16,
//	  therapist: bstr .size 16,       ; destination address
//	  reservation_id: bstr .size 16,  ; random; names the answer
//	  reply_key: bstr .size 32,       ; fresh X25519 per reservation
//	  sealed: bstr ]                  ; auth mode, reply key → therapist's seal key
//
// Plaintext: [ slot: uint, seq: uint, note: tstr .size (0..200) ] (the
// slot id, the sequence of the announce it was chosen from, a note to the
// therapist). AAD: ReserveDomain ‖ therapist ‖ reservation_id.
type SlotReserve struct {
	_             struct{} `cbor:",toarray"`
	Tag           messages.Tag
	Kind          Kind
	Hops          uint8
	HopLimit      uint8
	Therapist     [16]byte
	ReservationID [16]byte
	ReplyKey      [32]byte
	Sealed        []byte
}

// A SlotAnswer carries a therapist's answer to a reservation: a SlotConfirm
// or a SlotDecline, sealed, padded to the same length buckets, so that a
// relay cannot tell which.
//
// Wire form:
//
//	[ tag: uint = TagFAPP (0x06),
//	  kind: uint = KindAnswer (5),
//	  hops: uint .le hop_limit,
//	  hop_limit: uint .le 16,
//	  reservation_id: bstr .size 16,
//	  sealed: bstr ]   ; auth mode, therapist's seal key → reply key
//
// Plaintext: [ status: uint (1 confirmed, 2 declined, 3 taken), slot: uint,
// text: tstr .size (0..200), pad: bstr of zeros ] padded to a multiple of
// 32 bytes. AAD: AnswerDomain ‖ therapist ‖ reservation_id.
type SlotAnswer struct {
	_             struct{} `cbor:",toarray"`
	Tag           messages.Tag
	Kind          Kind
	Hops          uint8
	HopLimit      uint8
	ReservationID [16]byte
	Sealed        []byte
}

// SlotConfirm is the therapist's yes: the slot is the patient's. Text is
// what the patient needs next (the practice's address, a phone number).
type SlotConfirm struct {
	Slot uint32
	Text string
}

// SlotDecline is the therapist's no. Taken says the slot was already
// confirmed to someone else (answered at once, without the therapist);
// otherwise the therapist declined, Text may say why.
type SlotDecline struct {
	Slot  uint32
	Taken bool
	Text  string
}

// Limits of reservations and answers, checked before decoding.
const (
	MaxNoteSize         = 200
	MaxSlotReserveSize  = 352
	MaxSlotAnswerSize   = 352
	answerPadBlock      = 32
	reserveSealedMinLen = crypto.SealOverhead + 3 // an empty note: [slot, seq, ""]
)

// Domains of the reservation's and the answer's AAD.
const (
	ReserveDomain = "qpc/fapp/reserve/v0\x00"
	AnswerDomain  = "qpc/fapp/answer/v0\x00"
)

// Status is where a reservation stands, as `qpc fapp status` prints it.
type Status uint8

// Reservation states. Pending until the therapist answers.
const (
	Pending   Status = 0
	Confirmed Status = 1
	Declined  Status = 2
	Taken     Status = 3
)

func (s Status) String() string {
	switch s {
	case Pending:
		return "pending"
	case Confirmed:
		return "confirmed"
	case Declined:
		return "declined"
	case Taken:
		return "taken"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// MarshalText is String.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func reserveAAD(therapist, rid [16]byte) []byte {
	aad := append([]byte(ReserveDomain), therapist[:]...)
	return append(aad, rid[:]...)
}

func answerAAD(therapist, rid [16]byte) []byte {
	aad := append([]byte(AnswerDomain), therapist[:]...)
	return append(aad, rid[:]...)
}

type reserveBody struct {
	_    struct{} `cbor:",toarray"`
	Slot uint32
	Seq  uint64
	Note string
}

type answerBody struct {
	_      struct{} `cbor:",toarray"`
	Status Status
	Slot   uint32
	Text   string
	Pad    []byte
}

func checkText(what, s string) error {
	if len(s) > MaxNoteSize {
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrBadValue, what, len(s), MaxNoteSize)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrBadValue, what)
	}
	return nil
}

// Reservation is the patient's side of one reservation: what it asked for
// and the private half of the reply key that opens the answer. Persist it
// with ReplySeed (it is a secret) and drop it once answered.
type Reservation struct {
	ID               [16]byte
	Slot             SlotID
	TherapistSealKey []byte
	Status           Status
	Text             string // the therapist's text with the answer
	seed             [32]byte
	key              *crypto.SealingKey
}

// NewReservation reserves slot of the announce a (as a search returned
// it): a fresh reply key and reservation id from rnd, the request sealed
// to the therapist. It returns the patient's state and the SlotReserve
// frame to send towards the therapist.
func NewReservation(a *SlotAnnounce, slot uint32, note string, hopLimit uint8, rnd io.Reader) (*Reservation, []byte, error) {
	if _, ok := a.Slot(slot); !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownSlot, SlotID{a.Therapist(), slot})
	}
	if err := checkText("note", note); err != nil {
		return nil, nil, err
	}
	if hopLimit == 0 || hopLimit > MaxHopLimit {
		return nil, nil, fmt.Errorf("%w: reservation hop limit %d, want 1 to %d", ErrBadValue, hopLimit, MaxHopLimit)
	}
	id, err := crypto.NewIdentity(rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("fapp: reply key: %w", err)
	}
	r := &Reservation{Slot: SlotID{a.Therapist(), slot}, TherapistSealKey: append([]byte(nil), a.SealKey...)}
	copy(r.seed[:], id.PrivateKey().Seed())
	if r.key, err = crypto.SealingKeyFor(id); err != nil {
		return nil, nil, err
	}
	if _, err := io.ReadFull(rnd, r.ID[:]); err != nil {
		return nil, nil, fmt.Errorf("fapp: reservation id: %w", err)
	}
	frame, err := r.reserveFrame(a.Seq, note, hopLimit)
	if err != nil {
		return nil, nil, err
	}
	return r, frame, nil
}

// reserveFrame seals the request for r's slot to the therapist.
func (r *Reservation) reserveFrame(seq uint64, note string, hopLimit uint8) ([]byte, error) {
	pt, err := messages.Marshal(reserveBody{Slot: r.Slot.Slot, Seq: seq, Note: note})
	if err != nil {
		return nil, err
	}
	m := SlotReserve{Tag: TagFAPP, Kind: KindReserve, HopLimit: hopLimit, Therapist: r.Slot.Therapist, ReservationID: r.ID}
	copy(m.ReplyKey[:], r.key.Public())
	if m.Sealed, err = r.key.SealAuth(r.TherapistSealKey, pt, reserveAAD(m.Therapist, m.ReservationID)); err != nil {
		return nil, fmt.Errorf("fapp: seal reservation: %w", err)
	}
	return EncodeSlotReserve(m)
}

// ReplySeed is the secret the reply key is derived from, for persisting
// the reservation; RestoreReservation takes it back.
func (r *Reservation) ReplySeed() [32]byte { return r.seed }

// RestoreReservation rebuilds a persisted reservation.
func RestoreReservation(id [16]byte, slot SlotID, therapistSealKey []byte, status Status, seed [32]byte) (*Reservation, error) {
	ident, err := crypto.IdentityFromSeed(seed[:])
	if err != nil {
		return nil, err
	}
	key, err := crypto.SealingKeyFor(ident)
	if err != nil {
		return nil, err
	}
	return &Reservation{ID: id, Slot: slot, TherapistSealKey: append([]byte(nil), therapistSealKey...), Status: status, seed: seed, key: key}, nil
}

// OpenAnswer opens the therapist's answer to this reservation and moves
// the reservation to its status. An answer to another reservation, or one
// the therapist did not seal, is ErrOpen; a reservation already answered
// keeps its answer (a repeat of it is accepted, a different one
// ErrNotPending), except that a confirmed one may be cancelled (Declined).
func (r *Reservation) OpenAnswer(frame []byte) (Status, error) {
	m, err := DecodeSlotAnswer(frame)
	if err != nil {
		return r.Status, err
	}
	if m.ReservationID != r.ID {
		return r.Status, fmt.Errorf("%w: answer to another reservation", ErrOpen)
	}
	pt, err := r.key.OpenAuth(m.Sealed, answerAAD(r.Slot.Therapist, r.ID), r.TherapistSealKey)
	if err != nil {
		return r.Status, fmt.Errorf("%w: answer: %w", ErrOpen, err)
	}
	b, err := decodeAnswerBody(pt)
	if err != nil {
		return r.Status, err
	}
	if b.Slot != r.Slot.Slot {
		return r.Status, fmt.Errorf("%w: answer names slot %d, reserved %d", messages.ErrMalformed, b.Slot, r.Slot.Slot)
	}
	switch {
	case r.Status == Pending:
	case b.Status == r.Status:
		return r.Status, nil // a retransmission
	case r.Status == Confirmed && b.Status == Declined:
		// the therapist cancelled the confirmed appointment
	default:
		return r.Status, fmt.Errorf("%w: already %s, now %s", ErrNotPending, r.Status, b.Status)
	}
	r.Status, r.Text = b.Status, b.Text
	return r.Status, nil
}

func decodeReserveBody(pt []byte) (reserveBody, error) {
	var b reserveBody
	if err := messages.UnmarshalCanonical(pt, &b); err != nil {
		return reserveBody{}, err
	}
	if err := checkText("note", b.Note); err != nil {
		return reserveBody{}, fmt.Errorf("%w: %w", messages.ErrMalformed, err)
	}
	return b, nil
}

func decodeAnswerBody(pt []byte) (answerBody, error) {
	var b answerBody
	if err := messages.UnmarshalCanonical(pt, &b); err != nil {
		return answerBody{}, err
	}
	if b.Status < Confirmed || b.Status > Taken {
		return answerBody{}, fmt.Errorf("%w: answer status %d", messages.ErrMalformed, b.Status)
	}
	if err := checkText("answer text", b.Text); err != nil {
		return answerBody{}, fmt.Errorf("%w: %w", messages.ErrMalformed, err)
	}
	if len(b.Pad) >= 2*answerPadBlock || !bytes.Equal(b.Pad, make([]byte, len(b.Pad))) || len(pt)%answerPadBlock != 0 {
		return answerBody{}, fmt.Errorf("%w: answer padding", messages.ErrMalformed)
	}
	return b, nil
}

// Request is a reservation as the therapist opened it.
type Request struct {
	ID       [16]byte
	Slot     uint32
	Seq      uint64 // of the announce the patient chose from
	Note     string
	ReplyKey [32]byte
	Status   Status
}

// OpenReserve is the therapist's side of a SlotReserve: it checks that the
// reservation is for self and opens it with the therapist's sealing key.
// A reservation for another therapist is ErrOpen without any crypto work.
func OpenReserve(key *crypto.SealingKey, self crypto.Address, frame []byte) (Request, error) {
	m, err := DecodeSlotReserve(frame)
	if err != nil {
		return Request{}, err
	}
	if m.Therapist != self {
		return Request{}, fmt.Errorf("%w: reservation for another therapist", ErrOpen)
	}
	pt, err := key.OpenAuth(m.Sealed, reserveAAD(m.Therapist, m.ReservationID), m.ReplyKey[:])
	if err != nil {
		return Request{}, fmt.Errorf("%w: reservation: %w", ErrOpen, err)
	}
	b, err := decodeReserveBody(pt)
	if err != nil {
		return Request{}, err
	}
	return Request{ID: m.ReservationID, Slot: b.Slot, Seq: b.Seq, Note: b.Note, ReplyKey: m.ReplyKey}, nil
}

// SealAnswer seals the therapist's answer (status Confirmed, Declined or
// Taken, with text for the patient) to the request's reply key and
// returns the SlotAnswer frame. Plaintexts are padded to a multiple of 32
// bytes, so a confirmation and a decline with texts of similar length are
// the same size on the wire.
func SealAnswer(key *crypto.SealingKey, self crypto.Address, req Request, status Status, text string, hopLimit uint8) ([]byte, error) {
	if status < Confirmed || status > Taken {
		return nil, fmt.Errorf("%w: answer status %s", ErrBadValue, status)
	}
	if err := checkText("answer text", text); err != nil {
		return nil, err
	}
	b := answerBody{Status: status, Slot: req.Slot, Text: text}
	pt, err := messages.Marshal(b)
	if err != nil {
		return nil, err
	}
	// The pad's own length head grows by one byte from 24 bytes on; take
	// the length that lands on a block boundary.
	for n := 0; n < 2*answerPadBlock && (n == 0 || len(pt)%answerPadBlock != 0); n++ {
		b.Pad = make([]byte, n)
		if pt, err = messages.Marshal(b); err != nil {
			return nil, err
		}
	}
	if len(pt)%answerPadBlock != 0 { // cannot happen: 64 pad lengths cover every residue
		return nil, fmt.Errorf("fapp: answer padding of %d bytes", len(pt))
	}
	m := SlotAnswer{Tag: TagFAPP, Kind: KindAnswer, HopLimit: min(max(hopLimit, 1), MaxHopLimit), ReservationID: req.ID}
	if m.Sealed, err = key.SealAuth(req.ReplyKey[:], pt, answerAAD(self, req.ID)); err != nil {
		return nil, fmt.Errorf("fapp: seal answer: %w", err)
	}
	return EncodeSlotAnswer(m)
}

// Confirm and Decline as answers: SealConfirm and SealDecline are
// SealAnswer for the two message types.

// SealConfirm seals a SlotConfirm.
func SealConfirm(key *crypto.SealingKey, self crypto.Address, req Request, c SlotConfirm, hopLimit uint8) ([]byte, error) {
	req.Slot = c.Slot
	return SealAnswer(key, self, req, Confirmed, c.Text, hopLimit)
}

// SealDecline seals a SlotDecline.
func SealDecline(key *crypto.SealingKey, self crypto.Address, req Request, d SlotDecline, hopLimit uint8) ([]byte, error) {
	req.Slot = d.Slot
	st := Declined
	if d.Taken {
		st = Taken
	}
	return SealAnswer(key, self, req, st, d.Text, hopLimit)
}

func (m *SlotReserve) validate() error {
	if err := checkHead(m.Tag, m.Kind, KindReserve, m.Hops, m.HopLimit); err != nil {
		return err
	}
	if err := crypto.ValidateSealingPublic(m.ReplyKey[:]); err != nil {
		return fmt.Errorf("%w: FAPP reservation reply key: %w", messages.ErrMalformed, err)
	}
	if len(m.Sealed) < reserveSealedMinLen {
		return fmt.Errorf("%w: FAPP reservation sealed part of %d bytes, at least %d", messages.ErrMalformed, len(m.Sealed), reserveSealedMinLen)
	}
	return nil
}

// EncodeSlotReserve encodes a reservation.
func EncodeSlotReserve(m SlotReserve) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	return encodeFrame(m, KindReserve, MaxSlotReserveSize)
}

// DecodeSlotReserve decodes a reservation from the network (size limit
// first, then tag, kind, canonical encoding and fields). It does not open
// it.
func DecodeSlotReserve(data []byte) (SlotReserve, error) {
	var m SlotReserve
	if err := decodeFrame(data, MaxSlotReserveSize, KindReserve, &m); err != nil {
		return SlotReserve{}, err
	}
	if err := m.validate(); err != nil {
		return SlotReserve{}, err
	}
	return m, nil
}

func (m *SlotAnswer) validate() error {
	if err := checkHead(m.Tag, m.Kind, KindAnswer, m.Hops, m.HopLimit); err != nil {
		return err
	}
	if len(m.Sealed) < crypto.SealOverhead+answerPadBlock || (len(m.Sealed)-crypto.SealOverhead)%answerPadBlock != 0 {
		return fmt.Errorf("%w: FAPP answer sealed part of %d bytes, want %d plus a multiple of %d", messages.ErrMalformed, len(m.Sealed), crypto.SealOverhead, answerPadBlock)
	}
	return nil
}

// EncodeSlotAnswer encodes an answer.
func EncodeSlotAnswer(m SlotAnswer) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	return encodeFrame(m, KindAnswer, MaxSlotAnswerSize)
}

// DecodeSlotAnswer decodes an answer from the network. It does not open
// it.
func DecodeSlotAnswer(data []byte) (SlotAnswer, error) {
	var m SlotAnswer
	if err := decodeFrame(data, MaxSlotAnswerSize, KindAnswer, &m); err != nil {
		return SlotAnswer{}, err
	}
	if err := m.validate(); err != nil {
		return SlotAnswer{}, err
	}
	return m, nil
}
