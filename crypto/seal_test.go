package crypto

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func testSealingKey(t testing.TB, seedByte byte) (*Identity, *SealingKey) {
	t.Helper()
	id, err := IdentityFromSeed(bytes.Repeat([]byte{seedByte}, ed25519.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	k, err := SealingKeyFor(id)
	if err != nil {
		t.Fatal(err)
	}
	return id, k
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSealingKeyIsDerivedDeterministically pins the derivation labels: if
// this vector changes, every node's announced sealing key changes. The
// expected key was computed independently (HKDF and RFC 9180 DeriveKeyPair
// and X25519 written out in Python), not copied from this code's output.
func TestSealingKeyIsDerivedDeterministically(t *testing.T) {
	id, k := testSealingKey(t, 7)
	again, err := SealingKeyFor(id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public(), again.Public()) {
		t.Fatal("same identity gave two sealing keys")
	}
	_, other := testSealingKey(t, 8)
	if bytes.Equal(k.Public(), other.Public()) {
		t.Fatal("two identities share a sealing key")
	}
	if bytes.Equal(k.Public(), id.PublicKey()) {
		t.Fatal("sealing key equals the signing key")
	}
	const want = "80c905cb1e2d90c70e805df8731f79381ab23cc2c5ffc8d3a4eff44a8fac794a"
	if got := hex.EncodeToString(k.Public()); got != want {
		t.Errorf("sealing key for seed 0x07…: %s, want %s", got, want)
	}
	if err := ValidateSealingPublic(k.Public()); err != nil {
		t.Fatalf("derived key fails validation: %v", err)
	}
	// Public hands out a copy.
	p := k.Public()
	p[0] ^= 0xff
	if bytes.Equal(p, k.Public()) {
		t.Fatal("Public exposes the key's own memory")
	}
	if _, err := SealingKeyFor(nil); !errors.Is(err, ErrBadSealingKey) {
		t.Fatalf("SealingKeyFor(nil): %v, want ErrBadSealingKey", err)
	}
}

func TestSealOpenRoundTripAndOverhead(t *testing.T) {
	src, _ := testSealingKey(t, 1)
	dst, k := testSealingKey(t, 2)
	aad := SealAAD(src.Address(), dst.Address())
	if len(aad) != 32 {
		t.Fatalf("SealAAD is %d bytes, want 32", len(aad))
	}
	for _, n := range []int{0, 1, 32, 255, 256, 4096} {
		pt := bytes.Repeat([]byte{0xa5}, n)
		sealed, err := Seal(k.Public(), pt, aad)
		if err != nil {
			t.Fatalf("Seal(%d B): %v", n, err)
		}
		if len(sealed) != n+SealOverhead {
			t.Fatalf("Seal(%d B) = %d B, want %d", n, len(sealed), n+SealOverhead)
		}
		got, err := k.Open(sealed, aad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open(Seal(%d B)) = %x, %v", n, got, err)
		}
	}
	sealed, err := Seal(k.Public(), make([]byte, 32), aad)
	if err != nil {
		t.Fatal(err)
	}
	if SealOverhead != 48 || len(sealed) != 80 {
		t.Fatalf("32-byte plaintext sealed to %d bytes (overhead %d), want 80 (48)", len(sealed), SealOverhead)
	}
}

func TestSealUsesAFreshEphemeralEachTime(t *testing.T) {
	_, k := testSealingKey(t, 3)
	a, err := Seal(k.Public(), []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Seal(k.Public(), []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[:SealEncSize], b[:SealEncSize]) || bytes.Equal(a, b) {
		t.Fatal("two seals share an ephemeral key")
	}
}

func TestOpenRefusesWhatItShould(t *testing.T) {
	src, _ := testSealingKey(t, 1)
	dst, k := testSealingKey(t, 2)
	_, other := testSealingKey(t, 3)
	aad := SealAAD(src.Address(), dst.Address())
	pt := []byte("reserve slot 42")
	sealed, err := Seal(k.Public(), pt, aad)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		key    *SealingKey
		sealed []byte
		aad    []byte
		want   error
	}{
		{"wrong recipient", other, sealed, aad, ErrOpen},
		{"moved to another envelope (src)", k, sealed, SealAAD(dst.Address(), dst.Address()), ErrOpen},
		{"moved to another envelope (dst)", k, sealed, SealAAD(src.Address(), src.Address()), ErrOpen},
		{"no aad", k, sealed, nil, ErrOpen},
		{"truncated tag", k, sealed[:len(sealed)-1], aad, ErrOpen},
		{"extra byte", k, append(append([]byte{}, sealed...), 0), aad, ErrOpen},
		{"only enc and tag", k, sealed[:SealOverhead], aad, ErrOpen},
		{"one byte short of overhead", k, sealed[:SealOverhead-1], aad, ErrSealedTooShort},
		{"empty", k, nil, aad, ErrSealedTooShort},
		{"low-order ephemeral", k, append(make([]byte, SealEncSize), sealed[SealEncSize:]...), aad, ErrOpen},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.key.Open(c.sealed, c.aad)
			if !errors.Is(err, c.want) || got != nil {
				t.Fatalf("Open = %q, %v; want %v", got, err, c.want)
			}
		})
	}
	// Every single-bit flip anywhere is refused.
	for i := range sealed {
		bad := append([]byte{}, sealed...)
		bad[i] ^= 0x01
		if _, err := k.Open(bad, aad); !errors.Is(err, ErrOpen) {
			t.Fatalf("flip in byte %d: %v, want ErrOpen", i, err)
		}
	}
}

func TestSealRefusesBadRecipientKeys(t *testing.T) {
	one := make([]byte, 32)
	one[0] = 1
	// 0xe0eb…b800 is a point of order 8 on Curve25519.
	order8 := []byte{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}
	for name, pub := range map[string][]byte{
		"nil":      nil,
		"31 bytes": make([]byte, 31),
		"33 bytes": make([]byte, 33),
		"zero":     make([]byte, 32),
		"one":      one,
		"order 8":  order8,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Seal(pub, []byte("x"), nil); !errors.Is(err, ErrBadSealingKey) {
				t.Errorf("Seal: %v, want ErrBadSealingKey", err)
			}
			if err := ValidateSealingPublic(pub); !errors.Is(err, ErrBadSealingKey) {
				t.Errorf("ValidateSealingPublic: %v, want ErrBadSealingKey", err)
			}
		})
	}
}

// TestSealMatchesRFC9180 runs the RFC 9180 appendix A.2.1 vector
// (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode)
// through the same code path Seal and Open use, with the vector's info and
// ephemeral randomness in place of ours.
func TestSealMatchesRFC9180(t *testing.T) {
	info := unhex(t, "4f6465206f6e2061204772656369616e2055726e")
	ikmE := unhex(t, "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b")
	ikmR := unhex(t, "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df")
	pkRm := unhex(t, "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a")
	enc := unhex(t, "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a")
	pt := unhex(t, "4265617574792069732074727574682c20747275746820626561757479")
	aad := unhex(t, "436f756e742d30")
	ct := unhex(t, "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28")

	got, err := sealWith(bytes.NewReader(ikmE), pkRm, info, pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, enc...), ct...)
	if !bytes.Equal(got, want) {
		t.Fatalf("sealed\n got %x\nwant %x", got, want)
	}

	pub, priv := sealSuiteKEM.Scheme().DeriveKeyPair(ikmR)
	priv.Public()
	raw, _ := pub.MarshalBinary()
	if !bytes.Equal(raw, pkRm) {
		t.Fatalf("DeriveKeyPair(ikmR) public %x, want %x", raw, pkRm)
	}
	k := &SealingKey{priv: priv}
	copy(k.pub[:], raw)
	opened, err := k.openWith(info, want, aad)
	if err != nil || !bytes.Equal(opened, pt) {
		t.Fatalf("open vector: %q, %v", opened, err)
	}
	// Our own info label is part of the binding: the vector does not open
	// under it.
	if _, err := k.Open(want, aad); !errors.Is(err, ErrOpen) {
		t.Fatalf("vector opened under the qpc info label: %v", err)
	}
}

func TestOpenIsSafeForConcurrentUse(t *testing.T) {
	_, k := testSealingKey(t, 9)
	sealed, err := Seal(k.Public(), []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := k.Open(sealed, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func BenchmarkSeal(b *testing.B) {
	_, k := testSealingKey(b, 4)
	pub := k.Public()
	aad := make([]byte, 32)
	for _, n := range []int{32, 256} {
		pt := make([]byte, n)
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := Seal(pub, pt, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	_, k := testSealingKey(b, 4)
	aad := make([]byte, 32)
	for _, n := range []int{32, 256} {
		sealed, err := Seal(k.Public(), make([]byte, n), aad)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := k.Open(sealed, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
