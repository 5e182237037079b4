// Package announcer sends this node's signed announces and checks the
// ones it receives.
//
// It owns the node's own announce: signed with the identity, carrying the
// Ed25519 key, the X25519 sealing key and the capability bits, with a
// timestamp (unix milliseconds) that increases on every announce. It sends
// it on start to each peer as its link comes up, and to every peer each
// interval (jittered by ±10 %, so nodes started together spread out).
//
// Received announce frames (from ratelimit) are decoded, their signature
// verified, their age and hop count checked (Check, plain code); the ones
// that pass go to the router as *messages.AnnounceHeard. The router decides
// freshness against its table (a replayed or older announce is refused
// there, also after a restart) and re-broadcasts.
//
// Receives: *messages.InboundFrame (announces), *messages.SetCapabilities
// (announce again at once), *messages.PeerUp (from the
// event stream, for this node), its own tick, Drain, Persist.
// Sends: *messages.AnnounceHeard to the router, *messages.SendFrame and
// *messages.BroadcastFrame to the transports actor.
//
// Restarts: the time of the newest own announce survives a restart (New's
// producer shares it between instances), so the next announce is newer
// even within the same millisecond; the failing instance stops its timer
// and its event subscription. Capabilities are asked from the parent
// again. Nothing else is state.
package announcer
