package mls

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/thomas-vilte/mls-go/ciphersuite"
	mlsext "github.com/thomas-vilte/mls-go/extensions"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/group"
)

var sentinels = []error{ErrTooLarge, ErrMalformed, ErrCredential, ErrBadSignature, ErrWrongGroup,
	ErrWrongEpoch, ErrReplay, ErrDecrypt, ErrNotMember, ErrExpired, ErrNoPSK}

// checkTyped fails unless err is nil or wraps one of the package's errors,
// and unless an over-limit input gave ErrTooLarge.
func checkTyped(t *testing.T, err error, n, limit int) {
	t.Helper()
	if n > limit && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%d bytes (limit %d): %v, want ErrTooLarge", n, limit, err)
	}
	if err == nil {
		return
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("untyped error: %v", err)
}

func FuzzParseKeyPackage(f *testing.F) {
	own, _ := kpFor(f, newID(f))
	good := own.Bytes()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		kp, err := ParseKeyPackage(b, testNow)
		checkTyped(t, err, len(b), MaxKeyPackageSize)
		if err != nil {
			return
		}
		if !bytes.Equal(kp.Bytes, b) || kp.Owner.IsZero() {
			t.Fatalf("accepted %x as %+v", b, kp)
		}
	})
}

func FuzzUnmarshalOwnKeyPackage(f *testing.F) {
	own, _ := kpFor(f, newID(f))
	good, err := own.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := UnmarshalOwnKeyPackage(b)
		checkTyped(t, err, len(b), MaxStateSize)
		if err != nil {
			return
		}
		again, err := k.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// fuzzTrio is a fixed group for FuzzHandle and FuzzLoad, with seeds.
func fuzzTrio(f *testing.F) (*trio, [][]byte) {
	tr := newTrio(f)
	app, err := tr.a.Encrypt([]byte("fuzz seed"))
	if err != nil {
		f.Fatal(err)
	}
	_, kpD := kpFor(f, newID(f))
	commit, welcome, err := tr.a.Add(kpD)
	if err != nil {
		f.Fatal(err)
	}
	app2, err := tr.a.Encrypt([]byte("fuzz seed, epoch 2"))
	if err != nil {
		f.Fatal(err)
	}
	return tr, [][]byte{app, commit, welcome, app2}
}

func FuzzHandle(f *testing.F) {
	tr, seeds := fuzzTrio(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := tr.b.Handle(b)
		checkTyped(t, err, len(b), MaxMessageSize)
	})
}

func FuzzPeek(f *testing.F) {
	_, seeds := fuzzTrio(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, k, err := Peek(b)
		checkTyped(t, err, len(b), MaxMessageSize)
		if err == nil && (k < KindApplication || k > KindProposal) {
			t.Fatalf("kind %v", k)
		}
	})
}

func FuzzLoad(f *testing.F) {
	tr, _ := fuzzTrio(f)
	st, err := tr.b.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(st)
	f.Add(st[:2])
	f.Add([]byte{1, 0, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Load(tr.idB, b)
		checkTyped(t, err, len(b), MaxStateSize)
		if err == nil && g.Self() != tr.b.Self() {
			t.Fatal("loaded someone else's group")
		}
	})
}

// TestLimitsBeforeParsing: over-limit inputs are refused before decoding.
// Each input is a valid object padded past its limit, so a decoder that ran
// would copy or walk it; the refusal must allocate far less than the input.
func TestLimitsBeforeParsing(t *testing.T) {
	tr := newTrio(t)
	own, _ := kpFor(t, newID(t))
	ownBin, err := own.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	_, kpD := kpFor(t, newID(t))
	_, welcome, err := tr.a.Add(kpD)
	if err != nil {
		t.Fatal(err)
	}
	app, err := tr.a.Encrypt([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := tr.b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pad := func(b []byte, limit int, fill byte) []byte {
		out := append([]byte(nil), b...)
		for len(out) <= limit {
			out = append(out, fill)
		}
		return out
	}
	kpBig := pad(own.Bytes(), MaxKeyPackageSize, 0)
	ownBig := pad(ownBin, MaxStateSize, 0)
	welcomeBig := pad(welcome, MaxMessageSize, 0)
	appBig := pad(app, MaxMessageSize, 0)
	stBig := pad(st, MaxStateSize, ' ')
	for _, c := range []struct {
		name string
		n    int
		f    func() error
	}{
		{"ParseKeyPackage", len(kpBig), func() error { _, err := ParseKeyPackage(kpBig, testNow); return err }},
		{"UnmarshalOwnKeyPackage", len(ownBig), func() error { _, err := UnmarshalOwnKeyPackage(ownBig); return err }},
		{"Handle", len(appBig), func() error { _, err := tr.b.Handle(appBig); return err }},
		{"Peek", len(welcomeBig), func() error { _, _, _, err := Peek(welcomeBig); return err }},
		{"Join", len(welcomeBig), func() error { _, _, err := Join(tr.idB, welcomeBig, nil); return err }},
		{"Load", len(stBig), func() error { _, err := Load(tr.idB, stBig); return err }},
	} {
		if err := c.f(); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: %v", c.name, err)
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for range 10 {
			_ = c.f()
		}
		runtime.ReadMemStats(&m1)
		if per := (m1.TotalAlloc - m0.TotalAlloc) / 10; per > 2048 {
			t.Fatalf("%s: %d bytes allocated to refuse a %d-byte input", c.name, per, c.n)
		}
	}
}

// TestJoinTreeBomb: a Welcome, properly encrypted to our KeyPackage, whose
// ratchet_tree extension is not a vector. mls-go would fall back to a parser
// that allocates 2^31 nodes from the first four bytes and kill the process;
// Join must refuse it.
func TestJoinTreeBomb(t *testing.T) {
	a, err := Create(newID(t), gid(5))
	if err != nil {
		t.Fatal(err)
	}
	idB := newID(t)
	ownB, kpB := kpFor(t, idB)
	_, welcome, err := a.Add(kpB)
	if err != nil {
		t.Fatal(err)
	}
	w, err := parseWelcome(welcome)
	if err != nil {
		t.Fatal(err)
	}
	sd, key, nonce, _, err := welcomeKeys(w, ownB, ownB.Ref(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := ciphersuite.DecryptWithCipherSuite(key, nonce, w.EncryptedGroupInfo, []byte{}, Suite)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := group.UnmarshalGroupInfo(pt)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range gi.Extensions {
		if gi.Extensions[i].Type == mlsext.ExtensionTypeRatchetTree {
			gi.Extensions[i].Data = []byte{0xc0, 0, 0, 0x10} // invalid varint; 0xc0000010 leaves
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d ratchet_tree extensions", n)
	}
	egi, err := ciphersuite.EncryptWithCipherSuite(key, nonce, gi.Marshal(), []byte{}, Suite)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := ciphersuite.EncryptWithLabel(ownB.kp.InitKey, "Welcome", egi, sd, Suite)
	if err != nil {
		t.Fatal(err)
	}
	ref := ownB.Ref()
	w.EncryptedGroupInfo = egi
	w.Secrets = []group.EncryptedGroupSecrets{{NewMember: ref[:], EncryptedGroupSecrets: *ct}}
	m := framing.MLSMessage{Welcome: w.Marshal()}
	_, _, err = Join(idB, m.Marshal(), []*OwnKeyPackage{ownB})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "ratchet_tree") {
		t.Fatalf("Join(tree bomb) = %v, want ErrMalformed from the ratchet_tree guard", err)
	}
}

// TestLoadTreeBomb: the same allocation through a stored state's tree.
func TestLoadTreeBomb(t *testing.T) {
	tr := newTrio(t)
	st, err := tr.b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(st[2:], &m); err != nil {
		t.Fatal(err)
	}
	m["ratchet_tree"] = []byte{0x7f, 0xff, 0xff, 0xff, 0}
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(tr.idB, append(st[:2:2], js...))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "claims") {
		t.Fatalf("Load(tree bomb) = %v, want ErrMalformed from the tree guard", err)
	}
}

func FuzzJoin(f *testing.F) {
	a, err := Create(newID(f), gid(6))
	if err != nil {
		f.Fatal(err)
	}
	idB := newID(f)
	ownB, kpB := kpFor(f, idB)
	_, welcome, err := a.Add(kpB)
	if err != nil {
		f.Fatal(err)
	}
	// A Welcome whose commit injects a PSK, which Join is given.
	a2, err := Create(newID(f), gid(7))
	if err != nil {
		f.Fatal(err)
	}
	psk, err := NewPSK()
	if err != nil {
		f.Fatal(err)
	}
	if err := a2.StagePSK(psk); err != nil {
		f.Fatal(err)
	}
	_, welcomePSK, err := a2.Add(kpB)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(welcome)
	f.Add(welcome[:len(welcome)/2])
	f.Add(welcomePSK)
	f.Fuzz(func(t *testing.T, b []byte) {
		g, idx, err := Join(idB, b, []*OwnKeyPackage{ownB}, psk)
		checkTyped(t, err, len(b), MaxMessageSize)
		if err == nil && (idx != 0 || g.Self() != addrOf(idB)) {
			t.Fatalf("joined as %d %s", idx, g.Self())
		}
	})
}
