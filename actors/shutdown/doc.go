// Package shutdown is the node's shutdown coordinator.
//
// It owns the shutdown phase. It receives *messages.BeginShutdown (from the
// node, on SIGINT/SIGTERM or Node.Stop), asks every participant to
// *messages.Drain and waits for *messages.Drained, then asks them to
// *messages.Persist and waits for *messages.Persisted, each wait bounded by
// the deadline, and finally answers the requester with
// *messages.ShutdownReady. The node then runs Cleanup (stops the actor
// tree, closes listeners and the database) and reaches Complete.
//
// The phase machine is the plain type Sequence (sequence.go), tested
// without actors; actor.go is the thin Receive around it.
package shutdown
