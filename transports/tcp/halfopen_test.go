package tcp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/internal/acceptq"
)

// halfOpenDeadline is how long an honest peer may take to link under the
// half-open flood. The test fails if the link is not up by then; raise it
// (go test -run HalfOpen ./transports/tcp -args -halfopen.deadline=120s) to
// measure how long the flood delays the peer on code without the fix.
var halfOpenDeadline = flag.Duration("halfopen.deadline", 2*time.Second, "deadline for the honest peer to link under the half-open flood")

// idleConns opens n TCP connections to addr from the source IP src and
// sends nothing on them: what a half-open (slowloris) attacker does. They
// are closed when the test ends.
func idleConns(t *testing.T, src, addr string, n int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d from %s: %v", i, src, err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// dialFrom dials addr from the source IP src and runs the dialer's side of
// the handshake with tr's identity, retrying a refused or dropped attempt
// until ctx ends. It returns the authenticated connection.
func dialFrom(ctx context.Context, t *testing.T, tr *Transport, src, addr string) (transports.Conn, int, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	attempts := 0
	for {
		attempts++
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			var c transports.Conn
			if c, err = tr.upgrade(ctx, raw, roleDialer, tr.opts.HandshakeTimeout); err == nil {
				return c, attempts, nil
			}
		}
		if ctx.Err() != nil {
			return nil, attempts, err
		}
	}
}

// acceptPeer accepts connections on ln until one from peer arrives or ctx
// ends. The flood's connections never pass the handshake, so they are
// never returned by Accept; anything else is a bug.
func acceptPeer(ctx context.Context, ln transports.Listener, peer crypto.Address) (transports.Conn, error) {
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			return nil, err
		}
		if c.Peer() == peer {
			return c, nil
		}
		c.Close()
	}
}

// Regression test for issue 10, item 1: 500 connections from one source
// that never send a byte held every handshake slot of the listener (64, 10 s
// each), so a new honest peer could not link until they timed out (28.5 s
// measured). With pending handshakes bounded per source, the flood holds
// only its source's few slots and a peer from another source links at once.
//
// On loopback every address of 127.0.0.0/8 is a distinct source on Linux:
// the flood comes from 127.0.0.1, the honest peer from 127.0.0.2.
func TestHalfOpenFloodFromOneSourceDoesNotLockOutAPeer(t *testing.T) {
	server, err := New(Options{Identity: newID(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	idleConns(t, "127.0.0.1", ln.Addr(), 500)

	honestID := newID(t)
	honest := newTransport(t, honestID, 0)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), *halfOpenDeadline)
	defer cancel()
	accepted := make(chan error, 1)
	go func() {
		c, err := acceptPeer(ctx, ln, honestID.Address())
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, attempts, err := dialFrom(ctx, t, honest, "127.0.0.2", ln.Addr())
	if err != nil {
		t.Fatalf("honest peer did not link within %s under 500 idle connections (%d attempts): %v", *halfOpenDeadline, attempts, err)
	}
	defer c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("listener did not hand over the honest peer within %s: %v", *halfOpenDeadline, err)
	}
	t.Logf("honest peer linked %s after the flood of 500 idle connections (%d attempts)", time.Since(start).Round(time.Millisecond), attempts)
}

// waitStats probes the listener's slots until ok says they are as wanted,
// or fails the test at the deadline.
func waitStats(t *testing.T, ln transports.Listener, what string, ok func(acceptq.Stats) bool) acceptq.Stats {
	t.Helper()
	q := ln.(*listener).q
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := q.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener slots never reached %s: %+v", what, st)
		}
		runtime.Gosched()
	}
}

// Issue 10, item 1, the distributed variant: idle connections from 100
// sources (5 each, under the per-source bound) fill every general
// handshake slot. A source never seen before is refused at once, but a
// peer whose source completed a handshake earlier gets one of the slots
// kept for known sources and links.
func TestHalfOpenFloodFromManySourcesLeavesRoomForKnownPeers(t *testing.T) {
	server, err := New(Options{Identity: newID(t), AcceptTimeout: time.Minute}) // the flood holds its slots throughout
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	// The honest peer has linked from 127.0.0.2 before.
	honestID := newID(t)
	honest := newTransport(t, honestID, 0)
	link := func(deadline time.Duration) (time.Duration, int, error) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		accepted := make(chan error, 1)
		go func() {
			c, err := acceptPeer(ctx, ln, honestID.Address())
			if err == nil {
				c.Close()
			}
			accepted <- err
		}()
		c, attempts, err := dialFrom(ctx, t, honest, "127.0.0.2", ln.Addr())
		if err == nil {
			c.Close()
			err = <-accepted
		}
		return time.Since(start), attempts, err
	}
	if _, _, err := link(5 * time.Second); err != nil {
		t.Fatalf("first link: %v", err)
	}

	for i := 1; i <= 100; i++ {
		idleConns(t, fmt.Sprintf("127.0.1.%d", i), ln.Addr(), 5)
	}
	st := waitStats(t, ln, "all general slots held by the flood", func(st acceptq.Stats) bool {
		return st.Pending == transports.DefaultMaxPending
	})
	if st.Reserved != 0 {
		t.Fatalf("the flood took reserved slots: %+v", st)
	}

	// A stranger is closed before any handshake.
	raw, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, ln.(*listener).ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := raw.Read(make([]byte, HelloSize)); err == nil || isTimeoutErr(err) {
		t.Fatalf("a new source got a handshake while the slots are full: read %d bytes, %v", n, err)
	}

	took, attempts, err := link(*halfOpenDeadline)
	if err != nil {
		t.Fatalf("known peer did not link within %s under idle connections from 100 sources (%d attempts): %v", *halfOpenDeadline, attempts, err)
	}
	t.Logf("known peer linked %s after the flood from 100 sources (%d attempts); slots %+v", took.Round(time.Millisecond), attempts, st)
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
