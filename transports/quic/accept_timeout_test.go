package quic

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports/internal/acceptq"
)

// Issue 10 item 1, the pre-handshake deadline on QUIC (review gap 7): a
// peer that completes TLS and never opens its frame stream is closed by
// the listener (application error 1, protocol) once AcceptTimeout has
// passed, not at the handshake timeout; a connection beyond its source's
// full slots is closed at once (busy); and once the silent ones are gone,
// a peer from the same source links.
func TestSilentAuthenticatedConnClosedAtAcceptTimeout(t *testing.T) {
	const acceptTimeout = 200 * time.Millisecond
	server := newTransport(t, newID(t), Options{AcceptTimeout: acceptTimeout, HandshakeTimeout: time.Minute, MaxPendingPerSource: 2})
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	udpAddr, err := net.ResolveUDPAddr("udp", ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	q := ln.(*listener).q
	waitSlots := func(what string, ok func(acceptq.Stats) bool) {
		t.Helper()
		probe.Until(t, 10*time.Second, func() bool { return ok(q.Stats()) }, "listener slots at %s (now %+v)", what, q.Stats())
	}
	// closedWith waits (generously) for qc to be closed by the listener
	// with code.
	closedWith := func(what string, qc *quicgo.Conn, code quicgo.ApplicationErrorCode) {
		t.Helper()
		select {
		case <-qc.Context().Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still open after 10 s", what)
		}
		var ae *quicgo.ApplicationError
		if err := context.Cause(qc.Context()); !errors.As(err, &ae) || !ae.Remote || ae.ErrorCode != code {
			t.Fatalf("%s: closed with %v, want the listener's application error %d", what, err, code)
		}
	}

	// TLS done, no frame stream, two connections from 127.0.0.1: the
	// source's two slots.
	silent := newTransport(t, newID(t), Options{})
	sep, err := newEndpoint("127.0.0.1:0", silent.resetKey)
	if err != nil {
		t.Fatal(err)
	}
	defer sep.release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var conns []*quicgo.Conn
	for range 2 {
		qc, err := sep.tr.Dial(ctx, udpAddr, silent.tls, silent.conf)
		if err != nil {
			t.Fatal(err)
		}
		defer qc.CloseWithError(0, "")
		conns = append(conns, qc)
	}
	waitSlots("the two silent connections pending", func(st acceptq.Stats) bool { return st.Pending == 2 && st.Sources == 1 })
	third, err := sep.tr.Dial(ctx, udpAddr, silent.tls, silent.conf)
	if err != nil {
		t.Fatal(err)
	}
	defer third.CloseWithError(0, "")
	closedWith("a connection beyond the source's slots", third, codeBusy)

	for _, qc := range conns {
		closedWith("a connection that opens no frame stream", qc, codeProtocol)
	}
	t.Logf("silent connections closed by the listener %v after they opened (AcceptTimeout %v)", time.Since(start).Round(time.Millisecond), acceptTimeout)
	waitSlots("the slots free again", func(st acceptq.Stats) bool { return st.Pending == 0 && st.Sources == 0 })

	// A peer from the same source links at the first attempt.
	peerID := newID(t)
	peer := newTransport(t, peerID, Options{})
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err == nil {
			if c.Peer() != peerID.Address() {
				err = errors.New("accepted another peer: " + c.Peer().Short())
			}
			c.Close()
		}
		accepted <- err
	}()
	pep, err := newEndpoint("127.0.0.1:0", peer.resetKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := peer.dialOn(ctx, pep, udpAddr, ln.Addr())
	if err != nil {
		t.Fatalf("a peer from 127.0.0.1 did not link after the silent connections were closed: %v", err)
	}
	defer c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("listener did not hand over the peer: %v", err)
	}
}
