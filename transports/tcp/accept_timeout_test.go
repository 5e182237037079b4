package tcp

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/quicprochat/qpc/transports/internal/acceptq"
)

// Issue 10 item 1, "shorten the pre-handshake deadline" (review gap 7): an
// inbound connection that sends nothing is closed by the listener once
// AcceptTimeout has passed, not at the handshake timeout, and its slot is
// free again: with the source's slots full, a connection from it is
// refused at once, and after the silent ones were closed a peer from the
// same source links.
func TestSilentInboundConnClosedAtAcceptTimeout(t *testing.T) {
	const acceptTimeout = 200 * time.Millisecond
	server, err := New(Options{
		Identity:            newID(t),
		AcceptTimeout:       acceptTimeout,
		HandshakeTimeout:    time.Minute, // the dialling side's: not what closes them
		MaxPendingPerSource: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const src = "127.0.0.9"
	laddr := &net.TCPAddr{IP: net.ParseIP(src)}
	raddr := ln.(*listener).ln.Addr().(*net.TCPAddr)

	// Two connections from src that send nothing hold its two slots.
	start := time.Now()
	var silent []*net.TCPConn
	for range 2 {
		c, err := net.DialTCP("tcp", laddr, raddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	waitStats(t, ln, "the two silent connections pending", func(st acceptq.Stats) bool { return st.Pending == 2 && st.Sources == 1 })

	// A third from src is refused before any handshake: no hello, closed.
	third, err := net.DialTCP("tcp", laddr, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := third.Read(make([]byte, HelloSize)); n != 0 || !closedByPeer(err) {
		t.Fatalf("a connection beyond the source's slots: read %d bytes, %v; want it closed at once", n, err)
	}

	// The silent ones get the listener's hello, then are closed by it at
	// AcceptTimeout: a read ends in EOF or a reset, well before our own
	// generous read deadline (and the one-minute handshake timeout).
	for i, c := range silent {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, HelloSize)); err != nil {
			t.Fatalf("silent connection %d: no hello from the listener: %v", i, err)
		}
		n, err := c.Read(make([]byte, 1))
		if n != 0 || !closedByPeer(err) {
			t.Fatalf("silent connection %d: read %d bytes, %v; want the listener to close it at AcceptTimeout (%v)", i, n, err, acceptTimeout)
		}
	}
	t.Logf("silent connections closed by the listener %v after they opened (AcceptTimeout %v)", time.Since(start).Round(time.Millisecond), acceptTimeout)
	waitStats(t, ln, "the slots free again", func(st acceptq.Stats) bool { return st.Pending == 0 && st.Sources == 0 })

	// The slots are free: a peer from the same source links.
	peerID := newID(t)
	peer := newTransport(t, peerID, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accepted := make(chan error, 1)
	go func() {
		c, err := acceptPeer(ctx, ln, peerID.Address())
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, attempts, err := dialFrom(ctx, t, peer, src, ln.Addr())
	if err != nil {
		t.Fatalf("a peer from %s did not link after its silent connections were closed (%d attempts): %v", src, attempts, err)
	}
	defer c.Close()
	if attempts != 1 {
		t.Fatalf("the peer from %s needed %d attempts; its slots should be free", src, attempts)
	}
	if err := <-accepted; err != nil {
		t.Fatalf("listener did not hand over the peer: %v", err)
	}
}

// closedByPeer reports whether a read error means the other end closed
// (EOF or a reset), not our own deadline.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}
