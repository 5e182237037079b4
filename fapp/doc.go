// Package fapp is the domain layer of FAPP, the Free Appointment
// Propagation Protocol: therapists announce free psychotherapy slots into
// the mesh, patients search anonymously, reserve end-to-end encrypted and
// get a confirmation. It is plain logic: no actors, no I/O but the bbolt
// bucket of its Store, time from an injected clock or as a parameter. The
// node uses it through actors/fapp (the Engine: reverse paths, flooding,
// rate limits; the actor) and actors/node (api.FAPPBackend); see
// docs/fapp.md.
//
// What is here:
//
//   - domain.go: Fachrichtung (with the KJP flag), Modalitaet and
//     Kostentraeger (sets), SlotType, PLZ, parsed from the lower-case ASCII
//     names of the command line (ErrBadValue names the allowed values).
//   - wire.go, announce.go, query.go, response.go, reserve.go: the six
//     messages, all frames of type messages.FrameFAPP (0x06) with the kind
//     in element 1 and the hop count in element 2 (Peek, Forward):
//     SlotAnnounce (signed), SlotQuery (anonymous), SlotResponse (sealed to
//     the query), SlotReserve (sealed to the therapist), SlotAnswer carrying
//     a SlotConfirm or SlotDecline (sealed to the reservation's reply key).
//     Layouts and sizes: docs/wire-format.md; golden vectors: testdata/.
//   - store.go: Store, the relay's cache of announces: signature check,
//     dedup by (therapist, sequence), TTL expiry, capacity fair across
//     therapists, persisted in bbolt, damaged records reported, not fatal.
//   - query.go, match.go: Filter, matching and the result order; NewQuery
//     makes a query with a fresh id and a fresh reply key.
//   - reserve.go, therapist.go: the patient's Reservation, the therapist's
//     Practice state machine (confirm once, "taken", decline frees).
//
// Every decoder checks its size limit before decoding and returns the
// typed errors of package messages (or this package's); none panics on
// any input (fuzz_test.go).
package fapp
