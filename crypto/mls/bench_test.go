package mls

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// The MLS benchmarks run in a 3-member group with a 32-byte text; the raw
// rows are the primitives an application message costs at least: one
// Ed25519 signature and one AES-128-GCM seal (plus a second small seal for
// the sender data), and on receipt the matching open and verify.

var benchText = make([]byte, 32)

func BenchmarkEncrypt(b *testing.B) {
	tr := newTrio(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := tr.a.Encrypt(benchText); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHandleApplication(b *testing.B) {
	tr := newTrio(b)
	msgs := make([][]byte, b.N)
	for i := range msgs {
		m, err := tr.a.Encrypt(benchText)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = m
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := tr.b.Handle(msgs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func benchGCM(b *testing.B) (cipher.AEAD, []byte) {
	key := make([]byte, 16)
	rand.Read(key)
	blk, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		b.Fatal(err)
	}
	return aead, make([]byte, aead.NonceSize())
}

func BenchmarkRawAES128GCMSeal(b *testing.B) {
	aead, nonce := benchGCM(b)
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		dst = aead.Seal(dst[:0], nonce, benchText, nil)
	}
}

func BenchmarkRawAES128GCMOpen(b *testing.B) {
	aead, nonce := benchGCM(b)
	ct := aead.Seal(nil, nonce, benchText, nil)
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = aead.Open(dst[:0], nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawEd25519Sign(b *testing.B) {
	id := newID(b)
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Sign(id, benchText)
	}
}

func BenchmarkRawEd25519Verify(b *testing.B) {
	id := newID(b)
	pub := id.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(id, benchText)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, benchText, sig) {
			b.Fatal("verify")
		}
	}
}
