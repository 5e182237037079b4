package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
)

// Sender-authenticated sealing, for the compact sealed envelope
// (messages.Compact) that constrained links (LoRa) carry instead of a
// signed envelope: HPKE auth mode (RFC 9180 §5.1.3) with the same suite as
// Seal, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305. The
// sender's static sealing key (the X25519 key in its signed announce)
// takes part in the key agreement next to a fresh ephemeral key:
//
//	shared secret = DHKEM.AuthEncap: DH(skE, pkR) || DH(skS, pkR)
//
// so only a holder of skS (or of the recipient's skR, see below) can make
// a ciphertext that opens with pkS. It replaces the 64-byte Ed25519
// signature of the full envelope: same 48 bytes of overhead as Seal,
// nothing more.
//
// Wire layout, as Seal's: enc (32) || ciphertext || tag (16).
//
// What auth mode gives and does not give, compared with a signed envelope:
//   - The recipient knows the sender: the AEAD opens only with the key
//     pair the sender's announce binds to its Ed25519 identity and so to
//     its address. The header (AAD) is authenticated with it.
//   - No one else can check it. Verifying needs the recipient's private
//     key, so relays forward compact envelopes unverified (see
//     docs/wire-format.md for how relays are protected instead).
//   - Deniable, no non-repudiation: the recipient could have made the same
//     ciphertext itself (it knows DH(skR, pkS)), so it cannot prove to a
//     third party who sent it. Nothing in qpc relies on proving that.
//   - Key-compromise impersonation: whoever steals a node's sealing
//     private key can forge compact envelopes to that node from any
//     sender (RFC 9180 §9.1.1). A signed envelope cannot be forged that
//     way; a stolen sealing key already reads all the node's mail.
//   - Confidentiality is as Seal's: the ephemeral key is fresh per
//     message.
//
// The HPKE info label differs from Seal's, so a base-mode payload cannot
// be passed off as a compact one or the reverse (the modes differ in the
// key schedule as well).
const sealAuthInfo = "qpc/v1 compact sealed envelope"

// SealAuth encrypts plaintext to recipientPub (a 32-byte sealing public
// key) in HPKE auth mode, authenticated by this node's sealing key, with
// aad as associated data. The result is len(plaintext)+SealOverhead bytes.
// It fails with ErrBadSealingKey for a malformed or low-order recipient
// key.
func (k *SealingKey) SealAuth(recipientPub, plaintext, aad []byte) ([]byte, error) {
	return k.sealAuthWith(rand.Reader, recipientPub, []byte(sealAuthInfo), plaintext, aad)
}

// sealAuthWith is SealAuth with its randomness and info as parameters
// (RFC 9180 test vectors, deterministic fuzz seeds).
func (k *SealingKey) sealAuthWith(rnd io.Reader, recipientPub, info, plaintext, aad []byte) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: no sender key", ErrBadSealingKey)
	}
	pk, err := parseSealingPublic(recipientPub)
	if err != nil {
		return nil, err
	}
	sender, err := sealSuite.NewSender(pk, info)
	if err != nil {
		return nil, fmt.Errorf("crypto: seal auth: %w", err)
	}
	enc, sealer, err := sender.SetupAuth(rnd, k.priv)
	if errors.Is(err, hpke.ErrInvalidKEMSharedSecret) {
		return nil, fmt.Errorf("%w: low-order point", ErrBadSealingKey)
	}
	if err != nil {
		return nil, fmt.Errorf("crypto: seal auth: %w", err)
	}
	if len(enc) != SealEncSize {
		return nil, fmt.Errorf("crypto: seal auth: encapsulated key is %d bytes, want %d", len(enc), SealEncSize)
	}
	ct, err := sealer.Seal(plaintext, aad)
	if err != nil {
		return nil, fmt.Errorf("crypto: seal auth: %w", err)
	}
	out := make([]byte, 0, len(enc)+len(ct))
	out = append(out, enc...)
	return append(out, ct...), nil
}

// OpenAuth decrypts what SealAuth produced for this key with the same aad
// and checks that senderPub (the sealing key from the claimed sender's
// announce) sealed it. It returns ErrSealedTooShort for input shorter than
// SealOverhead, ErrBadSealingKey for a senderPub that is not a 32-byte
// X25519 key, and ErrOpen for everything that does not authenticate:
// another sender, another recipient, another aad, a tampered byte, a
// base-mode payload. It never panics.
func (k *SealingKey) OpenAuth(sealed, aad, senderPub []byte) ([]byte, error) {
	return k.openAuthWith([]byte(sealAuthInfo), sealed, aad, senderPub)
}

func (k *SealingKey) openAuthWith(info, sealed, aad, senderPub []byte) ([]byte, error) {
	if len(sealed) < SealOverhead {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrSealedTooShort, len(sealed), SealOverhead)
	}
	if len(senderPub) != SealingKeySize {
		return nil, fmt.Errorf("%w: sender key of %d bytes, want %d", ErrBadSealingKey, len(senderPub), SealingKeySize)
	}
	pkS, err := sealSuiteKEM.Scheme().UnmarshalBinaryPublicKey(senderPub)
	if err != nil {
		return nil, fmt.Errorf("%w: sender key: %v", ErrBadSealingKey, err)
	}
	recv, err := sealSuite.NewReceiver(k.priv, info)
	if err != nil {
		return nil, fmt.Errorf("crypto: open auth: %w", err)
	}
	opener, err := recv.SetupAuth(sealed[:SealEncSize], pkS)
	if err != nil {
		// A low-order ephemeral or sender key: nothing SealAuth makes.
		return nil, ErrOpen
	}
	pt, err := opener.Open(sealed[SealEncSize:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// parseSealingPublic checks and parses a recipient's sealing public key.
func parseSealingPublic(pub []byte) (kem.PublicKey, error) {
	if len(pub) != SealingKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadSealingKey, len(pub), SealingKeySize)
	}
	pk, err := sealSuiteKEM.Scheme().UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSealingKey, err)
	}
	return pk, nil
}
