package keys

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/pq"
)

// pqRig is a rig whose nodes have groups.pq on (their X-Wing keys).
func pqRig(t *testing.T, names ...string) (*engRig, []*rigNode) {
	t.Helper()
	r := &engRig{t: t, now: time.Now()}
	for _, name := range names {
		r.newNode(name, true)
	}
	r.publish()
	return r, r.nodes
}

func pqKeys(ns ...*rigNode) PQKeys {
	k := PQKeys{}
	for _, n := range ns {
		k[n.addr] = pq.KeyFor(n.id).Public()
	}
	return k
}

func checkPQ(t *testing.T, gid [16]byte, want bool, ns ...*rigNode) {
	t.Helper()
	for _, n := range ns {
		gi, err := n.eng.Group(gid)
		if err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
		if gi.PQ != want {
			t.Fatalf("%s: group PQ %v at epoch %d, want %v", n.name, gi.PQ, gi.Epoch, want)
		}
	}
}

func pqCount(n *rigNode, kind PayloadKind) float64 {
	return testutil.ToFloat64(n.m.Decryptions.WithLabelValues(modePQ, kind.String()))
}

// TestEnginePQGroup: with every member's X-Wing key, each commit of the
// creator injects a PSK sealed to each member (1,187 bytes more per copy),
// joiners get theirs with the Welcome, and the group reads on; one member
// without a key and the commit is classical for all; a removed member
// learns it is out without a PSK; a tampered sealed PSK, or one sent to a
// node with groups.pq off, is refused and counted; the PQ state survives
// a restart.
func TestEnginePQGroup(t *testing.T) {
	r, ns := pqRig(t, "a", "b", "c")
	a, b, c := ns[0], ns[1], ns[2]
	gi, err := a.eng.Create("Chor")
	if err != nil {
		t.Fatal(err)
	}
	gid := gi.ID

	// B joins by a PQ Welcome.
	_, fx, err := a.eng.Add(gid, r.fetch(a, b), pqKeys(b))
	if err != nil {
		t.Fatal(err)
	}
	w, err := DecodeGroupPayload(sendsTo(t, fx, b))
	if err != nil || len(w.PSK) != SealedPSKSize || SealedPSKSize != 19+32+1136 {
		t.Fatalf("Welcome to B: PSK of %d bytes (%v), want %d", len(w.PSK), err, SealedPSKSize)
	}
	r.deliver(a, fx)
	r.checkGroup(b, gid, a)
	checkPQ(t, gid, true, a, b)
	if pqCount(b, KindWelcome) != 1 {
		t.Fatal("B's PQ Welcome not counted")
	}

	// C joins: B's commit and C's Welcome carry each their own PSK.
	_, fx, err = a.eng.Add(gid, r.fetch(a, c), pqKeys(b, c))
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := DecodeGroupPayload(sendsTo(t, fx, b))
	wc, _ := DecodeGroupPayload(sendsTo(t, fx, c))
	if len(cb.PSK) != SealedPSKSize || len(wc.PSK) != SealedPSKSize || string(cb.PSK) == string(wc.PSK) {
		t.Fatal("the commit to B and the Welcome to C do not carry their own sealed PSK")
	}
	r.deliver(a, fx)
	r.checkGroup(b, gid, a)
	r.checkGroup(c, gid, a)
	checkPQ(t, gid, true, a, b, c)
	r.send(b, gid, "quantum")
	checkInbox(t, a, gid, inboxWant{b, "quantum"})
	checkInbox(t, c, gid, inboxWant{b, "quantum"})

	// A member without a PQ key: the commit is classical for all.
	d := r.addNode(t, "d", false)
	_, fx, err = a.eng.Add(gid, r.fetch(a, d), pqKeys(b, c)) // d has PQ off: no key
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range fx.Sends {
		if p, _ := DecodeGroupPayload(s.Text); len(p.PSK) != 0 {
			t.Fatalf("a PSK to %s though %s has no PQ key", crypto.Address(s.To), d.name)
		}
	}
	r.deliver(a, fx)
	checkPQ(t, gid, false, a, b, c, d)

	// D leaves: the commit injects a PSK for B and C, none for D, which
	// learns it is out.
	_, fx, err = a.eng.Remove(gid, d.addr, pqKeys(b, c))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := DecodeGroupPayload(sendsTo(t, fx, d)); len(p.PSK) != 0 {
		t.Fatal("a PSK for the removed member")
	}
	r.deliver(a, fx)
	if _, err := d.eng.Group(gid); err == nil {
		t.Fatal("D still in the group")
	}
	checkPQ(t, gid, true, a, b, c)

	// A tampered PSK is refused (the commit waits for nothing: it is gone).
	_, fx, err = a.eng.Remove(gid, c.addr, pqKeys(b))
	if err != nil {
		t.Fatal(err)
	}
	for i := range fx.Sends {
		if fx.Sends[i].To == b.addr {
			p, _ := DecodeGroupPayload(fx.Sends[i].Text)
			p.PSK[len(p.PSK)-1] ^= 1
			fx.Sends[i].Text, _ = EncodeGroupPayload(p)
		}
	}
	before := failures(b, "tampered")
	r.deliver(a, fx)
	if failures(b, "tampered") != before+1 {
		t.Fatal("a tampered PSK not refused as tampered")
	}
	if gb, _ := b.eng.Group(gid); gb.Epoch == a.eng.groups[gid].g.Epoch() {
		t.Fatal("B took a commit whose PSK was tampered with")
	}

	// The PQ state survives a restart.
	r.start(a)
	checkPQ(t, gid, true, a)
}

// TestEnginePQToNodeWithPQOff: a PSK for a node with groups.pq off is
// refused as no_pq_key.
func TestEnginePQToNodeWithPQOff(t *testing.T) {
	r, ns := pqRig(t, "a")
	a := ns[0]
	b := r.addNode(t, "b", false)
	gi, err := a.eng.Create("Chor")
	if err != nil {
		t.Fatal(err)
	}
	// As if the router had B's key: B had groups.pq on before.
	_, fx, err := a.eng.Add(gi.ID, r.fetch(a, b), PQKeys{b.addr: pq.KeyFor(b.id).Public()})
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(a, fx)
	if failures(b, "no_pq_key") != 1 {
		t.Fatal("a PSK to a node with PQ off not counted as no_pq_key")
	}
	if _, err := b.eng.Group(gi.ID); err == nil {
		t.Fatal("joined without the PSK")
	}
}
