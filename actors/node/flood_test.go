package node

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// TestFloodingPeerDoesNotStarveOthers is acceptance 4 of the mesh issue:
// a peer sending 100× its envelope rate has its excess dropped and
// counted, and another peer's messages all arrive.
func TestFloodingPeerDoesNotStarveOthers(t *testing.T) {
	c := testConfig(t)
	c.RateLimit.EnvelopesPerSec, c.RateLimit.EnvelopeBurst = 100, 100
	n, _ := startNode(t, c)
	good, _ := crypto.NewIdentity(nil)
	flooder, _ := crypto.NewIdentity(nil)
	n.Inject("test", good.Address(), announceFrame(t, good))
	waitRoute(t, n, good.Address())

	// The flooder's envelopes need not even be valid: they are counted and
	// dropped before any work. 100 × 100/s for half a second, paced in 10
	// ms steps (load generation, not waiting), with one good message every
	// step: 50 good messages at 100/s, exactly the good peer's own rate.
	junk, _ := messages.Marshal([]any{uint8(messages.TagEnvelope), 0})
	const steps, floodPerStep = 50, 100
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := range steps {
		<-tick.C
		for range floodPerStep {
			n.Inject("flood", flooder.Address(), junk)
		}
		n.Inject("good", good.Address(), sealedTo(t, good, n, "msg"))
		_ = i
	}
	for got := 0; got < steps; got++ {
		select {
		case m := <-n.Deliveries():
			if m.From != good.Address() {
				t.Fatalf("delivered from %s", crypto.Address(m.From).Short())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d good messages arrived; rate-limited %v", got, steps,
				testutil.ToFloat64(n.Metrics().Mesh.RateLimited.WithLabelValues("envelope")))
		}
	}
	offered := float64(steps * floodPerStep)
	// The flooder may use its burst (100) and its rate over the ~0.5 s.
	limited := testutil.ToFloat64(n.Metrics().Mesh.RateLimited.WithLabelValues("envelope"))
	if limited < offered-100-100 {
		t.Fatalf("rate-limited %v of the flooder's %v envelopes", limited, offered)
	}
	t.Logf("flooder offered %v envelopes, %v dropped by the limiter; all %d good messages delivered", offered, limited, steps)
}
