package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzSealRand is a deterministic "random" source for the seeds: the
// corpus must not change from run to run.
type fuzzSealRand byte

func (r *fuzzSealRand) Read(p []byte) (int, error) {
	for i := range p {
		*r++
		p[i] = byte(*r)
	}
	return len(p), nil
}

// FuzzSealingKeyOpen: (*SealingKey).Open is what a peer reaches with the
// payload of every sealed envelope addressed to this node. Whatever the
// bytes and AAD, it returns the plaintext or exactly one of ErrSealedTooShort
// (below SealOverhead, and only there) or ErrOpen, never a panic; what
// opens is SealOverhead bytes shorter than its input. And on every input the
// fuzzer picks as a plaintext: Seal then Open round-trips, the result is
// SealOverhead longer, and the same ciphertext refuses to open with another
// AAD, another key, a flipped bit at a fuzzer-chosen position, or cut short.
func FuzzSealingKeyOpen(f *testing.F) {
	src, _ := testSealingKey(f, 1)
	dst, k := testSealingKey(f, 2)
	_, other := testSealingKey(f, 3)
	aad := SealAAD(src.Address(), dst.Address())

	rnd := fuzzSealRand(0)
	sealed, err := sealWith(&rnd, k.Public(), []byte(sealInfo), []byte("reserve slot 42"), aad)
	if err != nil {
		f.Fatal(err)
	}
	empty, err := sealWith(&rnd, k.Public(), []byte(sealInfo), nil, aad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, aad, []byte("hello"), uint16(0))
	f.Add(empty, aad, []byte{}, uint16(47))
	f.Add(sealed[:SealOverhead], aad, []byte{0}, uint16(1))
	f.Add(sealed[:SealOverhead-1], aad, []byte{}, uint16(2))
	f.Add([]byte{}, []byte{}, []byte{}, uint16(3))
	f.Add(sealed, []byte{}, []byte("no aad"), uint16(100))
	f.Add(append(make([]byte, SealEncSize), sealed[SealEncSize:]...), aad, []byte("low-order ephemeral"), uint16(31))
	f.Add(append(bytes.Repeat([]byte{0xFF}, SealEncSize), sealed[SealEncSize:]...), aad, []byte("non-canonical ephemeral"), uint16(32))
	f.Add(append(append([]byte{}, sealed...), 0), aad, bytes.Repeat([]byte{0xAB}, 300), uint16(9999))

	f.Fuzz(func(t *testing.T, data, aad, plaintext []byte, flip uint16) {
		pt, err := k.Open(data, aad)
		switch {
		case len(data) < SealOverhead:
			if !errors.Is(err, ErrSealedTooShort) || pt != nil {
				t.Fatalf("Open of %d bytes = %x, %v; want ErrSealedTooShort", len(data), pt, err)
			}
		case err != nil:
			if !errors.Is(err, ErrOpen) || errors.Is(err, ErrSealedTooShort) || pt != nil {
				t.Fatalf("Open of %d bytes = %x, %v; want ErrOpen", len(data), pt, err)
			}
		default:
			// Only a real ciphertext from the corpus gets here.
			if len(pt) != len(data)-SealOverhead {
				t.Fatalf("opened %d bytes into %d of plaintext", len(data), len(pt))
			}
		}

		// Round trip on the fuzzer's plaintext and AAD.
		s, err := Seal(k.Public(), plaintext, aad)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if len(s) != len(plaintext)+SealOverhead {
			t.Fatalf("sealed %d bytes into %d, want +%d", len(plaintext), len(s), SealOverhead)
		}
		got, err := k.Open(s, aad)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("round trip: %x, %v; want %x", got, err, plaintext)
		}
		if _, err := other.Open(s, aad); !errors.Is(err, ErrOpen) {
			t.Fatalf("opened with another key: %v", err)
		}
		if _, err := k.Open(s, append(bytes.Clone(aad), 0)); !errors.Is(err, ErrOpen) {
			t.Fatalf("opened with another AAD: %v", err)
		}
		bad := bytes.Clone(s)
		i := int(flip) % len(bad)
		bad[i] ^= 1 << (flip >> 13)
		if _, err := k.Open(bad, aad); !errors.Is(err, ErrOpen) {
			t.Fatalf("bit %d of byte %d flipped: %v, want ErrOpen", flip>>13, i, err)
		}
		if _, err := k.Open(s[:len(s)-1], aad); err == nil {
			t.Fatal("opened with its last byte cut")
		}
	})
}
