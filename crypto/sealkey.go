package crypto

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
)

// SealingKeySize is the length of an X25519 sealing public key in bytes.
const SealingKeySize = 32

// The sealing key pair is derived from the identity, not stored: the node
// keeps one secret (the Ed25519 seed in its key file) and gets the same
// X25519 key pair back on every start.
//
//	ikm  = HKDF-SHA256(secret = Ed25519 seed, salt = sealingKeySalt,
//	                   info = sealingKeyInfo, length = 32)
//	skR, pkR = DHKEM(X25519, HKDF-SHA256).DeriveKeyPair(ikm)   (RFC 9180 §7.1.3)
//
// The labels make the derived key independent of the signing key (no
// scalar is shared between Ed25519 and X25519, unlike the birational map
// between the curves), so peers cannot compute it from the Ed25519 public
// key: it travels in the signed announce next to it. Changing either label
// changes every node's sealing key; they are part of the protocol.
const (
	sealingKeySalt = "qpc/v1"
	sealingKeyInfo = "qpc/v1 x25519 sealing key from ed25519 seed"
)

// ErrBadSealingKey is a sealing public key that is not 32 bytes or is a
// low-order X25519 point (a shared secret with it would be all zeros).
var ErrBadSealingKey = errors.New("crypto: bad sealing key")

// SealingKey is a node's X25519 key pair for sealed 1:1 payloads (see
// Seal). It owns the private scalar; it is immutable after SealingKeyFor
// and safe for concurrent use.
type SealingKey struct {
	priv kem.PrivateKey
	pub  [SealingKeySize]byte
}

// SealingKeyFor derives the identity's sealing key pair (see the derivation
// above). It is deterministic: the same identity always gives the same key.
func SealingKeyFor(id *Identity) (*SealingKey, error) {
	if id == nil || len(id.priv) == 0 {
		return nil, fmt.Errorf("%w: no identity", ErrBadSealingKey)
	}
	return sealingKeyFromSeed(id.priv.Seed())
}

func sealingKeyFromSeed(seed []byte) (*SealingKey, error) {
	ikm, err := hkdf.Key(sha256.New, seed, []byte(sealingKeySalt), sealingKeyInfo, SealingKeySize)
	if err != nil {
		return nil, fmt.Errorf("crypto: derive sealing key: %w", err)
	}
	pub, priv := sealSuiteKEM.Scheme().DeriveKeyPair(ikm)
	// circl's X25519 private key fills in its public half lazily, and Open
	// (decapsulation) asks for it. DeriveKeyPair fills it today; asking once
	// more here keeps concurrent Opens on a shared key race-free even if
	// that changes.
	priv.Public()
	raw, err := pub.MarshalBinary()
	if err != nil || len(raw) != SealingKeySize {
		return nil, fmt.Errorf("crypto: derive sealing key: public key: %v", err)
	}
	k := &SealingKey{priv: priv}
	copy(k.pub[:], raw)
	return k, nil
}

// Public is the 32-byte X25519 public key that peers seal to; it is
// announced, signed, next to the Ed25519 key. The slice is a copy.
func (k *SealingKey) Public() []byte {
	out := make([]byte, SealingKeySize)
	copy(out, k.pub[:])
	return out
}

// ValidateSealingPublic checks an announced sealing key before it is
// stored: 32 bytes and not a low-order point. Seal checks the same, so
// this is for refusing a bad announce early with a clear error.
func ValidateSealingPublic(pub []byte) error {
	if len(pub) != SealingKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadSealingKey, len(pub), SealingKeySize)
	}
	pk, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSealingKey, err)
	}
	// A low-order point gives the all-zero shared secret for every scalar;
	// crypto/ecdh reports that as an error.
	if _, err := lowOrderProbe.ECDH(pk); err != nil {
		return fmt.Errorf("%w: low-order point", ErrBadSealingKey)
	}
	return nil
}

// lowOrderProbe is a fixed, public scalar used only to detect low-order
// points; nothing secret depends on it.
var lowOrderProbe = func() *ecdh.PrivateKey {
	var s [32]byte
	for i := range s {
		s[i] = byte(i + 1)
	}
	k, err := ecdh.X25519().NewPrivateKey(s[:])
	if err != nil {
		panic(err)
	}
	return k
}()

// sealSuiteKEM is the KEM of the sealing suite, kept here with the key.
const sealSuiteKEM = hpke.KEM_X25519_HKDF_SHA256
