package mailbox

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// frame is a test message with a priority and a size.
type frame struct {
	id   int
	p    Priority
	size int
}

func (f *frame) Priority() Priority { return f.p }
func (f *frame) Size() int          { return f.size }

// marker is a test message without a priority: never shed.
type marker struct{ name string }

// --- The mailbox alone, against a recording invoker ---------------------

// recorder is a MessageInvoker that records what it is given. panicOn makes
// InvokeUserMessage panic for that message; escalate is what the real
// actor context does on a failure: suspend the mailbox.
type recorder struct {
	mu        sync.Mutex
	user      []any
	sys       []any
	failures  []any
	panicOn   any
	mailbox   actor.Mailbox
	escalated chan struct{}
}

func (r *recorder) InvokeSystemMessage(m any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sys = append(r.sys, m)
}

func (r *recorder) InvokeUserMessage(m any) {
	if m == r.panicOn {
		panic("boom")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.user = append(r.user, m)
}

func (r *recorder) EscalateFailure(reason any, m any) {
	r.mu.Lock()
	r.failures = append(r.failures, reason, m)
	r.mu.Unlock()
	r.mailbox.PostSystemMessage(&actor.SuspendMailbox{})
}

func (r *recorder) users() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.user)
}

func ids(ms []any) []string {
	var out []string
	for _, m := range ms {
		switch m := m.(type) {
		case *frame:
			out = append(out, fmt.Sprintf("%s%d", m.p.String()[:1], m.id))
		case *marker:
			out = append(out, m.name)
		default:
			out = append(out, fmt.Sprintf("%T", m))
		}
	}
	return out
}

// newInline makes a mailbox on a synchronized dispatcher: posting runs the
// mailbox on the poster's goroutine, so the test sees every step in order.
func newInline(t *testing.T, opts Options) (actor.Mailbox, *recorder) {
	t.Helper()
	mb := PriorityShedding(opts)()
	r := &recorder{mailbox: mb}
	mb.RegisterHandlers(r, actor.NewSynchronizedDispatcher(300))
	mb.Start()
	return mb, r
}

func TestMailboxSuspendedQueueDeliversByPriorityOnResume(t *testing.T) {
	var depth atomic.Int64
	var shedMu sync.Mutex
	var shed []string
	mb, r := newInline(t, Options{
		MaxMessages: 4,
		Depth:       &depth,
		OnShed: func(m any, p Priority) {
			shedMu.Lock()
			defer shedMu.Unlock()
			shed = append(shed, ids([]any{m})...)
		},
	})

	mb.PostSystemMessage(&actor.SuspendMailbox{})
	mb.PostUserMessage(&frame{1, Bulk, 0})
	mb.PostUserMessage(&frame{2, Data, 0})
	mb.PostUserMessage(&frame{3, Bulk, 0})
	mb.PostUserMessage(&frame{4, Data, 0})
	mb.PostUserMessage(&frame{5, Control, 0}) // sheds b3
	mb.PostUserMessage(&frame{6, Bulk, 0})    // shed itself
	mb.PostUserMessage(&marker{"pill"})       // exempt: in, past the bound
	mb.PostUserMessage(&frame{7, Control, 0}) // after the barrier: the bound counts b1 d2 d4 c5, so sheds b1

	if got := r.users(); len(got) != 0 {
		t.Fatalf("suspended mailbox delivered %v", ids(got))
	}
	if n := mb.UserMessageCount(); n != 5 || depth.Load() != 5 {
		t.Fatalf("depth %d, gauge %d, want 5", n, depth.Load())
	}
	if want := []string{"b3", "b6", "b1"}; !slices.Equal(shed, want) {
		t.Fatalf("shed %v, want %v", shed, want)
	}

	mb.PostSystemMessage(&actor.ResumeMailbox{})
	want := []string{"c5", "d2", "d4", "pill", "c7"}
	if got := ids(r.users()); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if n := mb.UserMessageCount(); n != 0 || depth.Load() != 0 {
		t.Fatalf("depth %d, gauge %d after draining", n, depth.Load())
	}
	// Suspend and Resume are the mailbox's own; other system messages reach
	// the invoker.
	mb.PostSystemMessage(&actor.Watch{})
	if len(r.sys) != 1 {
		t.Fatalf("system messages delivered: %v", r.sys)
	}
}

func TestMailboxClassifiesEnvelopes(t *testing.T) {
	var shedMsgs []any
	mb, r := newInline(t, Options{MaxMessages: 1, OnShed: func(m any, p Priority) { shedMsgs = append(shedMsgs, m) }})
	mb.PostSystemMessage(&actor.SuspendMailbox{})
	bulk := &frame{1, Bulk, 0}
	mb.PostUserMessage(&actor.MessageEnvelope{Message: bulk})
	mb.PostUserMessage(&actor.MessageEnvelope{Message: &frame{2, Control, 0}})
	if len(shedMsgs) != 1 || shedMsgs[0] != bulk {
		t.Fatalf("OnShed got %v, want the bulk frame unwrapped", shedMsgs)
	}
	mb.PostSystemMessage(&actor.ResumeMailbox{})
	if got := r.users(); len(got) != 1 || got[0].(*actor.MessageEnvelope).Message.(*frame).id != 2 {
		t.Fatalf("delivered %v", got)
	}
}

func TestMailboxByteBound(t *testing.T) {
	var shedBytes int
	mb, r := newInline(t, Options{MaxMessages: 100, MaxBytes: 1000, OnShed: func(m any, p Priority) { shedBytes += m.(*frame).size }})
	mb.PostSystemMessage(&actor.SuspendMailbox{})
	for i := range 10 {
		mb.PostUserMessage(&frame{i, Bulk, 300})
	}
	// Three fit (900 bytes); the other seven are shed.
	if mb.UserMessageCount() != 3 || shedBytes != 7*300 {
		t.Fatalf("depth %d, shed %d bytes", mb.UserMessageCount(), shedBytes)
	}
	mb.PostUserMessage(&frame{99, Data, 700}) // needs 600 bytes more: sheds b2 and b1
	mb.PostSystemMessage(&actor.ResumeMailbox{})
	if got := ids(r.users()); !slices.Equal(got, []string{"d99", "b0"}) {
		t.Fatalf("delivered %v", got)
	}
}

func TestMailboxPanicEscalatesAndSuspends(t *testing.T) {
	mb, r := newInline(t, Options{MaxMessages: 10})
	bad := &frame{2, Data, 0}
	r.panicOn = bad
	mb.PostSystemMessage(&actor.SuspendMailbox{})
	mb.PostUserMessage(&frame{1, Control, 0})
	mb.PostUserMessage(bad)
	mb.PostUserMessage(&frame{3, Bulk, 0})
	mb.PostSystemMessage(&actor.ResumeMailbox{})

	if len(r.failures) != 2 || r.failures[0] != "boom" || r.failures[1] != bad {
		t.Fatalf("EscalateFailure got %v", r.failures)
	}
	// The invoker suspended the mailbox: b3 waits for the supervisor.
	if got := ids(r.users()); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("delivered %v before resume", got)
	}
	mb.PostSystemMessage(&actor.ResumeMailbox{})
	if got := ids(r.users()); !slices.Equal(got, []string{"c1", "b3"}) {
		t.Fatalf("delivered %v after resume", got)
	}
}

type countingMiddleware struct{ started, posted, received, empty atomic.Int32 }

func (c *countingMiddleware) MailboxStarted()     { c.started.Add(1) }
func (c *countingMiddleware) MessagePosted(any)   { c.posted.Add(1) }
func (c *countingMiddleware) MessageReceived(any) { c.received.Add(1) }
func (c *countingMiddleware) MailboxEmpty()       { c.empty.Add(1) }
func (c *countingMiddleware) load() (a, b, d, e int32) {
	return c.started.Load(), c.posted.Load(), c.received.Load(), c.empty.Load()
}

func TestMailboxMiddlewares(t *testing.T) {
	mw := &countingMiddleware{}
	mb, _ := newInline(t, Options{MaxMessages: 1, Middlewares: []actor.MailboxMiddleware{mw}})
	mb.PostSystemMessage(&actor.SuspendMailbox{})
	mb.PostUserMessage(&frame{1, Data, 0})
	mb.PostUserMessage(&frame{2, Data, 0}) // shed: posted, never received
	mb.PostSystemMessage(&actor.ResumeMailbox{})
	started, posted, received, empty := mw.load()
	if started != 1 || posted != 4 || received != 3 || empty == 0 {
		t.Fatalf("started %d posted %d received %d empty %d", started, posted, received, empty)
	}
}

// TestMailboxConcurrentPosters: many goroutines post while the mailbox runs
// on the goroutine dispatcher; every message is delivered or shed exactly
// once, and the depth never passes the bound. Run with -race.
func TestMailboxConcurrentPosters(t *testing.T) {
	const posters, each, bound = 8, 2000, 32
	var shed atomic.Int64
	var delivered atomic.Int64
	done := make(chan struct{})
	mb := PriorityShedding(Options{MaxMessages: bound, OnShed: func(any, Priority) { shed.Add(1) }})()
	inv := &countInvoker{onUser: func(m any) {
		if _, ok := m.(*marker); ok {
			close(done)
			return
		}
		delivered.Add(1)
	}}
	mb.RegisterHandlers(inv, actor.NewDefaultDispatcher(50))
	mb.Start()

	var wg sync.WaitGroup
	for g := range posters {
		wg.Go(func() {
			for i := range each {
				mb.PostUserMessage(&frame{g*each + i, Priority(i % numPriorities), 0})
				if n := mb.UserMessageCount(); n > bound {
					t.Errorf("depth %d > bound %d", n, bound)
					return
				}
			}
		})
	}
	wg.Wait()
	mb.PostUserMessage(&marker{"end"}) // a barrier: delivered after everything above
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("timeout: delivered %d shed %d", delivered.Load(), shed.Load())
	}
	if got := delivered.Load() + shed.Load(); got != posters*each {
		t.Fatalf("delivered %d + shed %d = %d, want %d", delivered.Load(), shed.Load(), got, posters*each)
	}
}

type countInvoker struct{ onUser func(any) }

func (c *countInvoker) InvokeSystemMessage(any)  {}
func (c *countInvoker) InvokeUserMessage(m any)  { c.onUser(m) }
func (c *countInvoker) EscalateFailure(any, any) {}

// --- In a real actor system ---------------------------------------------

func newSystem(t testing.TB) *actor.ActorSystem {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(sys.Shutdown)
	return sys
}

// slowReader is an actor whose first frame blocks until the test closes
// release: the stand-in for a link whose peer reads slowly. Everything it
// receives goes to got, in order.
type slowReader struct {
	blocked chan struct{} // closed when the first frame is being held
	release chan struct{} // the test closes it to let the reader go
	got     chan any
	stopped chan struct{}
	once    sync.Once
}

func newSlowReader() *slowReader {
	return &slowReader{
		blocked: make(chan struct{}),
		release: make(chan struct{}),
		got:     make(chan any, 100000),
		stopped: make(chan struct{}),
	}
}

func (s *slowReader) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *frame:
		s.once.Do(func() {
			close(s.blocked)
			<-s.release // deliberately blocking, to play a slow link
		})
		s.got <- m
	case *marker:
		s.got <- m
	case *actor.Stopped:
		close(s.stopped)
	}
}

// spawn starts a slowReader with a PriorityShedding mailbox and returns the
// mailbox too, to read its depth.
func spawn(t *testing.T, sys *actor.ActorSystem, s *slowReader, opts Options) (*actor.PID, actor.Mailbox) {
	t.Helper()
	var mb actor.Mailbox
	produce := PriorityShedding(opts)
	props := actor.PropsFromProducer(func() actor.Actor { return s },
		actor.WithMailbox(func() actor.Mailbox { mb = produce(); return mb }))
	return sys.Root.Spawn(props), mb
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timeout waiting for %s", what)
	}
}

func receive(t *testing.T, s *slowReader, n int) []any {
	t.Helper()
	out := make([]any, 0, n)
	deadline := time.After(5 * time.Second)
	for len(out) < n {
		select {
		case m := <-s.got:
			out = append(out, m)
		case <-deadline:
			t.Fatalf("timeout: received %d of %d: %v", len(out), n, ids(out))
		}
	}
	return out
}

func TestSlowReaderFlood(t *testing.T) {
	const bound, flood, controls = 64, 5000, 10
	sys := newSystem(t)
	s := newSlowReader()
	var shed [numPriorities]atomic.Int64
	var depth atomic.Int64
	pid, mb := spawn(t, sys, s, Options{
		MaxMessages: bound,
		Depth:       &depth,
		OnShed:      func(_ any, p Priority) { shed[p].Add(1) },
	})

	sys.Root.Send(pid, &frame{0, Data, 0})
	wait(t, s.blocked, "the reader to take the first frame")

	for i := 1; i <= flood; i++ {
		p := Data
		if i%2 == 0 {
			p = Bulk
		}
		sys.Root.Send(pid, &frame{i, p, 0})
		if n := mb.UserMessageCount(); n > bound || depth.Load() > bound {
			t.Fatalf("after %d sends: depth %d, gauge %d, bound %d", i, n, depth.Load(), bound)
		}
	}
	if n := mb.UserMessageCount(); n != bound {
		t.Fatalf("depth %d after the flood, want %d", n, bound)
	}
	if total := shed[Bulk].Load() + shed[Data].Load(); total != flood-bound {
		t.Fatalf("shed %d, want %d", total, flood-bound)
	}

	// Control still gets in: each sheds the newest queued data frame.
	for i := range controls {
		sys.Root.Send(pid, &frame{flood + 1 + i, Control, 0})
	}
	// A message without a priority gets in past the bound.
	sys.Root.Send(pid, &marker{"end"})
	if n := mb.UserMessageCount(); n != bound+1 {
		t.Fatalf("depth %d, want %d", n, bound+1)
	}
	if shed[Control].Load() != 0 {
		t.Fatalf("shed %d control frames", shed[Control].Load())
	}

	close(s.release)
	got := receive(t, s, 1+bound+1)
	// The held frame, then the controls, then the data that survived, oldest
	// first, then the marker.
	var want []string
	want = append(want, "d0")
	for i := range controls {
		want = append(want, fmt.Sprintf("c%d", flood+1+i))
	}
	for i := 1; len(want) < 1+bound; i += 2 { // the first data frames: 1, 3, 5, ...
		want = append(want, fmt.Sprintf("d%d", i))
	}
	want = append(want, "end")
	if g := ids(got); !slices.Equal(g, want) {
		t.Fatalf("delivered\n%v\nwant\n%v", g, want)
	}
	if sent, seen := 1+flood+controls, len(got)-1+int(shed[Bulk].Load()+shed[Data].Load()); seen != sent {
		t.Fatalf("delivered+shed %d, sent %d", seen, sent)
	}
	if depth.Load() != 0 {
		t.Fatalf("gauge %d after draining", depth.Load())
	}
}

func TestPoisonPillWhenFullStopsTheActor(t *testing.T) {
	const bound = 16
	sys := newSystem(t)
	s := newSlowReader()
	var shed atomic.Int64
	pid, mb := spawn(t, sys, s, Options{MaxMessages: bound, OnShed: func(any, Priority) { shed.Add(1) }})

	sys.Root.Send(pid, &frame{0, Control, 0})
	wait(t, s.blocked, "the reader to take the first frame")
	for i := 1; i <= bound; i++ {
		sys.Root.Send(pid, &frame{i, Control, 0})
	}
	sys.Root.Poison(pid)
	for i := bound + 1; i <= bound+1000; i++ { // all shed: the queue is full of control
		sys.Root.Send(pid, &frame{i, Control, 0})
	}
	if n := mb.UserMessageCount(); n != bound+1 || shed.Load() != 1000 {
		t.Fatalf("depth %d (want %d), shed %d (want 1000)", n, bound+1, shed.Load())
	}

	close(s.release)
	wait(t, s.stopped, "the actor to stop")
	// PoisonPill means "after what was sent before": all of it arrived.
	got := receive(t, s, 1+bound)
	if last := got[len(got)-1].(*frame); last.id != bound {
		t.Fatalf("last frame before stopping was %d", last.id)
	}
	select {
	case m := <-s.got:
		t.Fatalf("received %v after the PoisonPill", ids([]any{m}))
	default:
	}
}

// panicky panics on frame id -1; its supervisor restarts it.
type panicky struct {
	got        chan any
	restarting chan struct{}
}

func (p *panicky) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *frame:
		if m.id < 0 {
			panic("bad frame")
		}
		p.got <- m
	case *actor.Restarting:
		p.restarting <- struct{}{}
	}
}

func TestPanicRestartsAndKeepsDelivering(t *testing.T) {
	sys := newSystem(t)
	p := &panicky{got: make(chan any, 10), restarting: make(chan struct{}, 1)}
	// Spawned at the root, a failure goes to the default strategy: restart.
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return p },
		actor.WithMailbox(PriorityShedding(Options{MaxMessages: 8}))))
	sys.Root.Send(pid, &frame{1, Data, 0})
	sys.Root.Send(pid, &frame{-1, Data, 0})
	sys.Root.Send(pid, &frame{2, Bulk, 0})

	wait(t, p.restarting, "the restart")
	var got []int
	deadline := time.After(5 * time.Second)
	for len(got) < 2 {
		select {
		case m := <-p.got:
			got = append(got, m.(*frame).id)
		case <-deadline:
			t.Fatalf("timeout: received %v", got)
		}
	}
	if !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("received %v, want [1 2]", got)
	}
}

// creditedFrame holds credit of its link: bounded where it comes from.
type creditedFrame struct{ frame }

func (f *creditedFrame) Credited() bool { return true }

// A full mailbox sheds data it can, never a frame that holds link credit.
func TestMailboxNeverShedsCredited(t *testing.T) {
	shed := 0
	mb, r := newInline(t, Options{MaxMessages: 2, OnShed: func(any, Priority) { shed++ }})
	mb.PostSystemMessage(&actor.SuspendMailbox{})
	for i := range 5 {
		mb.PostUserMessage(&creditedFrame{frame{i, Data, 10}})
	}
	mb.PostUserMessage(&frame{7, Data, 10})
	mb.PostUserMessage(&frame{8, Data, 10})
	mb.PostUserMessage(&frame{9, Data, 10})
	if shed != 1 {
		t.Fatalf("shed %d, want 1 (the third plain frame)", shed)
	}
	mb.PostSystemMessage(&actor.ResumeMailbox{})
	if got := len(r.users()); got != 7 {
		t.Fatalf("delivered %d, want the 5 credited and 2 plain frames", got)
	}
}
