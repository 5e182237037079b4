package quic

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
)

// FuzzPeerKey: peerKey parses the certificate chain a peer presents in the
// TLS handshake (both roles: VerifyPeerCertificate), before anything else
// of the peer is trusted. Whatever the chain, it returns an Ed25519 key or
// an error matching transports.ErrHandshake, never a panic. A key comes
// only from a chain of exactly one certificate that x509 parses, it is that
// certificate's key, it is 32 bytes, and it is never our own. (The key
// shares memory with the certificate's DER, as x509 returns it; crypto/tls
// keeps that buffer unchanged for the connection's life, so that is fine.)
//
// Inputs: the first and second certificate and n, whose low two bits
// give the chain length (0, 1, 2: [a], [a, b]; 3: [a, a, b]) and whose bit 2
// makes "our own" key the seed identity's. Seeds are built here (a real
// certificate from certificate(), an ECDSA one, truncated and extended
// copies) and kept under testdata/fuzz/FuzzPeerKey (a DER length prefix
// claiming 4 GiB, a fixed Ed25519 certificate).
func FuzzPeerKey(f *testing.F) {
	id, err := crypto.IdentityFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	if err != nil {
		f.Fatal(err)
	}
	other, err := crypto.IdentityFromSeed(bytes.Repeat([]byte{4}, ed25519.SeedSize))
	if err != nil {
		f.Fatal(err)
	}
	cert, err := certificate(id)
	if err != nil {
		f.Fatal(err)
	}
	good := cert.Certificate[0]
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)}
	ec, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte{}, uint8(1))
	f.Add(good, []byte{}, uint8(1|4)) // our own
	f.Add(good, good, uint8(2))
	f.Add(good, good, uint8(0))
	f.Add(good, good, uint8(3))
	f.Add(ec, []byte{}, uint8(1))
	f.Add(good[:len(good)/2], []byte{}, uint8(1))
	f.Add(append(bytes.Clone(good), 0), []byte{}, uint8(1))
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff}, []byte{}, uint8(1))
	f.Add([]byte("not a certificate"), []byte{}, uint8(1))

	f.Fuzz(func(t *testing.T, a, b []byte, n uint8) {
		var certs [][]byte
		switch n & 3 {
		case 1:
			certs = [][]byte{a}
		case 2:
			certs = [][]byte{a, b}
		case 3:
			certs = [][]byte{a, a, b}
		}
		own := other.PublicKey()
		if n&4 != 0 {
			own = id.PublicKey()
		}
		key, err := peerKey(certs, own)
		if err != nil {
			if !errors.Is(err, transports.ErrHandshake) {
				t.Fatalf("peerKey: %v does not match ErrHandshake", err)
			}
			if key != nil {
				t.Fatalf("peerKey returned a key with error %v", err)
			}
			return
		}
		if len(certs) != 1 {
			t.Fatalf("a key from a chain of %d certificates", len(certs))
		}
		if len(key) != ed25519.PublicKeySize {
			t.Fatalf("a key of %d bytes", len(key))
		}
		if key.Equal(own) {
			t.Fatal("our own key accepted as the peer's")
		}
		parsed, err := x509.ParseCertificate(a)
		if err != nil {
			t.Fatalf("accepted a certificate x509 does not parse: %v", err)
		}
		if pk, ok := parsed.PublicKey.(ed25519.PublicKey); !ok || !pk.Equal(key) {
			t.Fatalf("the key is not the certificate's: %x vs %T %x", key, parsed.PublicKey, parsed.PublicKey)
		}
		if !bytes.Equal(parsed.Raw, a) {
			t.Fatal("accepted a certificate with bytes after it")
		}
	})
}
