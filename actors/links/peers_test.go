package links

import (
	"testing"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// A configured peer's life as the operator sees it in qpc status:
// pending, dialling, backing off with the error and the next attempt,
// up with its address, down with the link's reason, and stopped.
func TestPeersFollowTheDialer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const a, b = "tcp://10.0.0.1:7701", "quic://10.0.0.2:7702"
	peer := [16]byte{7}
	p := NewPeers([]string{a, b, a}, t0)

	type want struct {
		state              string
		since              time.Time
		attempts, failures int
		lastErr            string
		lastErrAt, next    time.Time
		peer               [16]byte
	}
	check := func(step string, uri string, w want) {
		t.Helper()
		var got *messages.PeerStatus
		for _, st := range p.List() {
			if st.URI == uri {
				got = &st
			}
		}
		if got == nil {
			t.Fatalf("%s: %s not listed", step, uri)
		}
		g := want{got.State, got.Since, got.Attempts, got.Failures, got.LastError, got.LastErrorAt, got.NextAttempt, got.Peer}
		if g != w {
			t.Fatalf("%s: %s is\n%+v, want\n%+v", step, uri, g, w)
		}
	}

	if l := p.List(); len(l) != 2 || l[0].URI != a || l[1].URI != b {
		t.Fatalf("list %+v: want a then b, once each", l)
	}
	check("start", a, want{state: messages.PeerStatePending, since: t0})

	p.Apply(peerEvent{uri: a, kind: evDialling, at: at(1)})
	check("dialling", a, want{state: messages.PeerStateDialling, since: at(1), attempts: 1})

	p.Apply(peerEvent{uri: a, kind: evFailed, at: at(2), err: "connection refused", next: at(3)})
	check("failed", a, want{state: messages.PeerStateBackoff, since: at(2), attempts: 1, failures: 1,
		lastErr: "connection refused", lastErrAt: at(2), next: at(3)})

	p.Apply(peerEvent{uri: a, kind: evDialling, at: at(3)})
	p.Apply(peerEvent{uri: a, kind: evFailed, at: at(4), err: "i/o timeout", next: at(6)})
	check("failed again", a, want{state: messages.PeerStateBackoff, since: at(4), attempts: 2, failures: 2,
		lastErr: "i/o timeout", lastErrAt: at(4), next: at(6)})

	p.Apply(peerEvent{uri: a, kind: evDialling, at: at(6)})
	p.Apply(peerEvent{uri: a, kind: evUp, at: at(7), peer: peer, link: 42})
	// Up: the failures are over; the last error stays, as history.
	check("up", a, want{state: messages.PeerStateUp, since: at(7), attempts: 3,
		lastErr: "i/o timeout", lastErrAt: at(4), peer: peer})

	p.LinkDown(41, "closed by peer", at(8)) // another link: not a's
	check("other link down", a, want{state: messages.PeerStateUp, since: at(7), attempts: 3,
		lastErr: "i/o timeout", lastErrAt: at(4), peer: peer})
	p.LinkDown(42, "closed by peer", at(9))
	check("link down", a, want{state: messages.PeerStateDown, since: at(9), attempts: 3,
		lastErr: "link down: closed by peer", lastErrAt: at(9), peer: peer})
	p.Apply(peerEvent{uri: a, kind: evWaiting, at: at(9), next: at(10)})
	check("re-dial scheduled", a, want{state: messages.PeerStateBackoff, since: at(9), attempts: 3,
		lastErr: "link down: closed by peer", lastErrAt: at(9), next: at(10), peer: peer})

	// A discovered peer's dialer is not a configured peer: ignored.
	p.Apply(peerEvent{uri: "tcp://10.9.9.9:1", kind: evDialling, at: at(9)})
	if len(p.List()) != 2 {
		t.Fatalf("a discovered peer was listed: %+v", p.List())
	}

	p.GaveUp(b, "no quic transport on this node", at(10))
	check("given up", b, want{state: messages.PeerStateGivenUp, since: at(10),
		lastErr: "no quic transport on this node", lastErrAt: at(10)})

	p.Stopped(at(11))
	check("draining", a, want{state: messages.PeerStateStopped, since: at(11), attempts: 3,
		lastErr: "link down: closed by peer", lastErrAt: at(9), peer: peer})
	check("draining leaves given up", b, want{state: messages.PeerStateGivenUp, since: at(10),
		lastErr: "no quic transport on this node", lastErrAt: at(10)})
}

// List hands out copies: what the API shows cannot change under it.
func TestPeersListIsACopy(t *testing.T) {
	p := NewPeers([]string{"tcp://a:1"}, time.Unix(0, 0))
	l := p.List()
	p.Apply(peerEvent{uri: "tcp://a:1", kind: evDialling, at: time.Unix(1, 0)})
	if l[0].State != messages.PeerStatePending {
		t.Fatalf("an earlier list changed: %+v", l[0])
	}
}
