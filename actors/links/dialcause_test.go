package links

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

// Regression test: a dial error that names the socket's local end (a
// reset or a timeout inside the handshake) names another ephemeral port
// at every attempt, so the dialer took each retry for a change of cause
// and logged it at info level. The cause compared leaves the local end
// out; the peer's address and the failure stay in it.
func TestDialCauseIgnoresTheLocalPort(t *testing.T) {
	peer := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 7701}
	attempt := func(localPort int, errno error) error {
		op := &net.OpError{Op: "read", Net: "tcp", Source: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: localPort}, Addr: peer,
			Err: os.NewSyscallError("read", errno)}
		return fmt.Errorf("transports/tcp: handshake with %s: handshake failed: read hello: %w", peer, op)
	}
	a, b := attempt(41234, syscall.ECONNRESET), attempt(41236, syscall.ECONNRESET)
	if a.Error() == b.Error() {
		t.Fatal("the test's errors should differ in their text")
	}
	if dialCause(a) != dialCause(b) {
		t.Fatalf("two resets from other local ports are two causes:\n%s\n%s", dialCause(a), dialCause(b))
	}
	want := "transports/tcp: handshake with 10.0.0.2:7701: handshake failed: read hello: read tcp 10.0.0.2:7701: read: connection reset by peer"
	if got := dialCause(a); got != want {
		t.Fatalf("cause %q, want %q", got, want)
	}
	if c := attempt(41238, syscall.ETIMEDOUT); dialCause(c) == dialCause(a) {
		t.Fatalf("a timeout and a reset are one cause: %s", dialCause(c))
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: peer, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	if got := dialCause(refused); got != refused.Error() {
		t.Fatalf("an error without a local end changed: %q", got)
	}
	if got := dialCause(errors.New("no route")); got != "no route" {
		t.Fatalf("a plain error changed: %q", got)
	}
}
