package crypto

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
)

// The X25519 twin of an identity: the same secret scalar on the
// Montgomery form of the curve, so that two nodes that know each other's
// Ed25519 keys (from a signed HELLO or announce) agree on a shared secret
// without sending anything more. The LoRa link derives its per-pair MAC
// keys from it (transports/lora/link). Sealed messages do not use it: their
// key is derived independently (sealkey.go) and announced.
//
//	private: the Ed25519 scalar, SHA-512(seed)[0:32] (X25519 clamps it the
//	         way Ed25519 does)
//	public:  u = (1 + y) / (1 - y) mod 2^255 - 19, y from the Ed25519 key
//	         (the birational map of RFC 7748 §4.1)
//
// The scalar is shared between signing and DH, as in libsodium's
// crypto_sign_ed25519_pk_to_curve25519 and age's ssh-ed25519 recipients;
// it is safe for this use, and it is the only use.

// ErrBadEd25519Key is an Ed25519 public key that has no X25519 twin: not
// 32 bytes, or the neutral element (y = 1). A low-order key passes here;
// the DH with it fails (crypto/ecdh refuses the all-zero secret).
var ErrBadEd25519Key = errors.New("crypto: Ed25519 key without an X25519 twin")

var (
	p25519 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	bigOne = big.NewInt(1)
)

// X25519PublicFromEd25519 is the X25519 public key of the secret behind an
// Ed25519 public key (see above). It does not check that pub is on the
// curve: call it with keys whose signature was verified.
func X25519PublicFromEd25519(pub ed25519.PublicKey) (*ecdh.PublicKey, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadEd25519Key, len(pub), ed25519.PublicKeySize)
	}
	var be [32]byte
	for i := range be {
		be[i] = pub[31-i]
	}
	be[0] &= 0x7F // the sign of x
	y := new(big.Int).SetBytes(be[:])
	y.Mod(y, p25519)
	den := new(big.Int).Sub(bigOne, y)
	den.Mod(den, p25519)
	if den.Sign() == 0 {
		return nil, fmt.Errorf("%w: the neutral element", ErrBadEd25519Key)
	}
	u := new(big.Int).Add(bigOne, y)
	u.Mul(u, den.ModInverse(den, p25519))
	u.Mod(u, p25519)
	var le [32]byte
	u.FillBytes(le[:])
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		le[i], le[j] = le[j], le[i]
	}
	k, err := ecdh.X25519().NewPublicKey(le[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEd25519Key, err)
	}
	return k, nil
}

// X25519Private is the identity's X25519 twin (see above): its public key
// is X25519PublicFromEd25519(id.PublicKey()).
func (id *Identity) X25519Private() (*ecdh.PrivateKey, error) {
	if id == nil || len(id.priv) == 0 {
		return nil, fmt.Errorf("%w: no identity", ErrBadEd25519Key)
	}
	h := sha512.Sum512(id.priv.Seed())
	defer clear(h[:])
	k, err := ecdh.X25519().NewPrivateKey(h[:32])
	if err != nil {
		return nil, fmt.Errorf("crypto: X25519 twin: %w", err)
	}
	return k, nil
}
