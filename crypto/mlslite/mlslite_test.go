package mlslite

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// member is a fixed test identity.
type member struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	addr crypto.Address
}

func newMember(name string) member {
	seed := sha256.Sum256([]byte("qpc mls-lite test member " + name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	pub := priv.Public().(ed25519.PublicKey)
	return member{priv, pub, crypto.AddressOf(pub)}
}

var (
	alice, bob, carol = newMember("alice"), newMember("bob"), newMember("carol")
	testGroup         = [16]byte{'q', 'p', 'c', ' ', 'g', 'r', 'o', 'u', 'p'}
)

// exporter is a stand-in for one MLS epoch's exporter: HKDF of a fixed
// epoch secret, label and context.
func exporter(epochSecret string) ExporterFunc {
	return func(label string, ctx []byte, n int) ([]byte, error) {
		return hkdf.Key(sha256.New, []byte(epochSecret), nil, label+"\x00"+string(ctx), n)
	}
}

func mustEpoch(t testing.TB, secret string, epoch uint64) *Epoch {
	t.Helper()
	e, err := DeriveEpoch(exporter(secret), testGroup, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func pubs(ms ...member) func(crypto.Address) (ed25519.PublicKey, bool) {
	return func(a crypto.Address) (ed25519.PublicKey, bool) {
		for _, m := range ms {
			if m.addr == a {
				return m.pub, true
			}
		}
		return nil, false
	}
}

var allPubs = pubs(alice, bob, carol)

var text32 = []byte("thirty-two bytes of a text msg!!")

func TestRoundTrip(t *testing.T) {
	e := mustEpoch(t, "epoch 7 secret", 7)
	for _, signed := range []bool{false, true} {
		t.Run(fmt.Sprintf("signed=%v", signed), func(t *testing.T) {
			var signer ed25519.PrivateKey
			if signed {
				signer = alice.priv
			}
			frame, err := e.Seal(alice.addr, bob.addr, 8, 5, text32, signer)
			if err != nil {
				t.Fatal(err)
			}
			// Bob's own Epoch from the same exporter: keys are derived, not shared.
			eb := mustEpoch(t, "epoch 7 secret", 7)
			w := NewWindows()
			o, err := eb.Open(frame, bob.addr, allPubs, signed, w)
			if err != nil {
				t.Fatal(err)
			}
			f, _ := Decode(frame)
			if o.Source != alice.addr || o.Destination != bob.addr || o.Epoch != 7 || o.Counter != 5 || o.Signed != signed ||
				!bytes.Equal(o.Plaintext, text32) || o.ID != f.ID() {
				t.Fatalf("opened %+v", o)
			}
			if f.Hops != 0 || f.HopLimit != 8 || f.GroupRef != GroupRefOf(testGroup) || f.Signed() != signed ||
				len(f.Ciphertext) != len(text32)+TagSize {
				t.Fatalf("frame %+v", f)
			}
			if again, err := encode(f); err != nil || !bytes.Equal(again, frame) {
				t.Fatalf("re-encode: %v", err)
			}
			if !IsMLSLite(frame) {
				t.Fatal("IsMLSLite")
			}
			// An empty text is a 16-byte ciphertext and opens.
			empty, err := e.Seal(alice.addr, bob.addr, 8, 6, nil, signer)
			if err != nil {
				t.Fatal(err)
			}
			if o, err := eb.Open(empty, bob.addr, allPubs, false, w); err != nil || len(o.Plaintext) != 0 || o.Plaintext == nil {
				t.Fatalf("empty text: %+v %v", o, err)
			}
		})
	}
}

// reencode decodes frame, changes it and encodes it again without
// sealing or signing anew: what a relay or a forger can do.
func reencode(t *testing.T, frame []byte, change func(*Frame)) []byte {
	t.Helper()
	f, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	f.Ciphertext = bytes.Clone(f.Ciphertext)
	if f.Signature != nil {
		f.Signature = bytes.Clone(f.Signature)
	}
	change(&f)
	out, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTamper: every header field but the hop count, the ciphertext and
// the signature are authenticated; each change is refused with the error
// of the first check it fails, and none touches the replay window.
func TestTamper(t *testing.T) {
	e := mustEpoch(t, "epoch 7 secret", 7)
	for _, signed := range []bool{false, true} {
		var signer ed25519.PrivateKey
		authErr := ErrDecrypt
		if signed {
			signer, authErr = alice.priv, ErrBadSignature
		}
		frame, err := e.Seal(alice.addr, bob.addr, 8, 5, text32, signer)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name   string
			change func(*Frame)
			self   crypto.Address
			want   error
		}{
			{"hop limit", func(f *Frame) { f.HopLimit++ }, bob.addr, authErr},
			{"source to carol", func(f *Frame) { f.Source = carol.addr }, bob.addr, authErr},
			{"destination to carol, opened by carol", func(f *Frame) { f.Destination = carol.addr }, carol.addr, authErr},
			{"destination to carol, opened by bob", func(f *Frame) { f.Destination = carol.addr }, bob.addr, ErrWrongDestination},
			{"group ref", func(f *Frame) { f.GroupRef[0] ^= 1 }, bob.addr, ErrWrongGroup},
			{"epoch", func(f *Frame) { f.Epoch++ }, bob.addr, ErrWrongEpoch},
			{"counter", func(f *Frame) { f.Counter++ }, bob.addr, authErr},
			{"ciphertext", func(f *Frame) { f.Ciphertext[3] ^= 0x80 }, bob.addr, authErr},
			{"tag", func(f *Frame) { f.Ciphertext[len(f.Ciphertext)-1] ^= 1 }, bob.addr, authErr},
			{"ciphertext cut", func(f *Frame) { f.Ciphertext = f.Ciphertext[:len(f.Ciphertext)-1] }, bob.addr, authErr},
		} {
			w := NewWindows()
			bad := reencode(t, frame, c.change)
			if _, err := e.Open(bad, c.self, allPubs, false, w); !errors.Is(err, c.want) {
				t.Errorf("signed=%v %s: %v, want %v", signed, c.name, err, c.want)
			}
			if w.Len() != 0 {
				t.Errorf("signed=%v %s: a refused frame touched the window", signed, c.name)
			}
			// The real frame still opens: the forgery used up nothing.
			if _, err := e.Open(frame, bob.addr, allPubs, false, w); err != nil {
				t.Errorf("signed=%v %s: the real frame after the forgery: %v", signed, c.name, err)
			}
		}
		// The hop count is not authenticated: a relay's change opens.
		hops := reencode(t, frame, func(f *Frame) { f.Hops = 3 })
		if o, err := e.Open(hops, bob.addr, allPubs, false, NewWindows()); err != nil || o.ID != mustDecode(t, frame).ID() {
			t.Errorf("signed=%v hops: %v", signed, err)
		}
	}
	// A signed frame's signature changed, or its source's key unknown.
	frame, _ := e.Seal(alice.addr, bob.addr, 8, 5, text32, alice.priv)
	sig := reencode(t, frame, func(f *Frame) { f.Signature[10] ^= 1 })
	if _, err := e.Open(sig, bob.addr, allPubs, false, NewWindows()); !errors.Is(err, ErrBadSignature) || !errors.Is(err, messages.ErrBadSignature) {
		t.Errorf("signature: %v", err)
	}
	if _, err := e.Open(frame, bob.addr, pubs(bob, carol), false, NewWindows()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("unknown source key: %v", err)
	}
	if _, err := e.Open(frame, bob.addr, nil, false, NewWindows()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("no key lookup: %v", err)
	}
	// A lookup that answers with another member's key for alice.
	liar := func(crypto.Address) (ed25519.PublicKey, bool) { return carol.pub, true }
	if _, err := e.Open(frame, bob.addr, liar, false, NewWindows()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("key of another address: %v", err)
	}
	// Carol (a member: she has every key) re-signs alice's frame as her
	// own: the AEAD was sealed under alice's sender key and AAD.
	resigned := reencode(t, frame, func(f *Frame) {
		f.Source = carol.addr
		f.Signature = ed25519.Sign(carol.priv, f.TBS())
	})
	if _, err := e.Open(resigned, bob.addr, allPubs, true, NewWindows()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("re-signed by carol: %v", err)
	}
}

func mustDecode(t testing.TB, frame []byte) Frame {
	t.Helper()
	f, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSignaturePolicy: an unsigned frame under requireSigned is
// ErrUnsigned; a signed frame stripped of its signature is refused under
// either policy (the signed flag is in the AAD); a signature added to an
// unsigned frame is refused too.
func TestSignaturePolicy(t *testing.T) {
	e := mustEpoch(t, "epoch 7 secret", 7)
	unsigned, _ := e.Seal(alice.addr, bob.addr, 8, 1, text32, nil)
	w := NewWindows()
	if _, err := e.Open(unsigned, bob.addr, allPubs, true, w); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned under requireSigned: %v", err)
	}
	signed, _ := e.Seal(alice.addr, bob.addr, 8, 2, text32, alice.priv)
	stripped := reencode(t, signed, func(f *Frame) { f.Signature = nil })
	if len(stripped) != len(signed)-66 {
		t.Fatalf("stripped %d bytes, signed %d", len(stripped), len(signed))
	}
	if _, err := e.Open(stripped, bob.addr, allPubs, true, w); !errors.Is(err, ErrUnsigned) {
		t.Errorf("stripped, requireSigned: %v", err)
	}
	if _, err := e.Open(stripped, bob.addr, allPubs, false, w); !errors.Is(err, ErrDecrypt) {
		t.Errorf("stripped, signatures optional: %v", err)
	}
	// Alice signs her own unsigned frame after the fact: the AAD said
	// unsigned, so it does not open as signed.
	added := reencode(t, unsigned, func(f *Frame) { f.Signature = ed25519.Sign(alice.priv, f.TBS()) })
	if _, err := e.Open(added, bob.addr, allPubs, true, w); !errors.Is(err, ErrDecrypt) {
		t.Errorf("signature added: %v", err)
	}
	if w.Len() != 0 {
		t.Fatal("refused frames touched the window")
	}
	// Both originals still open once.
	for _, f := range [][]byte{unsigned, signed} {
		if _, err := e.Open(f, bob.addr, allPubs, false, w); err != nil {
			t.Fatal(err)
		}
	}
	// Seal refuses a signer that is not the source.
	if _, err := e.Seal(alice.addr, bob.addr, 8, 3, text32, carol.priv); err == nil {
		t.Fatal("Seal signed as alice with carol's key")
	}
}

// TestReplay: a frame opens once; its copies, also forwarded ones, are
// ErrReplay; reordering within the window is fine; below it is a replay.
func TestReplay(t *testing.T) {
	e := mustEpoch(t, "epoch 7 secret", 7)
	w := NewWindows()
	frame, _ := e.Seal(alice.addr, bob.addr, 8, 10, text32, nil)
	fwd, _ := Forward(frame)
	opened := 0
	for _, f := range [][]byte{frame, frame, fwd, frame} {
		_, err := e.Open(f, bob.addr, allPubs, false, w)
		switch {
		case err == nil:
			opened++
		case !errors.Is(err, ErrReplay):
			t.Fatalf("copy: %v, want ErrReplay", err)
		}
	}
	if opened != 1 {
		t.Fatalf("opened %d times", opened)
	}
	// Another sender's same counter is another message.
	fromCarol, _ := e.Seal(carol.addr, bob.addr, 8, 10, text32, nil)
	if _, err := e.Open(fromCarol, bob.addr, allPubs, false, w); err != nil {
		t.Fatalf("carol's counter 10: %v", err)
	}
	// Reordered: 12, then 11, then 11 again.
	for i, c := range []struct {
		n    uint32
		want error
	}{{12, nil}, {11, nil}, {11, ErrReplay}, {10 + WindowSize + 5, nil}, {15, ErrReplay}, {16, nil}, {16, ErrReplay}} {
		f, _ := e.Seal(alice.addr, bob.addr, 8, c.n, text32, nil)
		if _, err := e.Open(f, bob.addr, allPubs, false, w); !errors.Is(err, c.want) {
			t.Fatalf("step %d counter %d: %v, want %v", i, c.n, err, c.want)
		}
	}
	if w.Len() != 2 {
		t.Fatalf("%d windows, want 2", w.Len())
	}
}

// TestEpochs: the next epoch's keys come from the next exporter; a frame
// of epoch 7 opened with epoch 8's keys is ErrWrongEpoch, and one whose
// epoch field was changed to 8 does not open under epoch 8's keys.
func TestEpochs(t *testing.T) {
	e7 := mustEpoch(t, "epoch 7 secret", 7)
	e8 := mustEpoch(t, "epoch 8 secret", 8)
	if e7.GroupRef() != e8.GroupRef() || e8.Epoch() != 8 || e8.GroupID() != testGroup {
		t.Fatal("epoch accessors")
	}
	k7, _ := senderMaterial(e7.secret, alice.addr)
	k8, _ := senderMaterial(e8.secret, alice.addr)
	if k7 == k8 {
		t.Fatal("the same sender key in two epochs")
	}
	w := NewWindows()
	old, _ := e7.Seal(alice.addr, bob.addr, 8, 1, text32, nil)
	if _, err := e8.Open(old, bob.addr, allPubs, false, w); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("epoch 7 frame with epoch 8 keys: %v", err)
	}
	moved := reencode(t, old, func(f *Frame) { f.Epoch = 8 })
	if _, err := e8.Open(moved, bob.addr, allPubs, false, w); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("epoch 7 frame relabelled 8: %v", err)
	}
	// The same exporter asked for another epoch number gives other keys too.
	e8same := mustEpoch(t, "epoch 7 secret", 8)
	if bytes.Equal(e8same.secret, e7.secret) {
		t.Fatal("the epoch number is not in the exporter context")
	}
	// Once the windows accepted epoch 8, epoch 7 is refused even by a
	// member that kept epoch 7's keys, and its windows are gone.
	if _, err := e7.Open(old, bob.addr, allPubs, false, w); err != nil {
		t.Fatal(err)
	}
	f8, _ := e8.Seal(carol.addr, bob.addr, 8, 1, text32, nil)
	if _, err := e8.Open(f8, bob.addr, allPubs, false, w); err != nil {
		t.Fatal(err)
	}
	if w.Len() != 1 {
		t.Fatalf("%d windows after the move to epoch 8, want 1", w.Len())
	}
	old2, _ := e7.Seal(alice.addr, bob.addr, 8, 2, text32, nil)
	if _, err := e7.Open(old2, bob.addr, allPubs, false, w); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("epoch 7 after epoch 8: %v", err)
	}
	// Another group's frame.
	other, _ := DeriveEpoch(exporter("epoch 7 secret"), [16]byte{9}, 7)
	fo, _ := other.Seal(alice.addr, bob.addr, 8, 1, text32, nil)
	if _, err := e7.Open(fo, bob.addr, allPubs, false, NewWindows()); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("other group: %v", err)
	}
}

// TestSenderKeys: every sender has its own key and base nonce; a frame of
// bob relabelled as carol's does not open, although every member can
// derive both keys.
func TestSenderKeys(t *testing.T) {
	e := mustEpoch(t, "epoch 7 secret", 7)
	kb, nb := senderMaterial(e.secret, bob.addr)
	kc, nc := senderMaterial(e.secret, carol.addr)
	if kb == kc || nb == nc {
		t.Fatal("bob and carol share a key or base nonce")
	}
	frame, _ := e.Seal(bob.addr, alice.addr, 8, 1, text32, nil)
	asCarol := reencode(t, frame, func(f *Frame) { f.Source = carol.addr })
	if _, err := e.Open(asCarol, alice.addr, allPubs, false, NewWindows()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("bob's frame as carol's: %v", err)
	}
	// Nonces: base XOR counter in the last 4 bytes, distinct per counter.
	k := e.keys(bob.addr)
	seen := map[[NonceSize]byte]bool{}
	for _, c := range []uint32{0, 1, 2, 255, 256, 1 << 31, ^uint32(0)} {
		n := k.nonce(c)
		if seen[n] || !bytes.Equal(n[:8], k.base[:8]) {
			t.Fatalf("nonce of %d: %x", c, n)
		}
		seen[n] = true
	}
	if k.nonce(0) != k.base {
		t.Fatal("counter 0 does not give the base nonce")
	}
}

func TestDeriveEpochErrors(t *testing.T) {
	if _, err := DeriveEpoch(nil, testGroup, 1); err == nil {
		t.Fatal("nil exporter")
	}
	short := func(string, []byte, int) ([]byte, error) { return make([]byte, 16), nil }
	if _, err := DeriveEpoch(short, testGroup, 1); err == nil {
		t.Fatal("short secret")
	}
	boom := errors.New("boom")
	failing := func(string, []byte, int) ([]byte, error) { return nil, boom }
	if _, err := DeriveEpoch(failing, testGroup, 1); !errors.Is(err, boom) {
		t.Fatalf("exporter error: %v", err)
	}
	// The exporter is asked exactly as documented.
	var gotLabel string
	var gotCtx []byte
	var gotLen int
	spy := func(label string, ctx []byte, n int) ([]byte, error) {
		gotLabel, gotCtx, gotLen = label, bytes.Clone(ctx), n
		return make([]byte, n), nil
	}
	if _, err := DeriveEpoch(spy, testGroup, 0x0102030405060708); err != nil {
		t.Fatal(err)
	}
	want := append(testGroup[:], 1, 2, 3, 4, 5, 6, 7, 8)
	if gotLabel != "qpc mls-lite" || !bytes.Equal(gotCtx, want) || gotLen != 32 {
		t.Fatalf("exporter asked %q %x %d", gotLabel, gotCtx, gotLen)
	}
	ref := sha256.Sum256(append([]byte("qpc mls-lite ref"), testGroup[:]...))
	if r := GroupRefOf(testGroup); !bytes.Equal(r[:], ref[:4]) {
		t.Fatal("group ref")
	}
}

// TestSizes: the sizes of docs/crypto.md, byte by byte: array head 1, tag
// 1, hops 1, hop limit 1, source 17, destination 17, group ref 5, epoch 1,
// counter 1, ciphertext 2 + 48 = 95; the signature adds 66.
func TestSizes(t *testing.T) {
	want := map[string]int{"mls-lite-32": 95, "mls-lite-signed-32": 161, "mls-lite-32-lora": 109, "mls-lite-signed-32-lora": 175}
	got := Sizes()
	if len(got) != len(want) {
		t.Fatalf("%d rows", len(got))
	}
	for _, r := range got {
		if want[r.Name] != r.Bytes {
			t.Errorf("%s: %d bytes, want %d", r.Name, r.Bytes, want[r.Name])
		}
	}
	e := mustEpoch(t, "epoch 7 secret", 7)
	for _, n := range []int{0, 7} {
		f, _ := e.Seal(alice.addr, bob.addr, 8, 1, make([]byte, n), nil)
		if len(f) != Overhead+n {
			t.Errorf("text of %d: %d bytes, Overhead says %d", n, len(f), Overhead+n)
		}
	}
}

// TestLimits: the size limit comes before decoding; Seal refuses what
// would not fit, counting the hop byte a hop limit from 24 may add.
func TestLimits(t *testing.T) {
	e := mustEpoch(t, "epoch 7 secret", 7)
	if _, err := Decode(make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrTooLarge) || !errors.Is(err, messages.ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	if _, err := e.Open(make([]byte, MaxFrameSize+1), bob.addr, allPubs, false, NewWindows()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Open oversize: %v", err)
	}
	max := MaxFrameSize - Overhead - 2 // a ciphertext of 256..511 bytes has a 3-byte head
	f, err := e.Seal(alice.addr, bob.addr, 8, 1, make([]byte, max), nil)
	if err != nil || len(f) != MaxFrameSize {
		t.Fatalf("largest text: %d bytes, %v", len(f), err)
	}
	if _, err := e.Seal(alice.addr, bob.addr, 8, 1, make([]byte, max+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte more: %v", err)
	}
	if _, err := e.Seal(alice.addr, bob.addr, 30, 1, make([]byte, max), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("largest text with hop limit 30: %v", err)
	}
	if _, err := e.Open(f, bob.addr, allPubs, false, NewWindows()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Seal(alice.addr, crypto.Address(messages.BroadcastAddress), 8, 1, text32, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("broadcast destination: %v", err)
	}
	if _, err := e.Open(f, bob.addr, allPubs, false, nil); err == nil {
		t.Fatal("Open without windows")
	}
}

// TestDecodeRefusals: typed errors for what a peer can send.
func TestDecodeRefusals(t *testing.T) {
	e := mustEpoch(t, "epoch 7 secret", 7)
	frame, _ := e.Seal(alice.addr, bob.addr, 8, 300, text32, nil)
	signed, _ := e.Seal(alice.addr, bob.addr, 8, 300, text32, alice.priv)
	for _, fr := range [][]byte{frame, signed} {
		for i := range fr {
			if _, err := Decode(fr[:i]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("truncated to %d: %v", i, err)
			}
		}
		if _, err := Decode(append(bytes.Clone(fr), 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
	raw := func(v any) []byte {
		b, err := messages.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f := mustDecode(t, frame)
	good := wireUnsigned{Tag: Tag, HopLimit: 8, Source: f.Source, Destination: f.Destination, GroupRef: f.GroupRef, Epoch: 7, Counter: 300, Ciphertext: f.Ciphertext}
	for name, c := range map[string]struct {
		mod  func(*wireUnsigned)
		want error
	}{
		"hops over limit":   {func(w *wireUnsigned) { w.Hops = 9 }, ErrMalformed},
		"short ciphertext":  {func(w *wireUnsigned) { w.Ciphertext = w.Ciphertext[:TagSize-1] }, ErrMalformed},
		"broadcast source":  {func(w *wireUnsigned) { w.Source = messages.BroadcastAddress }, ErrMalformed},
		"compact tag":       {func(w *wireUnsigned) { w.Tag = messages.TagCompact }, messages.ErrUnknownType},
		"version 1":         {func(w *wireUnsigned) { w.Tag = messages.MakeTag(FrameMLSLite, 1) }, messages.ErrUnsupportedVersion},
		"valid (reference)": {func(*wireUnsigned) {}, nil},
	} {
		w := good
		c.mod(&w)
		_, err := Decode(raw(w))
		if !errors.Is(err, c.want) || (c.want != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// Wrong-length byte strings and a counter over 32 bits.
	type loose struct {
		_           struct{} `cbor:",toarray"`
		Tag         messages.Tag
		Hops        uint8
		HopLimit    uint8
		Source      []byte
		Destination []byte
		GroupRef    []byte
		Epoch       uint64
		Counter     uint64
		Ciphertext  []byte
		Signature   []byte
	}
	base := loose{Tag: Tag, HopLimit: 8, Source: f.Source[:], Destination: f.Destination[:], GroupRef: f.GroupRef[:], Epoch: 7, Counter: 300, Ciphertext: f.Ciphertext, Signature: make([]byte, 64)}
	if _, err := Decode(raw(base)); err != nil {
		t.Fatalf("loose reference: %v", err)
	}
	for name, mod := range map[string]func(*loose){
		"source 15":     func(l *loose) { l.Source = l.Source[:15] },
		"group ref 5":   func(l *loose) { l.GroupRef = append(bytes.Clone(l.GroupRef), 0) },
		"counter 2^32":  func(l *loose) { l.Counter = 1 << 32 },
		"signature 63":  func(l *loose) { l.Signature = l.Signature[:63] },
		"signature 0":   func(l *loose) { l.Signature = []byte{} },
		"destination 0": func(l *loose) { l.Destination = nil },
	} {
		l := base
		mod(&l)
		if _, err := Decode(raw(l)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A non-canonical head: the counter 300 as a 4-byte integer.
	i := bytes.Index(frame, []byte{0x19, 0x01, 0x2c})
	nc := append(append(append([]byte{}, frame[:i]...), 0x1a, 0, 0, 0x01, 0x2c), frame[i+3:]...)
	if _, err := Decode(nc); !errors.Is(err, ErrMalformed) {
		t.Errorf("non-canonical counter: %v", err)
	}
	// 8 and 11 elements.
	for _, head := range []byte{0x88, 0x8b} {
		b := bytes.Clone(frame)
		b[0] = head
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("head %x: %v", head, err)
		}
	}
}

// TestForward: hops rise by one, nothing else changes (same id, opens),
// ErrHopLimit at the limit, the hop byte grows from 24.
func TestForward(t *testing.T) {
	e := mustEpoch(t, "epoch 7 secret", 7)
	for _, signer := range []ed25519.PrivateKey{nil, alice.priv} {
		frame, _ := e.Seal(alice.addr, bob.addr, 2, 1, text32, signer)
		id := mustDecode(t, frame).ID()
		f1, err := Forward(frame)
		if err != nil {
			t.Fatal(err)
		}
		d := mustDecode(t, f1)
		if d.Hops != 1 || d.ID() != id || !bytes.Equal(f1[3:], frame[3:]) {
			t.Fatalf("forwarded %+v", d)
		}
		f2, _ := Forward(f1)
		if _, err := Forward(f2); !errors.Is(err, ErrHopLimit) || !errors.Is(err, messages.ErrHopLimit) {
			t.Fatalf("at the limit: %v", err)
		}
		if o, err := e.Open(f2, bob.addr, allPubs, signer != nil, NewWindows()); err != nil || o.ID != id {
			t.Fatalf("open after 2 hops: %v", err)
		}
	}
	frame, _ := e.Seal(alice.addr, bob.addr, 30, 1, text32, nil)
	for range 23 {
		frame, _ = Forward(frame)
	}
	f24, err := Forward(frame)
	if err != nil || len(f24) != len(frame)+1 || mustDecode(t, f24).Hops != 24 {
		t.Fatalf("24th hop: %d → %d bytes, %v", len(frame), len(f24), err)
	}
	if _, err := Forward(readGoldenHex(t, "mls-lite.golden")[:2]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
	// frame has 23 hops (one byte, 0x17); write 31 (0x18 0x1f) over a hop limit of 30.
	over := append([]byte{frame[0], frame[1], 0x18, 31}, frame[3:]...)
	if _, err := Forward(over); !errors.Is(err, ErrMalformed) {
		t.Fatalf("hops over limit: %v", err)
	}
	if _, err := Forward(make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatal("oversize")
	}
}
