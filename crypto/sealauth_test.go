package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// TestSealAuthMatchesRFC9180 runs the RFC 9180 appendix A.2.3 vector
// (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, auth mode)
// through the code path SealAuth and OpenAuth use, with the vector's info
// and ephemeral randomness in place of ours.
func TestSealAuthMatchesRFC9180(t *testing.T) {
	info := unhex(t, "4f6465206f6e2061204772656369616e2055726e")
	ikmE := unhex(t, "938d3daa5a8904540bc24f48ae90eed3f4f7f11839560597b55e7c9598c996c0")
	ikmR := unhex(t, "64835d5ee64aa7aad57c6f2e4f758f7696617f8829e70bc9ac7a5ef95d1c756c")
	ikmS := unhex(t, "9d8f94537d5a3ddef71234c0baedfad4ca6861634d0b94c3007fed557ad17df6")
	pkRm := unhex(t, "1a478716d63cb2e16786ee93004486dc151e988b34b475043d3e0175bdb01c44")
	pkSm := unhex(t, "f0f4f9e96c54aeed3f323de8534fffd7e0577e4ce269896716bcb95643c8712b")
	enc := unhex(t, "f7674cc8cd7baa5872d1f33dbaffe3314239f6197ddf5ded1746760bfc847e0e")
	pt := unhex(t, "4265617574792069732074727574682c20747275746820626561757479")
	aad := unhex(t, "436f756e742d30")
	ct := unhex(t, "ab1a13c9d4f01a87ec3440dbd756e2677bd2ecf9df0ce7ed73869b98e00c09be111cb9fdf077347aeb88e61bdf")

	key := func(ikm, want []byte) *SealingKey {
		pub, priv := sealSuiteKEM.Scheme().DeriveKeyPair(ikm)
		priv.Public()
		raw, _ := pub.MarshalBinary()
		if !bytes.Equal(raw, want) {
			t.Fatalf("DeriveKeyPair public %x, want %x", raw, want)
		}
		k := &SealingKey{priv: priv}
		copy(k.pub[:], raw)
		return k
	}
	sender, recipient := key(ikmS, pkSm), key(ikmR, pkRm)

	got, err := sender.sealAuthWith(bytes.NewReader(ikmE), pkRm, info, pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, enc...), ct...)
	if !bytes.Equal(got, want) {
		t.Fatalf("sealed\n got %x\nwant %x", got, want)
	}
	opened, err := recipient.openAuthWith(info, want, aad, pkSm)
	if err != nil || !bytes.Equal(opened, pt) {
		t.Fatalf("open vector: %q, %v", opened, err)
	}
	if _, err := recipient.OpenAuth(want, aad, pkSm); !errors.Is(err, ErrOpen) {
		t.Fatalf("vector opened under the qpc info label: %v", err)
	}
}

// TestSealAuth: what SealAuth seals opens with the recipient's key and the
// sender's public key only, and with the same AAD only; a flipped bit
// anywhere, another sender key (a forger claiming the sender), a base-mode
// payload and bad keys are refused with typed errors.
func TestSealAuth(t *testing.T) {
	_, alice := testSealingKey(t, 1)
	_, bob := testSealingKey(t, 2)
	_, mallory := testSealingKey(t, 3)
	aad := []byte("compact header")
	text := bytes.Repeat([]byte{'x'}, 32)

	sealed, err := alice.SealAuth(bob.Public(), text, aad)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(text)+SealOverhead {
		t.Fatalf("sealed %d bytes, want %d", len(sealed), len(text)+SealOverhead)
	}
	got, err := bob.OpenAuth(sealed, aad, alice.Public())
	if err != nil || !bytes.Equal(got, text) {
		t.Fatalf("open: %q %v", got, err)
	}
	// Fresh ephemeral key every time.
	again, _ := alice.SealAuth(bob.Public(), text, aad)
	if bytes.Equal(again[:SealEncSize], sealed[:SealEncSize]) {
		t.Fatal("two seals share an ephemeral key")
	}

	// Mallory seals to Bob and claims to be Alice: Bob checks with Alice's
	// announced key and refuses.
	forged, err := mallory.SealAuth(bob.Public(), text, aad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.OpenAuth(forged, aad, alice.Public()); !errors.Is(err, ErrOpen) {
		t.Fatalf("forged sender: %v", err)
	}
	// Only Bob can open it; Alice checking her own message cannot.
	if _, err := mallory.OpenAuth(sealed, aad, alice.Public()); !errors.Is(err, ErrOpen) {
		t.Fatalf("wrong recipient: %v", err)
	}
	if _, err := bob.OpenAuth(sealed, []byte("other header"), alice.Public()); !errors.Is(err, ErrOpen) {
		t.Fatalf("other aad: %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := bob.OpenAuth(bad, aad, alice.Public()); !errors.Is(err, ErrOpen) {
			t.Fatalf("bit flipped at %d: %v", i, err)
		}
	}
	// A base-mode payload (anyone can make one) is no auth-mode payload,
	// and the reverse.
	base, _ := Seal(bob.Public(), text, aad)
	if _, err := bob.OpenAuth(base, aad, alice.Public()); !errors.Is(err, ErrOpen) {
		t.Fatalf("base mode opened as auth: %v", err)
	}
	if _, err := bob.Open(sealed, aad); !errors.Is(err, ErrOpen) {
		t.Fatalf("auth mode opened as base: %v", err)
	}
	if _, err := bob.OpenAuth(sealed[:SealOverhead-1], aad, alice.Public()); !errors.Is(err, ErrSealedTooShort) {
		t.Fatalf("short: %v", err)
	}
	if _, err := bob.OpenAuth(sealed, aad, alice.Public()[:31]); !errors.Is(err, ErrBadSealingKey) {
		t.Fatalf("short sender key: %v", err)
	}
	if _, err := bob.OpenAuth(sealed, aad, make([]byte, 32)); !errors.Is(err, ErrOpen) {
		t.Fatalf("low-order sender key: %v", err)
	}
	if _, err := alice.SealAuth(make([]byte, 32), text, aad); !errors.Is(err, ErrBadSealingKey) {
		t.Fatalf("low-order recipient: %v", err)
	}
	if _, err := alice.SealAuth(bob.Public()[:5], text, aad); !errors.Is(err, ErrBadSealingKey) {
		t.Fatalf("short recipient: %v", err)
	}
	var none *SealingKey
	if _, err := none.SealAuth(bob.Public(), text, aad); !errors.Is(err, ErrBadSealingKey) {
		t.Fatalf("nil sender: %v", err)
	}
}

// FuzzSealingKeyOpenAuth: OpenAuth is what a peer reaches with every
// compact envelope addressed to this node. Whatever the bytes, AAD and
// claimed sender key, it returns the plaintext (SealOverhead bytes
// shorter) or exactly one of ErrSealedTooShort, ErrBadSealingKey or
// ErrOpen, never a panic; and a real payload round-trips but refuses to
// open with another AAD, another sender, or a bit flipped at a
// fuzzer-chosen position.
func FuzzSealingKeyOpenAuth(f *testing.F) {
	_, src := testSealingKey(f, 1)
	_, k := testSealingKey(f, 2)
	_, other := testSealingKey(f, 3)
	rnd := fuzzSealRand(0)
	aad := []byte("header")
	sealed, err := src.sealAuthWith(&rnd, k.Public(), []byte(sealAuthInfo), []byte("hello over lora"), aad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, aad, src.Public(), []byte("hello"), uint16(0))
	f.Add(sealed, aad, other.Public(), []byte{}, uint16(47))
	f.Add(sealed[:SealOverhead], aad, src.Public(), []byte{0}, uint16(1))
	f.Add(sealed[:SealOverhead-1], aad, src.Public(), []byte{}, uint16(2))
	f.Add([]byte{}, []byte{}, []byte{}, []byte{}, uint16(3))
	f.Add(sealed, aad, make([]byte, 32), []byte("low-order sender"), uint16(31))
	f.Add(sealed, aad, bytes.Repeat([]byte{0xFF}, 32), []byte("non-canonical sender"), uint16(32))

	f.Fuzz(func(t *testing.T, data, aad, senderPub, plaintext []byte, flip uint16) {
		pt, err := k.OpenAuth(data, aad, senderPub)
		switch {
		case len(data) < SealOverhead:
			if !errors.Is(err, ErrSealedTooShort) || pt != nil {
				t.Fatalf("OpenAuth of %d bytes = %x, %v; want ErrSealedTooShort", len(data), pt, err)
			}
		case len(senderPub) != SealingKeySize:
			if !errors.Is(err, ErrBadSealingKey) || pt != nil {
				t.Fatalf("sender key of %d bytes: %x, %v", len(senderPub), pt, err)
			}
		case err == nil:
			if len(pt) != len(data)-SealOverhead {
				t.Fatalf("opened %d bytes from %d", len(pt), len(data))
			}
		case !errors.Is(err, ErrOpen) && !errors.Is(err, ErrBadSealingKey):
			t.Fatalf("untyped error %v", err)
		}

		s, err := src.SealAuth(k.Public(), plaintext, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != len(plaintext)+SealOverhead {
			t.Fatalf("sealed %d bytes for %d", len(s), len(plaintext))
		}
		if got, err := k.OpenAuth(s, aad, src.Public()); err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("round trip: %x, %v", got, err)
		}
		if _, err := k.OpenAuth(s, append(bytes.Clone(aad), 0), src.Public()); !errors.Is(err, ErrOpen) {
			t.Fatalf("other aad: %v", err)
		}
		if _, err := k.OpenAuth(s, aad, other.Public()); !errors.Is(err, ErrOpen) {
			t.Fatalf("other sender: %v", err)
		}
		bad := bytes.Clone(s)
		bad[int(flip)%len(bad)] ^= 0x80
		if _, err := k.OpenAuth(bad, aad, src.Public()); !errors.Is(err, ErrOpen) {
			t.Fatalf("flipped at %d: %v", int(flip)%len(bad), err)
		}
	})
}
