package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
)

// waitPeerStatus polls /v1/status until the one configured peer is in
// state, and returns it.
func waitPeerStatus(t *testing.T, n *Node, state string) api.Peer {
	t.Helper()
	c := &api.Client{Addr: n.APIAddr()}
	var st api.Status
	var err error
	if !probe.Wait(15*time.Second, func() bool {
		st = api.Status{}
		err = c.Get(context.Background(), "/v1/status", &st)
		return err == nil && len(st.Peers) == 1 && st.Peers[0].State == state
	}) {
		t.Fatalf("peer not %s within 15s: %v %+v", state, err, st.Peers)
	}
	return st.Peers[0]
}

// Issue 9.5: qpc status lists the configured peers with their state and
// last error. A peer that cannot be dialled shows as backing off with the
// dial error, the failed attempts and when the next one is due; once it
// is up it shows up, with the address it authenticated as.
func TestStatusShowsConfiguredPeers(t *testing.T) {
	cp := testConfig(t)
	cp.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	p, _ := startNode(t, cp)
	addr := p.ListenAddrs()[0]
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	c := testConfig(t)
	c.Transports.Listen = nil
	c.Transports.Peers = []string{addr}
	n, _ := startNode(t, c, WithDialBackoff(linksBackoffFast))
	down := waitPeerStatus(t, n, messages.PeerStateBackoff)
	if down.URI != addr || down.Failures < 1 || down.Attempts < down.Failures || down.Peer != "" {
		t.Fatalf("unreachable peer: %+v", down)
	}
	if !strings.Contains(down.LastError, "refused") || down.LastErrorAt == nil {
		t.Fatalf("unreachable peer's last error: %q at %v", down.LastError, down.LastErrorAt)
	}
	if down.NextAttempt == nil || down.NextAttempt.Before(*down.LastErrorAt) {
		t.Fatalf("next attempt %v, last error at %v", down.NextAttempt, down.LastErrorAt)
	}

	cp.Transports.Listen = []string{addr}
	p2, _ := startNode(t, cp)
	up := waitPeerStatus(t, n, messages.PeerStateUp)
	if up.Peer != p2.Address().String() || up.Failures != 0 || up.NextAttempt != nil {
		t.Fatalf("peer up: %+v, want %s", up, p2.Address())
	}
	if up.LastError == "" {
		t.Fatalf("the last error went when the peer came up: %+v", up)
	}

	// Its link ends: the reason is the last error, and a re-dial is due.
	if err := p2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	lost := waitPeerStatus(t, n, messages.PeerStateBackoff)
	if !strings.HasPrefix(lost.LastError, "link down: ") && !strings.Contains(lost.LastError, "refused") {
		t.Fatalf("after the link went: %+v", lost)
	}
}
