package link

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
)

// The tests run nodes on a lora.Medium as a discrete-event simulation:
// simClock wraps clock.Manual (the medium and every transport share it),
// remembers when each timer is due, and the harness advances time only
// to the next due timer, and only once every goroutine that reacts to
// time or packets has finished (settle). No test sleeps; every wait has a
// real-time deadline.

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// simClock is a clock.Manual that knows its pending timers.
type simClock struct {
	*clock.Manual
	mu     sync.Mutex
	timers map[*simTimer]struct{}
}

type simTimer struct {
	c     *simClock
	inner clock.Timer
	due   time.Time
	fired bool
}

func newSimClock() *simClock {
	return &simClock{Manual: clock.NewManual(t0), timers: map[*simTimer]struct{}{}}
}

func (c *simClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	st := &simTimer{c: c, due: c.Now().Add(d)}
	c.mu.Lock()
	c.timers[st] = struct{}{}
	c.mu.Unlock()
	st.inner = c.Manual.AfterFunc(d, func() {
		c.mu.Lock()
		st.fired = true
		c.mu.Unlock()
		f()
		c.mu.Lock()
		delete(c.timers, st)
		c.mu.Unlock()
	})
	return st
}

func (st *simTimer) Stop() bool {
	ok := st.inner.Stop()
	if ok {
		st.c.mu.Lock()
		delete(st.c.timers, st)
		st.c.mu.Unlock()
	}
	return ok
}

// state reports timers due but not fired, timers running, and the next
// due time after now.
func (c *simClock) state() (due, running bool, next time.Time) {
	now := c.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for st := range c.timers {
		switch {
		case st.fired:
			running = true
		case !st.due.After(now):
			due = true
		case next.IsZero() || st.due.Before(next):
			next = st.due
		}
	}
	return due, running, next
}

// sim is a medium, its clock and the nodes on it.
type sim struct {
	t     *testing.T
	clk   *simClock
	m     *lora.Medium
	nodes []*node
	seed  uint64
}

type node struct {
	id       *crypto.Identity
	tr       *Transport
	radio    *MockRadio
	accepted map[crypto.Address]transports.Conn
}

func newSim(t *testing.T, seed uint64) *sim { return newSimWith(t, seed, lora.MediumOptions{}) }

func newSimWith(t *testing.T, seed uint64, mo lora.MediumOptions) *sim {
	clk := newSimClock()
	mo.Clock, mo.Rand = clk, rand.New(rand.NewPCG(seed, 99))
	return &sim{t: t, clk: clk, seed: seed, m: lora.NewMedium(mo)}
}

// testLogger logs at debug level when QPC_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("QPC_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// add starts a node; opts may set anything but Identity, Clock and Rand.
func (s *sim) add(opts Options) *node { return s.addWrapped(opts, nil) }

// addWrapped is add with the radio wrapped by wrap (nil: none).
func (s *sim) addWrapped(opts Options, wrap func(Radio) Radio) *node {
	s.t.Helper()
	id, err := crypto.NewIdentity(nil)
	if err != nil {
		s.t.Fatal(err)
	}
	opts.Identity, opts.Clock = id, s.clk
	opts.Rand = rand.New(rand.NewPCG(s.seed, uint64(len(s.nodes))))
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	mr, err := AttachMock(s.m, id.Address().String(), opts.Radio.withDefaults())
	if err != nil {
		s.t.Fatal(err)
	}
	var r Radio = mr
	if wrap != nil {
		r = wrap(mr)
	}
	tr, err := New(r, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	n := &node{id: id, tr: tr, radio: mr, accepted: map[crypto.Address]transports.Conn{}}
	s.nodes = append(s.nodes, n)
	s.t.Cleanup(func() { tr.Close() })
	return n
}

// name is the node's radio name on the medium.
func (n *node) name() string { return n.radio.Radio().Name() }

// idle reports that no timer is due or running and every node has
// handled every packet its radio received.
func (s *sim) idle() bool {
	due, running, _ := s.clk.state()
	if due {
		s.clk.Advance(0) // fire timers set for "now"
		return false
	}
	if running {
		return false
	}
	for _, n := range s.nodes {
		if n.tr.rxHandled.Load() != n.radio.Radio().Stats().Received {
			return false
		}
	}
	return true
}

// settle waits until the simulation is idle.
func (s *sim) settle() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.idle() {
		if time.Now().After(deadline) {
			s.t.Fatal("simulation did not settle within 10 s")
		}
		runtime.Gosched()
	}
}

// runUntil advances simulated time, event by event, until cond holds; it
// fails the test after maxSim of simulated time.
func (s *sim) runUntil(what string, cond func() bool, maxSim time.Duration) {
	s.t.Helper()
	end := s.clk.Now().Add(maxSim)
	for {
		s.settle()
		if cond() {
			return
		}
		_, _, next := s.clk.state()
		if next.IsZero() || next.After(end) {
			s.t.Fatalf("%s: not reached within %s of simulated time (at %s)", what, maxSim, s.clk.Now().Sub(t0))
		}
		s.clk.Advance(next.Sub(s.clk.Now()))
	}
}

// run advances simulated time by d, event by event.
func (s *sim) run(d time.Duration) {
	s.t.Helper()
	end := s.clk.Now().Add(d)
	for {
		s.settle()
		_, _, next := s.clk.state()
		if next.IsZero() || next.After(end) {
			s.clk.Advance(end.Sub(s.clk.Now()))
			s.settle()
			return
		}
		s.clk.Advance(next.Sub(s.clk.Now()))
	}
}

// listen makes n listen on its channel.
func (s *sim) listen(n *node) transports.Listener {
	s.t.Helper()
	ln, err := n.tr.Listen(context.Background(), "")
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { ln.Close() })
	return ln
}

// accept returns the connection n's listener accepts from peer
// (connections from other peers accepted meanwhile are kept for later).
func (s *sim) accept(n *node, ln transports.Listener, peer *node) transports.Conn {
	s.t.Helper()
	want := peer.id.Address()
	s.runUntil(fmt.Sprintf("%s accepts %s", n.id.Address().Short(), want.Short()), func() bool {
		for n.accepted[want] == nil {
			if !queued(n.tr) {
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := ln.Accept(ctx)
			cancel()
			if err != nil {
				s.t.Fatal(err)
			}
			s.t.Cleanup(func() { c.Close() })
			n.accepted[c.Peer()] = c
		}
		return true
	}, time.Hour)
	return n.accepted[want]
}

func queued(t *Transport) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.st.acceptQ) > 0
}

// dial dials n's channel and returns the connection.
func (s *sim) dial(n *node) transports.Conn {
	s.t.Helper()
	type res struct {
		c   transports.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := n.tr.Dial(context.Background(), "")
		ch <- res{c, err}
	}()
	waiting := func() bool { // for a peer, or for its answer
		n.tr.mu.Lock()
		defer n.tr.mu.Unlock()
		for _, c := range n.tr.st.dialing {
			if c.dialing && !c.confirmed && c.state == connOpen {
				return true
			}
		}
		return len(n.tr.st.waiters) > 0
	}
	// Run the simulation while Dial waits; between its waits (served by
	// a HELLO, not yet waiting for the answer) it only needs the CPU.
	var r res
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case r = <-ch:
		default:
			if waiting() {
				s.runUntil("dial", func() bool { return !waiting() }, time.Hour)
				deadline = time.Now().Add(10 * time.Second)
			} else if time.Now().After(deadline) {
				s.t.Fatal("Dial neither returned nor waited")
			}
			runtime.Gosched()
			continue
		}
		break
	}
	if r.err != nil {
		s.t.Fatalf("Dial: %v", r.err)
	}
	s.t.Cleanup(func() { r.c.Close() })
	return r.c
}

// buffered is the number of frames c holds for ReadFrame.
func buffered(c transports.Conn) int {
	cc := c.(*conn)
	cc.t.mu.Lock()
	defer cc.t.mu.Unlock()
	return len(cc.rx)
}

// read runs the simulation until c holds k frames and reads them.
func (s *sim) read(c transports.Conn, k int, maxSim time.Duration) [][]byte {
	s.t.Helper()
	s.runUntil(fmt.Sprintf("%d frames from %s", k, c.Peer().Short()), func() bool { return buffered(c) >= k }, maxSim)
	out := make([][]byte, k)
	for i := range out {
		f, err := c.ReadFrame()
		if err != nil {
			s.t.Fatalf("ReadFrame %d: %v", i, err)
		}
		out[i] = f
	}
	return out
}

// link connects a (listening) and b (dialing): b's connection to a and
// a's to b.
func (s *sim) link(a *node, ln transports.Listener, b *node) (ba, ab transports.Conn) {
	s.t.Helper()
	ba = s.dial(b)
	if ba.Peer() != a.id.Address() {
		s.t.Fatalf("dial reached %s, want %s", ba.Peer().Short(), a.id.Address().Short())
	}
	ab = s.accept(a, ln, b)
	return ba, ab
}

func payload(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}
