package node

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/verify"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
)

// TestFloodingPeerDoesNotStarveOthers is acceptance 4 of the mesh issue:
// a peer sending 100× its envelope rate has its excess dropped and
// counted, and another peer's messages all arrive. The limiter's buckets
// run on the node's clock, a manual one here: 50 steps of 10 ms, each
// with one good message (the good peer's own rate, 100/s) and 100 junk
// frames from the flooder, and the clock moves on only once the limiter
// has decided on every frame of the step. So the count is exact whatever
// the machine's speed: the flooder gets its burst and its rate over the
// 0.49 s between its first and last step, and not one frame more.
func TestFloodingPeerDoesNotStarveOthers(t *testing.T) {
	clk := manualClock()
	c := testConfig(t)
	c.Transports.Listen = nil
	const rate, burst = 100, 100
	c.RateLimit.EnvelopesPerSec, c.RateLimit.EnvelopeBurst = rate, burst
	n, _ := startNode(t, c, WithClock(clk))
	good, flooder := newIdentity(t), newIdentity(t)
	n.Inject("test", good.Address(), announceAt(t, good, clk.Now()))
	waitRoute(t, n, good.Address())

	// The flooder's envelopes need not even be valid: what the limiter
	// lets through the edge drops as malformed.
	mesh := n.Metrics().Mesh
	limited := mesh.RateLimited.WithLabelValues("envelope")
	decided := func() float64 {
		return testutil.ToFloat64(limited) + testutil.ToFloat64(mesh.EnvelopesDropped.WithLabelValues(verify.DropMalformed)) +
			testutil.ToFloat64(mesh.EnvelopesDropped.WithLabelValues(verify.DropOverload))
	}
	junk, _ := messages.Marshal([]any{uint8(messages.TagEnvelope), 0})
	const steps, floodPerStep, step = 50, 100, 10 * time.Millisecond
	expiry := clk.Now().Add(time.Hour)
	for i := range steps {
		clk.Advance(step)
		n.Inject("good", good.Address(), sealedAt(t, good, n, "msg", expiry))
		for range floodPerStep {
			n.Inject("flood", flooder.Address(), junk)
		}
		probe.Until(t, 10*time.Second, func() bool { return decided() == float64((i+1)*floodPerStep) },
			"step %d: %v of the flooder's %d frames decided", i, decided(), (i+1)*floodPerStep)
	}
	// The good messages are delivered at their group commits (a 10 ms
	// gather on the clock).
	got := 0
	advanceUntil(t, clk, step, func() bool {
		for {
			select {
			case m := <-n.Deliveries():
				if m.From != good.Address() {
					t.Fatalf("delivered from %s", crypto.Address(m.From).Short())
				}
				got++
			default:
				return got == steps
			}
		}
	}, "all %d good messages delivered", steps)

	offered := float64(steps * floodPerStep)
	// Its first frame found the bucket full; after that it gained rate ×
	// 10 ms = one token per step.
	admitted := offered - testutil.ToFloat64(limited)
	if want := float64(burst + rate*(steps-1)*int(step)/int(time.Second)); admitted < want-1 || admitted > want {
		t.Fatalf("the limiter admitted %v of the flooder's %v envelopes, want %v (burst %d, %d/s for %v)",
			admitted, offered, want, burst, rate, (steps-1)*step)
	}
	t.Logf("flooder offered %v envelopes, %v dropped by the limiter; all %d good messages delivered", offered, testutil.ToFloat64(limited), steps)
}
