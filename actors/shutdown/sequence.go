package shutdown

import (
	"slices"

	"github.com/quicprochat/qpc/messages"
)

// Sequence is the phase machine of one shutdown: Running → Draining →
// Persisting, waiting in each for every participant's acknowledgement or a
// timeout. Cleanup and Complete belong to the node, which stops the tree.
type Sequence struct {
	participants []string
	phase        messages.Phase
	pending      map[string]bool
	late         []string
}

// NewSequence prepares a shutdown of the named participants.
func NewSequence(participants []string) *Sequence {
	return &Sequence{participants: slices.Clone(participants), phase: messages.PhaseRunning}
}

// Phase is the current phase.
func (s *Sequence) Phase() messages.Phase { return s.phase }

// Late lists participants that missed a deadline, with the phase.
func (s *Sequence) Late() []string { return slices.Clone(s.late) }

// Begin enters Draining; it returns false if a shutdown already began.
func (s *Sequence) Begin() bool {
	if s.phase != messages.PhaseRunning {
		return false
	}
	s.enter(messages.PhaseDraining)
	s.advanceIfDone()
	return true
}

func (s *Sequence) enter(p messages.Phase) {
	s.phase = p
	s.pending = make(map[string]bool, len(s.participants))
	for _, n := range s.participants {
		s.pending[n] = true
	}
}

// Ack records that name finished phase p. It returns the phase entered
// as a result (the same phase while others are still pending). Stale
// acknowledgements, for a phase already left, are ignored.
func (s *Sequence) Ack(name string, p messages.Phase) messages.Phase {
	if p != s.phase || !s.pending[name] {
		return s.phase
	}
	delete(s.pending, name)
	return s.advanceIfDone()
}

// Gone removes a participant that has stopped: there is nothing left of it
// to drain or persist. It returns the phase entered as a result.
func (s *Sequence) Gone(name string) messages.Phase {
	s.participants = slices.DeleteFunc(s.participants, func(n string) bool { return n == name })
	if s.phase != messages.PhaseDraining && s.phase != messages.PhasePersisting {
		return s.phase
	}
	delete(s.pending, name)
	return s.advanceIfDone()
}

// Timeout ends phase p for everyone still pending, recording them late.
func (s *Sequence) Timeout(p messages.Phase) messages.Phase {
	if p != s.phase || (p != messages.PhaseDraining && p != messages.PhasePersisting) {
		return s.phase
	}
	names := make([]string, 0, len(s.pending))
	for n := range s.pending {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s.late = append(s.late, n+" ("+p.String()+")")
	}
	clear(s.pending)
	return s.advanceIfDone()
}

func (s *Sequence) advanceIfDone() messages.Phase {
	if len(s.pending) > 0 {
		return s.phase
	}
	switch s.phase {
	case messages.PhaseDraining:
		s.enter(messages.PhasePersisting)
		return s.advanceIfDone()
	case messages.PhasePersisting:
		s.phase = messages.PhaseCleanup
	}
	return s.phase
}

// Pending lists who the current phase still waits for, sorted.
func (s *Sequence) Pending() []string {
	names := make([]string, 0, len(s.pending))
	for n := range s.pending {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Waiting reports whether the current phase waits for name.
func (s *Sequence) Waiting(name string) bool { return s.pending[name] }
