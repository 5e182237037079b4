package main

import (
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/api"
)

// qpc status prints each configured peer: up with its address, or
// backing off with when the next attempt is due, the failed attempts and
// the last error, escaped (it may quote a remote's words).
func TestStatusPeerLine(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	cases := []struct {
		p    api.Peer
		want string
	}{
		{api.Peer{URI: "tcp://10.0.0.1:7701", State: "backoff", Attempts: 3, Failures: 3,
			LastError: "dial tcp 10.0.0.1:7701: connect: connection refused", LastErrorAt: at(-2 * time.Second), NextAttempt: at(1500 * time.Millisecond)},
			"tcp://10.0.0.1:7701 backoff, next attempt in 1.5s, 3 attempts failed, last error 2s ago: dial tcp 10.0.0.1:7701: connect: connection refused"},
		{api.Peer{URI: "quic://b:7702", State: "up", Since: now.Add(-time.Minute), Peer: "5f0c00000000000000000000000000e1",
			LastError: "link down: closed by peer", LastErrorAt: at(-90 * time.Second)},
			"quic://b:7702 up (5f0c00000000000000000000000000e1, since 2025-01-02T03:03:05Z), last error 1m30s ago: link down: closed by peer"},
		{api.Peer{URI: "tcp://c:1", State: "dialling", Attempts: 1}, "tcp://c:1 dialling"},
		{api.Peer{URI: "tcp://d:1", State: "backoff", Failures: 1, LastError: "handshake: \x1b[31mevil", LastErrorAt: at(0), NextAttempt: at(-time.Second)},
			`tcp://d:1 backoff, next attempt in 0s, 1 attempt failed, last error 0s ago: handshake: \x1b[31mevil`},
	}
	for _, c := range cases {
		if got := peerLine(c.p, now); got != c.want {
			t.Errorf("peerLine(%+v)\n got %q\nwant %q", c.p, got, c.want)
		}
	}
}
