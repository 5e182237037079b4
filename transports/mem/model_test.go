package mem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/transporttest"
)

const wait = 5 * time.Second

var t0 = time.Unix(1_000_000, 0)

// modelNet is a network on a manual clock with transports a, b and c
// listening under their names.
type modelNet struct {
	n   *Network
	clk *clock.Manual
	tr  map[string]*Transport
	ln  map[string]transports.Listener
}

func newModelNet(t *testing.T, queue int, opts ...NetworkOption) *modelNet {
	t.Helper()
	clk := clock.NewManual(t0)
	m := &modelNet{n: NewNetwork(append([]NetworkOption{WithClock(clk)}, opts...)...), clk: clk,
		tr: map[string]*Transport{}, ln: map[string]transports.Listener{}}
	for _, name := range []string{"a", "b", "c"} {
		m.tr[name] = mustTransport(t, m.n, Options{Name: name, QueueFrames: queue})
		ln, err := m.tr[name].Listen(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		m.ln[name] = ln
		t.Cleanup(func() { ln.Close() })
	}
	return m
}

// dial connects from to to and returns both ends.
func (m *modelNet) dial(t *testing.T, from, to string) (d, acc *conn) {
	t.Helper()
	dc, err := m.tr[from].Dial(context.Background(), to)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := m.ln[to].Accept(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close(); ac.Close() })
	return dc.(*conn), ac.(*conn)
}

// settle waits until the clock has exactly want pending timers: a timer
// callback that reschedules runs on its own goroutine, and the clock must
// not move before it has.
func (m *modelNet) settle(t *testing.T, want int) {
	t.Helper()
	probe.Until(t, wait, func() bool { return m.clk.Pending() == want }, "%d pending timers (have %d)", want, m.clk.Pending())
}

// advance moves the clock once the pipe timers are set.
func (m *modelNet) advance(t *testing.T, d time.Duration, pending int) {
	t.Helper()
	m.settle(t, pending)
	m.clk.Advance(d)
}

func readWithin(t *testing.T, c transports.Conn) ([]byte, error) {
	t.Helper()
	type res struct {
		f   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() { f, err := c.ReadFrame(); ch <- res{f, err} }()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-time.After(wait):
		t.Fatal("ReadFrame did not return")
		return nil, nil
	}
}

func mustRead(t *testing.T, c transports.Conn, want string) {
	t.Helper()
	f, err := readWithin(t, c)
	if err != nil || string(f) != want {
		t.Fatalf("read %q, %v; want %q", f, err, want)
	}
}

// readable is the number of delivered, unread frames at c.
func readable(c *conn) int { return len(c.in) }

func write(t *testing.T, c transports.Conn, f string) {
	t.Helper()
	if err := c.WriteFrame([]byte(f)); err != nil {
		t.Fatal(err)
	}
}

func TestNoModelIsInstant(t *testing.T) {
	m := newModelNet(t, 0)
	m.n.SetModel("a", "c", LinkModel{}) // a zero model is no model
	for _, to := range []string{"b", "c"} {
		d, acc := m.dial(t, "a", to)
		if d.outM != nil || acc.inM != nil {
			t.Fatalf("a -> %s: link has a model", to)
		}
		write(t, d, "x")
		if readable(acc) != 1 || m.clk.Pending() != 0 {
			t.Fatalf("a -> %s: %d readable, %d timers: want 1 at once and no timer", to, readable(acc), m.clk.Pending())
		}
		mustRead(t, acc, "x")
	}
}

func TestModelLatencyExact(t *testing.T) {
	m := newModelNet(t, 0)
	const lat = 50 * time.Millisecond
	m.n.SetModel("b", "a", LinkModel{Latency: lat}) // either order
	d, acc := m.dial(t, "a", "b")
	write(t, d, "one")
	m.advance(t, lat-time.Nanosecond, 1)
	if readable(acc) != 0 || d.outM.inFlight() != 1 {
		t.Fatalf("at t+latency-1ns: %d readable, %d in flight; want 0 and 1", readable(acc), d.outM.inFlight())
	}
	m.clk.Advance(time.Nanosecond)
	mustRead(t, acc, "one")
	// The way back has the same model.
	write(t, acc, "two")
	m.advance(t, lat-time.Nanosecond, 1)
	if readable(d) != 0 {
		t.Fatal("reply readable before its latency")
	}
	m.clk.Advance(time.Nanosecond)
	mustRead(t, d, "two")
	m.settle(t, 0)
}

func TestModelBandwidth(t *testing.T) {
	m := newModelNet(t, 0)
	m.n.SetModel("a", "b", LinkModel{Bandwidth: 80_000})
	d, acc := m.dial(t, "a", "b")
	if got := d.Info().Bitrate; got != 80_000 {
		t.Errorf("Info().Bitrate = %d, want the model's 80000", got)
	}
	for i := range 10 {
		f := make([]byte, 1000)
		f[0] = byte(i)
		if err := d.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	// 1000 bytes at 80 kbit/s is 100 ms each, sent one after the other.
	for i := range 10 {
		m.advance(t, 100*time.Millisecond-time.Nanosecond, 1)
		if readable(acc) != 0 {
			t.Fatalf("frame %d readable before its %v", i, time.Duration(i+1)*100*time.Millisecond)
		}
		m.clk.Advance(time.Nanosecond)
		f, err := readWithin(t, acc)
		if err != nil || len(f) != 1000 || f[0] != byte(i) {
			t.Fatalf("frame %d: %d bytes [%v], %v", i, len(f), f[:min(len(f), 1)], err)
		}
	}
	if el := m.clk.Now().Sub(t0); el != time.Second {
		t.Errorf("10 frames took %v of clock time, want 1s", el)
	}
	m.settle(t, 0)
}

// The transmitter is free again after an idle spell: a frame written later
// does not queue behind frames long delivered.
func TestModelBandwidthIdle(t *testing.T) {
	m := newModelNet(t, 0)
	m.n.SetModel("a", "b", LinkModel{Bandwidth: 80_000, Latency: 10 * time.Millisecond})
	d, acc := m.dial(t, "a", "b")
	write(t, d, string(make([]byte, 1000)))
	m.advance(t, time.Second, 1)
	readWithin(t, acc)
	m.settle(t, 0)
	write(t, d, string(make([]byte, 1000)))
	m.advance(t, 110*time.Millisecond-time.Nanosecond, 1)
	if readable(acc) != 0 {
		t.Fatal("readable before serialization + latency")
	}
	m.clk.Advance(time.Nanosecond)
	readWithin(t, acc)
}

// delivery returns the delivery times of the frames in flight on p.
func delivery(p *pipe) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ts []time.Time
	for _, f := range p.flight {
		ts = append(ts, f.at)
	}
	return ts
}

func TestModelJitterNeverReorders(t *testing.T) {
	const (
		n      = 200
		lat    = 10 * time.Millisecond
		jitter = 50 * time.Millisecond
	)
	m := newModelNet(t, n, WithSeed(7))
	m.n.SetModel("a", "b", LinkModel{Latency: lat, Jitter: jitter})
	d, acc := m.dial(t, "a", "b")
	raised := 0
	var prev time.Time
	for i := range n {
		sent := m.clk.Now()
		write(t, d, fmt.Sprint(i))
		ts := delivery(d.outM)
		at := ts[len(ts)-1]
		if at.Before(sent.Add(lat)) {
			t.Fatalf("frame %d due %v after sending, below the latency", i, at.Sub(sent))
		}
		if at.After(sent.Add(lat+jitter)) && !at.Equal(prev) {
			t.Fatalf("frame %d due %v after sending, above latency+jitter and not held by the one before", i, at.Sub(sent))
		}
		if at.Before(prev) {
			t.Fatalf("frame %d due before frame %d", i, i-1)
		}
		if at.Equal(prev) {
			raised++
		}
		prev = at
		// 1 ms between writes: with 50 ms of jitter frames would overtake.
		m.clk.Advance(time.Millisecond)
	}
	if raised == 0 {
		t.Error("no frame was held back by the one before: jitter not drawn?")
	}
	m.clk.Advance(time.Second)
	for i := range n {
		mustRead(t, acc, fmt.Sprint(i))
	}
}

func TestModelLossRetransmitsNeverDrops(t *testing.T) {
	const (
		n   = 100
		lat = 100 * time.Millisecond
		rto = 300 * time.Millisecond // max(3*lat, 200ms)
	)
	schedule := func() []time.Duration {
		m := newModelNet(t, n, WithRand(rand.New(rand.NewPCG(42, 42))))
		m.n.SetModel("a", "b", LinkModel{Latency: lat, Loss: 0.3})
		d, acc := m.dial(t, "a", "b")
		for i := range n {
			write(t, d, fmt.Sprint(i))
		}
		var offs []time.Duration
		for _, at := range delivery(d.outM) {
			offs = append(offs, at.Sub(t0))
		}
		// Every frame arrives, in order, however many times it was lost.
		m.advance(t, time.Minute, 1)
		for i := range n {
			mustRead(t, acc, fmt.Sprint(i))
		}
		return offs
	}
	offs := schedule()
	if len(offs) != n {
		t.Fatalf("%d frames in flight, want %d", len(offs), n)
	}
	lost := 0
	for i, off := range offs {
		if (off-lat)%rto != 0 {
			t.Fatalf("frame %d due at latency + %v: not a whole number of RTOs", i, off-lat)
		}
		if off > lat {
			lost++
		}
	}
	// With Loss 0.3 the first frame lost holds back all behind it, so
	// most frames are late; none lost at all would mean no draws.
	if lost == 0 || offs[n-1] <= lat {
		t.Fatalf("no frame delayed by an RTO with Loss 0.3: %v", offs)
	}
	// The same seed gives the same schedule.
	again := schedule()
	for i := range offs {
		if offs[i] != again[i] {
			t.Fatalf("frame %d: due at %v, then %v with the same seed", i, offs[i], again[i])
		}
	}
}

func TestLinkModelNormalized(t *testing.T) {
	m := LinkModel{Latency: -1, Jitter: -1, Loss: 2, Bandwidth: -5}.normalized()
	if m.Latency != 0 || m.Jitter != 0 || m.Loss != MaxLoss || m.Bandwidth != 0 {
		t.Errorf("normalized = %+v", m)
	}
	if got := (LinkModel{Latency: 10 * time.Millisecond}).rto(); got != MinRTO {
		t.Errorf("rto at 10ms latency = %v, want MinRTO", got)
	}
	if got := (LinkModel{Latency: time.Second}).rto(); got != 3*time.Second {
		t.Errorf("rto at 1s latency = %v, want 3s", got)
	}
	if got := (LinkModel{RTO: time.Second}).rto(); got != time.Second {
		t.Errorf("explicit rto = %v", got)
	}
	if got := (LinkModel{Bandwidth: 8}).serialization(transports.MaxFrameSizeCap); got != time.Duration(transports.MaxFrameSizeCap)*time.Second {
		t.Errorf("serialization of the largest frame at 8 bit/s = %v (overflow?)", got)
	}
}

func TestModelBackpressure(t *testing.T) {
	const queue = 4
	m := newModelNet(t, queue)
	m.n.SetModel("a", "b", LinkModel{Latency: time.Second})
	d, acc := m.dial(t, "a", "b")
	for i := range queue {
		write(t, d, fmt.Sprint(i))
	}
	// The queue is full of frames in flight: the next write blocks.
	done := make(chan error, 1)
	go func() { done <- blockedWrite(d, []byte("more")) }()
	probe.Parked(t, wait, "mem.blockedWrite(", "writeModelled(")
	// Delivering them does not free the queue: they are unread.
	m.advance(t, time.Second, 1)
	probe.Until(t, wait, func() bool { return readable(acc) == queue }, "%d frames delivered", queue)
	probe.Parked(t, wait, "mem.blockedWrite(", "writeModelled(")
	select {
	case err := <-done:
		t.Fatalf("write returned %v with %d frames unread", err, queue)
	default:
	}
	// Reading one lets it through.
	mustRead(t, acc, "0")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("write still blocked after a read")
	}
	m.advance(t, time.Second, 1)
	for _, want := range []string{"1", "2", "3", "more"} {
		mustRead(t, acc, want)
	}
	// A blocked writer is released by the peer's Close like on an instant link.
	for i := range queue {
		write(t, d, fmt.Sprint(i))
	}
	go func() { done <- blockedWrite(d, []byte("more")) }()
	probe.Parked(t, wait, "mem.blockedWrite(", "writeModelled(")
	acc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("blocked write after peer Close = %v, want io.ErrClosedPipe", err)
		}
	case <-time.After(wait):
		t.Fatal("peer Close did not unblock the write")
	}
}

//go:noinline
func blockedWrite(c transports.Conn, p []byte) error { return c.WriteFrame(p) }

func TestModelCloseDiscardsInFlight(t *testing.T) {
	m := newModelNet(t, 0)
	m.n.SetModel("a", "b", LinkModel{Latency: 100 * time.Millisecond})
	d, acc := m.dial(t, "a", "b")
	write(t, d, "delivered")
	m.advance(t, 100*time.Millisecond, 1)
	probe.Until(t, wait, func() bool { return readable(acc) == 1 }, "first frame delivered")
	m.settle(t, 0)
	write(t, d, "in flight")
	write(t, acc, "in flight back")
	m.settle(t, 2)
	d.Close()
	if p := m.clk.Pending(); p != 0 {
		t.Fatalf("%d timers pending after Close, want 0", p)
	}
	if d.outM.inFlight() != 0 || d.inM.inFlight() != 0 {
		t.Fatal("frames still in flight after Close")
	}
	m.clk.Advance(time.Second)
	// What was delivered is read, what was in flight is gone.
	mustRead(t, acc, "delivered")
	if _, err := readWithin(t, acc); err != io.EOF {
		t.Fatalf("after the delivered frame: %v, want io.EOF", err)
	}
	if _, err := d.ReadFrame(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrame after Close = %v, want net.ErrClosed", err)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	m := newModelNet(t, 0)
	m.n.SetModel("a", "c", LinkModel{Latency: time.Second})
	ab, ba := m.dial(t, "a", "b") // instant
	ac, ca := m.dial(t, "a", "c") // modelled, with a frame in flight
	bc, cb := m.dial(t, "b", "c") // not partitioned
	write(t, ac, "lost")
	m.settle(t, 1)
	blocked := make(chan error, 1)
	go func() { _, err := ba.ReadFrame(); blocked <- err }()
	probe.Parked(t, wait, "TestPartitionAndHeal", "ReadFrame(")

	m.n.Partition("a", "b")
	m.n.Partition("c", "a")
	if !m.n.Partitioned("b", "a") {
		t.Error("Partitioned(b, a) = false")
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, ErrReset) {
			t.Errorf("blocked read on the cut link = %v, want ErrReset", err)
		}
	case <-time.After(wait):
		t.Fatal("partition did not unblock a read")
	}
	for _, c := range []*conn{ab, ba, ac, ca} {
		if _, err := c.ReadFrame(); !errors.Is(err, ErrReset) {
			t.Errorf("%s -> %s: read after partition = %v, want ErrReset", c.local, c.rem, err)
		}
		if err := c.WriteFrame([]byte("x")); !errors.Is(err, ErrReset) {
			t.Errorf("%s -> %s: write after partition = %v, want ErrReset", c.local, c.rem, err)
		}
	}
	if p := m.clk.Pending(); p != 0 {
		t.Errorf("%d timers pending after the partition, want 0", p)
	}
	for _, dial := range [][2]string{{"a", "b"}, {"b", "a"}, {"c", "a"}} {
		if _, err := m.tr[dial[0]].Dial(context.Background(), dial[1]); !errors.Is(err, ErrRefused) {
			t.Errorf("dial %s -> %s across the partition = %v, want ErrRefused", dial[0], dial[1], err)
		}
	}
	// The link between b and c is untouched.
	write(t, bc, "still up")
	mustRead(t, cb, "still up")

	m.n.Heal("b", "a")
	if m.n.Partitioned("a", "b") {
		t.Error("Partitioned after Heal")
	}
	d, acc := m.dial(t, "a", "b")
	write(t, d, "healed")
	mustRead(t, acc, "healed")
	if _, err := m.tr["a"].Dial(context.Background(), "c"); !errors.Is(err, ErrRefused) {
		t.Errorf("a -> c still cut: dial = %v, want ErrRefused", err)
	}
	// Closed links are forgotten: only the live ones are registered.
	m.n.mu.Lock()
	live := len(m.n.live[linkKey("a", "b")])
	m.n.mu.Unlock()
	if live != 1 {
		t.Errorf("%d links registered between a and b, want 1", live)
	}
}

// The transport contract holds on modelled links on the real clock.
func TestConformanceModelled(t *testing.T) {
	n := NewNetwork(WithModel(LinkModel{Latency: time.Millisecond, Jitter: time.Millisecond, Loss: 0.01, Bandwidth: 1_000_000_000}))
	transporttest.Run(t, transporttest.Harness{
		New: func(t testing.TB, id *crypto.Identity, maxFrame int) transports.Transport {
			tr, err := n.NewTransport(Options{Identity: id, MaxFrameSize: maxFrame})
			if err != nil {
				t.Fatal(err)
			}
			return tr
		},
		ListenAddr:      "",
		CheckGoroutines: true,
	})
}
