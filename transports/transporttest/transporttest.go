// Package transporttest is a conformance suite for transports.Transport
// implementations, in the spirit of wireguard's bindtest: every transport
// (tcp, quic, mem, lora) runs the same checks of the contract documented
// on transports.Transport, Listener and Conn.
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, transporttest.Harness{New: ..., ListenAddr: "127.0.0.1:0"})
//	}
package transporttest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports"
)

// Harness describes the transport under test.
type Harness struct {
	// New returns a transport for id with the frame limit maxFrame (the
	// suite always passes a non-zero limit). It should set short timeouts
	// (handshake, linger) so failure cases stay fast.
	New func(t testing.TB, id *crypto.Identity, maxFrame int) transports.Transport
	// ListenAddr is what Listen gets: "127.0.0.1:0" for IP transports, ""
	// for mem (the transport's own name).
	ListenAddr string
	// CheckGoroutines makes the suite verify that no goroutine outlives
	// the closed listeners and connections. Set it for transports that
	// stop all their goroutines before Close returns.
	CheckGoroutines bool
}

// Limit is the frame limit the suite runs with.
const Limit = 100_000

// wait bounds every blocking step, so a broken transport fails the test
// instead of hanging it.
const wait = 10 * time.Second

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, h) })
	t.Run("Identity", func(t *testing.T) { testIdentity(t, h) })
	t.Run("ConcurrentBothWays", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("OversizeWrite", func(t *testing.T) { testOversizeWrite(t, h) })
	t.Run("CloseSemantics", func(t *testing.T) { testClose(t, h) })
	t.Run("CloseUnblocksRead", func(t *testing.T) { testCloseUnblocksRead(t, h) })
	t.Run("CloseUnblocksWrite", func(t *testing.T) { testCloseUnblocksWrite(t, h) })
	t.Run("ListenerClose", func(t *testing.T) { testListenerClose(t, h) })
	t.Run("AcceptContext", func(t *testing.T) { testAcceptContext(t, h) })
	t.Run("DialPeer", func(t *testing.T) { testDialPeer(t, h) })
	t.Run("SelfDialRefused", func(t *testing.T) { testSelfDial(t, h) })
	t.Run("ManyDialers", func(t *testing.T) { testManyDialers(t, h) })
	if h.CheckGoroutines {
		t.Run("NoGoroutineLeak", func(t *testing.T) { testNoLeak(t, h) })
	}
}

func newID(t testing.TB) *crypto.Identity {
	t.Helper()
	id, err := crypto.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// env is one listening transport and one dialing transport.
type env struct {
	h              Harness
	dialID, lisID  *crypto.Identity
	dialer, lister transports.Transport
	ln             transports.Listener
}

func newEnv(t *testing.T, h Harness) *env {
	t.Helper()
	e := &env{h: h, dialID: newID(t), lisID: newID(t)}
	e.dialer = h.New(t, e.dialID, Limit)
	e.lister = h.New(t, e.lisID, Limit)
	ln, err := e.lister.Listen(ctxT(t), h.ListenAddr)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	e.ln = ln
	return e
}

// pair dials the listener and accepts: d is the dialer's end, a the
// accepted end. Both are closed at cleanup.
func (e *env) pair(t *testing.T) (d, a transports.Conn) {
	t.Helper()
	ctx := ctxT(t)
	type res struct {
		c   transports.Conn
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		c, err := e.ln.Accept(ctx)
		accepted <- res{c, err}
	}()
	d, err := e.dialer.Dial(ctx, e.ln.Addr())
	if err != nil {
		t.Fatalf("Dial %s: %v", e.ln.Addr(), err)
	}
	t.Cleanup(func() { d.Close() })
	r := <-accepted
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return d, r.c
}

// readFrame reads one frame, failing the test after `wait`.
func readFrame(t *testing.T, c transports.Conn) []byte {
	t.Helper()
	f, err := readWithin(c)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	return f
}

func readWithin(c transports.Conn) ([]byte, error) {
	type res struct {
		f   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := c.ReadFrame()
		ch <- res{f, err}
	}()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-time.After(wait):
		c.Close() // unblocks the reader goroutine
		<-ch
		return nil, fmt.Errorf("ReadFrame did not return within %v", wait)
	}
}

func payload(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}

func testRoundTrip(t *testing.T, h Harness) {
	e := newEnv(t, h)
	d, a := e.pair(t)
	for _, n := range []int{0, 1, 127, 128, 1000, 16383, 16384, 70_000, Limit} {
		for dir, ends := range [][2]transports.Conn{{d, a}, {a, d}} {
			p := payload(n, byte(n+dir))
			if err := ends[0].WriteFrame(p); err != nil {
				t.Fatalf("WriteFrame(%d bytes): %v", n, err)
			}
			got := readFrame(t, ends[1])
			if !bytes.Equal(got, p) {
				t.Fatalf("%d-byte frame (direction %d): got %d bytes, different content", n, dir, len(got))
			}
		}
	}
	// The caller owns the returned frame; WriteFrame does not retain p.
	p := []byte("first")
	if err := d.WriteFrame(p); err != nil {
		t.Fatal(err)
	}
	copy(p, "XXXXX")
	if err := d.WriteFrame([]byte("second")); err != nil {
		t.Fatal(err)
	}
	if got := readFrame(t, a); string(got) != "first" {
		t.Fatalf("WriteFrame retained its argument: got %q, want %q", got, "first")
	}
	readFrame(t, a)
}

func testIdentity(t *testing.T, h Harness) {
	e := newEnv(t, h)
	d, a := e.pair(t)
	if d.Peer() != e.lisID.Address() {
		t.Errorf("dialer's Peer = %s, want the listener's address %s", d.Peer(), e.lisID.Address())
	}
	if a.Peer() != e.dialID.Address() {
		t.Errorf("listener's Peer = %s, want the dialer's address %s", a.Peer(), e.dialID.Address())
	}
	if !bytes.Equal(d.PeerKey(), e.lisID.PublicKey()) || !bytes.Equal(a.PeerKey(), e.dialID.PublicKey()) {
		t.Error("PeerKey is not the other side's public key")
	}
	for _, c := range []transports.Conn{d, a} {
		if crypto.AddressOf(c.PeerKey()) != c.Peer() {
			t.Error("Peer != AddressOf(PeerKey)")
		}
		if c.LocalAddr() == "" || c.RemoteAddr() == "" {
			t.Errorf("empty address: local %q remote %q", c.LocalAddr(), c.RemoteAddr())
		}
		info := c.Info()
		if info.Name != e.dialer.Info().Name || info.Class != transports.ClassOf(info) || info.Limit() <= 0 {
			t.Errorf("Conn.Info = %v, transport Info = %v", info, e.dialer.Info())
		}
	}
}

func testConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	d, a := e.pair(t)
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, ends := range [][2]transports.Conn{{d, a}, {a, d}} {
		w, r := ends[0], ends[1]
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range n {
				p := binary.BigEndian.AppendUint32(payload(i%300, byte(i)), uint32(i))
				if err := w.WriteFrame(p); err != nil {
					errs <- fmt.Errorf("write %d: %w", i, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range n {
				f, err := readWithin(r)
				if err != nil {
					errs <- fmt.Errorf("read %d: %w", i, err)
					return
				}
				want := binary.BigEndian.AppendUint32(payload(i%300, byte(i)), uint32(i))
				if !bytes.Equal(f, want) {
					errs <- fmt.Errorf("frame %d out of order or corrupt (%d bytes)", i, len(f))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testOversizeWrite(t *testing.T, h Harness) {
	e := newEnv(t, h)
	d, a := e.pair(t)
	limit := d.Info().Limit()
	err := d.WriteFrame(make([]byte, limit+1))
	var tooLarge *transports.FrameTooLargeError
	if !errors.Is(err, transports.ErrFrameTooLarge) || !errors.As(err, &tooLarge) {
		t.Fatalf("WriteFrame(limit+1) = %v, want ErrFrameTooLarge", err)
	}
	if tooLarge.Size != uint64(limit+1) || tooLarge.Limit != limit {
		t.Errorf("FrameTooLargeError = %+v, want size %d limit %d", tooLarge, limit+1, limit)
	}
	// Nothing was sent: the link still works.
	if err := d.WriteFrame([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := readFrame(t, a); string(got) != "after" {
		t.Fatalf("got %q after an oversize write, want %q", got, "after")
	}
}

func testClose(t *testing.T, h Harness) {
	e := newEnv(t, h)
	d, a := e.pair(t)
	if err := d.WriteFrame([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if got := readFrame(t, a); string(got) != "bye" {
		t.Fatalf("got %q", got)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := d.ReadFrame(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrame after Close = %v, want net.ErrClosed", err)
	}
	if err := d.WriteFrame([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteFrame after Close = %v, want net.ErrClosed", err)
	}
	// The peer sees a clean end.
	if _, err := readWithin(a); err != io.EOF {
		t.Errorf("peer's ReadFrame after Close = %v, want io.EOF", err)
	}
	// Peer and Info still answer after Close.
	if d.Peer() != e.lisID.Address() {
		t.Error("Peer changed after Close")
	}
}

// blockedRead is the call testCloseUnblocksRead waits on; its name marks
// the goroutine for probe.Parked.
//
//go:noinline
func blockedRead(c transports.Conn) error {
	_, err := c.ReadFrame()
	return err
}

// blockedWrite writes frames until one fails, counting those that did not.
//
//go:noinline
func blockedWrite(c transports.Conn, p []byte, written *atomic.Int64) error {
	for {
		if err := c.WriteFrame(p); err != nil {
			return err
		}
		written.Add(1)
	}
}

// parked waits until a goroutine is blocked in the named call of this
// package and inside the transport's method.
func parked(t *testing.T, call, method string) {
	t.Helper()
	probe.Parked(t, wait, "transporttest."+call+"(", method+"(")
}

func testCloseUnblocksRead(t *testing.T, h Harness) {
	e := newEnv(t, h)
	d, _ := e.pair(t) // the accepted end writes nothing
	done := make(chan error, 1)
	go func() { done <- blockedRead(d) }()
	// ReadFrame is blocked before Close, not merely started: Close must
	// be what ends it.
	parked(t, "blockedRead", "ReadFrame")
	select {
	case err := <-done:
		t.Fatalf("ReadFrame returned %v with nothing sent", err)
	default:
	}
	d.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked ReadFrame returned %v, want net.ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not unblock ReadFrame")
	}
}

func testCloseUnblocksWrite(t *testing.T, h Harness) {
	e := newEnv(t, h)
	d, _ := e.pair(t) // nobody reads the accepted end: writes back up
	var written atomic.Int64
	done := make(chan error, 1)
	go func() { done <- blockedWrite(d, make([]byte, Limit), &written) }()
	// The buffers between the ends fill up until a WriteFrame blocks for
	// good: wait until one is parked, and stays parked with no frame
	// written for a while (a write may also wait a moment for the
	// transport's send loop), so Close comes while a write is blocked.
	var n int64
	deadline := time.Now().Add(wait)
	for {
		n = written.Load()
		probe.ParkedFor(t, wait, 100*time.Millisecond, "transporttest.blockedWrite(", "WriteFrame(")
		if written.Load() == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no WriteFrame blocked within %v (%d frames written)", wait, written.Load())
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the writer stopped after %d frames: %v", n, err)
	default:
	}
	d.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked WriteFrame returned %v, want net.ErrClosed", err)
		}
		// The write that failed is the one that was blocked.
		if got := written.Load(); got != n {
			t.Errorf("%d frames written while the write was blocked, then %d: the write was not blocked", n, got)
		}
	case <-time.After(wait):
		t.Fatal("Close did not unblock WriteFrame")
	}
}

// blockedAccept is the call testListenerClose waits on.
//
//go:noinline
func blockedAccept(ln transports.Listener) error {
	_, err := ln.Accept(context.Background())
	return err
}

func testListenerClose(t *testing.T, h Harness) {
	e := newEnv(t, h)
	d, a := e.pair(t)
	blocked := make(chan error, 1)
	go func() { blocked <- blockedAccept(e.ln) }()
	parked(t, "blockedAccept", "Accept")
	if err := e.ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.ln.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Accept returned %v, want net.ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not unblock Accept")
	}
	if _, err := e.ln.Accept(ctxT(t)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	// Connections accepted earlier outlive the listener.
	if err := d.WriteFrame([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got := readFrame(t, a); string(got) != "still here" {
		t.Fatalf("got %q", got)
	}
	if err := a.WriteFrame([]byte("me too")); err != nil {
		t.Fatal(err)
	}
	if got := readFrame(t, d); string(got) != "me too" {
		t.Fatalf("got %q", got)
	}
	// Nobody listens there any more.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond) // QUIC gets no "refused": it waits
	defer cancel()
	if c, err := e.dialer.Dial(ctx, e.ln.Addr()); err == nil {
		c.Close()
		t.Error("Dial to a closed listener succeeded")
	}
}

func testAcceptContext(t *testing.T, h Harness) {
	e := newEnv(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.ln.Accept(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Accept with a cancelled context = %v, want context.Canceled", err)
	}
}

func testDialPeer(t *testing.T, h Harness) {
	e := newEnv(t, h)
	go func() { // accept whatever arrives until the listener closes
		var conns []transports.Conn
		for {
			c, err := e.ln.Accept(context.Background())
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	ctx := ctxT(t)
	c, err := transports.DialPeer(ctx, e.dialer, e.ln.Addr(), e.lisID.Address())
	if err != nil {
		t.Fatalf("DialPeer with the right address: %v", err)
	}
	c.Close()
	wrong := newID(t).Address()
	if c, err := transports.DialPeer(ctx, e.dialer, e.ln.Addr(), wrong); !errors.Is(err, transports.ErrPeerMismatch) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("DialPeer with a wrong address = %v, want ErrPeerMismatch", err)
	}
}

func testSelfDial(t *testing.T, h Harness) {
	id := newID(t)
	tr := h.New(t, id, Limit)
	ln, err := tr.Listen(ctxT(t), h.ListenAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := tr.Dial(ctxT(t), ln.Addr())
	if err == nil {
		c.Close()
		t.Fatal("dialing our own identity succeeded")
	}
	if !errors.Is(err, transports.ErrHandshake) || !errors.Is(err, transports.ErrSelf) {
		t.Errorf("self dial = %v, want ErrHandshake and ErrSelf", err)
	}
}

func testManyDialers(t *testing.T, h Harness) {
	e := newEnv(t, h)
	const n = 8
	want := map[crypto.Address]bool{}
	var trs []transports.Transport
	for range n {
		id := newID(t)
		want[id.Address()] = true
		trs = append(trs, h.New(t, id, Limit))
	}
	ctx := ctxT(t)
	errs := make(chan error, n)
	for i, tr := range trs {
		go func() {
			c, err := tr.Dial(ctx, e.ln.Addr())
			if err == nil {
				t.Cleanup(func() { c.Close() })
				err = c.WriteFrame([]byte{byte(i)})
			}
			errs <- err
		}()
	}
	for range n {
		c, err := e.ln.Accept(ctx)
		if err != nil {
			t.Fatalf("Accept: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		if !want[c.Peer()] {
			t.Errorf("accepted unknown or duplicate peer %s", c.Peer())
		}
		delete(want, c.Peer())
		readFrame(t, c)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func testNoLeak(t *testing.T, h Harness) {
	before := runtime.NumGoroutine()
	func() {
		e := &env{h: h, dialID: newID(t), lisID: newID(t)}
		e.dialer = h.New(t, e.dialID, Limit)
		e.lister = h.New(t, e.lisID, Limit)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		ln, err := e.lister.Listen(ctx, h.ListenAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var conns []transports.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 3 {
			d, err := e.dialer.Dial(ctx, ln.Addr())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, d)
			a, err := ln.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, a)
			if err := d.WriteFrame([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := a.ReadFrame(); err != nil {
				t.Fatal(err)
			}
		}
	}()
	// Close waits for the transport's goroutines (WaitGroup, done
	// channels), but a goroutine that has signalled still needs a moment
	// to return: yield until the count is back, with a deadline.
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines before, %d after closing everything:\n%s", before, after, buf)
	}
}
