package pq

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/kem/xwing"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/quicprochat/qpc/crypto"
)

// Wire layout of a sealed payload (what Seal returns and Open takes):
//
//	X-Wing ciphertext (1120 bytes) || ChaCha20-Poly1305 ciphertext || tag (16 bytes)
//
// The AEAD key is
//
//	key = HKDF-SHA256(secret = X-Wing shared key, salt = nil,
//	                  info = sealInfo || X-Wing ciphertext, length = 32)
//
// and the nonce is fixed at twelve zero bytes. That is safe because every
// Seal encapsulates afresh: each message has its own shared key and so its
// own AEAD key, and each key encrypts exactly one message, so no (key,
// nonce) pair ever repeats. (Open does not reuse a key either: it derives
// it from the message it opens.)
//
// The X-Wing ciphertext is in the HKDF info so that the AEAD key is bound to
// the exact ciphertext on the wire whatever the KEM's own binding
// properties: X-Wing's combiner hashes the X25519 part and ML-KEM's
// implicit rejection covers its part, and the info makes that explicit for
// one SHA-256 pass over 1120 bytes, nothing next to the KEM's cost.
const (
	// PublicKeySize is an X-Wing public key (ML-KEM-768's 1184 bytes and
	// X25519's 32).
	PublicKeySize = xwing.PublicKeySize
	// KEMCiphertextSize is the X-Wing ciphertext at the front of a sealed
	// payload.
	KEMCiphertextSize = xwing.CiphertextSize
	// TagSize is the ChaCha20-Poly1305 tag at the end.
	TagSize = chacha20poly1305.Overhead
	// Overhead is how much longer a sealed payload is than its plaintext:
	// exactly 1136 bytes.
	Overhead = KEMCiphertextSize + TagSize
	// MaxSealedSize is the largest sealed payload Seal makes and Open
	// looks at (64 KiB).
	MaxSealedSize = 64 << 10
	// MaxPlaintextSize is the largest plaintext Seal takes.
	MaxPlaintextSize = MaxSealedSize - Overhead

	sealInfo = "qpc/pq-seal v1"
	keyInfo  = "qpc/x-wing v1"
)

// Errors of sealing and opening. Open returns exactly one of ErrTooLarge,
// ErrMalformed and ErrOpen for anything that does not open.
var (
	// ErrTooLarge: a sealed payload above MaxSealedSize, or a plaintext
	// that would make one. Checked before anything else.
	ErrTooLarge = errors.New("pq: sealed payload too large")
	// ErrMalformed: not shaped like the input (a sealed payload shorter
	// than Overhead, a key record of the wrong length).
	ErrMalformed = errors.New("pq: malformed input")
	// ErrOpen: the payload does not open with this key and AAD (wrong
	// recipient, moved to another envelope, or tampered with).
	// Deliberately says no more than that.
	ErrOpen = errors.New("pq: sealed payload does not open")
	// ErrBadPublicKey: an X-Wing public key that is not 1216 bytes or
	// whose ML-KEM part fails the encapsulation key check.
	ErrBadPublicKey = errors.New("pq: bad X-Wing public key")
)

// PrivateKey is a node's X-Wing key pair. It is immutable after KeyFor and
// safe for concurrent use.
type PrivateKey struct {
	sk  *xwing.PrivateKey
	pub [PublicKeySize]byte
}

// KeyFor derives the identity's X-Wing key pair:
//
//	seed = HKDF-SHA256(secret = Ed25519 seed, salt = nil,
//	                   info = "qpc/x-wing v1", length = 32)
//	sk, pk = X-Wing DeriveKeyPair(seed)
//
// It is deterministic: the same identity always gives the same key, so
// nothing new is stored. The label makes it independent of the Ed25519 key
// and of the classic sealing key (crypto.SealingKeyFor, another label over
// the same seed); changing it changes every node's key, it is part of the
// protocol. The unpacked key is kept, so Open does not redo ML-KEM key
// generation per message. KeyFor panics on a nil identity.
func KeyFor(id *crypto.Identity) *PrivateKey {
	if id == nil {
		panic("pq: KeyFor: nil identity")
	}
	return keyFromSeed(id.PrivateKey().Seed())
}

func keyFromSeed(edSeed []byte) *PrivateKey {
	seed, err := hkdf.Key(sha256.New, edSeed, nil, keyInfo, xwing.SeedSize)
	if err != nil {
		// HKDF fails only for lengths above 255*32 bytes.
		panic("pq: derive key: " + err.Error())
	}
	sk, pk := xwing.DeriveKeyPair(seed)
	k := &PrivateKey{sk: sk}
	pk.Pack(k.pub[:])
	return k
}

// Public is the 1216-byte X-Wing public key peers seal to; it travels in a
// signed Record. The slice is a copy.
func (k *PrivateKey) Public() []byte {
	out := make([]byte, PublicKeySize)
	copy(out, k.pub[:])
	return out
}

// Seal encrypts plaintext to the holder of pub (a 1216-byte X-Wing public
// key) with aad as associated data; for envelopes aad is
// crypto.SealAAD(src, dst), as for crypto.Seal. The result is
// len(plaintext)+Overhead bytes. It fails with ErrTooLarge for a plaintext
// above MaxPlaintextSize and ErrBadPublicKey for a malformed key.
func Seal(pub, plaintext, aad []byte) ([]byte, error) {
	return sealWith(nil, pub, plaintext, aad)
}

// sealWith is Seal with the encapsulation seed (64 bytes) as a parameter,
// for deterministic tests; nil takes it from crypto/rand.
func sealWith(encSeed, pub, plaintext, aad []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("%w: %d-byte plaintext, at most %d", ErrTooLarge, len(plaintext), MaxPlaintextSize)
	}
	if len(pub) != PublicKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadPublicKey, len(pub), PublicKeySize)
	}
	if encSeed != nil && len(encSeed) != xwing.EncapsulationSeedSize {
		return nil, fmt.Errorf("pq: seal: encapsulation seed is %d bytes, want %d", len(encSeed), xwing.EncapsulationSeedSize)
	}
	var pk xwing.PublicKey
	if err := pk.Unpack(pub); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPublicKey, err)
	}
	out := make([]byte, KEMCiphertextSize, len(plaintext)+Overhead)
	var ss [xwing.SharedKeySize]byte
	pk.EncapsulateTo(out, ss[:], encSeed)
	aead, err := aeadFor(ss[:], out)
	if err != nil {
		return nil, fmt.Errorf("pq: seal: %w", err)
	}
	var nonce [chacha20poly1305.NonceSize]byte
	return aead.Seal(out, nonce[:], plaintext, aad), nil
}

// Open decrypts what Seal produced for this key with the same aad. Sizes
// are checked first: ErrTooLarge above MaxSealedSize, ErrMalformed below
// Overhead; anything else that does not authenticate is ErrOpen.
func (k *PrivateKey) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) > MaxSealedSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(sealed), MaxSealedSize)
	}
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: sealed payload of %d bytes, need at least %d", ErrMalformed, len(sealed), Overhead)
	}
	ct := sealed[:KEMCiphertextSize]
	var ss [xwing.SharedKeySize]byte
	// Any 1120 bytes decapsulate: a tampered ML-KEM part gives the
	// implicit-rejection key, a tampered X25519 part another shared
	// secret; either way the AEAD refuses.
	k.sk.DecapsulateTo(ss[:], ct)
	aead, err := aeadFor(ss[:], ct)
	if err != nil {
		return nil, fmt.Errorf("pq: open: %w", err)
	}
	var nonce [chacha20poly1305.NonceSize]byte
	pt, err := aead.Open(nil, nonce[:], sealed[KEMCiphertextSize:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// aeadFor derives the one-message AEAD from the X-Wing shared key and
// ciphertext (see the layout above).
func aeadFor(shared, kemCT []byte) (cipher.AEAD, error) {
	info := make([]byte, 0, len(sealInfo)+len(kemCT))
	info = append(info, sealInfo...)
	info = append(info, kemCT...)
	key, err := hkdf.Key(sha256.New, shared, nil, string(info), chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.New(key)
}
