// Package links is the transports subtree of a node: the transport
// manager actor (named "transports" in the tree), one listener actor per
// bound listener, one dialer actor per configured or discovered peer, and
// one link actor per connection.
//
//	transports (manager)          owns the link Table, discovery, SendFrame routing
//	├── listen-tcp-…              accepts; parent of its inbound link actors
//	│   └── link-7                owns one transports.Conn
//	└── dial-quic-…               dials with capped back-off; parent of its link
//	    └── link-8
//
// A link actor decodes at the edge: its reader goroutine reads frames
// (the transport refuses oversize frames before allocating), checks the
// outer frame's type tag, and sends *messages.InboundFrame straight to
// ratelimit. On a link with flow control (transports.Info.FlowControl:
// TCP, QUIC) the reader takes one of InboundCredit credits before each
// read and the frame carries it; whoever finishes with the frame gives it
// back. A node busy with one peer's frames stops reading that peer's
// socket (counted in qpc_link_backpressure_total), so TCP's and QUIC's
// flow control slow the sender instead of the node dropping its frames,
// and a flooding peer holds at most its credit's share of the router's
// queue. Outbound frames reach it as *messages.OutboundFrame in a
// priority-shedding mailbox (actors/mailbox), bounded in frames and bytes:
// when a peer reads slowly, WriteFrame blocks the link actor, its mailbox
// fills, and the lowest-priority frames are shed and counted
// (qpc_link_frames_shed_total). A link that fails stops; it is never
// restarted (its connection is gone), and its dialer re-dials.
//
// Frames for every neighbour (*messages.BroadcastFrame: announces, their
// re-broadcasts, flooded envelopes) go once per radio: PlanBroadcast
// reaches each peer by its best link (Table.Pick), and all the peers
// whose best link is on a transport that broadcasts (a LoRa radio:
// transports.BroadcastConn, LinkInfo.Broadcast) by one
// transports.Broadcaster.Broadcast of it, called from the manager (it
// never blocks); the other peers by a frame each
// (qpc_link_broadcasts_total). A SendFrame marked Broadcastable (the
// announces for a neighbour that just came up) goes as a broadcast too
// when its peer is on a radio, so that a radio's neighbours coming up
// together cost one transmission. Config.NoBroadcast keeps the per-peer
// fan-out of before, for tests that measure the difference.
//
// The manager receives *messages.SendFrame (picks a link with Table.Pick),
// *messages.BroadcastFrame,
// *messages.LinksRequest, *messages.Drain (stops listening, dialing and
// discovery) and *messages.Persist, and publishes *messages.PeerUp and
// *messages.PeerDown on the event stream.
//
// The sockets themselves (transports.Transport and bound
// transports.Listener values) belong to the node, which binds them before
// the tree starts (so a port in use fails the start with a clear error)
// and closes them at Cleanup; an actor restart never loses a bound port.
//
// Restarts: listeners and dialers are made afresh by their producers; a
// failing listener cancels its accept loop (the next instance starts its
// own) and its links stop with it, freeing their inbound slots; a failing
// dialer cancels its dial, and a result of the instance before is closed,
// not taken. The manager's link table and peer states are rebuilt from
// the links that come up again: links are connections, not state worth
// keeping past the failure of their owner.
package links
