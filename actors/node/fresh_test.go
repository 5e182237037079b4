package node

import (
	"context"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
)

// TestAnnounceFreshnessSurvivesACrash: the newest announce accepted per
// origin is written as it arrives, so after the router crashes a recorded
// older announce is still refused as stale and changes nothing. Before,
// newest-seen times were written only at a graceful stop. (The crashed
// router's table survives too now: it is written as the router goes.)
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
	// The replay of the older announce is refused, and the route stays
	// the newer announce's.
	stale := n.Metrics().Mesh.AnnouncesRefused.WithLabelValues("stale")
	n.Inject("test", peer.Address(), older)
	waitCount(t, stale, 1, "stale announces refused after the crash")
	rs, err := n.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(now.Add(-time.Minute).UnixMilli())
	found := false
	for _, r := range rs {
		if r.Address == peer.Address() {
			found = true
			if r.Seq != want {
				t.Fatalf("a replayed older announce changed the route after the crash: %+v (want seq %d)", r, want)
			}
		}
	}
	if !found {
		t.Fatal("the route from before the crash is gone")
	}
	// A genuinely newer announce is accepted as usual.
	n.Inject("test", peer.Address(), announceAt(t, peer, now))
	waitRoute(t, n, peer.Address())
}
