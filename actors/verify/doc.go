// Package verify checks envelopes at the edge, in parallel, before the
// router sees them: decode, look the source's key up, verify the
// signature, derive the id and, for a sealed message to this node, open
// it. A compact sealed envelope (messages.Compact) has no signature: for
// this node it is opened in HPKE auth mode with the source's announced
// sealing key, which is what authenticates it; one for another node goes
// to the router as it came. The router then only decides (replay window, routes, outbox) on its
// one goroutine; the signature checks and decryptions, which are most of a
// message's cost, run on every core.
//
// Directory is the key directory: an immutable snapshot of the announced
// signing keys that the router publishes (atomically replaced, never
// changed) and the workers read without locks. A key not in the snapshot
// yet (an announce the router has just accepted) sends the frame to the
// router unverified, which checks it itself: a stale snapshot costs speed,
// never correctness.
//
// Pool is a fixed set of worker goroutines, one per core, fed by ratelimit
// after admission (rate limit before work, signature before state
// change), oldest frame first. Frames with link credit (TCP, QUIC) are
// always taken: each link's credit bounds what it can have queued. Frames
// without (a radio, the Go API) are bounded by the queue; one it cannot
// take is dropped and counted (overload), and its sender retransmits.
package verify
