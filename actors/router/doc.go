// Package router is the node's router actor: it decides, the edge checks.
//
// Envelopes reach it already decoded, verified and, when sealed to this
// node, opened by the verifier pool (actors/verify), as
// *messages.VerifiedEnvelope; the keys the pool checks against are the
// router's, published as an immutable snapshot (verify.Directory) whenever
// they change. A frame whose sender the snapshot did not know arrives as
// a plain *messages.InboundFrame and the router verifies it itself, or
// holds it (Held) until the sender's announce arrives.
//
// Its logic is in plain types, tested without actors:
//   - Core (core.go): the routing table (Table, table.go: up to three
//     paths per destination, only feasible ones, no longer than the
//     fewest hops seen for its announce, so a lost neighbour never leaves
//     a path back through this node), the dedup caches (Dedup:
//     broadcast copies; Loops: copies of a unicast envelope from a routing
//     loop, for two seconds only, so retransmissions pass), the replay
//     window (crypto.ReplayWindow, a sliding bitmap over each sender's
//     seq) and the node's keys. For each envelope it returns actions:
//     deliver (and acknowledge), forward (never back to the neighbour
//     the frame came from: Table.LookupExcept), broadcast, store, drop
//     with a counted reason.
//   - Outbox (outbox.go): this node's own messages, durable until the
//     destination's signed receipt arrives (delivered) or they expire
//     (failed), retransmitted with backoff meanwhile, numbered per
//     destination and sent only within a window the receivers' replay
//     windows can judge.
//   - Held (held.go), Tracer (trace.go), announce freshness (fresh.go).
//   - Flood (flood.go): the managed flood of announce re-broadcasts. The
//     delay before one (50 ms of jitter over IP; over a radio a few
//     announce airtimes, longer for a strong signal, AnnounceHeard.Signal)
//     and whether the radio part is left off because the radio's
//     neighbours have the announce already (BroadcastFrame.SkipBroadcast,
//     qpc_mesh_rebroadcasts_suppressed_total).
//   - Compact sealed envelopes (compact.go): LinkClasses (the classes of
//     the open links per neighbour) decides that an own message whose
//     next hop is only over constrained links goes out compact
//     (Core.SealCompact, HPKE auth mode, no signature); relays forward
//     compact envelopes unauthenticated, from and to known nodes only.
//
// The actor (actor.go, batch.go) carries the actions out and group-commits
// their disk writes: replay window, inbox entries (actors/inbox), outbox
// records and announce freshness changes of everything in the mailbox go
// into one bbolt transaction; receipts (one signed receipt per sender for
// up to 32 messages), forwards and API answers that depend on it go out
// only after it committed.
//
// Receives: *messages.VerifiedEnvelope (from the verifier pool),
// *messages.InboundFrame (from ratelimit or the pool), *messages.AnnounceHeard
// (from the announcer), *messages.SendText, *messages.MessageRequest,
// *messages.OutboxRequest, *messages.RoutesRequest, *messages.TraceRequest,
// *messages.StoredFrames (from the store), PeerUp/PeerDown (event stream),
// Drain, Persist. Every InboundFrame it finishes with gives back its link's
// credit (Done).
// Sends: *messages.SendFrame / *messages.BroadcastFrame to transports,
// *messages.StoreFrame / StoreAck / RouteUp to the store,
// *messages.Delivered to the inbox actor after each commit.
//
// Restarts: a router that panics is restarted by the node's supervisor
// and keeps what it knew. The failing instance writes the table, the keys
// and the announce frames (otherwise written by the lazy flush, at most a
// second behind) and hands the envelopes held for unknown senders and the
// open-link counts to the next instance (handover, through New's
// producer). The outbox, the replay window and the inbox are what the last
// commit wrote: the batch that was not written is answered as failed, so
// nothing of it is half kept. Announce freshness not yet committed is
// lost (an announce seen in that second may be accepted once more).
package router
