package mailbox

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// DefaultMaxMessages is the count bound when Options.MaxMessages is 0.
const DefaultMaxMessages = 1024

// Options configure PriorityShedding.
type Options struct {
	// MaxMessages bounds the number of queued user messages; 0 means
	// DefaultMaxMessages. Messages without a priority may exceed it.
	MaxMessages int
	// MaxBytes, if > 0, bounds the sum of Size() of the queued messages.
	MaxBytes int
	// OnShed, if set, is called once for every shed message, with the
	// message as sent (unwrapped from its *actor.MessageEnvelope) and its
	// priority. It runs on the sender's goroutine, after the mailbox lock is
	// released, and must be quick: count it in a metric, don't block.
	OnShed func(msg any, p Priority)
	// Depth, if set, is kept equal to the number of queued user messages,
	// summed over every mailbox the producer makes (for example, one gauge
	// per transport). A mailbox reads its own depth with UserMessageCount.
	Depth *atomic.Int64
	// Middlewares are protoactor mailbox middlewares, called as the default
	// mailbox calls them. A shed message gets MessagePosted but never
	// MessageReceived.
	Middlewares []actor.MailboxMiddleware
}

// PriorityShedding returns a protoactor mailbox producer for the policy
// described in the package documentation:
//
//	props := actor.PropsFromProducer(newLink,
//		actor.WithMailbox(mailbox.PriorityShedding(mailbox.Options{
//			MaxMessages: 256, MaxBytes: 256 << 10,
//			OnShed: func(_ any, p mailbox.Priority) { shed.WithLabelValues("quic", p.String()).Inc() },
//		})))
func PriorityShedding(opts Options) actor.MailboxProducer {
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = DefaultMaxMessages
	}
	return func() actor.Mailbox {
		return &priorityMailbox{opts: opts, user: NewQueue(opts.MaxMessages, opts.MaxBytes)}
	}
}

// Scheduler states, as in protoactor's default mailbox.
const (
	idle int32 = iota
	running
)

// priorityMailbox implements actor.Mailbox. Any number of goroutines post;
// one at a time (the one the dispatcher runs processMessages on) takes.
//
// The scheduling protocol is protoactor's: a poster that changes the queue
// then tries to move status from idle to running and, if it wins, schedules
// processMessages. processMessages drains, sets idle, and re-checks the
// counters, so a message posted while it was finishing is not stranded.
type priorityMailbox struct {
	opts Options

	mu   sync.Mutex // guards user and sys
	user *Queue
	sys  ring[any]

	// Mirrors of the queue lengths, readable without mu. Updated while
	// holding mu, before the poster tries to schedule.
	userCount atomic.Int32
	sysCount  atomic.Int32
	status    atomic.Int32
	suspended atomic.Bool

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
}

var _ actor.Mailbox = (*priorityMailbox)(nil)

// PostUserMessage queues msg, or sheds it or lower-priority messages to
// stay within bounds. A MessageBatch is unpacked as the default mailbox
// unpacks it: each of its messages is posted, then the batch itself.
func (m *priorityMailbox) PostUserMessage(msg any) {
	if batch, ok := msg.(actor.MessageBatch); ok {
		for _, inner := range batch.GetMessages() {
			m.PostUserMessage(inner)
		}
	}
	if env, ok := msg.(*actor.MessageEnvelope); ok && env != nil {
		if batch, ok := env.Message.(actor.MessageBatch); ok {
			for _, inner := range batch.GetMessages() {
				m.PostUserMessage(inner)
			}
		}
	}
	for _, mw := range m.opts.Middlewares {
		mw.MessagePosted(msg)
	}

	p, prioritized, size := classify(msg)
	queued, shed := true, []Shed(nil)
	m.mu.Lock()
	before := m.user.Len()
	if prioritized {
		queued, shed = m.user.Push(msg, p, size)
	} else {
		m.user.PushExempt(msg, size)
	}
	delta := m.user.Len() - before
	m.userCount.Add(int32(delta))
	m.mu.Unlock()

	if m.opts.Depth != nil && delta != 0 {
		m.opts.Depth.Add(int64(delta))
	}
	if m.opts.OnShed != nil {
		for _, s := range shed {
			m.opts.OnShed(unwrap(s.Msg), s.Priority)
		}
	}
	if queued {
		m.schedule()
	}
}

// PostSystemMessage queues a system message; these are never bounded.
func (m *priorityMailbox) PostSystemMessage(msg any) {
	for _, mw := range m.opts.Middlewares {
		mw.MessagePosted(msg)
	}
	m.mu.Lock()
	m.sys.pushBack(msg)
	m.sysCount.Add(1)
	m.mu.Unlock()
	m.schedule()
}

// RegisterHandlers is called once by the actor system before Start.
func (m *priorityMailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker = invoker
	m.dispatcher = dispatcher
}

// Start tells the middlewares; scheduling starts with the first post.
func (m *priorityMailbox) Start() {
	for _, mw := range m.opts.Middlewares {
		mw.MailboxStarted()
	}
}

// UserMessageCount is the number of queued user messages (the depth).
func (m *priorityMailbox) UserMessageCount() int { return int(m.userCount.Load()) }

func (m *priorityMailbox) schedule() {
	if m.status.CompareAndSwap(idle, running) {
		m.dispatcher.Schedule(m.processMessages)
	}
}

func (m *priorityMailbox) processMessages() {
	for {
		m.run()
		m.status.Store(idle)
		// A post may have come in after run saw empty queues but before
		// status was idle (so its schedule() lost the race): look again.
		sys, user := m.sysCount.Load(), m.userCount.Load()
		if sys == 0 && (user == 0 || m.suspended.Load()) {
			break
		}
		if !m.status.CompareAndSwap(idle, running) {
			return // a poster scheduled a new run; it will do the work
		}
	}
	if m.userCount.Load() == 0 && !m.suspended.Load() {
		for _, mw := range m.opts.Middlewares {
			mw.MailboxEmpty()
		}
	}
}

// run delivers messages until both queues are empty, or the mailbox is
// suspended and no system message is left. System messages go first. A
// panic in the actor is handed to the invoker (which suspends the mailbox
// and escalates to the supervisor), as the default mailbox does.
func (m *priorityMailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()

	throughput := m.dispatcher.Throughput()
	for i := 0; ; i++ {
		if throughput > 0 && i >= throughput {
			i = 0
			runtime.Gosched() // let other actors on this dispatcher run
		}

		var ok bool
		if msg, ok = m.popSystem(); ok {
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.Store(true)
			case *actor.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			for _, mw := range m.opts.Middlewares {
				mw.MessageReceived(msg)
			}
			continue
		}
		if m.suspended.Load() {
			return
		}
		if msg, ok = m.popUser(); !ok {
			return
		}
		m.invoker.InvokeUserMessage(msg)
		for _, mw := range m.opts.Middlewares {
			mw.MessageReceived(msg)
		}
	}
}

func (m *priorityMailbox) popSystem() (any, bool) {
	if m.sysCount.Load() == 0 {
		return nil, false
	}
	m.mu.Lock()
	msg, ok := m.sys.popFront()
	if ok {
		m.sysCount.Add(-1)
	}
	m.mu.Unlock()
	return msg, ok
}

func (m *priorityMailbox) popUser() (any, bool) {
	m.mu.Lock()
	msg, ok := m.user.Pop()
	if ok {
		m.userCount.Add(-1)
	}
	m.mu.Unlock()
	if ok && m.opts.Depth != nil {
		m.opts.Depth.Add(-1)
	}
	return msg, ok
}
