package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto/mlslite"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
	"github.com/quicprochat/qpc/transports/mem"
)

// Acceptance 3 of the groups issue: one group over a fast link and a
// LoRa one. A (the creator) reaches B over an in-memory link and C over a
// LoRa mock only; A's copies to C are MLS-Lite, to B MLS. After an MLS
// epoch change (A removes B) the MLS-Lite keys change with it: A's next
// frame to C is of the new epoch and opens, and a frame of the old epoch
// played to C again is refused (wrong_epoch) and not delivered, as are a
// replay and a tampered copy of the newest (acceptance 4). C's own
// messages to the group go out as MLS-Lite over its radio.
func TestGroupOverLoRaInMLSLite(t *testing.T) {
	radio := link.NewMockNetwork(lora.MediumOptions{})
	net := mem.NewNetwork()
	ca := testConfig(t)
	ca.Transports.Listen = []string{"mem://a", "lora+mock://groups?sf=7"}
	ca.Transports.LoRa.AnnounceShare = 1
	a, _ := startNode(t, ca, WithMemNetwork(net), WithLoRaMock(radio))
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = []string{"mem://a"}
	b, _ := startNode(t, cb, WithMemNetwork(net))
	var mu sync.Mutex
	var liteAtC [][]byte
	tap := func(f *messages.InboundFrame) bool {
		if mlslite.IsMLSLite(f.Data) {
			mu.Lock()
			liteAtC = append(liteAtC, append([]byte(nil), f.Data...))
			mu.Unlock()
		}
		return false
	}
	cc := testConfig(t)
	cc.Transports.Listen = []string{"lora+mock://groups?sf=7"}
	cc.Transports.LoRa.AnnounceShare = 1
	c, _ := startNode(t, cc, WithLoRaMock(radio), WithInboundTap(tap))
	waitLink(t, a, c.Address(), "lora")
	waitRoute(t, a, b.Address())
	waitRoute(t, c, b.Address())
	waitRoute(t, b, c.Address())

	ctx := context.Background()
	created, err := a.GroupCreate(ctx, "Funk")
	if err != nil {
		t.Fatal(err)
	}
	gid := created.Group
	for _, n := range []*Node{b, c} {
		if _, err := a.GroupAdd(ctx, gid, n.Address().String(), 60*time.Second); err != nil {
			t.Fatalf("add %s: %v", n.Address().Short(), err)
		}
	}
	g, err := a.GroupShow(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range g.Members {
		want := map[string]string{b.Address().String(): "mls", c.Address().String(): "mls-lite"}[m.Address]
		if !m.Self && m.Mode != want {
			t.Fatalf("A's mode for %s: %q, want %q", m.Address[:8], m.Mode, want)
		}
	}
	if !probe.Wait(60*time.Second, func() bool { gc, ok := groupOf(t, c, gid); return ok && gc.Epoch == g.Epoch }) {
		t.Fatal("C did not join over LoRa")
	}

	var afterB, afterC, afterA uint64
	res, err := a.GroupSend(ctx, gid, "über Funk")
	if err != nil || len(res.Copies) != 2 {
		t.Fatalf("send: %+v %v", res, err)
	}
	if e := nextGroupText(t, c, &afterC, gid); e.Text != "über Funk" || e.From != a.Address().String() {
		t.Fatalf("C got %+v", e)
	}
	if e := nextGroupText(t, b, &afterB, gid); e.Text != "über Funk" {
		t.Fatalf("B got %+v", e)
	}
	if got := testutil.ToFloat64(c.Metrics().Groups.Decryptions.WithLabelValues("mls-lite", "application")); got != 1 {
		t.Fatalf("C opened %v MLS-Lite messages, want 1", got)
	}
	if got := testutil.ToFloat64(b.Metrics().Groups.Decryptions.WithLabelValues("mls", "application")); got != 1 {
		t.Fatalf("B opened %v MLS messages, want 1", got)
	}
	mu.Lock()
	if len(liteAtC) != 1 {
		mu.Unlock()
		t.Fatalf("C heard %d MLS-Lite frames, want 1", len(liteAtC))
	}
	old := liteAtC[0]
	mu.Unlock()
	oldF, _ := mlslite.Decode(old)
	// A waits for C's receipt: the copy is delivered.
	probe.Until(t, 30*time.Second, func() bool {
		m, err := a.MessageState(ctx, res.Copies[1].ID)
		if res.Copies[0].To == c.Address().String() {
			m, err = a.MessageState(ctx, res.Copies[0].ID)
		}
		return err == nil && m.State == "delivered"
	}, "C's receipt for the MLS-Lite copy")

	// An epoch change: A removes B.
	g, err = a.GroupRemove(ctx, gid, b.Address().String())
	if err != nil {
		t.Fatal(err)
	}
	if !probe.Wait(60*time.Second, func() bool { gc, ok := groupOf(t, c, gid); return ok && gc.Epoch == g.Epoch }) {
		t.Fatal("C did not apply the commit over LoRa")
	}
	if _, err := a.GroupSend(ctx, gid, "neue Schlüssel"); err != nil {
		t.Fatal(err)
	}
	if e := nextGroupText(t, c, &afterC, gid); e.Text != "neue Schlüssel" {
		t.Fatalf("C got %+v", e)
	}
	mu.Lock()
	newest := append([]byte(nil), liteAtC[len(liteAtC)-1]...)
	mu.Unlock()
	newF, _ := mlslite.Decode(newest)
	if newF.Epoch <= oldF.Epoch {
		t.Fatalf("MLS-Lite frame after the commit at epoch %d, before it %d", newF.Epoch, oldF.Epoch)
	}

	// The old epoch's frame, played to C again: refused, not delivered.
	wrong := c.Metrics().Groups.Failures.WithLabelValues("mls-lite", "wrong_epoch")
	before := testutil.ToFloat64(wrong)
	if err := c.Inject("replay", a.Address(), old); err != nil {
		t.Fatal(err)
	}
	waitCount(t, wrong, before+1, "C's MLS-Lite wrong_epoch refusals")
	if got := testutil.ToFloat64(c.Metrics().Groups.Decryptions.WithLabelValues("mls-lite", "application")); got != 2 {
		t.Fatalf("C opened %v MLS-Lite messages, want 2 (the old one again?)", got)
	}

	// The newest frame again (a replay): counted, acknowledged again, not
	// delivered; a tampered copy: counted, not delivered.
	replays := c.Metrics().Groups.Failures.WithLabelValues("mls-lite", "replay")
	if err := c.Inject("replay", a.Address(), newest); err != nil {
		t.Fatal(err)
	}
	waitCount(t, replays, 1, "C's MLS-Lite replays")
	tampered := c.Metrics().Groups.Failures.WithLabelValues("mls-lite", "tampered")
	bad := append([]byte(nil), newest...)
	bad[len(bad)-80] ^= 0x01 // in the ciphertext (the signature is the last 64 bytes)
	if err := c.Inject("tamper", a.Address(), bad); err != nil {
		t.Fatal(err)
	}
	waitCount(t, tampered, 1, "C's tampered MLS-Lite frames")
	if got := testutil.ToFloat64(c.Metrics().Groups.Decryptions.WithLabelValues("mls-lite", "application")); got != 2 {
		t.Fatalf("C opened %v MLS-Lite messages, want 2 (a replay or a tampered one delivered?)", got)
	}

	// C answers over its radio: MLS-Lite to A.
	if _, err := c.GroupSend(ctx, gid, "empfangen"); err != nil {
		t.Fatal(err)
	}
	if e := nextGroupText(t, a, &afterA, gid); e.Text != "empfangen" || e.From != c.Address().String() {
		t.Fatalf("A got %+v", e)
	}
	if got := testutil.ToFloat64(a.Metrics().Groups.Decryptions.WithLabelValues("mls-lite", "application")); got != 1 {
		t.Fatalf("A opened %v MLS-Lite messages, want 1", got)
	}
}
