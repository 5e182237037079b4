package node

import (
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
)

// damagedAtStart reports a child that failed while starting on a data
// dir a restart cannot mend: a replay store whose records cannot be read
// (the router's load), the therapist's FAPP state record that does not
// restore (fapp.ErrDamagedRecord, the fapp actor's start). It is stopped, and a Start still waiting fails. A
// failure of the same kind later (a group commit that found its bucket
// gone) is restarted as usual: the new instance recreates the bucket.
func damagedAtStart(reason, msg any) bool {
	switch msg.(type) {
	case *actor.Started, *actor.Restart:
	default:
		return false
	}
	err, ok := reason.(error)
	return ok && (errors.Is(err, crypto.ErrReplayStoreCorrupt) || errors.Is(err, fapp.ErrDamagedRecord))
}

// RestartPolicy is how the node root restarts a failed child: after an
// exponential back-off (Initial, doubling, capped at Max), and not more
// than MaxRestarts times within Window; past that the child is stopped.
// (protoactor's own "exponential" strategy is linear and never gives up.)
type RestartPolicy struct {
	Initial     time.Duration
	Max         time.Duration
	MaxRestarts int
	Window      time.Duration
}

// DefaultRestartPolicy restarts quickly at first and gives up on an actor
// that fails 10 times within a minute.
var DefaultRestartPolicy = RestartPolicy{
	Initial:     50 * time.Millisecond,
	Max:         5 * time.Second,
	MaxRestarts: 10,
	Window:      time.Minute,
}

// ErrFatal marks a failure that must not be retried: an actor that panics
// with an error wrapping it is stopped, not restarted.
var ErrFatal = errors.New("node: fatal actor failure")

// Decide maps a panic reason to a supervision directive.
func Decide(reason any) actor.Directive {
	if err, ok := reason.(error); ok && errors.Is(err, ErrFatal) {
		return actor.StopDirective
	}
	return actor.RestartDirective
}

// restartHistory remembers recent failures per child. Plain state owned by
// the root actor.
type restartHistory struct {
	policy   RestartPolicy
	failures map[string][]time.Time
}

func newRestartHistory(p RestartPolicy) *restartHistory {
	return &restartHistory{policy: p, failures: make(map[string][]time.Time)}
}

// Fail records a failure of name at now and returns the delay before the
// restart, or giveUp when the child failed too often within the window.
func (h *restartHistory) Fail(name string, now time.Time) (delay time.Duration, giveUp bool) {
	recent := h.failures[name][:0]
	for _, t := range h.failures[name] {
		if now.Sub(t) < h.policy.Window {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	h.failures[name] = recent
	n := len(recent)
	if n > h.policy.MaxRestarts {
		delete(h.failures, name)
		return 0, true
	}
	delay = h.policy.Initial
	for i := 1; i < n && delay < h.policy.Max; i++ {
		delay *= 2
	}
	return min(delay, h.policy.Max), false
}
