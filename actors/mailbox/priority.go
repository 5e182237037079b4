package mailbox

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/messages"
)

// Priority orders messages for sending and shedding: Control > Data > Bulk.
// It is defined in messages, next to the frames that carry it.
type Priority = messages.Priority

// Priorities, lowest first.
const (
	Bulk    = messages.Bulk
	Data    = messages.Data
	Control = messages.Control

	numPriorities = int(Control) + 1
)

// clamp maps values above Control to Control.
func clamp(p Priority) Priority {
	if p > Control {
		return Control
	}
	return p
}

// Prioritized is implemented by messages that may be shed. Messages that do
// not implement it are never shed.
type Prioritized interface {
	Priority() Priority
}

// Credited is implemented by messages that may hold credit of where they
// came from (a frame from a link with flow control): one that does is
// bounded there, so the mailbox queues it without a priority and never
// sheds it.
type Credited interface {
	Credited() bool
}

// Sized is implemented by messages that count towards Options.MaxBytes with
// their size in bytes (for a frame: its encoded length). A message that does
// not implement it counts zero bytes; negative sizes count as zero.
type Sized interface {
	Size() int
}

// classify finds what the policy needs to know about a user message: its
// priority (ok is false for messages without one) and its size. A message
// inside an *actor.MessageEnvelope is classified by the message it carries.
func classify(msg any) (p Priority, ok bool, size int) {
	inner := msg
	if env, isEnv := msg.(*actor.MessageEnvelope); isEnv && env != nil {
		inner = env.Message
	}
	if s, isSized := inner.(Sized); isSized {
		size = max(s.Size(), 0)
	}
	if c, ok := inner.(Credited); ok && c.Credited() {
		return 0, false, size
	}
	if pm, isPrio := inner.(Prioritized); isPrio {
		return clamp(pm.Priority()), true, size
	}
	return 0, false, size
}

// unwrap returns the message an envelope carries, for OnShed.
func unwrap(msg any) any {
	if env, ok := msg.(*actor.MessageEnvelope); ok && env != nil {
		return env.Message
	}
	return msg
}
