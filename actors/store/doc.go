// Package store is the store-and-forward actor: it holds envelopes for
// destinations that have no route, in bbolt (Queue, queue.go), until a
// route appears or they expire.
//
// Receives: *messages.StoreFrame (hold this), *messages.RouteUp (a
// destination became reachable: hand back what is held for it as
// *messages.StoredFrames), *messages.StoreAck (a receipt came back: delete
// the copy, if it is held for the receipt's signer: type Ack), its GC tick (expire), Drain, Persist. A held frame stays until
// its receipt comes back or it expires, so a relay that restarts, or a
// link that fails mid-way, loses nothing; the destination's replay window
// makes a second delivery harmless.
//
// Group commit (batch.go): StoreFrame and StoreAck are added to a pending
// list, and the actor posts itself a flush message when the list starts
// filling. The mailbox is FIFO, so the flush comes after everything queued
// meanwhile, and writes it all in one transaction (Queue.Apply): one
// fsync per burst rather than per frame. It writes earlier when 256 wait,
// before it reads the queue for a RouteUp, and on Drain, Persist and
// Stopping, so nothing accepted is lost at shutdown.
//
// Draining (drain.go): a RouteUp hands back everything held for the
// destination, 256 frames per StoredFrames, each batch continuing after
// the last frame key of the one before (Queue.PeekAfter) in a message the
// actor sends itself, so other messages interleave and the actor never
// blocks. One pass runs per destination; a RouteUp during a pass makes one
// more pass from the start after it. Frames are not deleted when handed
// back, only by their receipt (StoreAck) or expiry. While frames stay
// held after a pass (lost on the way out: a link queue shed them), another
// pass follows after RedrainBase (10 s), doubling to RedrainMax (5 min),
// reset by a RouteUp and ended when nothing is held (actor.go, redrain).
//
// Failures of the database: a flush whose transaction fails stores none
// of its puts (store_events{event=write_failed}, logged, and the error
// answers a Persist waiting on it); nothing told anyone they were held,
// so their senders' retransmissions recover them. A drain whose read
// fails stops (read_failed); what is held stays for the next RouteUp.
//
// Restarts: the queue is on disk, and the failing instance writes what it
// had accepted and not yet written (Restarting, as at Stopping); a drain
// in progress goes on, since its continuation stays in the mailbox and the
// next instance resumes it (drains.resume).
package store
