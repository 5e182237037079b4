// Package ratelimit is the admission actor in front of the router.
//
// It owns per-peer token buckets (envelopes, announces, KeyPackage
// requests) and priority shedding when the node is overloaded; those land
// with the mesh issue. Today it forwards every *messages.InboundFrame to
// the router while the node runs, and refuses new frames once it has been
// told to *messages.Drain, counting them in Config.OnRefused.
package ratelimit
