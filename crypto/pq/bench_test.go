package pq

import (
	"bytes"
	"testing"

	"github.com/cloudflare/circl/kem/xwing"

	"github.com/quicprochat/qpc/crypto"
)

// The PQ seal against its parts and the classic seal, all with a 32-byte
// text and the AAD of an envelope:
//
//	go test -run '^$' -bench . -benchtime 100x ./crypto/pq/
//
// XWingEncapsulate/XWingDecapsulate are the raw KEM (what Seal and Open
// add to them is HKDF and ChaCha20-Poly1305); XWingDecapsulatePacked is
// circl's packed API, which re-derives the key pair on every call and is
// why PrivateKey keeps the unpacked key. ClassicSeal/ClassicOpen are
// crypto.Seal and (*crypto.SealingKey).Open (HPKE, X25519).

var benchText = bytes.Repeat([]byte{'x'}, 32)

func BenchmarkSeal(b *testing.B) {
	_, _, k, aad := testSetup(b)
	pub := k.Public()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(pub, benchText, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	_, _, k, aad := testSetup(b)
	sealed, err := Seal(k.Public(), benchText, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkXWingEncapsulate(b *testing.B) {
	_, pub := xwing.DeriveKeyPairPacked(bytes.Repeat([]byte{2}, xwing.SeedSize))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := xwing.Encapsulate(pub, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkXWingDecapsulate(b *testing.B) {
	sk, pk := xwing.DeriveKeyPair(bytes.Repeat([]byte{2}, xwing.SeedSize))
	var pub [xwing.PublicKeySize]byte
	pk.Pack(pub[:])
	_, ct, err := xwing.Encapsulate(pub[:], nil)
	if err != nil {
		b.Fatal(err)
	}
	ss := make([]byte, xwing.SharedKeySize)
	b.ReportAllocs()
	for b.Loop() {
		sk.DecapsulateTo(ss, ct)
	}
}

func BenchmarkXWingDecapsulatePacked(b *testing.B) {
	priv, pub := xwing.DeriveKeyPairPacked(bytes.Repeat([]byte{2}, xwing.SeedSize))
	_, ct, err := xwing.Encapsulate(pub, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		xwing.Decapsulate(ct, priv)
	}
}

func BenchmarkClassicSeal(b *testing.B) {
	_, dst, _, aad := testSetup(b)
	k, err := crypto.SealingKeyFor(dst)
	if err != nil {
		b.Fatal(err)
	}
	pub := k.Public()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := crypto.Seal(pub, benchText, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClassicOpen(b *testing.B) {
	_, dst, _, aad := testSetup(b)
	k, err := crypto.SealingKeyFor(dst)
	if err != nil {
		b.Fatal(err)
	}
	sealed, err := crypto.Seal(k.Public(), benchText, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeyFor(b *testing.B) {
	id := testIdentity(b, 2)
	for b.Loop() {
		KeyFor(id)
	}
}

func BenchmarkVerifyRecord(b *testing.B) {
	id := testIdentity(b, 2)
	rec := SignRecord(id)
	dir := directory(id)
	for b.Loop() {
		if _, err := VerifyRecord(rec, dir); err != nil {
			b.Fatal(err)
		}
	}
}
