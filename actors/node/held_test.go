package node

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
)

// Envelopes from senders whose announce has not arrived are held, at most
// 256 of them: the 257th is dropped as unknown_sender and the gauge
// qpc_mesh_held_envelopes stays at 256; each sender's announce then
// releases its envelope, which is delivered.
func TestHeldEnvelopesCapAt256(t *testing.T) {
	c := testConfig(t)
	c.Transports.Listen = nil
	n, _ := startNode(t, c)
	mesh := n.Metrics().Mesh
	peer := newIdentity(t)
	n.Inject("test", peer.Address(), announceFrame(t, peer))
	waitRoute(t, n, peer.Address())

	const max = 256
	senders := make([]*crypto.Identity, max+1)
	for i := range senders {
		senders[i] = newIdentity(t)
		if err := n.Inject("test", peer.Address(), sealedTo(t, senders[i], n, senderText(i))); err != nil {
			t.Fatal(err)
		}
	}
	unknown := mesh.EnvelopesDropped.WithLabelValues("unknown_sender")
	waitCount(t, unknown, 1, "envelopes dropped over the cap")
	waitGauge(t, n, max, "envelopes held at the cap")
	if got := testutil.ToFloat64(unknown); got != 1 {
		t.Fatalf("dropped %v over the cap, want 1", got)
	}

	// The announces come: the first 256 are delivered, the one over the
	// cap is not (its sender retransmits).
	want := map[[16]byte]string{}
	for i, s := range senders {
		n.Inject("test", peer.Address(), announceFrame(t, s))
		if i < max {
			want[[16]byte{byte(i), byte(i >> 8)}] = senderText(i)
		}
	}
	waitRoute(t, n, senders[max].Address())
	collect(t, n, want, 20*time.Second)
	waitGauge(t, n, 0, "envelopes held after the announces")
	if got := testutil.ToFloat64(unknown); got != 1 {
		t.Fatalf("dropped %v, want 1", got)
	}
}

func senderText(i int) string { return "held " + string(rune('a'+i%26)) + string(rune('a'+i/26)) }

// A held envelope waits at most 30 s (Held.MaxAge) on the router's clock:
// when its sender's announce comes later it is not delivered but counted
// as dropped (unknown_sender), and the gauge goes back to 0. One held
// while no other envelope comes falls out at the router's GC tick: the
// gauge does not stay up until the next envelope.
func TestHeldEnvelopesAgeOutOnTheClock(t *testing.T) {
	clk := manualClock()
	c := testConfig(t)
	c.Transports.Listen = nil
	n, _ := startNode(t, c, WithClock(clk))
	mesh := n.Metrics().Mesh
	unknown := mesh.EnvelopesDropped.WithLabelValues("unknown_sender")
	peer, late, quiet := newIdentity(t), newIdentity(t), newIdentity(t)
	n.Inject("test", peer.Address(), announceAt(t, peer, clk.Now()))
	waitRoute(t, n, peer.Address())

	n.Inject("test", peer.Address(), sealedTo(t, late, n, "too old when its sender is known"))
	waitGauge(t, n, 1, "envelope held")
	advanceTo(t, clk, clk.Now().Add(30*time.Second), time.Second)
	n.Inject("test", peer.Address(), announceAt(t, late, clk.Now()))
	waitRoute(t, n, late.Address())
	waitGauge(t, n, 0, "held envelopes after the late announce")
	if got := testutil.ToFloat64(unknown); got != 1 {
		t.Fatalf("unknown_sender drops %v after the age-out, want 1", got)
	}
	// A fresh envelope from the same sender is delivered, and it is the
	// only one: the aged-out one never is.
	n.Inject("test", peer.Address(), sealedTo(t, late, n, "fresh"))
	var got []string
	advanceUntil(t, clk, time.Millisecond, func() bool {
		select {
		case m := <-n.Deliveries():
			got = append(got, string(m.Text))
		default:
		}
		return len(got) > 0
	}, "fresh envelope delivered")
	if got[0] != "fresh" {
		t.Fatalf("delivered %q first, want only %q", got[0], "fresh")
	}

	// Held with nothing after it: the GC tick (every minute) ages it out.
	n.Inject("test", peer.Address(), sealedTo(t, quiet, n, "never claimed"))
	waitGauge(t, n, 1, "second envelope held")
	advanceUntil(t, clk, time.Second, func() bool { return testutil.ToFloat64(mesh.Held) == 0 },
		"held envelope aged out without another envelope")
	if got := testutil.ToFloat64(unknown); got != 2 {
		t.Fatalf("unknown_sender drops %v, want 2", got)
	}
}
