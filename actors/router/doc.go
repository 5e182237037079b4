// Package router is the node's router actor.
//
// It owns the routing table (Table), the envelope dedup cache (Dedup), the
// replay window of sealed messages (crypto.ReplayWindow, persisted) and the
// node's sealing key. Its decisions are the plain type Core (core.go),
// tested without actors: for each envelope it returns actions — deliver
// locally (open, record in the replay window, answer with a receipt),
// forward to the next hop, broadcast, hand to the store, or drop with a
// counted reason. The actor (actor.go) carries them out.
//
// Receives: *messages.AnnounceHeard (from the announcer), envelope
// *messages.InboundFrame (from ratelimit), *messages.SendText,
// *messages.RoutesRequest, *messages.TraceRequest, *messages.StoredFrames
// (from the store), PeerUp/PeerDown (event stream), Drain, Persist.
// Sends: *messages.SendFrame / *messages.BroadcastFrame to transports,
// *messages.StoreFrame / StoreAck / RouteUp to the store, and local
// deliveries to the node's inbox through Config.Deliver.
package router
