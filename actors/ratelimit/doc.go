// Package ratelimit is the admission actor in front of the router and the
// announcer.
//
// It owns per-peer token buckets (PerPeer, bucket.go) for envelopes,
// announces and KeyPackage requests, so one flooding peer drains only its
// own buckets and the others still pass. FAPP frames (messages.FrameFAPP)
// have a bucket of their own (ClassFAPP) and go to the fapp actor when
// Config.FAPP is set; without it (FAPP off) they are refused as of an
// unknown type. Its own mailbox is the
// priority-shedding mailbox (actors/mailbox): when the node is overloaded
// and frames queue up, data envelopes are shed before announces.
//
// Receives *messages.InboundFrame from link readers (and Node.Inject): it
// reads the frame's tag, charges the peer's bucket for that class, and
// sends announces to the announcer and envelopes to the verifier pool
// (actors/verify), which hands them on to the router; what is over a
// peer's rate is dropped and counted (qpc_mesh_ratelimited_total{class}).
// Envelopes from links with flow control (TCP, QUIC: the frame carries
// link credit) are not bucketed: the link's credit paces them, and a
// peer that sends too fast is slowed, not dropped. Every frame it drops
// gives its credit back. After *messages.Drain it refuses new frames
// (qpc_frames_refused_total{reason="draining"}).
//
// Restarts: the token buckets start full again. They are not persisted or
// handed over: a restart is rare, a bucket refills within seconds anyway,
// and a restart never lets a peer send more than one burst extra.
package ratelimit
