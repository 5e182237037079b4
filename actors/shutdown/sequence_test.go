package shutdown

import (
	"slices"
	"testing"

	"github.com/quicprochat/qpc/messages"
)

func TestSequenceWalksPhasesOnAcks(t *testing.T) {
	s := NewSequence([]string{"router", "store"})
	if s.Phase() != messages.PhaseRunning {
		t.Fatalf("start phase = %v", s.Phase())
	}
	if !s.Begin() || s.Phase() != messages.PhaseDraining {
		t.Fatalf("Begin: phase = %v", s.Phase())
	}
	if s.Begin() {
		t.Fatal("second Begin returned true")
	}
	if got := s.Ack("router", messages.PhaseDraining); got != messages.PhaseDraining {
		t.Fatalf("after one drain ack: %v", got)
	}
	if got := s.Ack("router", messages.PhaseDraining); got != messages.PhaseDraining {
		t.Fatalf("duplicate ack moved the phase: %v", got)
	}
	if got := s.Ack("store", messages.PhasePersisting); got != messages.PhaseDraining {
		t.Fatalf("ack for a future phase counted: %v", got)
	}
	if got := s.Ack("store", messages.PhaseDraining); got != messages.PhasePersisting {
		t.Fatalf("after all drain acks: %v", got)
	}
	if got := s.Ack("store", messages.PhaseDraining); got != messages.PhasePersisting {
		t.Fatalf("stale ack changed phase: %v", got)
	}
	s.Ack("store", messages.PhasePersisting)
	if got := s.Ack("router", messages.PhasePersisting); got != messages.PhaseCleanup {
		t.Fatalf("after all persist acks: %v", got)
	}
	if len(s.Late()) != 0 {
		t.Fatalf("late = %v", s.Late())
	}
}

func TestSequenceTimeoutRecordsLate(t *testing.T) {
	s := NewSequence([]string{"a", "b", "c"})
	s.Begin()
	s.Ack("a", messages.PhaseDraining)
	if got := s.Timeout(messages.PhasePersisting); got != messages.PhaseDraining {
		t.Fatalf("timeout of another phase acted: %v", got)
	}
	if got := s.Timeout(messages.PhaseDraining); got != messages.PhasePersisting {
		t.Fatalf("after drain timeout: %v", got)
	}
	s.Ack("a", messages.PhasePersisting)
	s.Ack("b", messages.PhasePersisting)
	if got := s.Pending(); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("pending = %v", got)
	}
	if got := s.Timeout(messages.PhasePersisting); got != messages.PhaseCleanup {
		t.Fatalf("after persist timeout: %v", got)
	}
	want := []string{"b (Draining)", "c (Draining)", "c (Persisting)"}
	if got := s.Late(); !slices.Equal(got, want) {
		t.Fatalf("late = %v, want %v", got, want)
	}
}

func TestSequenceNoParticipants(t *testing.T) {
	s := NewSequence(nil)
	s.Begin()
	if got := s.Phase(); got != messages.PhaseCleanup {
		t.Fatalf("empty sequence: %v", got)
	}
}

func TestSequenceGoneParticipantDoesNotBlock(t *testing.T) {
	s := NewSequence([]string{"a", "b"})
	s.Gone("b") // stopped before the shutdown began
	s.Begin()
	if got := s.Pending(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("pending = %v, want [a]", got)
	}
	s.Ack("a", messages.PhaseDraining)
	if got := s.Gone("a"); got != messages.PhaseCleanup {
		t.Fatalf("after the last participant went: %v", got)
	}
	if len(s.Late()) != 0 {
		t.Fatalf("late = %v", s.Late())
	}
}
