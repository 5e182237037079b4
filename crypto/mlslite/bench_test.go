package mlslite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"testing"
)

// The benchmarks put MLS-Lite next to its primitives: a 32-byte text
// through Seal and Open, unsigned and signed, and AES-128-GCM and Ed25519
// alone on the same sizes, so the framing's share is visible.

func BenchmarkSeal(b *testing.B) {
	e := mustEpoch(b, "epoch 7 secret", 7)
	for _, c := range []struct {
		name   string
		signer ed25519.PrivateKey
	}{{"unsigned", nil}, {"signed", alice.priv}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var n uint32
			for b.Loop() {
				n++
				if _, err := e.Seal(alice.addr, bob.addr, 8, n, text32, c.signer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	e := mustEpoch(b, "epoch 7 secret", 7)
	for _, c := range []struct {
		name   string
		signer ed25519.PrivateKey
	}{{"unsigned", nil}, {"signed", alice.priv}} {
		b.Run(c.name, func(b *testing.B) {
			// Frames with fresh counters, so the window accepts each.
			frames := make([][]byte, 0, 1024)
			for i := range 1 << 16 {
				f, err := e.Seal(alice.addr, bob.addr, 8, uint32(i), text32, c.signer)
				if err != nil {
					b.Fatal(err)
				}
				frames = append(frames, f)
				if i >= b.N {
					break
				}
			}
			w := NewWindows()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(frames) {
					b.StopTimer()
					w, i = NewWindows(), 0
					b.StartTimer()
				}
				if _, err := e.Open(frames[i], bob.addr, allPubs, c.signer != nil, w); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func benchGCM(b *testing.B) (cipher.AEAD, []byte, []byte) {
	block, _ := aes.NewCipher(make([]byte, 16))
	aead, _ := cipher.NewGCM(block)
	return aead, make([]byte, 12), make([]byte, 60) // AAD about the size of MLS-Lite's
}

func BenchmarkAESGCM128Seal32(b *testing.B) {
	aead, nonce, aad := benchGCM(b)
	b.ReportAllocs()
	for b.Loop() {
		aead.Seal(nil, nonce, text32, aad)
	}
}

func BenchmarkAESGCM128Open32(b *testing.B) {
	aead, nonce, aad := benchGCM(b)
	ct := aead.Seal(nil, nonce, text32, aad)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := aead.Open(nil, nonce, ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// Ed25519 over a to-be-signed string the size of a signed frame's (about 110 bytes).
func BenchmarkEd25519Sign(b *testing.B) {
	msg := make([]byte, 110)
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Sign(alice.priv, msg)
	}
}

func BenchmarkEd25519Verify(b *testing.B) {
	msg := make([]byte, 110)
	sig := ed25519.Sign(alice.priv, msg)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(alice.pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}
