// Package fapp is the node's FAPP actor (docs/fapp.md): the relay's
// announce cache (fapp.Store in the node's bbolt), reverse paths for
// responses and answers, the therapist's fapp.Practice, the patient's
// searches and reservations.
//
// The logic is Engine (engine.go), plain state tested without actors:
// Handle takes a FAPP frame from a neighbour and returns the frames to
// send (Out: to one neighbour, or to all but one); Publish, StartSearch /
// EndSearch, Reserve, Answer, Requests and Reservation are the API's
// calls; PeerUp, Sweep and Reannounce are driven by the actor's events
// and timers (the injected clock). Everything is counted in
// metrics.FAPP (qpc_fapp_*).
//
// The actor receives *messages.InboundFrame from ratelimit (ClassFAPP),
// PeerUp / PeerDown from the event stream, the request types of
// messages.go from the node (futures from outside Receive; a search waits
// outside the actor between SearchStart and SearchEnd), Drain and
// Persist. It sends with the links actor (messages.SendFrame,
// messages.BroadcastFrame). The therapist's practice and the patient's
// reservations are persisted in bucket fapp/node (state.go) after every
// change. With no role it is a shell that only takes part in shutdown.
package fapp
