package verify

import (
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

func (w *world) compact(t *testing.T, sealer *crypto.SealingKey, from, to [16]byte, seq uint64, text string) []byte {
	t.Helper()
	k := messages.NewCompact(from, to, 8, time.Now().Add(time.Hour), seq)
	var err error
	if k.Sealed, err = sealer.SealAuth(w.seal.Public(), []byte(text), k.AAD()); err != nil {
		t.Fatal(err)
	}
	f, err := messages.EncodeCompact(k)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCheckCompact: a compact envelope for this node is opened at the edge
// with the source's announced sealing key; a tampered one or one sealed
// by another key claiming the source is marked OpenFailed (the router
// counts it); one whose source's key the snapshot lacks goes to the
// router; one for another node goes to the router as it came (relays
// cannot check it; the router's relay rules apply).
func TestCheckCompact(t *testing.T) {
	w := newWorld(t)
	srcSeal, _ := crypto.SealingKeyFor(w.src)
	_, mallory := func() (*crypto.Identity, *crypto.SealingKey) {
		id, _ := crypto.NewIdentity(nil)
		k, _ := crypto.SealingKeyFor(id)
		return id, k
	}()
	self := w.self.Address()
	good := w.compact(t, srcSeal, w.src.Address(), self, 1, "hi")
	check := func(f []byte) (*messages.VerifiedEnvelope, string) {
		return Check(&messages.InboundFrame{Data: f}, w.dir, self, w.seal)
	}
	if v, reason := check(good); v != nil || reason != "" {
		t.Fatalf("unknown source: %+v %q", v, reason)
	}
	w.dir.Publish(Keys{w.src.Address(): {Signing: w.src.PublicKey(), Sealing: srcSeal.Public()}})
	v, reason := check(good)
	k, _ := messages.DecodeCompact(good)
	if v == nil || reason != "" || string(v.Opened) != "hi" || v.OpenFailed || v.ID != k.ID() || v.Env.Tag != messages.TagCompact || v.Env.Seq != 1 {
		t.Fatalf("good: %+v %q", v, reason)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)-3] ^= 1
	if v, _ := check(bad); v == nil || !v.OpenFailed || v.Opened != nil {
		t.Fatalf("tampered: %+v", v)
	}
	if v, _ := check(w.compact(t, mallory, w.src.Address(), self, 2, "forged")); v == nil || !v.OpenFailed || v.Opened != nil {
		t.Fatalf("wrong sender: %+v", v)
	}
	other, _ := crypto.NewIdentity(nil)
	if v, reason := check(w.compact(t, mallory, w.src.Address(), other.Address(), 1, "x")); v != nil || reason != "" {
		t.Fatalf("for someone else: %+v %q", v, reason)
	}
	if v, reason := check(good[:40]); v != nil || reason != DropMalformed {
		t.Fatalf("truncated: %+v %q", v, reason)
	}
}
