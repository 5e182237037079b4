package fapp

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// Filter is what a patient searches for. Zero fields match everything:
// Fachrichtung 0 any procedure (otherwise the slot's Fachrichtung must be
// exactly this one, KJP flag included), Modalitaet and Kostentraeger empty
// any (otherwise the slot must offer at least one of the set), PLZPrefix
// "" any PLZ (otherwise the practice's PLZ starts with it), Type 0 any, a
// zero From no lower and a zero To no upper bound. A slot matches when it
// starts within [From, To). Max bounds the results (0:
// DefaultQueryResults; at most MaxQueryResults).
type Filter struct {
	Fachrichtung  Fachrichtung
	Modalitaet    Modalitaet
	Kostentraeger Kostentraeger
	PLZPrefix     string
	Type          SlotType
	From, To      time.Time
	Max           int
}

// Query result limits.
const (
	DefaultQueryResults = 20
	MaxQueryResults     = 64
)

// Validate checks the filter's values (ErrBadValue names the field).
func (f Filter) Validate() error {
	switch {
	case f.Fachrichtung != 0 && !f.Fachrichtung.Valid():
		return fmt.Errorf("%w: fachrichtung %d", ErrBadValue, uint8(f.Fachrichtung))
	case !f.Modalitaet.Valid():
		return fmt.Errorf("%w: modalitaet 0x%x", ErrBadValue, uint8(f.Modalitaet))
	case !f.Kostentraeger.Valid():
		return fmt.Errorf("%w: kostentraeger 0x%x", ErrBadValue, uint8(f.Kostentraeger))
	case f.Type != 0 && !f.Type.Valid():
		return fmt.Errorf("%w: type %d", ErrBadValue, uint8(f.Type))
	case f.Max < 0 || f.Max > MaxQueryResults:
		return fmt.Errorf("%w: max %d, want 0 to %d", ErrBadValue, f.Max, MaxQueryResults)
	case !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From):
		return fmt.Errorf("%w: time window [%s, %s) is empty", ErrBadValue, f.From.Format(time.RFC3339), f.To.Format(time.RFC3339))
	}
	_, err := ParsePLZPrefix(f.PLZPrefix)
	return err
}

// Limit is the number of results the filter asks for.
func (f Filter) Limit() int {
	if f.Max <= 0 {
		return DefaultQueryResults
	}
	return min(f.Max, MaxQueryResults)
}

// MatchesPLZ reports whether a practice at plz is within the filter's
// PLZ prefix: a store checks it once per announce, before its slots.
func (f Filter) MatchesPLZ(plz PLZ) bool {
	return len(f.PLZPrefix) <= len(plz) && string(plz[:len(f.PLZPrefix)]) == f.PLZPrefix
}

// Matches reports whether slot s of a practice at plz matches the filter.
func (f Filter) Matches(plz PLZ, s Slot) bool {
	if f.Fachrichtung != 0 && s.Fachrichtung != f.Fachrichtung {
		return false
	}
	if f.Modalitaet != 0 && s.Modalitaet&f.Modalitaet == 0 {
		return false
	}
	if f.Kostentraeger != 0 && s.Kostentraeger&f.Kostentraeger == 0 {
		return false
	}
	if f.Type != 0 && s.Type != f.Type {
		return false
	}
	if !f.MatchesPLZ(plz) {
		return false
	}
	start := int64(s.Start)
	if !f.From.IsZero() && start < f.From.Unix() {
		return false
	}
	if !f.To.IsZero() && start >= f.To.Unix() {
		return false
	}
	return true
}

// A SlotQuery is a patient's search as it travels the mesh. It carries no
// stable patient identifier: QueryID is 16 random bytes and ReplyKey a
// fresh X25519 public key, both new for every query (NewQuery), and
// nothing else in it says who asked. Relays with the relay capability
// answer from their Store and forward it while its hop count is below its
// hop limit; answers (SlotResponse) go back along the path it came, named
// by QueryID, sealed to ReplyKey.
//
// Wire form, a CBOR array:
//
//	[ tag: uint = TagFAPP (0x06),
//	  kind: uint = KindQuery (2),
//	  hops: uint .le hop_limit,
//	  hop_limit: uint .le 16,
//	  query_id: bstr .size 16,        ; random, fresh per query
//	  reply_key: bstr .size 32,       ; X25519, fresh per query
//	  fachrichtung: uint,             ; 0: any
//	  modalitaet: uint,               ; bits; 0: any
//	  kostentraeger: uint,            ; bits; 0: any
//	  plz_prefix: tstr .size (0..5),  ; digits; "": any
//	  type: uint,                     ; SlotType; 0: any
//	  from: uint .le 0xFFFFFFFF,      ; unix seconds; 0: no lower bound
//	  to: uint .le 0xFFFFFFFF,        ; unix seconds, exclusive; 0: none
//	  max: uint 1..64 ]
//
// Nothing in it is signed: a query is anonymous, and a relay may lower its
// hop limit (never its own policy's bound) or answer less than max.
type SlotQuery struct {
	_             struct{} `cbor:",toarray"`
	Tag           messages.Tag
	Kind          Kind
	Hops          uint8
	HopLimit      uint8
	QueryID       [16]byte
	ReplyKey      [32]byte
	Fachrichtung  Fachrichtung
	Modalitaet    Modalitaet
	Kostentraeger Kostentraeger
	PLZPrefix     string
	Type          SlotType
	From          uint32
	To            uint32
	Max           uint8
}

// MaxSlotQuerySize is checked before decoding; the largest valid query is
// 78 bytes.
const MaxSlotQuerySize = 96

// PendingQuery is the patient's side of a query: the frame's fields and
// the private half of its reply key, which opens the responses. Keep it
// only until the search is over; it is what links the responses to the
// patient.
type PendingQuery struct {
	Query SlotQuery
	key   *crypto.SealingKey
}

// NewQuery makes a query for f with a fresh random query id and a fresh
// X25519 reply key, both from rnd (crypto/rand in production; only tests
// pass anything else). Two queries share no bytes but the filter's.
func NewQuery(f Filter, hopLimit uint8, rnd io.Reader) (*PendingQuery, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if hopLimit == 0 || hopLimit > MaxHopLimit {
		return nil, fmt.Errorf("%w: query hop limit %d, want 1 to %d", ErrBadValue, hopLimit, MaxHopLimit)
	}
	key, err := freshSealingKey(rnd)
	if err != nil {
		return nil, err
	}
	q := SlotQuery{
		Tag: TagFAPP, Kind: KindQuery, HopLimit: hopLimit,
		Fachrichtung: f.Fachrichtung, Modalitaet: f.Modalitaet, Kostentraeger: f.Kostentraeger,
		PLZPrefix: f.PLZPrefix, Type: f.Type, From: clampUnix(f.From), To: clampUnix(f.To), Max: uint8(f.Limit()),
	}
	if _, err := io.ReadFull(rnd, q.QueryID[:]); err != nil {
		return nil, fmt.Errorf("fapp: query id: %w", err)
	}
	copy(q.ReplyKey[:], key.Public())
	return &PendingQuery{Query: q, key: key}, nil
}

// freshSealingKey makes a fresh X25519 key pair: the sealing key of a
// throw-away identity drawn from rnd (crypto.SealingKeyFor derives it
// from the 32-byte seed; nothing of the identity is used or kept).
func freshSealingKey(rnd io.Reader) (*crypto.SealingKey, error) {
	id, err := crypto.NewIdentity(rnd)
	if err != nil {
		return nil, fmt.Errorf("fapp: fresh key: %w", err)
	}
	return crypto.SealingKeyFor(id)
}

func clampUnix(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	switch s := t.Unix(); {
	case s > math.MaxUint32:
		return math.MaxUint32
	case s > 0:
		return uint32(s)
	}
	return 0
}

// Filter is the query's filter.
func (q *SlotQuery) Filter() Filter {
	f := Filter{
		Fachrichtung: q.Fachrichtung, Modalitaet: q.Modalitaet, Kostentraeger: q.Kostentraeger,
		PLZPrefix: q.PLZPrefix, Type: q.Type, Max: int(q.Max),
	}
	if q.From != 0 {
		f.From = time.Unix(int64(q.From), 0)
	}
	if q.To != 0 {
		f.To = time.Unix(int64(q.To), 0)
	}
	return f
}

func (q *SlotQuery) validate() error {
	if err := checkHead(q.Tag, q.Kind, KindQuery, q.Hops, q.HopLimit); err != nil {
		return err
	}
	if q.Max == 0 || q.Max > MaxQueryResults {
		return fmt.Errorf("%w: FAPP query max %d, want 1 to %d", messages.ErrMalformed, q.Max, MaxQueryResults)
	}
	if q.To != 0 && q.To <= q.From {
		return fmt.Errorf("%w: FAPP query time window [%d, %d) is empty", messages.ErrMalformed, q.From, q.To)
	}
	if err := crypto.ValidateSealingPublic(q.ReplyKey[:]); err != nil {
		return fmt.Errorf("%w: FAPP query reply key: %w", messages.ErrMalformed, err)
	}
	if err := q.Filter().Validate(); err != nil {
		return fmt.Errorf("%w: FAPP query: %w", messages.ErrMalformed, err)
	}
	return nil
}

// EncodeSlotQuery encodes a query.
func EncodeSlotQuery(q SlotQuery) ([]byte, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	return encodeFrame(q, KindQuery, MaxSlotQuerySize)
}

// DecodeSlotQuery decodes a query from the network: size limit first
// (messages.ErrTooLarge), then tag and kind, the canonical encoding and
// every field (messages.ErrMalformed). It never panics.
func DecodeSlotQuery(data []byte) (SlotQuery, error) {
	var q SlotQuery
	if err := decodeFrame(data, MaxSlotQuerySize, KindQuery, &q); err != nil {
		return SlotQuery{}, err
	}
	if err := q.validate(); err != nil {
		return SlotQuery{}, err
	}
	return q, nil
}
