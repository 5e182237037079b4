package node

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
)

// A router that panics and is restarted by its supervisor keeps what it
// knew: the routes learned a moment before (not only those the lazy
// flush had written), and the envelopes it held for a sender whose
// announce had not arrived yet, which are delivered once it does.
func TestRouterRestartKeepsRoutesAndHeldEnvelopes(t *testing.T) {
	policy := RestartPolicy{Initial: time.Millisecond, Max: 10 * time.Millisecond, MaxRestarts: 5, Window: time.Minute}
	n, logs := startNode(t, testConfig(t), WithFaultInjection(), WithRestartPolicy(policy))

	// Routes learned just before the fault: well inside the lazy flush's
	// delay, so only a write at the restart can keep them.
	var peers []crypto.Address
	for range 5 {
		p, _ := crypto.NewIdentity(nil)
		if err := n.Inject("test", p.Address(), announceFrame(t, p)); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p.Address())
	}
	for _, p := range peers {
		waitRoute(t, n, p)
	}

	// An envelope from a sender nobody has heard of yet: held.
	sender, _ := crypto.NewIdentity(nil)
	if err := n.Inject("test", peers[0], sealedTo(t, sender, n, "held across a restart")); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, n, 1, "envelopes held before the fault")

	if err := n.Fault("router", "test"); err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, n, "router", 1, logs)

	rs, err := n.Routes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	have := map[crypto.Address]bool{}
	for _, r := range rs {
		have[r.Address] = true
	}
	for _, p := range peers {
		if !have[p] {
			t.Fatalf("route to %s lost in the restart; routes now: %d of %d", p, len(rs), len(peers))
		}
	}
	if got := testutil.ToFloat64(n.Metrics().Mesh.Held); got != 1 {
		t.Fatalf("held envelopes after the restart = %v, want 1", got)
	}

	// The sender's announce arrives: the held envelope is delivered.
	if err := n.Inject("test", peers[0], announceFrame(t, sender)); err != nil {
		t.Fatal(err)
	}
	collect(t, n, map[[16]byte]string{{1}: "held across a restart"}, 10*time.Second)
	waitGauge(t, n, 0, "envelopes held after the sender's announce")
}

// waitGauge waits until the node's held-envelopes gauge reads want.
func waitGauge(t *testing.T, n *Node, want float64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(n.Metrics().Mesh.Held) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, want %v", what, testutil.ToFloat64(n.Metrics().Mesh.Held), want)
		}
		<-time.After(2 * time.Millisecond) // polling a gauge the router sets
	}
}
