package node

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
)

// announceAt is a signed announce of id with the given time.
func announceAt(t testing.TB, id *crypto.Identity, at time.Time) []byte {
	t.Helper()
	seal, _ := crypto.SealingKeyFor(id)
	a := messages.NewAnnounce(id.PublicKey(), seal.Public(), messages.CapRelay, nil, at)
	if err := a.Sign(id.Sign); err != nil {
		t.Fatal(err)
	}
	b, err := messages.EncodeAnnounce(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testSeq numbers the envelopes tests seal: increasing for every sender.
var testSeq atomic.Uint64

// sealedTo is a signed envelope from id to n carrying text sealed to n.
func sealedTo(t testing.TB, id *crypto.Identity, n *Node, text string) []byte {
	t.Helper()
	sealed, err := crypto.Seal(n.seal.Public(), []byte(text), crypto.SealAAD(id.Address(), n.Address()))
	if err != nil {
		t.Fatal(err)
	}
	env := messages.NewEnvelope(id.Address(), n.Address(), 8, time.Now().Add(time.Hour), messages.PayloadSealed, sealed)
	env.Seq = testSeq.Add(1)
	if err := env.Sign(id.Sign); err != nil {
		t.Fatal(err)
	}
	b, err := messages.EncodeEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitCount probes a counter until it reaches want.
func waitCount(t testing.TB, c prometheus.Collector, want float64, what string) {
	t.Helper()
	if !probe.Wait(10*time.Second, func() bool { return testutil.ToFloat64(c) >= want }) {
		t.Fatalf("%s = %v, want %v", what, testutil.ToFloat64(c), want)
	}
}

// TestRefusalsSurviveRestart is acceptance 3 of the mesh issue: a forged
// announce, a tampered envelope, a replayed announce and a replayed
// envelope are each refused and counted, also after the receiver restarts.
func TestRefusalsSurviveRestart(t *testing.T) {
	c := testConfig(t)
	n, _ := startNode(t, c)
	mesh := n.Metrics().Mesh
	peer, _ := crypto.NewIdentity(nil)
	mallory, _ := crypto.NewIdentity(nil)
	now := time.Now()

	// The peer's announce at t1 is accepted.
	older, newer := announceAt(t, peer, now.Add(-2*time.Minute)), announceAt(t, peer, now.Add(-time.Minute))
	n.Inject("test", peer.Address(), newer)
	waitRoute(t, n, peer.Address())

	// Forged: the peer's key, signed by someone else.
	forged := messages.NewAnnounce(peer.PublicKey(), make([]byte, 32), messages.CapRelay, nil, now)
	forged.Sign(mallory.Sign)
	fb, _ := messages.EncodeAnnounce(forged)
	n.Inject("test", mallory.Address(), fb)
	waitCount(t, mesh.AnnouncesRefused.WithLabelValues("bad_signature"), 1, "forged announce refusals")

	// Replayed: an older announce of the peer after a newer one.
	n.Inject("test", peer.Address(), older)
	waitCount(t, mesh.AnnouncesRefused.WithLabelValues("stale"), 1, "replayed announce refusals")

	// A good envelope is delivered once.
	good := sealedTo(t, peer, n, "hello")
	n.Inject("test", peer.Address(), good)
	select {
	case m := <-n.Deliveries():
		if string(m.Text) != "hello" {
			t.Fatalf("delivered %q", m.Text)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("good envelope not delivered")
	}
	// Tampered: one byte of the sealed payload flipped.
	bad := append([]byte(nil), good...)
	bad[len(bad)-80] ^= 0x40
	n.Inject("test", peer.Address(), bad)
	waitCount(t, mesh.EnvelopesDropped.WithLabelValues("bad_signature"), 1, "tampered envelope refusals")
	// Replayed: the same envelope again.
	n.Inject("test", peer.Address(), good)
	waitCount(t, mesh.EnvelopesDropped.WithLabelValues("duplicate"), 1, "replayed envelope refusals")

	// Restart the receiver: same data dir, fresh memory.
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n2, _ := startNode(t, c)
	mesh2 := n2.Metrics().Mesh
	waitRoute(t, n2, peer.Address()) // the table came back from disk
	n2.Inject("test", peer.Address(), older)
	waitCount(t, mesh2.AnnouncesRefused.WithLabelValues("stale"), 1, "replayed announce refusals after restart")
	n2.Inject("test", peer.Address(), good)
	waitCount(t, mesh2.EnvelopesDropped.WithLabelValues("duplicate"), 1, "replayed envelope refusals after restart")
	select {
	case m := <-n2.Deliveries():
		t.Fatalf("replayed envelope delivered after restart: %+v", m)
	default:
	}
	// And the forged and tampered ones are still refused.
	n2.Inject("test", mallory.Address(), fb)
	waitCount(t, mesh2.AnnouncesRefused.WithLabelValues("bad_signature"), 1, "forged announce refusals after restart")
	n2.Inject("test", peer.Address(), bad)
	waitCount(t, mesh2.EnvelopesDropped.WithLabelValues("bad_signature"), 1, "tampered envelope refusals after restart")
}
