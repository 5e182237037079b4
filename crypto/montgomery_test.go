package crypto

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
)

// The twin's public key is the birational image of the Ed25519 key, so
// two identities agree on one secret from each other's Ed25519 keys.
func TestX25519Twin(t *testing.T) {
	r := rand.NewChaCha8([32]byte{7})
	for range 20 {
		a, _ := NewIdentity(r)
		b, _ := NewIdentity(r)
		ap, err := a.X25519Private()
		if err != nil {
			t.Fatal(err)
		}
		bp, _ := b.X25519Private()
		apub, err := X25519PublicFromEd25519(a.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(apub.Bytes(), ap.PublicKey().Bytes()) {
			t.Fatalf("twin of %x is %x, the scalar's public key is %x", a.PublicKey(), apub.Bytes(), ap.PublicKey().Bytes())
		}
		bpub, _ := X25519PublicFromEd25519(b.PublicKey())
		s1, err1 := ap.ECDH(bpub)
		s2, err2 := bp.ECDH(apub)
		if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
			t.Fatalf("shared secrets differ: %x %v / %x %v", s1, err1, s2, err2)
		}
	}
	// The RFC 8032 test key 1 and its X25519 image (libsodium's
	// crypto_sign_ed25519_pk_to_curve25519).
	pub := ed25519.PublicKey(mustHex(t, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))
	got, err := X25519PublicFromEd25519(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, "d85e07ec22b0ad881537c2f44d662d1a143cf830c57aca4305d85c7a90f6b62e"); !bytes.Equal(got.Bytes(), want) {
		t.Errorf("twin of the RFC 8032 key = %x, want %x", got.Bytes(), want)
	}
	for _, bad := range [][]byte{nil, make([]byte, 31), append([]byte{1}, make([]byte, 31)...)} { // short; y = 1
		if _, err := X25519PublicFromEd25519(bad); !errors.Is(err, ErrBadEd25519Key) {
			t.Errorf("X25519PublicFromEd25519(%x) = %v, want ErrBadEd25519Key", bad, err)
		}
	}
	if _, err := (*Identity)(nil).X25519Private(); !errors.Is(err, ErrBadEd25519Key) {
		t.Errorf("nil identity: %v", err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
