package fapp

import "errors"

// Errors of the FAPP domain layer. Wire decoders wrap the messages errors
// (messages.ErrTooLarge, ErrUnknownType, ErrUnsupportedVersion,
// ErrMalformed, ErrBadSignature) as every other wire type does; these are
// FAPP's own. Callers test them with errors.Is.
var (
	// ErrBadValue: a domain value (Fachrichtung, Modalitaet, Kostentraeger,
	// SlotType, PLZ, slot id, ...) is not one of the allowed ones. The
	// message names the value and what is allowed.
	ErrBadValue = errors.New("fapp: bad value")

	// ErrUnbound: a SlotAnnounce without a well-formed Approbation binding.
	ErrUnbound = errors.New("fapp: announce not bound to an Approbation")
	// ErrExpired: a SlotAnnounce whose expiry is not after now.
	ErrExpired = errors.New("fapp: announce expired")
	// ErrTTLTooLong: a SlotAnnounce that expires further in the future than
	// the store's MaxTTL allows.
	ErrTTLTooLong = errors.New("fapp: announce TTL too long")
	// ErrStale: a SlotAnnounce whose sequence number is lower than one the
	// store already accepted from the same therapist (a replay, or out of
	// order).
	ErrStale = errors.New("fapp: announce sequence is stale")
	// ErrSeqConflict: a SlotAnnounce with the sequence number of the one
	// held but other content. The first one is kept.
	ErrSeqConflict = errors.New("fapp: two different announces with one sequence number")
	// ErrStoreFull: the store is at its capacity and the new announce would
	// have to push out a smaller or longer-lived set (see Store).
	ErrStoreFull = errors.New("fapp: store full")
	// ErrDamagedRecord: a stored record does not decode or verify. It is
	// left in the database and reported (Store.Damaged); the other records
	// are served.
	ErrDamagedRecord = errors.New("fapp: damaged store record")

	// ErrOpen: a sealed reservation or answer does not open with this key
	// (not for us, tampered, or from another sender).
	ErrOpen = errors.New("fapp: sealed message does not open")
	// ErrUnknownReservation: an answer or a confirm / decline for a
	// reservation that is not known here.
	ErrUnknownReservation = errors.New("fapp: unknown reservation")
	// ErrAlreadyConfirmed: the slot was already confirmed to a reservation.
	ErrAlreadyConfirmed = errors.New("fapp: slot already confirmed")
	// ErrNotPending: a confirm or decline of a reservation that was already
	// answered.
	ErrNotPending = errors.New("fapp: reservation already answered")
	// ErrUnknownSlot: a slot id that the announce or the therapist does not
	// have.
	ErrUnknownSlot = errors.New("fapp: unknown slot")
)
