package pq

import (
	"bytes"
	"errors"
	"testing"

	"github.com/quicprochat/qpc/crypto"
)

// fuzzEncSeed is a fixed encapsulation seed: the corpus must not change
// from run to run.
func fuzzEncSeed(n byte) []byte {
	s := make([]byte, 64)
	for i := range s {
		s[i] = n + byte(i)
	}
	return s
}

// FuzzOpen: Open is what a peer reaches with the payload of every PQ
// sealed envelope to this node. Whatever the bytes and AAD it returns the
// plaintext or exactly one of ErrTooLarge (above MaxSealedSize, and only
// there), ErrMalformed (below Overhead, and only there) or ErrOpen, never a
// panic; what opens is Overhead bytes shorter than its input. And on every
// input taken as a plaintext: Seal then Open round-trips, the result is
// Overhead longer, and it refuses to open with another AAD, another key or
// a flipped bit at a fuzzer-chosen position.
func FuzzOpen(f *testing.F) {
	_, _, k, aad := testSetup(f)
	other := KeyFor(testIdentity(f, 3))
	sealed, err := sealWith(fuzzEncSeed(1), k.Public(), []byte("reserve slot 42"), aad)
	if err != nil {
		f.Fatal(err)
	}
	empty, err := sealWith(fuzzEncSeed(2), k.Public(), nil, aad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, aad, uint16(0))
	f.Add(empty, aad, uint16(1119))
	f.Add(sealed, []byte{}, uint16(1125))
	f.Add(sealed[:Overhead-1], aad, uint16(7))
	f.Add(make([]byte, Overhead), aad, uint16(3))
	f.Add([]byte{}, []byte{}, uint16(0))

	f.Fuzz(func(t *testing.T, b, fuzzAAD []byte, flip uint16) {
		pt, err := k.Open(b, fuzzAAD)
		switch {
		case len(b) > MaxSealedSize:
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes: err %v, want ErrTooLarge", len(b), err)
			}
		case len(b) < Overhead:
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%d bytes: err %v, want ErrMalformed", len(b), err)
			}
		case err == nil:
			if len(pt) != len(b)-Overhead {
				t.Fatalf("opened %d bytes from %d", len(pt), len(b))
			}
		case !errors.Is(err, ErrOpen):
			t.Fatalf("%d bytes: err %v, want ErrOpen", len(b), err)
		}

		// The input as a plaintext.
		if len(b) > MaxPlaintextSize {
			if _, err := Seal(k.Public(), b, fuzzAAD); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Seal of %d bytes: err %v, want ErrTooLarge", len(b), err)
			}
			return
		}
		s, err := sealWith(fuzzEncSeed(byte(flip)), k.Public(), b, fuzzAAD)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != len(b)+Overhead {
			t.Fatalf("sealed %d bytes into %d", len(b), len(s))
		}
		got, err := k.Open(s, fuzzAAD)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip: %v", err)
		}
		if _, err := k.Open(s, append(bytes.Clone(fuzzAAD), 0)); !errors.Is(err, ErrOpen) {
			t.Fatalf("other AAD: err %v, want ErrOpen", err)
		}
		if _, err := other.Open(s, fuzzAAD); !errors.Is(err, ErrOpen) {
			t.Fatalf("other key: err %v, want ErrOpen", err)
		}
		bad := bytes.Clone(s)
		bad[int(flip)%len(bad)] ^= 0x80
		if _, err := k.Open(bad, fuzzAAD); !errors.Is(err, ErrOpen) {
			t.Fatalf("bit flipped at %d: err %v, want ErrOpen", int(flip)%len(bad), err)
		}
	})
}

// FuzzVerifyRecord: VerifyRecord is what a peer reaches with every key
// record fetched from the mesh. Whatever the bytes, it returns a record or
// exactly one of its typed errors, never a panic; ErrMalformed exactly when
// the length is not RecordSize; and a record it accepts is byte for byte
// the input, owned by a known identity, and re-signing its fields with that
// identity gives the input back (Ed25519 is deterministic).
func FuzzVerifyRecord(f *testing.F) {
	ids := []*crypto.Identity{testIdentity(f, 1), testIdentity(f, 2)}
	dir := directory(ids...)
	good := SignRecord(ids[0])
	f.Add(good)
	f.Add(SignRecord(ids[1]))
	f.Add(SignRecord(testIdentity(f, 3))) // unknown owner
	f.Add(good[:RecordSize-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := VerifyRecord(b, dir)
		if len(b) != RecordSize {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%d bytes: err %v, want ErrMalformed", len(b), err)
			}
			return
		}
		if err != nil {
			for _, want := range []error{ErrUnknownOwner, ErrOwnerMismatch, ErrBadSignature, ErrBadPublicKey} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("untyped error: %v", err)
		}
		var owner *crypto.Identity
		for _, id := range ids {
			if id.Address() == r.Owner {
				owner = id
			}
		}
		if owner == nil {
			t.Fatalf("accepted a record of unknown owner %s", r.Owner)
		}
		if !bytes.Equal(signRecord(owner, r.Public), b) {
			t.Fatal("accepted record is not the owner's signature over its fields")
		}
	})
}
