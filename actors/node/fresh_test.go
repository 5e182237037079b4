package node

import (
	"context"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
)

// TestAnnounceFreshnessSurvivesACrash: the newest announce accepted per
// origin is written as it arrives, so after the router crashes (no
// graceful persist: the table snapshot on disk is older) a recorded older
// announce is still refused as stale. Before, newest-seen times were
// written only at a graceful stop.
func TestAnnounceFreshnessSurvivesACrash(t *testing.T) {
	policy := RestartPolicy{Initial: time.Millisecond, Max: 10 * time.Millisecond, MaxRestarts: 5, Window: time.Minute}
	n, logs := startNode(t, testConfig(t), WithFaultInjection(), WithRestartPolicy(policy))
	peer, _ := crypto.NewIdentity(nil)
	now := time.Now()
	older, newer := announceAt(t, peer, now.Add(-2*time.Minute)), announceAt(t, peer, now.Add(-time.Minute))
	n.Inject("test", peer.Address(), newer)
	waitRoute(t, n, peer.Address())
	// Wait until the freshness record is committed (it goes in the next
	// group commit, right after the announce).
	waitCount(t, n.Metrics().Mesh.Commits, 1, "router commits")

	if err := n.Fault("router", "crash"); err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, n, "router", 1, logs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The crashed router's table is gone (nothing was persisted), but the
	// replay of the older announce is refused, and the newer one is a
	// duplicate, not a fresh route.
	stale := n.Metrics().Mesh.AnnouncesRefused.WithLabelValues("stale")
	n.Inject("test", peer.Address(), older)
	waitCount(t, stale, 1, "stale announces refused after the crash")
	rs, err := n.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Address == peer.Address() {
			t.Fatalf("a replayed older announce made a route after the crash: %+v", r)
		}
	}
	// A genuinely newer announce is accepted as usual.
	n.Inject("test", peer.Address(), announceAt(t, peer, now))
	waitRoute(t, n, peer.Address())
}
