package fapp

import (
	"time"

	"github.com/quicprochat/qpc/fapp"
)

// The actor's requests (the node's FAPPBackend asks them with futures)
// and their replies. They live here, not in package messages, because
// they carry the domain types of package fapp, which imports messages.

// Publish replaces the therapist's set (IDs assigned already).
type Publish struct{ Slots []fapp.Slot }

// PublishReply answers Publish: the announce's sequence and expiry and
// the set announced (confirmed slots left out).
type PublishReply struct {
	Seq     uint64
	Expires time.Time
	Slots   []fapp.Slot
	Err     error
}

// SearchStart sends a fresh query for Filter.
type SearchStart struct{ Filter fapp.Filter }

// SearchStarted answers SearchStart with the search's id.
type SearchStarted struct {
	ID  [16]byte
	Err error
}

// SearchEnd ends search ID (after the caller's wait).
type SearchEnd struct{ ID [16]byte }

// SearchResults answers SearchEnd.
type SearchResults struct {
	Results []fapp.Result
	Err     error
}

// Reserve reserves a slot an earlier search of this node found.
type Reserve struct {
	Slot fapp.SlotID
	Note string
}

// StatusRequest asks where the patient's reservation ID stands.
type StatusRequest struct{ ID [16]byte }

// RequestsRequest asks for the therapist's received reservations.
type RequestsRequest struct{}

// RequestsReply answers RequestsRequest.
type RequestsReply struct {
	Requests []fapp.RequestInfo
	Err      error
}

// AnswerRequest confirms (Confirm) or declines reservation ID.
type AnswerRequest struct {
	ID      [16]byte
	Confirm bool
	Text    string
}

// ReservationInfo is where a reservation stands.
type ReservationInfo struct {
	ID     [16]byte
	Slot   fapp.SlotID
	Status fapp.Status
	Text   string
}

// ReservationReply answers Reserve, StatusRequest and AnswerRequest.
type ReservationReply struct {
	Info ReservationInfo
	Err  error
}
