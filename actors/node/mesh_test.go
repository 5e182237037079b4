package node

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
)

// line starts A – B – C: A listens on TCP, B dials A and listens on QUIC,
// C dials B. A and C are not connected.
func line(t testing.TB, optsB ...Option) (a, b, c *Node) {
	t.Helper()
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	var logsA *syncBuffer
	a, logsA = startNode(t, ca)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's log:\n%s", logsA)
		}
	})
	cb := testConfig(t)
	cb.Transports.Listen = []string{"quic://127.0.0.1:0"}
	cb.Transports.Peers = a.ListenAddrs()
	var logsB *syncBuffer
	b, logsB = startNode(t, cb, optsB...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("B's log:\n%s", logsB)
		}
	})
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = b.ListenAddrs()
	c, _ = startNode(t, cc)
	waitRoute(t, a, c.Address())
	waitRoute(t, c, a.Address())
	return a, b, c
}

func TestMessageCrossesRelaySealed(t *testing.T) {
	var mu sync.Mutex
	var seenByB [][]byte
	tap := func(f *messages.InboundFrame) bool {
		mu.Lock()
		seenByB = append(seenByB, append([]byte(nil), f.Data...))
		mu.Unlock()
		return false
	}
	a, b, c := line(t, WithInboundTap(tap))
	if r := waitRoute(t, a, c.Address()); r.Hops != 2 || r.NextHop != b.Address() {
		t.Fatalf("A's route to C: %+v", r)
	}
	secret := "hello C, this is A"
	res, err := a.SendText(context.Background(), c.Address(), []byte(secret))
	if err != nil || res.Status != router.StateSent {
		t.Fatalf("send: %+v %v", res, err)
	}
	select {
	case m := <-c.Deliveries():
		if string(m.Text) != secret || m.From != a.Address() || m.Hops != 2 || m.ID != res.ID {
			t.Fatalf("C got %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("C got nothing")
	}
	// The receipt comes back to A.
	waitCount(t, a.Metrics().Mesh.Receipts, 1, "receipts at A")
	mu.Lock()
	seen := seenByB
	mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("B saw no frames")
	}
	for _, f := range seen {
		if bytes.Contains(f, []byte(secret)) || bytes.Contains(f, []byte("hello C")) {
			t.Fatal("B saw the plaintext")
		}
	}
	if got := testutil.ToFloat64(b.Metrics().Mesh.Envelopes.WithLabelValues("forwarded")); got < 1 {
		t.Fatalf("B forwarded %v envelopes", got)
	}

	tr, err := a.Trace(context.Background(), c.Address(), 5*time.Second)
	if err != nil {
		for name, n := range map[string]*Node{"a": a, "b": b, "c": c} {
			fams, _ := metrics.Snapshot(n.Gatherer())
			for _, f := range fams {
				if strings.Contains(f.Name, "mesh") || strings.Contains(f.Name, "link_frames") {
					t.Logf("%s %s %+v", name, f.Name, f.Samples)
				}
			}
		}
		t.Fatal(err)
	}
	if !tr.Reached || len(tr.Hops) != 2 || tr.Hops[0].Address != b.Address() || tr.Hops[1].Address != c.Address() {
		t.Fatalf("trace: %+v", tr)
	}
	for _, h := range tr.Hops {
		if h.RTT <= 0 {
			t.Fatalf("hop %d has no round-trip time", h.Hop)
		}
	}
}

// TestCapabilityChangeIsAnnounced: a node that changes what it can do
// announces it at once, and its neighbour's table shows the new bits.
func TestCapabilityChangeIsAnnounced(t *testing.T) {
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	a, _ := startNode(t, ca)
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = a.ListenAddrs()
	b, _ := startNode(t, cb, WithCapabilities(messages.CapRelay))
	if r := waitRoute(t, a, b.Address()); r.Capabilities != messages.CapRelay {
		t.Fatalf("capabilities %v", r.Capabilities)
	}
	want := messages.CapRelay | messages.CapFAPPTherapist
	if err := b.SetCapabilities(want); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool { return waitRoute(t, a, b.Address()).Capabilities == want },
		"new capabilities seen by the neighbour")
}
