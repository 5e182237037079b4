package mls

import (
	"bytes"
	"errors"
	"testing"
)

// TestPSKCommits: a commit that injects a PSK is followed by the members
// that were given the PSK and refused (ErrNoPSK) by one that was not; a
// wrong PSK of the right id does not verify; the Welcome of an Add that
// injects a PSK needs it; the group state keeps no used PSK and remembers
// that the epoch is PQ across Marshal and Load.
func TestPSKCommits(t *testing.T) {
	tr := newTrio(t)
	if tr.a.PQ() || tr.b.PQ() {
		t.Fatal("a group without a PSK says PQ")
	}

	// A self-update with a PSK: B holds it, C does not (then does).
	psk, err := NewPSK()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.a.StagePSK(psk); err != nil {
		t.Fatal(err)
	}
	commit, err := tr.a.SelfUpdate()
	if err != nil {
		t.Fatal(err)
	}
	if !tr.a.PQ() {
		t.Fatal("the committer's epoch is not PQ")
	}
	stC, err := tr.c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.c.Handle(commit); !errIs(err, ErrNoPSK) {
		t.Fatalf("commit without its PSK: %v, want ErrNoPSK", err)
	}
	// Refused after decryption: the state stored before takes it again.
	c, err := Load(tr.idC, stC)
	if err != nil {
		t.Fatal(err)
	}
	wrong := PSK{ID: psk.ID, Secret: bytes.Repeat([]byte{7}, PSKSize)}
	if err := c.LoadPSK(wrong); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Handle(commit); err == nil {
		t.Fatal("commit taken with a wrong PSK")
	}
	if err := tr.b.LoadPSK(psk); err != nil {
		t.Fatal(err)
	}
	if r := mustHandle(t, tr.b, commit); !r.PQ || r.Epoch != tr.a.Epoch() {
		t.Fatalf("B: %+v", r)
	}
	if tr.c, err = Load(tr.idC, stC); err != nil {
		t.Fatal(err)
	}
	if err := tr.c.LoadPSK(psk); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, tr.c, commit)
	exchange(t, tr.a, tr.b, tr.c)

	// The PSK is gone from the stored state; the PQ flag stays.
	st, err := tr.b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(st, psk.ID) {
		t.Fatal("a used PSK is in the stored state")
	}
	b2, err := Load(tr.idB, st)
	if err != nil {
		t.Fatal(err)
	}
	if !b2.PQ() {
		t.Fatal("PQ lost by Marshal and Load")
	}

	// An Add with a PSK: the joiner needs it; the members too.
	idD := newID(t)
	ownD, kpD := kpFor(t, idD)
	psk2, _ := NewPSK()
	if err := tr.a.StagePSK(psk2); err != nil {
		t.Fatal(err)
	}
	commit, welcome, err := tr.a.Add(kpD)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Join(idD, welcome, []*OwnKeyPackage{ownD}); !errIs(err, ErrNoPSK) {
		t.Fatalf("Welcome without its PSK: %v, want ErrNoPSK", err)
	}
	if _, _, err := Join(idD, welcome, []*OwnKeyPackage{ownD}, PSK{ID: psk2.ID, Secret: wrong.Secret}); err == nil {
		t.Fatal("Welcome taken with a wrong PSK")
	}
	d, _, err := Join(idD, welcome, []*OwnKeyPackage{ownD}, psk2)
	if err != nil {
		t.Fatal(err)
	}
	if !d.PQ() {
		t.Fatal("joined by a PSK Welcome, not PQ")
	}
	for _, g := range []*Group{b2, tr.c} {
		if err := g.LoadPSK(psk2); err != nil {
			t.Fatal(err)
		}
		mustHandle(t, g, commit)
	}
	exchange(t, tr.a, b2, tr.c, d)

	// A later commit without a PSK: no longer PQ.
	commit, err = tr.a.SelfUpdate()
	if err != nil {
		t.Fatal(err)
	}
	if r := mustHandle(t, d, commit); r.PQ || d.PQ() || tr.a.PQ() {
		t.Fatalf("a commit without a PSK leaves PQ set: %+v", r)
	}
}

func TestPSKShape(t *testing.T) {
	p, err := NewPSK()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	q, _ := NewPSK()
	if bytes.Equal(p.ID, q.ID) || bytes.Equal(p.Secret, q.Secret) {
		t.Fatal("two PSKs alike")
	}
	for _, bad := range []PSK{
		{ID: p.ID[:5], Secret: p.Secret},
		{ID: append([]byte("xyz"), p.ID[3:]...), Secret: p.Secret},
		{ID: append([]byte("qpq"), bytes.Repeat([]byte("z"), 16)...), Secret: p.Secret},
		{ID: p.ID, Secret: p.Secret[:16]},
	} {
		if err := bad.Check(); !errIs(err, ErrMalformed) {
			t.Fatalf("%q: %v", bad.ID, err)
		}
	}
	g, err := Create(newID(t), gid(9))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.StagePSK(PSK{ID: p.ID}); err == nil {
		t.Fatal("staged a PSK without a secret")
	}
}

func errIs(err, target error) bool { return errors.Is(err, target) }
