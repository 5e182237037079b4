package node

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRoutesComeBackAfterRelayRestart: A – B – C, B restarts (gracefully,
// then harshly). A and C lose their routes through B when its links go;
// once B is back they must have them again within seconds — B keeps the
// announce frames with its table, so its dump to each neighbour carries
// the other one — not after the next periodic announce (10 minutes).
func TestRoutesComeBackAfterRelayRestart(t *testing.T) {
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	a, _ := startNode(t, ca)
	cb := testConfig(t)
	cb.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	cb.Transports.Peers = a.ListenAddrs()
	b, _ := startNode(t, cb, WithDialBackoff(linksBackoffFast))
	// B's port must stay the same across its restarts, for C to re-dial.
	cb.Transports.Listen = b.ListenAddrs()
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = b.ListenAddrs()
	c, _ := startNode(t, cc, WithDialBackoff(linksBackoffFast))
	waitRoute(t, a, c.Address())
	waitRoute(t, c, a.Address())
	waitTableWritten(t, b, a.Address())
	waitTableWritten(t, b, c.Address())

	for _, harsh := range []bool{false, true} {
		if harsh {
			_ = crashStop(b)
		} else if err := b.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitRouteGone(t, c, a.Address())
		waitRouteGone(t, a, c.Address())
		start := time.Now()
		b, _ = startNode(t, cb, WithDialBackoff(linksBackoffFast))
		waitRoute(t, c, a.Address())
		waitRoute(t, a, c.Address())
		t.Logf("harsh=%v: routes back %s after B started", harsh, time.Since(start).Round(time.Millisecond))
	}
}

// The announces a node sends to neighbours as they come up are counted
// (qpc_mesh_announces_sent_total stayed 0 until the first periodic one).
func TestAnnouncesToNewNeighboursAreCounted(t *testing.T) {
	a, _, c := line(t)
	for _, n := range []*Node{a, c} {
		if got := testutil.ToFloat64(n.Metrics().Mesh.AnnouncesSent); got < 1 {
			t.Fatalf("%s counted %v announces sent", n.Address().Short(), got)
		}
	}
}
