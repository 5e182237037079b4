package pq

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/quicprochat/qpc/crypto"
)

func hkdfSeed(tb testing.TB, edSeed []byte) []byte {
	tb.Helper()
	s, err := hkdf.Key(sha256.New, edSeed, nil, "qpc/x-wing v1", 32)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// directory is the lookup of announced identity keys that VerifyRecord
// takes.
func directory(ids ...*crypto.Identity) func(crypto.Address) (ed25519.PublicKey, bool) {
	m := map[crypto.Address]ed25519.PublicKey{}
	for _, id := range ids {
		m[id.Address()] = id.PublicKey()
	}
	return func(a crypto.Address) (ed25519.PublicKey, bool) {
		k, ok := m[a]
		return k, ok
	}
}

func TestRecordRoundTrip(t *testing.T) {
	id := testIdentity(t, 1)
	b := SignRecord(id)
	if len(b) != RecordSize {
		t.Fatalf("record is %d bytes, want %d", len(b), RecordSize)
	}
	r, err := VerifyRecord(b, directory(id, testIdentity(t, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Owner != id.Address() {
		t.Fatalf("owner %s, want %s", r.Owner, id.Address())
	}
	if !bytes.Equal(r.Public, KeyFor(id).Public()) {
		t.Fatal("record's public key is not KeyFor's")
	}
	// Record.Public does not alias the input.
	b[crypto.AddressSize] ^= 0xff
	if !bytes.Equal(r.Public, KeyFor(id).Public()) {
		t.Fatal("Record.Public shares memory with the input")
	}
	// The verified key is usable: what is sealed to it opens with KeyFor.
	aad := []byte("aad")
	sealed, err := Seal(r.Public, []byte("via record"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := KeyFor(id).Open(sealed, aad); err != nil || string(got) != "via record" {
		t.Fatalf("open: %q, %v", got, err)
	}
}

func TestRecordLayout(t *testing.T) {
	id := testIdentity(t, 1)
	b := SignRecord(id)
	owner := id.Address()
	pub := KeyFor(id).Public()
	if !bytes.Equal(b[:16], owner[:]) || !bytes.Equal(b[16:1232], pub) {
		t.Fatal("record is not owner || public || signature")
	}
	msg := append(append([]byte("qpc/pq-key/v1\x00"), owner[:]...), pub...)
	if !ed25519.Verify(id.PublicKey(), msg, b[1232:]) {
		t.Fatal("signature is not over \"qpc/pq-key/v1\\x00\" || owner || public")
	}
}

func TestRecordTamperedPublic(t *testing.T) {
	id := testIdentity(t, 1)
	dir := directory(id)
	for _, i := range []int{crypto.AddressSize, crypto.AddressSize + 600, crypto.AddressSize + PublicKeySize - 1} {
		b := SignRecord(id)
		b[i] ^= 0x01
		if _, err := VerifyRecord(b, dir); !errors.Is(err, ErrBadSignature) {
			t.Errorf("public key flipped at %d: err %v, want ErrBadSignature", i, err)
		}
	}
	b := SignRecord(id)
	b[RecordSize-1] ^= 0x01
	if _, err := VerifyRecord(b, dir); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature flipped: err %v, want ErrBadSignature", err)
	}
}

func TestRecordOtherKeyInOwnRecord(t *testing.T) {
	// A relay that swaps A's X-Wing key into B's record (to have B's mail
	// sealed to A) is refused: B's signature covers the key.
	a, b := testIdentity(t, 1), testIdentity(t, 2)
	rec := SignRecord(b)
	copy(rec[crypto.AddressSize:], KeyFor(a).Public())
	if _, err := VerifyRecord(rec, directory(a, b)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("swapped public key: err %v, want ErrBadSignature", err)
	}
}

func TestRecordOwnerNotMatchingKey(t *testing.T) {
	a, b := testIdentity(t, 1), testIdentity(t, 2)
	// A directory that answers for a's address with b's key (a poisoned or
	// buggy lookup): refused, even though b signed.
	lying := func(addr crypto.Address) (ed25519.PublicKey, bool) {
		return b.PublicKey(), addr == a.Address()
	}
	rec := signRecord(b, KeyFor(b).Public())
	copy(rec[:crypto.AddressSize], a.Address().Bytes())
	// Re-sign with b over a's owner, so only the address check can catch it.
	owner := a.Address()
	copy(rec[crypto.AddressSize+PublicKeySize:], b.Sign(recordSigned(owner[:], rec[crypto.AddressSize:crypto.AddressSize+PublicKeySize])))
	if _, err := VerifyRecord(rec, lying); !errors.Is(err, ErrOwnerMismatch) {
		t.Fatalf("owner's key has another address: err %v, want ErrOwnerMismatch", err)
	}
	// A record signed by b but claiming a as owner, with an honest lookup:
	// a's key does not verify b's signature.
	if _, err := VerifyRecord(rec, directory(a, b)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("claimed owner a, signed by b: err %v, want ErrBadSignature", err)
	}
	// A lookup returning a key of the wrong length.
	short := func(crypto.Address) (ed25519.PublicKey, bool) { return a.PublicKey()[:31], true }
	if _, err := VerifyRecord(SignRecord(a), short); !errors.Is(err, ErrOwnerMismatch) {
		t.Fatalf("31-byte owner key: err %v, want ErrOwnerMismatch", err)
	}
}

func TestRecordUnknownOwner(t *testing.T) {
	a, b := testIdentity(t, 1), testIdentity(t, 2)
	if _, err := VerifyRecord(SignRecord(a), directory(b)); !errors.Is(err, ErrUnknownOwner) {
		t.Fatalf("err %v, want ErrUnknownOwner", err)
	}
}

func TestRecordWrongLength(t *testing.T) {
	id := testIdentity(t, 1)
	rec := SignRecord(id)
	called := false
	dir := func(crypto.Address) (ed25519.PublicKey, bool) { called = true; return id.PublicKey(), true }
	for _, b := range [][]byte{nil, rec[:1], rec[:RecordSize-1], append(bytes.Clone(rec), 0), make([]byte, 2*RecordSize)} {
		if _, err := VerifyRecord(b, dir); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: err %v, want ErrMalformed", len(b), err)
		}
	}
	if called {
		t.Fatal("the lookup ran before the length check")
	}
}

func TestRecordBadXWingKeySigned(t *testing.T) {
	// The owner signed a key that is not a valid X-Wing key: the record
	// verifies as the owner's word but is refused, as Seal would refuse it.
	id := testIdentity(t, 1)
	pub := append(bytes.Repeat([]byte{0xff}, 1184), KeyFor(id).Public()[1184:]...)
	if _, err := VerifyRecord(signRecord(id, pub), directory(id)); !errors.Is(err, ErrBadPublicKey) {
		t.Fatalf("err %v, want ErrBadPublicKey", err)
	}
}
