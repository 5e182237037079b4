package tcp

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/transporttest"
)

func newTransport(t testing.TB, id *crypto.Identity, maxFrame int) *Transport {
	t.Helper()
	tr, err := New(Options{
		Identity:         id,
		MaxFrameSize:     maxFrame,
		HandshakeTimeout: 5 * time.Second,
		Linger:           100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Harness{
		New: func(t testing.TB, id *crypto.Identity, maxFrame int) transports.Transport {
			return newTransport(t, id, maxFrame)
		},
		ListenAddr:      "127.0.0.1:0",
		CheckGoroutines: true,
	})
}

func newID(t testing.TB) *crypto.Identity {
	t.Helper()
	id, err := crypto.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, transports.ErrBadOptions) {
		t.Errorf("New without identity = %v, want ErrBadOptions", err)
	}
	if _, err := New(Options{Identity: newID(t), MaxFrameSize: -1}); !errors.Is(err, transports.ErrBadOptions) {
		t.Errorf("New with MaxFrameSize -1 = %v, want ErrBadOptions", err)
	}
	tr := newTransport(t, newID(t), 0)
	info := tr.Info()
	want := transports.Info{Name: "tcp", MTU: transports.DefaultMaxFrameSize, MaxFrame: transports.DefaultMaxFrameSize,
		Bitrate: transports.DefaultBitrate, Class: transports.Unconstrained, FlowControl: true}
	if info != want {
		t.Errorf("Info = %v, want %v", info, want)
	}
}

// A client that fails the handshake is dropped by the listener, reported
// through OnHandshakeError, and does not hold up the next client.
func TestListenerDropsBadClients(t *testing.T) {
	failures := make(chan error, 4)
	tr, err := New(Options{Identity: newID(t), HandshakeTimeout: 5 * time.Second,
		OnHandshakeError: func(_ string, err error) { failures <- err }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := tr.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	// A silent client first: its handshake is pending while the next ones run.
	silent, err := net.Dial("tcp", ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// A client speaking HTTP.
	garbage, err := net.Dial("tcp", ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	garbage.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, HelloSize))))
	select {
	case err := <-failures:
		if !errors.Is(err, transports.ErrHandshake) {
			t.Errorf("garbage client: %v, want ErrHandshake", err)
		}
	case <-ctx.Done():
		t.Fatal("garbage client was not reported")
	}

	// A good client still gets through while the silent one waits.
	goodID := newID(t)
	good := newTransport(t, goodID, 0)
	c, err := good.Dial(ctx, ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Peer() != goodID.Address() {
		t.Fatalf("accepted %s, want the good client %s", a.Peer(), goodID.Address())
	}
}

// deadlineConn records the deadlines set on a connection.
type deadlineConn struct {
	net.Conn
	mu        sync.Mutex
	deadlines []time.Time // as set
	setAt     []time.Time // when
}

func (c *deadlineConn) SetDeadline(d time.Time) error {
	c.mu.Lock()
	c.deadlines, c.setAt = append(c.deadlines, d), append(c.setAt, time.Now())
	c.mu.Unlock()
	return c.Conn.SetDeadline(d)
}

// The handshake deadline covers a peer that never answers: the dial ends
// with the socket's deadline error (not a hang, nor the peer closing),
// and the deadline it ran against is HandshakeTimeout from the start of
// the handshake. Both are checked on what happened, not on how long the
// test took.
func TestHandshakeTimeout(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	go func() { // accept and stay silent until the clients give up
		for {
			c, err := raw.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	const timeout = 50 * time.Millisecond
	tr, err := New(Options{Identity: newID(t), HandshakeTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	// A context far longer than the timeout, so a handshake that ignored
	// it fails the test (with the context's error) instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Through Dial, on a real socket.
	_, err = tr.Dial(ctx, raw.Addr().String())
	if !errors.Is(err, transports.ErrHandshake) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Dial to a silent server = %v, want ErrHandshake with the socket's deadline exceeded", err)
	}
	// The same step (what Dial does once connected) on a socket that
	// records its deadlines.
	sock, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dc := &deadlineConn{Conn: sock}
	before := time.Now()
	_, err = tr.upgrade(ctx, dc, roleDialer, tr.opts.HandshakeTimeout)
	if !errors.Is(err, transports.ErrHandshake) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("handshake with a silent server = %v, want ErrHandshake with the socket's deadline exceeded", err)
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if len(dc.deadlines) == 0 {
		t.Fatal("the handshake set no deadline")
	}
	if d := dc.deadlines[0]; d.Before(before.Add(timeout)) || d.After(dc.setAt[0].Add(timeout)) {
		t.Fatalf("handshake deadline %v after it started, want HandshakeTimeout %v",
			d.Sub(before), timeout)
	}
}

// Cancelling the dial context aborts a pending handshake.
func TestDialContextCancel(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := raw.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	tr := newTransport(t, newID(t), 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := tr.Dial(ctx, raw.Addr().String())
		done <- err
	}()
	c := <-accepted
	defer c.Close()
	if _, err := io.ReadFull(c, make([]byte, HelloSize)); err != nil {
		t.Fatal(err)
	}
	cancel() // the dialer sent its hello: it is waiting for ours
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, transports.ErrHandshake) {
			t.Errorf("Dial = %v, want ErrHandshake and context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not abort the handshake")
	}
}

// A peer that sends a frame above our limit gets the connection's reader
// a typed error carrying both numbers, so the link can close it and log
// why.
func TestPeerFrameTooLarge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	small := newTransport(t, newID(t), 100_000)
	ln, err := small.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	big := newTransport(t, newID(t), 1<<20)
	d, err := big.Dial(ctx, ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := d.WriteFrame(make([]byte, 200_000)); err != nil {
		t.Fatal(err)
	}
	_, err = a.ReadFrame()
	var tooLarge *transports.FrameTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Size != 200_000 || tooLarge.Limit != 100_000 {
		t.Fatalf("ReadFrame = %v, want FrameTooLargeError{200000, 100000}", err)
	}
}
