package quic

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/quicprochat/qpc/transports"
)

// QUIC's own handshakes run inside quic-go, which has no cap on those in
// progress (each ends after HandshakeIdleTimeout) and hands over only
// connections whose TLS handshake completed. What remained open was the
// step after TLS: a peer that completes TLS and never opens its frame
// stream held one of the listener's 64 slots for the whole handshake
// timeout (10 s), and once they were full quic-go's accept queue (32)
// filled and refused everyone else. So 100 such connections from one
// source locked a new honest peer out. With slots bounded per source, the
// flood holds 8 and the honest peer, from another source, links at once.
func TestIdleAuthenticatedConnsFromOneSourceDoNotLockOutAPeer(t *testing.T) {
	server := newTransport(t, newID(t), Options{})
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	udpAddr, err := net.ResolveUDPAddr("udp", ln.Addr())
	if err != nil {
		t.Fatal(err)
	}

	// The flood: TLS done, no frame stream, from one socket on 127.0.0.1.
	attacker := newTransport(t, newID(t), Options{})
	aep, err := newEndpoint("127.0.0.1:0", attacker.resetKey)
	if err != nil {
		t.Fatal(err)
	}
	defer aep.release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 100; i++ {
		qc, err := aep.tr.Dial(ctx, udpAddr, attacker.tls, attacker.conf)
		if err != nil {
			continue // refused once the listener is busy: that is the point
		}
		t.Cleanup(func() { qc.CloseWithError(0, "") })
	}

	honestID := newID(t)
	honest := newTransport(t, honestID, Options{})
	start := time.Now()
	lctx, lcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer lcancel()
	accepted := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept(lctx)
			if err != nil {
				accepted <- err
				return
			}
			peer := c.Peer()
			c.Close()
			if peer == honestID.Address() {
				accepted <- nil
				return
			}
		}
	}()
	var c transports.Conn
	attempts := 0
	for c == nil {
		attempts++
		ep, err := newEndpoint("127.0.0.2:0", honest.resetKey)
		if err != nil {
			t.Fatal(err)
		}
		if c, err = honest.dialOn(lctx, ep, udpAddr, ln.Addr()); err != nil && lctx.Err() != nil {
			t.Fatalf("honest peer did not link within 2s under 100 idle authenticated connections (%d attempts): %v", attempts, err)
		}
	}
	defer c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("listener did not hand over the honest peer: %v", err)
	}
	if c.Peer() != server.opts.Identity.Address() {
		t.Fatalf("dialled the listener, got %s", c.Peer().Short())
	}
	t.Logf("honest peer linked %s after 100 idle authenticated connections (%d attempts)", time.Since(start).Round(time.Millisecond), attempts)
}
