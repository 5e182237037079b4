package api

import (
	"context"
	"errors"
	"time"

	"github.com/quicprochat/qpc/fapp"
)

// The FAPP part of the admin API (docs/operations.md, docs/fapp.md). A
// Backend that also implements FAPPBackend serves it; one that does not
// (FAPP off: no fapp.role) answers 404 with code fapp_off on every
// /v1/fapp/ path.
//
//	POST /v1/fapp/publish                  FAPPPublishRequest  → FAPPPublishResponse   (therapist)
//	GET  /v1/fapp/search?fachrichtung=&modalitaet=a,b&kostentraeger=a,b&plz=&from=&to=&type=&max=&wait=
//	                                                           → FAPPSearchResponse    (patient)
//	POST /v1/fapp/reserve                  FAPPReserveRequest  → FAPPReservation       (patient)
//	GET  /v1/fapp/reservations/{id}?wait=                      → FAPPReservation       (patient)
//	GET  /v1/fapp/requests                                     → FAPPRequestsResponse  (therapist)
//	POST /v1/fapp/requests/{id}/confirm    FAPPAnswerRequest   → FAPPReservation       (therapist)
//	POST /v1/fapp/requests/{id}/decline    FAPPAnswerRequest   → FAPPReservation       (therapist)
//
// Query parameters of search take the command line's lower-case names;
// from and to are RFC 3339 or YYYY-MM-DD (local midnight of the node);
// wait is a Go duration (default 3s, at most 60s): how long the node
// gathers responses. A bad value is 400 naming the parameter and the
// allowed values. A call for a role the node does not have is 409 with
// code fapp_role ("this node is not a therapist").

// ErrFAPPRole is wrapped by a FAPPBackend's error for a call the node's
// roles do not allow (409, code fapp_role).
var ErrFAPPRole = errors.New("fapp: not a role of this node")

// FAPPBackend is what the /v1/fapp/ handlers need from the node. Errors
// take the API's types (BadRequest, NotFound, Unavailable) or wrap
// ErrFAPPRole; anything else is 500.
type FAPPBackend interface {
	// FAPPPublish replaces the therapist's announced set with slots (ID
	// zero: the node assigns a stable one) and floods the signed announce.
	FAPPPublish(ctx context.Context, slots []fapp.Slot) (FAPPPublishResponse, error)
	// FAPPSearch sends an anonymous query and gathers responses for wait,
	// returning what matched, merged and sorted (fapp.MergeResults).
	FAPPSearch(ctx context.Context, f fapp.Filter, wait time.Duration) (FAPPSearchResponse, error)
	// FAPPReserve reserves a slot found by an earlier search (NotFound for
	// a slot no search of this node returned).
	FAPPReserve(ctx context.Context, slot fapp.SlotID, note string) (FAPPReservation, error)
	// FAPPStatus says where reservation id stands; with wait > 0 it waits
	// up to wait for it to leave "pending".
	FAPPStatus(ctx context.Context, id string, wait time.Duration) (FAPPReservation, error)
	// FAPPRequests lists the reservations the therapist received.
	FAPPRequests(ctx context.Context) (FAPPRequestsResponse, error)
	// FAPPConfirm and FAPPDecline answer reservation id.
	FAPPConfirm(ctx context.Context, id, text string) (FAPPReservation, error)
	FAPPDecline(ctx context.Context, id, reason string) (FAPPReservation, error)
}

// FAPPSlotJSON is one slot as the API and `qpc fapp search --json` print
// it. Slot is the mesh-wide id fapp.SlotID ("<therapist>-<id>").
type FAPPSlotJSON struct {
	Slot          string    `json:"slot"`
	Therapist     string    `json:"therapist"`
	Start         time.Time `json:"start"`
	Minutes       int       `json:"minutes"`
	Fachrichtung  string    `json:"fachrichtung"`
	Modalitaet    []string  `json:"modalitaet"`
	Kostentraeger []string  `json:"kostentraeger"`
	PLZ           string    `json:"plz"`
	Type          string    `json:"type"`
}

// FAPPSlotInput is one slot of POST /v1/fapp/publish: the slots file's
// fields. Fachrichtung and Kostentraeger empty take the config's.
type FAPPSlotInput struct {
	Start         time.Time `json:"start"`
	Minutes       int       `json:"minutes"`
	Type          string    `json:"type"`
	Modalitaet    []string  `json:"modalitaet"`
	Fachrichtung  string    `json:"fachrichtung,omitempty"`
	Kostentraeger []string  `json:"kostentraeger,omitempty"`
}

// FAPPPublishRequest is the body of POST /v1/fapp/publish.
type FAPPPublishRequest struct {
	Slots []FAPPSlotInput `json:"slots"`
}

// FAPPPublishResponse says what was announced.
type FAPPPublishResponse struct {
	Seq     uint64         `json:"seq"`
	Expires time.Time      `json:"expires"`
	Slots   []FAPPSlotJSON `json:"slots"`
}

// FAPPSearchResponse is the answer of GET /v1/fapp/search.
type FAPPSearchResponse struct {
	Slots []FAPPSlotJSON `json:"slots"`
}

// FAPPReserveRequest is the body of POST /v1/fapp/reserve.
type FAPPReserveRequest struct {
	Slot string `json:"slot"`
	Note string `json:"note,omitempty"`
}

// FAPPReservation is where a reservation stands: pending, confirmed,
// declined or taken (fapp.Status). Text is the therapist's (the
// confirmation's where-to-come, a decline's reason).
type FAPPReservation struct {
	Reservation string `json:"reservation"`
	Status      string `json:"status"`
	Slot        string `json:"slot,omitempty"`
	Text        string `json:"text,omitempty"`
}

// FAPPRequest is one reservation a therapist received.
type FAPPRequest struct {
	Reservation string    `json:"reservation"`
	Slot        string    `json:"slot"`
	Note        string    `json:"note"`
	At          time.Time `json:"at"`
	Status      string    `json:"status"`
}

// FAPPRequestsResponse is the answer of GET /v1/fapp/requests.
type FAPPRequestsResponse struct {
	Requests []FAPPRequest `json:"requests"`
}

// FAPPAnswerRequest is the body of confirm (Text: what the patient needs
// next) and decline (Text: the reason).
type FAPPAnswerRequest struct {
	Text string `json:"text,omitempty"`
}

// SlotJSON renders a search result as the API prints it.
func SlotJSON(r fapp.Result) FAPPSlotJSON {
	plz := ""
	if r.Announce != nil {
		plz = r.Announce.PLZ.String()
	}
	return FAPPSlotJSON{
		Slot:          r.ID.String(),
		Therapist:     r.ID.Therapist.String(),
		Start:         r.Slot.StartTime().UTC(),
		Minutes:       int(r.Slot.Minutes),
		Fachrichtung:  r.Slot.Fachrichtung.String(),
		Modalitaet:    r.Slot.Modalitaet.Names(),
		Kostentraeger: r.Slot.Kostentraeger.Names(),
		PLZ:           plz,
		Type:          r.Slot.Type.String(),
	}
}
