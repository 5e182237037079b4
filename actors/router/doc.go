// Package router is the node's router actor.
//
// It owns (from the mesh issue on) the routing table and the envelope
// dedup cache, and decides for each admitted frame: deliver locally,
// forward to the next hop, broadcast, or hand to the store.
//
// Receives: *messages.InboundFrame (from ratelimit), *messages.Drain,
// *messages.Persist. Sends: *messages.Delivered to the node's inbox
// through Config.Deliver.
//
// Until the envelope wire format lands there is no addressing to route
// on, so every admitted frame is for this node and is delivered locally.
package router
