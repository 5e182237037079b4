package node

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
)

// frameLog records the envelope frames a node admits (its inbound tap).
type frameLog struct {
	mu     sync.Mutex
	frames [][]byte
}

func (l *frameLog) tap(f *messages.InboundFrame) bool {
	if t, err := messages.FrameTag(f.Data); err == nil && (t.Type() == messages.FrameEnvelope || t.Type() == messages.FrameCompact) {
		l.mu.Lock()
		l.frames = append(l.frames, bytes.Clone(f.Data))
		l.mu.Unlock()
	}
	return false
}

// compactFrom returns the compact envelopes from src seen so far.
func (l *frameLog) compactFrom(src crypto.Address) []messages.Compact {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []messages.Compact
	for _, f := range l.frames {
		if c, err := messages.DecodeCompact(f); err == nil && c.Source == src {
			out = append(out, c)
		}
	}
	return out
}

// sealedFrom returns the signed sealed envelopes from src seen so far.
func (l *frameLog) sealedFrom(src crypto.Address) []messages.Envelope {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []messages.Envelope
	for _, f := range l.frames {
		if e, err := messages.DecodeEnvelope(f); err == nil && e.Source == src && e.PayloadType == messages.PayloadSealed {
			out = append(out, e)
		}
	}
	return out
}

// TestCompactOverLoRa (issue 12, acceptance 4): A on LoRa, B a relay on
// LoRa and TCP, C on TCP. A's message to C goes out as a compact sealed
// envelope because A's first hop is a radio (126 bytes, where the signed
// one is 193); B relays it as it is, C opens it, delivers it once and
// answers with the usual signed receipt, so A's outbox marks it
// delivered. C's answer, whose first hop is TCP, is a signed envelope.
// A tampered copy and one sealed by another key claiming A's address are
// refused at C (counted as open_failed, not delivered), and a replay of
// the real one is not delivered again.
func TestCompactOverLoRa(t *testing.T) {
	radio := link.NewMockNetwork(lora.MediumOptions{})
	var atB, atC frameLog
	ca := testConfig(t)
	ca.Transports.Listen = []string{"lora+mock://compact?sf=7"}
	a, _ := startNode(t, ca, WithLoRaMock(radio))
	cb := testConfig(t)
	cb.Transports.Listen = []string{"lora+mock://compact?sf=7", "tcp://127.0.0.1:0"}
	// No announce cap: at 2 % of the channel B's radio sends C's announce
	// (166 bytes with its KeyPackage hash) about 15 s after its own, and
	// waitRoute waits 15 s (as in TestLoRaDemo).
	cb.Transports.LoRa.AnnounceShare = 1
	b, _ := startNode(t, cb, WithLoRaMock(radio), WithInboundTap(atB.tap))
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = []string{b.ListenAddrs()[1]}
	c, _ := startNode(t, cc, WithInboundTap(atC.tap))

	waitLink(t, a, b.Address(), "lora")
	waitRoute(t, a, c.Address())
	waitRoute(t, c, a.Address())
	ctx := context.Background()
	text := bytes.Repeat([]byte{'r'}, 32)
	res, err := a.SendText(ctx, c.Address(), text)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-c.Deliveries():
		if !bytes.Equal(m.Text, text) || m.From != a.Address() || m.Hops != 2 || m.ID != res.ID {
			t.Fatalf("C got %+v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("A's message did not reach C")
	}
	// On the radio (B heard it from A) and after the relay (C heard it
	// from B) it was the compact form, the same message, 126 bytes.
	fromA := atB.compactFrom(a.Address())
	atCFromA := atC.compactFrom(a.Address())
	if len(fromA) == 0 || len(atCFromA) == 0 || len(atB.sealedFrom(a.Address())) != 0 {
		t.Fatalf("compact frames from A: %d at B, %d at C; signed at B: %d", len(fromA), len(atCFromA), len(atB.sealedFrom(a.Address())))
	}
	if fromA[0].ID() != res.ID || atCFromA[0].ID() != res.ID || fromA[0].Hops != 0 || atCFromA[0].Hops != 1 {
		t.Fatalf("ids %x %x (sent %x), hops %d %d", fromA[0].ID(), atCFromA[0].ID(), res.ID, fromA[0].Hops, atCFromA[0].Hops)
	}
	if got := testutil.ToFloat64(a.Metrics().Mesh.CompactSent); got != 1 {
		t.Fatalf("A counted %v compact sends, want 1", got)
	}
	wire, err := messages.EncodeCompact(fromA[0])
	if err != nil || len(wire) != 126 {
		t.Fatalf("compact frame on the radio: %d bytes, %v", len(wire), err)
	}
	probe.Until(t, 30*time.Second, func() bool {
		st, err := a.Message(ctx, res.ID)
		return err == nil && st.State == router.StateDelivered
	}, "A's outbox marks the compact message delivered (C's signed receipt)")

	// C's answer goes over TCP first: signed.
	if _, err := c.SendText(ctx, a.Address(), []byte("over tcp")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-a.Deliveries():
		if string(m.Text) != "over tcp" || m.From != c.Address() {
			t.Fatalf("A got %+v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("C's answer did not reach A")
	}
	if len(atB.sealedFrom(c.Address())) == 0 || len(atB.compactFrom(c.Address())) != 0 || testutil.ToFloat64(c.Metrics().Mesh.CompactSent) != 0 {
		t.Fatal("C's answer (first hop TCP) was not a signed envelope")
	}

	// Refusals at C, injected as if B had relayed them.
	dropped := func(reason string) float64 {
		return testutil.ToFloat64(c.Metrics().Mesh.EnvelopesDropped.WithLabelValues(reason))
	}
	before := dropped(router.DropOpenFailed)
	tampered := bytes.Clone(wire)
	tampered[len(tampered)-20] ^= 0x10 // in the ciphertext
	if err := c.Inject("lora-test", b.Address(), tampered); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool { return dropped(router.DropOpenFailed) == before+1 }, "tampered compact envelope counted as open_failed")

	// Mallory seals to C with her own key and claims to be A.
	mallory, _ := crypto.NewIdentity(nil)
	mk, _ := crypto.SealingKeyFor(mallory)
	cSeal, _ := crypto.SealingKeyFor(c.id)
	forged := messages.NewCompact(a.Address(), c.Address(), 8, time.Now().Add(time.Hour), 1000)
	if forged.Sealed, err = mk.SealAuth(cSeal.Public(), []byte("forged"), forged.AAD()); err != nil {
		t.Fatal(err)
	}
	ff, err := messages.EncodeCompact(forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Inject("lora-test", b.Address(), ff); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool { return dropped(router.DropOpenFailed) == before+2 }, "wrong-sender compact envelope counted as open_failed")

	// The real one again (a replay): not delivered twice.
	dup := dropped(router.DropDuplicate)
	if err := c.Inject("lora-test", b.Address(), wire); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool { return dropped(router.DropDuplicate) > dup }, "replayed compact envelope counted as duplicate")
	select {
	case m := <-c.Deliveries():
		t.Fatalf("C delivered a refused frame: %+v", m)
	default:
	}
	if got := testutil.ToFloat64(c.Metrics().Mesh.Envelopes.WithLabelValues("delivered")); got != 1 {
		t.Fatalf("C delivered %v messages, want 1", got)
	}
}

// TestCompactOff: with transports.lora.compact = false a node whose first
// hop is a radio still sends the signed envelope (relays can verify it).
func TestCompactOff(t *testing.T) {
	radio := link.NewMockNetwork(lora.MediumOptions{})
	var atB frameLog
	ca := testConfig(t)
	ca.Transports.Listen = []string{"lora+mock://signed?sf=7"}
	ca.Transports.LoRa.Compact = false
	a, _ := startNode(t, ca, WithLoRaMock(radio))
	cb := testConfig(t)
	cb.Transports.Listen = []string{"lora+mock://signed?sf=7"}
	b, _ := startNode(t, cb, WithLoRaMock(radio), WithInboundTap(atB.tap))
	waitLink(t, a, b.Address(), "lora")
	waitRoute(t, a, b.Address())
	if _, err := a.SendText(context.Background(), b.Address(), []byte("signed over the radio")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-b.Deliveries():
		if string(m.Text) != "signed over the radio" || m.From != a.Address() {
			t.Fatalf("B got %+v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("A's message did not reach B")
	}
	if len(atB.sealedFrom(a.Address())) == 0 || len(atB.compactFrom(a.Address())) != 0 || testutil.ToFloat64(a.Metrics().Mesh.CompactSent) != 0 {
		t.Fatal("compact although transports.lora.compact = false")
	}
}
