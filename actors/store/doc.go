// Package store is the store-and-forward actor: it holds envelopes for
// destinations that have no route, in bbolt (Queue, queue.go), until a
// route appears or they expire.
//
// Receives: *messages.StoreFrame (hold this), *messages.RouteUp (a
// destination became reachable: hand back what is held for it as
// *messages.StoredFrames), *messages.StoreAck (a receipt came back: delete
// the copy), its GC tick (expire), Drain, Persist. A held frame stays until
// its receipt comes back or it expires, so a relay that restarts, or a
// link that fails mid-way, loses nothing; the destination's replay window
// makes a second delivery harmless.
package store
