package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/hpke"
)

// Sealed 1:1 payloads are HPKE base mode (RFC 9180) with the suite
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305. Every Seal
// encapsulates to the recipient with a fresh ephemeral X25519 key, so a
// leaked long-term sealing key does not open a message without also
// holding that message's ephemeral secret, which is never kept.
//
// Wire layout (what Seal returns and Open takes):
//
//	enc (32 bytes, the ephemeral public key) || ciphertext || tag (16 bytes)
//
// Context binding:
//   - HPKE info is the fixed label sealInfo: a sealed qpc payload can never
//     be mistaken for another protocol's HPKE ciphertext to the same key.
//   - AAD is supplied by the caller; for envelopes it is SealAAD(src, dst),
//     so a payload lifted into an envelope with another source or
//     destination fails to open.
//
// Base mode does not authenticate the sender: anyone can seal to a public
// key. Who sent a payload is known from the envelope's signature, which the
// AAD ties the payload to.
const (
	// SealEncSize is the encapsulated ephemeral key at the front.
	SealEncSize = 32
	// SealTagSize is the ChaCha20-Poly1305 tag at the end.
	SealTagSize = 16
	// SealOverhead is how much longer a sealed payload is than its
	// plaintext: exactly 48 bytes.
	SealOverhead = SealEncSize + SealTagSize

	sealInfo = "qpc/v1 sealed 1:1 payload"
)

// Errors of sealing and opening.
var (
	// ErrSealedTooShort: fewer than SealOverhead bytes, so not a sealed
	// payload at all.
	ErrSealedTooShort = errors.New("crypto: sealed payload too short")
	// ErrOpen: the payload does not open with this key and AAD (wrong
	// recipient, moved to another envelope, or tampered with). Deliberately
	// says no more than that.
	ErrOpen = errors.New("crypto: sealed payload does not open")
)

var sealSuite = hpke.NewSuite(sealSuiteKEM, hpke.KDF_HKDF_SHA256, hpke.AEAD_ChaCha20Poly1305)

// SealAAD is the associated data that binds a sealed payload to its
// envelope: the 16-byte source address followed by the 16-byte destination
// address.
func SealAAD(src, dst Address) []byte {
	aad := make([]byte, 0, 2*AddressSize)
	aad = append(aad, src[:]...)
	return append(aad, dst[:]...)
}

// Seal encrypts plaintext to the holder of recipientPub (a 32-byte sealing
// public key) with aad as associated data. The result is
// len(plaintext)+SealOverhead bytes. It fails with ErrBadSealingKey for a
// malformed or low-order public key.
func Seal(recipientPub, plaintext, aad []byte) ([]byte, error) {
	return sealWith(rand.Reader, recipientPub, []byte(sealInfo), plaintext, aad)
}

// sealWith is Seal with its randomness and HPKE info as parameters, for
// the RFC 9180 test vectors.
func sealWith(rnd io.Reader, recipientPub, info, plaintext, aad []byte) ([]byte, error) {
	if len(recipientPub) != SealingKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadSealingKey, len(recipientPub), SealingKeySize)
	}
	pk, err := sealSuiteKEM.Scheme().UnmarshalBinaryPublicKey(recipientPub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSealingKey, err)
	}
	sender, err := sealSuite.NewSender(pk, info)
	if err != nil {
		return nil, fmt.Errorf("crypto: seal: %w", err)
	}
	enc, sealer, err := sender.Setup(rnd)
	if errors.Is(err, hpke.ErrInvalidKEMSharedSecret) {
		return nil, fmt.Errorf("%w: low-order point", ErrBadSealingKey)
	}
	if err != nil {
		return nil, fmt.Errorf("crypto: seal: %w", err)
	}
	ct, err := sealer.Seal(plaintext, aad)
	if err != nil {
		return nil, fmt.Errorf("crypto: seal: %w", err)
	}
	if len(enc) != SealEncSize {
		return nil, fmt.Errorf("crypto: seal: encapsulated key is %d bytes, want %d", len(enc), SealEncSize)
	}
	out := make([]byte, 0, len(enc)+len(ct))
	out = append(out, enc...)
	return append(out, ct...), nil
}

// Open decrypts what Seal produced for this key with the same aad. It
// returns ErrSealedTooShort for input shorter than SealOverhead and ErrOpen
// for anything that does not authenticate.
func (k *SealingKey) Open(sealed, aad []byte) ([]byte, error) {
	return k.openWith([]byte(sealInfo), sealed, aad)
}

func (k *SealingKey) openWith(info, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < SealOverhead {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrSealedTooShort, len(sealed), SealOverhead)
	}
	recv, err := sealSuite.NewReceiver(k.priv, info)
	if err != nil {
		return nil, fmt.Errorf("crypto: open: %w", err)
	}
	opener, err := recv.Setup(sealed[:SealEncSize])
	if err != nil {
		// A low-order ephemeral key: not something Seal produces.
		return nil, ErrOpen
	}
	pt, err := opener.Open(sealed[SealEncSize:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
