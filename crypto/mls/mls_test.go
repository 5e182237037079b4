package mls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/thomas-vilte/mls-go/credentials"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/keypackages"
)

// testNow is the wall clock: mls-go checks leaf lifetimes against time.Now
// when a commit adds a member.
var testNow = time.Now().Truncate(time.Second)

func newID(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func addrOf(id ed25519.PrivateKey) crypto.Address {
	return crypto.AddressOf(id.Public().(ed25519.PublicKey))
}

// kpFor makes an own KeyPackage and its parsed public form.
func kpFor(t testing.TB, id ed25519.PrivateKey) (*OwnKeyPackage, *KeyPackage) {
	t.Helper()
	own, err := NewKeyPackage(id, testNow.Add(30*24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ParseKeyPackage(own.Bytes(), testNow)
	if err != nil {
		t.Fatalf("ParseKeyPackage(own): %v", err)
	}
	return own, kp
}

func gid(b byte) [16]byte {
	var g [16]byte
	for i := range g {
		g[i] = b
	}
	return g
}

type trio struct {
	idA, idB, idC ed25519.PrivateKey
	a, b, c       *Group
}

// newTrio: A creates the group and adds B and C in one commit.
func newTrio(t testing.TB) *trio {
	t.Helper()
	tr := &trio{idA: newID(t), idB: newID(t), idC: newID(t)}
	var err error
	tr.a, err = Create(tr.idA, gid(1))
	if err != nil {
		t.Fatal(err)
	}
	ownB, kpB := kpFor(t, tr.idB)
	ownC, kpC := kpFor(t, tr.idC)
	_, welcome, err := tr.a.Add(kpB, kpC)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	var idx int
	tr.b, idx, err = Join(tr.idB, welcome, []*OwnKeyPackage{ownB})
	if err != nil || idx != 0 {
		t.Fatalf("Join B: idx %d, %v", idx, err)
	}
	otherC, _ := kpFor(t, tr.idC)
	tr.c, idx, err = Join(tr.idC, welcome, []*OwnKeyPackage{otherC, ownC})
	if err != nil || idx != 1 {
		t.Fatalf("Join C: idx %d, %v", idx, err)
	}
	return tr
}

func mustHandle(t testing.TB, g *Group, msg []byte) Received {
	t.Helper()
	r, err := g.Handle(msg)
	if err != nil {
		t.Fatalf("Handle by %s: %v", g.Self().Short(), err)
	}
	return r
}

func mustEncrypt(t testing.TB, g *Group, text string) []byte {
	t.Helper()
	m, err := g.Encrypt([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// exchange: every member sends one message, every other member reads it.
func exchange(t *testing.T, gs ...*Group) {
	t.Helper()
	for _, from := range gs {
		text := "hello from " + from.Self().Short()
		m := mustEncrypt(t, from, text)
		for _, to := range gs {
			if to == from {
				continue
			}
			r := mustHandle(t, to, m)
			if r.Kind != KindApplication || string(r.Plaintext) != text || r.Sender != from.Self() || r.Epoch != from.Epoch() {
				t.Fatalf("%s got %+v from %s", to.Self().Short(), r, from.Self().Short())
			}
		}
	}
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

func TestThreeMembers(t *testing.T) {
	tr := newTrio(t)
	want := []crypto.Address{addrOf(tr.idA), addrOf(tr.idB), addrOf(tr.idC)}
	for _, g := range []*Group{tr.a, tr.b, tr.c} {
		if !slices.Equal(g.Members(), want) {
			t.Fatalf("%s members %v, want %v", g.Self().Short(), g.Members(), want)
		}
		if g.Epoch() != 1 || g.ID() != gid(1) {
			t.Fatalf("epoch %d id %x", g.Epoch(), g.ID())
		}
	}
	if tr.b.Self() != addrOf(tr.idB) {
		t.Fatal("Self")
	}
	exchange(t, tr.a, tr.b, tr.c)

	cBefore, err := tr.c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	commit, err := tr.a.Remove(addrOf(tr.idC))
	if err != nil {
		t.Fatal(err)
	}
	if k := mustKind(t, commit); k != KindCommit {
		t.Fatalf("remove commit kind %v", k)
	}
	rb := mustHandle(t, tr.b, commit)
	if rb.Kind != KindCommit || rb.Removed || rb.Sender != addrOf(tr.idA) || rb.Epoch != 2 ||
		!slices.Equal(rb.Gone, []crypto.Address{addrOf(tr.idC)}) || len(rb.Added) != 0 {
		t.Fatalf("B got %+v", rb)
	}
	rc := mustHandle(t, tr.c, commit)
	if !rc.Removed || rc.Sender != addrOf(tr.idA) || !slices.Contains(rc.Gone, addrOf(tr.idC)) {
		t.Fatalf("C got %+v", rc)
	}
	want = want[:2]
	if !slices.Equal(tr.a.Members(), want) || !slices.Equal(tr.b.Members(), want) {
		t.Fatalf("members after remove: %v / %v", tr.a.Members(), tr.b.Members())
	}

	next := mustEncrypt(t, tr.a, "after C left")
	if r := mustHandle(t, tr.b, next); string(r.Plaintext) != "after C left" {
		t.Fatalf("B: %q", r.Plaintext)
	}
	_, err = tr.c.Handle(next)
	wantErr(t, err, ErrNotMember)
	_, err = tr.c.Encrypt([]byte("x"))
	wantErr(t, err, ErrNotMember)
	// C's state from before the removal has no keys for epoch 2.
	cOld, err := Load(tr.idC, cBefore)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cOld.Handle(next)
	wantErr(t, err, ErrWrongEpoch)
	// The removed flag survives Marshal/Load.
	st, err := tr.c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Load(tr.idC, st)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c2.Encrypt([]byte("x"))
	wantErr(t, err, ErrNotMember)

	_, err = tr.a.Remove(addrOf(tr.idC))
	wantErr(t, err, ErrNotMember)
	_, err = tr.a.Remove(addrOf(tr.idA))
	wantErr(t, err, ErrNotMember)
}

func mustKind(t testing.TB, msg []byte) Kind {
	t.Helper()
	_, _, k, err := Peek(msg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPeek(t *testing.T) {
	tr := newTrio(t)
	m := mustEncrypt(t, tr.a, "x")
	id, ep, k, err := Peek(m)
	if err != nil || id != gid(1) || ep != 1 || k != KindApplication {
		t.Fatalf("Peek app: %x %d %v %v", id, ep, k, err)
	}
	commit, err := tr.a.SelfUpdate()
	if err != nil {
		t.Fatal(err)
	}
	id, ep, k, err = Peek(commit)
	if err != nil || id != gid(1) || ep != 1 || k != KindCommit {
		t.Fatalf("Peek commit: %x %d %v %v", id, ep, k, err)
	}
	_, kpD := kpFor(t, newID(t))
	_, welcome, err := tr.a.Add(kpD)
	if err != nil {
		t.Fatal(err)
	}
	id, ep, k, err = Peek(welcome)
	if err != nil || id != ([16]byte{}) || ep != 0 || k != KindWelcome {
		t.Fatalf("Peek welcome: %x %d %v %v", id, ep, k, err)
	}
	_, _, _, err = Peek([]byte{0, 1, 0, 9})
	wantErr(t, err, ErrMalformed)
	_, _, _, err = Peek(make([]byte, MaxMessageSize+1))
	wantErr(t, err, ErrTooLarge)
}

func TestStateRoundTrip(t *testing.T) {
	tr := newTrio(t)
	m1 := mustEncrypt(t, tr.a, "one")
	mustHandle(t, tr.b, m1)
	mustHandle(t, tr.c, m1)

	reload := func(id ed25519.PrivateKey, g *Group) *Group {
		t.Helper()
		st, err := g.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(st) > MaxStateSize {
			t.Fatalf("state %d bytes", len(st))
		}
		ng, err := Load(id, st)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if ng.Epoch() != g.Epoch() || ng.ID() != g.ID() || !slices.Equal(ng.Members(), g.Members()) {
			t.Fatal("reloaded group differs")
		}
		return ng
	}
	a, b, c := reload(tr.idA, tr.a), reload(tr.idB, tr.b), reload(tr.idC, tr.c)

	// A's sending generation survived: if it had restarted at 0, B would
	// take m2 for a replay of m1.
	m2 := mustEncrypt(t, a, "two")
	if r := mustHandle(t, b, m2); string(r.Plaintext) != "two" {
		t.Fatal(string(r.Plaintext))
	}
	mustHandle(t, c, m2)
	exchange(t, a, b, c)

	commit, err := b.SelfUpdate()
	if err != nil {
		t.Fatal(err)
	}
	a, c = reload(tr.idA, a), reload(tr.idC, c)
	mustHandle(t, a, commit)
	mustHandle(t, c, commit)
	a, b, c = reload(tr.idA, a), reload(tr.idB, b), reload(tr.idC, c)
	exchange(t, a, b, c)
	if ea, _ := a.Export("x", nil, 32); true {
		eb, _ := b.Export("x", nil, 32)
		if !bytes.Equal(ea, eb) || len(ea) != 32 {
			t.Fatal("exporters differ after reload")
		}
	}

	st, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(tr.idB, st)
	wantErr(t, err, ErrNotMember)
	_, err = Load(tr.idA, st[:len(st)/2])
	wantErr(t, err, ErrMalformed)
	_, err = Load(tr.idA, make([]byte, MaxStateSize+1))
	wantErr(t, err, ErrTooLarge)
}

func TestOwnKeyPackageRoundTrip(t *testing.T) {
	idA, idB := newID(t), newID(t)
	own, err := NewKeyPackage(idB, testNow.Add(time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := own.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalOwnKeyPackage(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Bytes(), own.Bytes()) || back.Ref() != own.Ref() || back.Hash16() != own.Hash16() ||
		!back.LastResort() || !back.NotAfter().Equal(testNow.Add(time.Hour)) {
		t.Fatal("round trip changed the key package")
	}
	// Private keys must match the public ones.
	bad := append([]byte(nil), bin...)
	bad[len(bad)-1] ^= 1
	_, err = UnmarshalOwnKeyPackage(bad)
	wantErr(t, err, ErrMalformed)
	_, err = UnmarshalOwnKeyPackage(bin[:len(bin)-1])
	wantErr(t, err, ErrMalformed)

	a, err := Create(idA, gid(2))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ParseKeyPackage(own.Bytes(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if kp.Owner != addrOf(idB) || kp.Hash16 != own.Hash16() || !kp.NotAfter.Equal(own.NotAfter()) {
		t.Fatalf("parsed %+v", kp)
	}
	_, welcome, err := a.Add(kp)
	if err != nil {
		t.Fatal(err)
	}
	// Join needs the right identity with the stored key package.
	if _, _, err := Join(idA, welcome, []*OwnKeyPackage{back}); err == nil {
		t.Fatal("joined with another identity's key package")
	}
	b, idx, err := Join(idB, welcome, []*OwnKeyPackage{back})
	if err != nil || idx != 0 {
		t.Fatalf("Join: %d %v", idx, err)
	}
	exchange(t, a, b)
	_, _, err = Join(idB, welcome, nil)
	wantErr(t, err, ErrNotMember)
}

func TestKeyPackageRef(t *testing.T) {
	own, _ := kpFor(t, newID(t))
	// Our RefHash must be the one the library puts in Welcomes.
	kp, err := keypackages.UnmarshalKeyPackage(own.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	libRef := keyPackageRefLib(kp)
	if ref := own.Ref(); !bytes.Equal(ref[:], libRef) {
		t.Fatalf("Ref %x, library %x", ref, libRef)
	}
}

func TestLateCommitsInOrder(t *testing.T) {
	tr := newTrio(t)
	c1, err := tr.a.SelfUpdate()
	if err != nil {
		t.Fatal(err)
	}
	mustHandle(t, tr.c, c1)
	_, kpD := kpFor(t, newID(t))
	c2, _, err := tr.a.Add(kpD)
	if err != nil {
		t.Fatal(err)
	}
	// Out of order: c2 is for epoch 2, B is at 1.
	_, err = tr.b.Handle(c2)
	wantErr(t, err, ErrWrongEpoch)
	if tr.b.Epoch() != 1 {
		t.Fatal("out-of-order commit moved the epoch")
	}
	r1 := mustHandle(t, tr.b, c1)
	r2 := mustHandle(t, tr.b, c2)
	if r1.Epoch != 2 || r2.Epoch != 3 || !slices.Equal(r2.Added, []crypto.Address{kpD.Owner}) {
		t.Fatalf("r1 %+v r2 %+v", r1, r2)
	}
	ea, _ := tr.a.Export("late", []byte("ctx"), 16)
	eb, _ := tr.b.Export("late", []byte("ctx"), 16)
	if !bytes.Equal(ea, eb) {
		t.Fatal("B diverged from A")
	}
	// The same commit again is for an epoch that has passed.
	_, err = tr.b.Handle(c1)
	wantErr(t, err, ErrWrongEpoch)
	exchange(t, tr.a, tr.b)
}

func TestTypedErrors(t *testing.T) {
	tr := newTrio(t)
	m := mustEncrypt(t, tr.a, "text")

	t.Run("tampered application", func(t *testing.T) {
		for _, i := range []int{len(m) - 1, len(m) - 20, len(m) / 2} {
			bad := append([]byte(nil), m...)
			bad[i] ^= 0x01
			_, err := tr.b.Handle(bad)
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("byte %d: %v", i, err)
			}
		}
		bad := append([]byte(nil), m...)
		bad[len(bad)-1] ^= 0x80
		_, err := tr.b.Handle(bad)
		wantErr(t, err, ErrDecrypt)
	})
	t.Run("replayed application", func(t *testing.T) {
		mustHandle(t, tr.b, m)
		_, err := tr.b.Handle(m)
		wantErr(t, err, ErrReplay)
		// Our own message relayed back to us counts as seen.
		_, err = tr.a.Handle(m)
		wantErr(t, err, ErrReplay)
		exchange(t, tr.a, tr.b, tr.c)
	})
	t.Run("wrong group", func(t *testing.T) {
		other, err := Create(tr.idA, gid(9))
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.b.Handle(mustEncrypt(t, other, "x"))
		wantErr(t, err, ErrWrongGroup)
	})
	t.Run("malformed", func(t *testing.T) {
		for _, b := range [][]byte{nil, {0}, {0, 1, 0, 2, 1}, []byte("not mls at all")} {
			_, err := tr.b.Handle(b)
			wantErr(t, err, ErrMalformed)
		}
		_, err := tr.b.Handle(make([]byte, MaxMessageSize+1))
		wantErr(t, err, ErrTooLarge)
	})
	t.Run("bad signature", func(t *testing.T) {
		// A message under the group's keys signed by a key that is not the
		// sender leaf's: only an insider could make it.
		g := tr.a.g
		pm, err := framing.Encrypt(framing.EncryptParams{
			Content: framing.FramedContent{
				GroupID: g.ID().AsSlice(), Epoch: g.Epoch().AsUint64(),
				Sender: framing.Sender{Type: framing.SenderTypeMember, LeafIndex: uint32(g.OwnLeafIndex())},
				Body:   framing.ApplicationData{Data: []byte("forged")},
			},
			SenderLeafIndex:  uint32(g.OwnLeafIndex()),
			CipherSuite:      Suite,
			SenderDataSecret: g.EpochSecrets().SenderDataSecret,
			SecretTree:       g.SecretTree(),
			SigKey:           newGroup(g, newID(t)).sig,
			GroupContext:     g.GroupContext().Marshal(),
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.b.Handle(framing.NewMLSMessagePrivate(pm).Marshal())
		wantErr(t, err, ErrBadSignature)
	})
	t.Run("epochs", func(t *testing.T) {
		old := mustEncrypt(t, tr.a, "epoch 1")
		commit, err := tr.a.SelfUpdate()
		if err != nil {
			t.Fatal(err)
		}
		future := mustEncrypt(t, tr.a, "epoch 2")
		_, err = tr.b.Handle(future)
		wantErr(t, err, ErrWrongEpoch)

		bad := append([]byte(nil), commit...)
		bad[len(bad)-3] ^= 0x10
		_, err = tr.b.Handle(bad)
		wantErr(t, err, ErrDecrypt)
		mustHandle(t, tr.b, commit) // the tampered copy changed nothing
		_, err = tr.b.Handle(commit)
		wantErr(t, err, ErrWrongEpoch)
		mustHandle(t, tr.c, commit)

		// A late message of a recent epoch still reads; a future one now does.
		if r := mustHandle(t, tr.b, old); string(r.Plaintext) != "epoch 1" || r.Sender != addrOf(tr.idA) || r.Epoch != 2 {
			t.Fatalf("late: %+v", r)
		}
		mustHandle(t, tr.b, future)

		// After more epochs than the library keeps, old keys are gone.
		old2 := mustEncrypt(t, tr.a, "epoch 2 again")
		for range rosterEpochs + 1 {
			c, err := tr.a.SelfUpdate()
			if err != nil {
				t.Fatal(err)
			}
			mustHandle(t, tr.b, c)
		}
		_, err = tr.b.Handle(old2)
		wantErr(t, err, ErrWrongEpoch)
	})
}

func TestCredentialBinding(t *testing.T) {
	id := newID(t)
	pub := id.Public().(ed25519.PublicKey)
	build := func(identity []byte) []byte {
		t.Helper()
		cwk := &credentials.CredentialWithKey{
			Credential:        credentials.NewBasicCredential(identity),
			Ed25519PrivateKey: id,
			SignatureKeyBytes: append([]byte(nil), pub...),
		}
		kp, _, err := keypackages.Generate(cwk, Suite, keypackages.WithLifetime(0, uint64(testNow.Add(time.Hour).Unix())))
		if err != nil {
			t.Fatal(err)
		}
		return kp.Marshal()
	}
	other := addrOf(newID(t))
	_, err := ParseKeyPackage(build(other[:]), testNow)
	wantErr(t, err, ErrCredential)
	_, err = ParseKeyPackage(build([]byte("alice")), testNow)
	wantErr(t, err, ErrCredential)
	self := addrOf(id)
	good := build(self[:])
	if _, err := ParseKeyPackage(good, testNow); err != nil {
		t.Fatalf("bound credential refused: %v", err)
	}

	// The other checks of ParseKeyPackage.
	_, err = ParseKeyPackage(good, testNow.Add(2*time.Hour))
	wantErr(t, err, ErrExpired)
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	_, err = ParseKeyPackage(bad, testNow)
	wantErr(t, err, ErrBadSignature)
	_, err = ParseKeyPackage(append(append([]byte(nil), good...), 0), testNow)
	wantErr(t, err, ErrMalformed)
	_, err = ParseKeyPackage(good[:len(good)-5], testNow)
	wantErr(t, err, ErrMalformed)
	_, err = ParseKeyPackage(make([]byte, MaxKeyPackageSize+1), testNow)
	wantErr(t, err, ErrTooLarge)
	p256, _, err := credentials.GenerateCredentialWithKeyForCS([]byte("x"), 2)
	if err != nil {
		t.Fatal(err)
	}
	kp2, _, err := keypackages.Generate(p256, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseKeyPackage(kp2.Marshal(), testNow)
	wantErr(t, err, ErrMalformed)

	// A commit (from an insider that skipped ParseKeyPackage) adding an
	// unbound credential is refused by the other members, who stay put.
	tr := newTrio(t)
	unbound, err := keypackages.UnmarshalKeyPackage(build(other[:]))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tr.b.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.b.g.AddMember(unbound); err != nil {
		t.Fatal(err)
	}
	commit, _, err := tr.b.commit(snap, []*keypackages.KeyPackage{unbound})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.a.Handle(commit)
	wantErr(t, err, ErrCredential)
	if tr.a.Epoch() != 1 || len(tr.a.Members()) != 3 {
		t.Fatal("refused commit changed A")
	}

	// A Welcome whose tree holds an unbound credential is refused too.
	idD := newID(t)
	ownD, kpD := kpFor(t, idD)
	a2, err := Create(tr.idA, gid(3))
	if err != nil {
		t.Fatal(err)
	}
	snap, _ = a2.snapshot()
	if _, err := a2.g.AddMember(unbound); err != nil {
		t.Fatal(err)
	}
	if _, err := a2.g.AddMember(kpD.kp); err != nil {
		t.Fatal(err)
	}
	_, welcome, err := a2.commit(snap, []*keypackages.KeyPackage{unbound, kpD.kp})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Join(idD, welcome, []*OwnKeyPackage{ownD})
	wantErr(t, err, ErrCredential)
}

// TestConcurrentCommitsFork pins what doc.go says about the one-committer
// rule: two commits in one epoch split the group.
func TestConcurrentCommitsFork(t *testing.T) {
	tr := newTrio(t)
	ca, err := tr.a.SelfUpdate()
	if err != nil {
		t.Fatal(err)
	}
	cb, err := tr.b.SelfUpdate()
	if err != nil {
		t.Fatal(err)
	}
	mustHandle(t, tr.c, ca)
	_, err = tr.c.Handle(cb)
	wantErr(t, err, ErrWrongEpoch)
	_, err = tr.a.Handle(cb)
	wantErr(t, err, ErrWrongEpoch)
	_, err = tr.b.Handle(ca)
	wantErr(t, err, ErrWrongEpoch)
	// Same epoch number, different keys: B's messages do not decrypt at A.
	if tr.a.Epoch() != tr.b.Epoch() {
		t.Fatal("epochs differ")
	}
	_, err = tr.a.Handle(mustEncrypt(t, tr.b, "forked"))
	wantErr(t, err, ErrDecrypt)
	exchange(t, tr.a, tr.c)
}
