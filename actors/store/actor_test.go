package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
)

const deadline = 10 * time.Second

// --- The actor in an actor system, with a probe as its router -----------

// send asks the probe to send msgs to to, in order, as itself (so replies
// come back to it); it then reports on harness.sent.
type send struct {
	to   *actor.PID
	msgs []any
}

// gate pauses the store inside its next commit until release is closed.
type gate struct {
	paused  chan struct{}
	release chan struct{}
}

type harness struct {
	t       *testing.T
	sys     *actor.ActorSystem
	db      *persist.DB
	mesh    *metrics.Mesh
	store   *actor.PID
	probe   *actor.PID
	got     chan any // what the probe received: StoredFrames, Drained, Persisted
	sent    chan struct{}
	commits atomic.Int64
	gate    atomic.Pointer[gate]
	lim     Limits
	logs    syncBuffer // what the store logged
	clk     *clock.Manual
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newHarness opens a database, lets fill write to it through a Queue of
// its own, then starts the store actor on it.
func newHarness(t *testing.T, lim Limits, fill func(q *Queue)) *harness {
	t.Helper()
	db, err := persist.Open(filepath.Join(t.TempDir(), "qpc.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fill != nil {
		q, err := NewQueue(db.DB, lim)
		if err != nil {
			t.Fatal(err)
		}
		fill(q)
	}
	h := &harness{
		t: t, db: db, mesh: metrics.New(metrics.Options{}).Mesh,
		got: make(chan any, 1024), sent: make(chan struct{}, 16),
		sys: actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) })),
	}
	h.probe = h.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *send:
			for _, msg := range m.msgs {
				ctx.Request(m.to, msg)
			}
			h.sent <- struct{}{}
		case *messages.StoredFrames, *messages.Drained, *messages.Persisted:
			h.got <- m
		}
	}))
	h.lim = lim
	h.clk = clock.NewManual(t0)
	h.store = h.spawn()
	t.Cleanup(func() {
		h.sys.Root.StopFuture(h.store).Wait()
		h.sys.Root.StopFuture(h.probe).Wait()
		h.sys.Shutdown()
		h.db.Close()
	})
	return h
}

// spawn starts a store actor on h.db.
func (h *harness) spawn() *actor.PID {
	return h.sys.Root.Spawn(withFault(New(Config{
		DB: h.db, Limits: h.lim, GCInterval: time.Hour, Router: h.probe,
		Clock: h.clk, Metrics: h.mesh, Log: slog.New(slog.NewTextHandler(&h.logs, nil)),
		OnCommit: func() {
			h.commits.Add(1)
			if g := h.gate.Swap(nil); g != nil {
				g.paused <- struct{}{}
				select {
				case <-g.release:
				case <-time.After(deadline):
				}
			}
		},
	})))
}

// storeFault, sent to the harness's store, makes it panic (its
// supervisor, the root, restarts it).
type storeFault struct{}

func withFault(p *actor.Props) *actor.Props {
	return p.Configure(actor.WithReceiverMiddleware(func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			if _, ok := env.Message.(*storeFault); ok {
				panic("test fault")
			}
			next(c, env)
		}
	}))
}

// A store that panics mid-traffic keeps what it had accepted and not yet
// written (the failing instance writes it), and the drain it was in goes
// on in the next instance: every frame is handed back once, in order.
func TestActorRestartKeepsQueueAndDrain(t *testing.T) {
	d := dest(4)
	h := newHarness(t, Limits{PerDest: 2000}, fillN(t, d, 600))
	h.whileBusy(func() {
		msgs := []any{&messages.RouteUp{Dest: d}}
		for i := 600; i < 700; i++ {
			it := numbered(d, i)
			msgs = append(msgs, &messages.StoreFrame{Dest: d, ID: it.ID, Frame: it.Frame, Expiry: it.Expiry})
		}
		h.fromProbe(append(msgs, &storeFault{})...)
	})
	all := h.batchesOf(d, 700)
	if got := slices.Concat(all...); !slices.Equal(got, seq(0, 700)) {
		t.Fatalf("frames out of order, missing or repeated across the restart: batches %v", sizes(all))
	}
	h.quiet(d)
	if got := testutil.ToFloat64(h.mesh.Stored); got != 701 {
		t.Fatalf("Stored %v after the restart, want 701", got)
	}
}

// fromProbe has the probe send msgs to the store in one go, and waits
// until it has.
func (h *harness) fromProbe(msgs ...any) {
	h.t.Helper()
	h.sys.Root.Send(h.probe, &send{to: h.store, msgs: msgs})
	select {
	case <-h.sent:
	case <-time.After(deadline):
		h.t.Fatal("the probe did not send")
	}
}

// whileBusy holds the store inside a commit (of a frame for a
// destination no test reads) while f runs, so that what f sends is all in
// the store's mailbox when it goes on: the order is the test's, not the
// scheduler's.
func (h *harness) whileBusy(f func()) {
	h.t.Helper()
	g := &gate{paused: make(chan struct{}, 1), release: make(chan struct{})}
	h.gate.Store(g)
	h.sys.Root.Send(h.store, &messages.StoreFrame{Dest: dest(0xff), ID: fid(0xffff), Frame: []byte("x"), Expiry: sec(3600)})
	select {
	case <-g.paused:
	case <-time.After(deadline):
		h.t.Fatal("the store did not commit")
	}
	defer close(g.release)
	f()
}

func (h *harness) next() any {
	h.t.Helper()
	select {
	case m := <-h.got:
		return m
	case <-time.After(deadline):
		h.t.Fatal("nothing from the store before the deadline")
		return nil
	}
}

// batch reads one StoredFrames for d and returns its frames' numbers.
func (h *harness) batch(m any, d [16]byte) []int {
	h.t.Helper()
	sf, ok := m.(*messages.StoredFrames)
	if !ok {
		h.t.Fatalf("got %T, want *messages.StoredFrames", m)
	}
	if sf.Dest != d {
		h.t.Fatalf("frames for %x, want %x", sf.Dest, d)
	}
	var b []int
	for _, f := range sf.Frames {
		var i int
		if _, err := fmt.Sscanf(string(f), "frame %d", &i); err != nil {
			h.t.Fatalf("frame %q: %v", f, err)
		}
		b = append(b, i)
	}
	return b
}

// batchesUntilDrained reads StoredFrames for d until a *messages.Drained
// comes.
func (h *harness) batchesUntilDrained(d [16]byte) [][]int {
	h.t.Helper()
	var out [][]int
	for {
		m := h.next()
		if _, ok := m.(*messages.Drained); ok {
			return out
		}
		out = append(out, h.batch(m, d))
	}
}

// batchesOf reads StoredFrames for d until they carried n frames.
func (h *harness) batchesOf(d [16]byte, n int) [][]int {
	h.t.Helper()
	var out [][]int
	for got := 0; got < n; {
		b := h.batch(h.next(), d)
		out = append(out, b)
		got += len(b)
	}
	return out
}

// quiet checks that the store has nothing more to send: a Drain asked now
// (by the probe, so its answer queues behind anything the store sent it)
// comes back with no StoredFrames before it.
func (h *harness) quiet(d [16]byte) {
	h.t.Helper()
	h.fromProbe(&messages.Drain{})
	if b := h.batchesUntilDrained(d); len(b) != 0 {
		h.t.Fatalf("more batches after the last pass: %v", sizes(b))
	}
}

func numbered(d [16]byte, i int) Item {
	return Item{Dest: d, ID: [16]byte{0xa0, byte(i), byte(i >> 8)}, Frame: fmt.Appendf(nil, "frame %d", i), Expiry: sec(3600)}
}

func fillN(t *testing.T, d [16]byte, n int) func(*Queue) {
	return func(q *Queue) {
		var puts []Item
		for i := range n {
			puts = append(puts, numbered(d, i))
		}
		if res, err := q.Apply(puts, nil, t0); err != nil || res.Stored != n {
			t.Fatalf("fill: %d stored, %v", res.Stored, err)
		}
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func sizes(bs [][]int) []int {
	var out []int
	for _, b := range bs {
		out = append(out, len(b))
	}
	return out
}

// Regression: a RouteUp handed back only the first 256 frames held for a
// peer, and the rest waited for its next announce.
func TestActorRouteUpHandsBackEverythingInBatches(t *testing.T) {
	d := dest(1)
	h := newHarness(t, Limits{PerDest: 2000}, fillN(t, d, 1000))
	// RouteUp and then Drain, both in the mailbox before the store looks:
	// the Drain is answered between the first batch and the second, so the
	// drain does not hold the actor.
	h.whileBusy(func() { h.fromProbe(&messages.RouteUp{Dest: d}, &messages.Drain{}) })
	first := h.batchesUntilDrained(d)
	if len(first) != 1 || len(first[0]) != drainBatch {
		t.Fatalf("before the Drain answer: batches of %v, want one of %d", sizes(first), drainBatch)
	}
	all := append(first, h.batchesOf(d, 1000-drainBatch)...)
	if want := []int{256, 256, 256, 232}; !slices.Equal(sizes(all), want) {
		t.Fatalf("batches of %v, want %v", sizes(all), want)
	}
	if got := slices.Concat(all...); !slices.Equal(got, seq(0, 1000)) {
		t.Fatalf("frames out of order, missing or repeated: %v", got)
	}
	h.quiet(d)
	// Handing back deletes nothing: only receipts do (the one more is
	// whileBusy's).
	if got := testutil.ToFloat64(h.mesh.Stored); got != 1001 {
		t.Fatalf("Stored %v after the drain, want 1001", got)
	}
}

// A RouteUp during a pass starts no second pass alongside it; one more
// pass runs after it, and frames stored meanwhile go out in both.
func TestActorRouteUpDuringADrainRunsOneMorePass(t *testing.T) {
	d := dest(1)
	h := newHarness(t, Limits{PerDest: 2000}, fillN(t, d, 600))
	late := numbered(d, 600)
	h.whileBusy(func() {
		h.fromProbe(&messages.RouteUp{Dest: d},
			&messages.StoreFrame{Dest: late.Dest, ID: late.ID, Frame: late.Frame, Expiry: late.Expiry},
			&messages.RouteUp{Dest: d}, &messages.RouteUp{Dest: d})
	})
	all := h.batchesOf(d, 2*601)
	h.quiet(d)
	if want := []int{256, 256, 89, 256, 256, 89}; !slices.Equal(sizes(all), want) {
		t.Fatalf("batches of %v, want %v (two passes, one after the other)", sizes(all), want)
	}
	pass := seq(0, 601)
	if got := slices.Concat(all...); !slices.Equal(got, slices.Concat(pass, pass)) {
		t.Fatalf("two passes of 0..600 in order, got %v", got)
	}
}

// 300 StoreFrames in a burst are written in a few transactions, not 300.
func TestActorGroupCommitsABurst(t *testing.T) {
	h := newHarness(t, Limits{PerDest: 1000}, nil)
	d := dest(2)
	// Whatever the scheduler does, the burst lands while the store is
	// inside its first commit (in the worst case, of the first frame).
	first := numbered(d, 0)
	g := &gate{paused: make(chan struct{}, 1), release: make(chan struct{})}
	h.gate.Store(g)
	h.sys.Root.Send(h.store, &messages.StoreFrame{Dest: d, ID: first.ID, Frame: first.Frame, Expiry: first.Expiry})
	select {
	case <-g.paused:
	case <-time.After(deadline):
		t.Fatal("the store did not commit")
	}
	for i := 1; i < 300; i++ {
		it := numbered(d, i)
		h.sys.Root.Send(h.store, &messages.StoreFrame{Dest: d, ID: it.ID, Frame: it.Frame, Expiry: it.Expiry})
	}
	close(g.release)
	if _, err := h.sys.Root.RequestFuture(h.store, &messages.Drain{}, deadline).Result(); err != nil {
		t.Fatal(err)
	}
	// One commit paused on the first frames; after it at most one at 256
	// pending and two flush messages.
	if n := h.commits.Load(); n > 4 {
		t.Fatalf("%d transactions for 300 frames, want at most 4", n)
	}
	if got := testutil.ToFloat64(h.mesh.StoreEvents.WithLabelValues("put")); got != 300 {
		t.Fatalf("put %v, want 300", got)
	}
	if got := testutil.ToFloat64(h.mesh.Stored); got != 300 {
		t.Fatalf("Stored %v, want 300", got)
	}
}

// A receipt right behind its frame removes it, batched or not.
func TestActorAckRightAfterPutRemovesIt(t *testing.T) {
	h := newHarness(t, Limits{}, nil)
	it := numbered(dest(3), 1)
	h.sys.Root.Send(h.store, &messages.StoreFrame{Dest: it.Dest, ID: it.ID, Frame: it.Frame, Expiry: it.Expiry})
	h.sys.Root.Send(h.store, &messages.StoreAck{ID: it.ID, Dest: it.Dest})
	if _, err := h.sys.Root.RequestFuture(h.store, &messages.Drain{}, deadline).Result(); err != nil {
		t.Fatal(err)
	}
	ev := h.mesh.StoreEvents
	if testutil.ToFloat64(h.mesh.Stored) != 0 || testutil.ToFloat64(ev.WithLabelValues("put")) != 1 || testutil.ToFloat64(ev.WithLabelValues("delivered")) != 1 {
		t.Fatalf("Stored %v put %v delivered %v; want 0 1 1", testutil.ToFloat64(h.mesh.Stored),
			testutil.ToFloat64(ev.WithLabelValues("put")), testutil.ToFloat64(ev.WithLabelValues("delivered")))
	}
}

// --- The actor's Receive against a mailbox the test runs by hand --------

// mailbox is a FIFO mailbox run one message at a time: it is the actor's
// context for each message, keeps what the actor sends itself, and records
// what it sends elsewhere. Nothing is left to a scheduler, so a test can
// stop between any two messages. Methods the store does not use panic
// (the embedded Context is nil).
type mailbox struct {
	actor.Context
	self, router *actor.PID
	queue        []any
	msg          any
	out          []any // sent to others or responded
}

func (b *mailbox) Message() any                    { return b.msg }
func (b *mailbox) Self() *actor.PID                { return b.self }
func (b *mailbox) ActorSystem() *actor.ActorSystem { return nil }
func (b *mailbox) Respond(m any)                   { b.out = append(b.out, m) }
func (b *mailbox) Send(pid *actor.PID, m any) {
	if pid == b.self {
		b.queue = append(b.queue, m)
	} else {
		b.out = append(b.out, m)
	}
}

type manual struct {
	t       *testing.T
	a       *storeActor
	b       *mailbox
	mesh    *metrics.Mesh
	commits int
}

func newManual(t *testing.T) *manual {
	db, err := persist.Open(filepath.Join(t.TempDir(), "qpc.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m := &manual{t: t, mesh: metrics.New(metrics.Options{}).Mesh,
		b: &mailbox{self: actor.NewPID("test", "store"), router: actor.NewPID("test", "router")}}
	m.a = &storeActor{cfg: Config{
		DB: db, GCInterval: time.Hour, Router: m.b.router, Clock: clock.NewManual(t0),
		Limits: Limits{PerDest: 1000}, Metrics: m.mesh, Log: slog.New(slog.DiscardHandler),
		OnCommit: func() { m.commits++ },
	}}
	m.post(&actor.Started{})
	m.step()
	return m
}

func (m *manual) post(msgs ...any) { m.b.queue = append(m.b.queue, msgs...) }

// step delivers the next message.
func (m *manual) step() {
	m.t.Helper()
	if len(m.b.queue) == 0 {
		m.t.Fatal("mailbox empty")
	}
	m.b.msg, m.b.queue = m.b.queue[0], m.b.queue[1:]
	m.a.Receive(m.b)
}

func (m *manual) run() {
	for len(m.b.queue) > 0 {
		m.step()
	}
}

func frameMsg(i int) *messages.StoreFrame {
	it := numbered(dest(4), i)
	return &messages.StoreFrame{Dest: it.Dest, ID: it.ID, Frame: it.Frame, Expiry: it.Expiry}
}

// 300 frames queued at once: written when 256 wait and at the flush that
// the first one posted behind them — two transactions.
func TestReceiveGroupCommitPoints(t *testing.T) {
	m := newManual(t)
	for i := range 300 {
		m.post(frameMsg(i))
	}
	m.run()
	if m.commits != 2 || m.a.q.Len() != 300 {
		t.Fatalf("%d commits, %d held; want 2 and 300", m.commits, m.a.q.Len())
	}
	// Frames and acks together, one flush.
	m.post(&messages.StoreAck{ID: frameMsg(0).ID, Dest: dest(4)}, frameMsg(300), &messages.StoreAck{ID: frameMsg(300).ID, Dest: dest(4)})
	m.run()
	if m.commits != 3 || m.a.q.Len() != 299 || testutil.ToFloat64(m.mesh.StoreEvents.WithLabelValues("delivered")) != 2 {
		t.Fatalf("%d commits, %d held", m.commits, m.a.q.Len())
	}
}

func TestReceiveDrainAndPersistFlushPending(t *testing.T) {
	for _, tc := range []struct {
		msg  any
		want any
	}{
		{&messages.Drain{}, &messages.Drained{Actor: Name}},
		{&messages.Persist{}, &messages.Persisted{Actor: Name}},
	} {
		t.Run(fmt.Sprintf("%T", tc.msg), func(t *testing.T) {
			m := newManual(t)
			m.post(frameMsg(1), frameMsg(2), tc.msg)
			m.step()
			m.step()
			if m.a.q.Len() != 0 || m.commits != 0 {
				t.Fatal("written before the flush")
			}
			m.step() // the Drain or Persist; the flush is still queued behind it
			if m.a.q.Len() != 2 || m.commits != 1 || testutil.ToFloat64(m.mesh.Stored) != 2 {
				t.Fatalf("after %T: %d held, %d commits", tc.msg, m.a.q.Len(), m.commits)
			}
			if len(m.b.out) != 1 || fmt.Sprint(m.b.out[0]) != fmt.Sprint(tc.want) {
				t.Fatalf("answered %v, want %v", m.b.out, tc.want)
			}
			if _, ok := m.b.queue[0].(*flush); !ok || len(m.b.queue) != 1 {
				t.Fatalf("mailbox %v, want the flush", m.b.queue)
			}
			m.run() // the flush finds nothing to write
			if m.commits != 1 {
				t.Fatalf("%d commits", m.commits)
			}
		})
	}
}

// Stopping (no Drain first) still writes what was accepted.
func TestReceiveStoppingFlushesPending(t *testing.T) {
	m := newManual(t)
	m.post(frameMsg(1), &actor.Stopping{})
	m.step()
	m.step()
	if m.a.q.Len() != 1 {
		t.Fatalf("%d held after Stopping", m.a.q.Len())
	}
}

// A RouteUp reads the queue only after writing what is pending, so frames
// accepted just before it are handed back and frames acked just before it
// are not.
func TestReceiveRouteUpSeesWhatWasAccepted(t *testing.T) {
	m := newManual(t)
	m.post(frameMsg(1), frameMsg(2), &messages.StoreAck{ID: frameMsg(1).ID, Dest: dest(4)}, &messages.RouteUp{Dest: dest(4)})
	m.run()
	if len(m.b.out) != 1 {
		t.Fatalf("sent %v", m.b.out)
	}
	sf := m.b.out[0].(*messages.StoredFrames)
	if len(sf.Frames) != 1 || string(sf.Frames[0]) != "frame 2" {
		t.Fatalf("handed back %q", sf.Frames)
	}
	// Nothing held for a destination: nothing read, nothing sent, no pass.
	m.post(&messages.RouteUp{Dest: dest(5)})
	m.run()
	if len(m.b.out) != 1 || len(m.a.drains.running) != 0 {
		t.Fatalf("sent %v, passes %v", m.b.out, m.a.drains.running)
	}
}

// --- drains alone -----------------------------------------------------------

func TestDrainsOnePassAtATime(t *testing.T) {
	var d drains
	a, b := dest(1), dest(2)
	key := []byte("cursor")
	if !d.start(a) || d.start(a) || !d.start(b) {
		t.Fatal("start: a new pass for each destination, none while one runs")
	}
	d.start(a) // a second RouteUp during the pass: still one more pass
	if after, more := d.next(a, key); !more || string(after) != "cursor" {
		t.Fatal("a pass goes on while the cursor does")
	}
	if after, more := d.next(a, nil); !more || after != nil {
		t.Fatal("a RouteUp during the pass: one more from the start")
	}
	if _, more := d.next(a, nil); more {
		t.Fatal("the extra pass is the last")
	}
	if !d.start(a) {
		t.Fatal("a RouteUp after the pass starts a new one")
	}
	if _, more := d.next(b, nil); more {
		t.Fatal("b ended")
	}
	d.stop(a)
	if len(d.running) != 0 {
		t.Fatalf("running %v", d.running)
	}
	// A continuation after a restart (state lost) resumes the pass.
	d.resume(a)
	if after, more := d.next(a, key); !more || after == nil {
		t.Fatal("resumed pass does not go on")
	}
}
