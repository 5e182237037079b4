package messages

// This file is the bus contract between the actors of one node: typed
// messages, always sent as pointers. Wire formats live in their own files.

import "time"

// Phase is a step of the shutdown cascade.
type Phase int

// Shutdown phases, in order.
const (
	PhaseRunning Phase = iota
	PhaseDraining
	PhasePersisting
	PhaseCleanup
	PhaseComplete
)

func (p Phase) String() string {
	switch p {
	case PhaseRunning:
		return "Running"
	case PhaseDraining:
		return "Draining"
	case PhasePersisting:
		return "Persisting"
	case PhaseCleanup:
		return "Cleanup"
	case PhaseComplete:
		return "Complete"
	}
	return "Unknown"
}

// BeginShutdown asks the shutdown coordinator to drain and persist every
// actor. It answers the sender with *ShutdownReady once Persisting is done
// (or its deadline passed).
type BeginShutdown struct {
	// Deadline bounds Draining and Persisting together.
	Deadline time.Time
}

// PhaseChanged tells the node root that the shutdown coordinator entered
// a phase (Draining, Persisting); Cleanup and Complete are the node's own.
type PhaseChanged struct{ Phase Phase }

// CapabilitiesRequest asks the node root for the capabilities to announce
// (a restarted announcer keeps what was set at run time); the root answers
// with *SetCapabilities.
type CapabilitiesRequest struct{}

// ShutdownReady answers BeginShutdown: the tree may now be stopped.
type ShutdownReady struct {
	// Late lists actors that did not acknowledge a phase before its deadline.
	Late []string
}

// Drain tells an actor to stop taking new work and finish what is in
// flight. The actor answers with *Drained.
type Drain struct{}

// Drained acknowledges Drain.
type Drained struct{ Actor string }

// Persist tells an actor to write its state to the database. The actor
// answers with *Persisted.
type Persist struct{}

// Persisted acknowledges Persist; Err is non-nil when writing failed.
type Persisted struct {
	Actor string
	Err   error
}

// ActorUp is sent by each child of the node root when it has started (and
// again after every restart).
type ActorUp struct{ Actor string }

// StatusRequest asks the node root for the state of its actors; it answers
// with *ActorStates.
type StatusRequest struct{}

// ActorState is one top-level actor's state as its supervisor sees it.
type ActorState struct {
	Name     string `json:"name"`
	State    string `json:"state"` // starting, running, restarting, stopped
	Restarts int    `json:"restarts"`
}

// ActorStates answers StatusRequest.
type ActorStates struct {
	Actors []ActorState
	// Ready is true once every actor has started and no shutdown began.
	Ready bool
}

// InjectFault makes the receiving actor panic, but only in a node built
// with fault injection enabled (tests, chaos runs); otherwise it is ignored.
type InjectFault struct{ Reason string }

// InboundFrame is a frame that arrived from a link (or the Go API), on its
// way through ratelimit to the router.
type InboundFrame struct {
	// Link names where it came from ("api", "tcp:127.0.0.1:7701", ...).
	Link string
	// From is the authenticated peer address, zero when not known.
	From [16]byte
	Data []byte
	// Release gives back the link's credit for this frame; nil for links
	// without flow control (and frames handed in by the Go API). Whoever
	// finishes with the frame calls Done: the router when it has decided,
	// the announcer when it has checked, ratelimit when it drops.
	Release func()
	// Signal is the frame's reception when it came over a radio; zero
	// otherwise.
	Signal Signal
}

// Credited reports whether the frame holds its link's credit: the
// admission mailbox never sheds such a frame (the credit bounds them).
func (f *InboundFrame) Credited() bool { return f.Release != nil }

// Done releases the frame's link credit, once.
func (f *InboundFrame) Done() {
	if f.Release != nil {
		f.Release()
		f.Release = nil
	}
}

// Priority of an inbound frame, for the admission mailbox's shedding:
// announces and other control frames beat data envelopes.
func (f *InboundFrame) Priority() Priority {
	if t, err := FrameTag(f.Data); err == nil && t.Type() != FrameEnvelope && t.Type() != FrameCompact {
		return Control
	}
	return Data
}

// Size of an inbound frame, for the admission mailbox's byte bound.
func (f *InboundFrame) Size() int { return len(f.Data) }
