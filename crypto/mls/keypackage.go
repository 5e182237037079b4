package mls

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/thomas-vilte/mls-go/keypackages"
)

// OwnKeyPackage is one of this node's KeyPackages together with its private
// HPKE keys (init key and leaf encryption key). The signature key is the
// node's identity key and is not part of it.
type OwnKeyPackage struct {
	kp         *keypackages.KeyPackage
	raw        []byte
	initPriv   *ecdh.PrivateKey
	encPriv    *ecdh.PrivateKey
	lastResort bool
	notAfter   time.Time
}

// NewKeyPackage makes a KeyPackage for the identity id, valid from the Unix
// epoch (mesh clocks drift; not_before is not used) until notAfter.
// lastResort is kept locally only (it is not an extension on the wire): it
// tells the caller not to delete the KeyPackage after a Join used it.
func NewKeyPackage(id ed25519.PrivateKey, notAfter time.Time, lastResort bool) (*OwnKeyPackage, error) {
	cwk, err := credentialFor(id)
	if err != nil {
		return nil, err
	}
	na := notAfter.Unix()
	if na <= 0 {
		return nil, fmt.Errorf("crypto/mls: not_after %v is before 1970", notAfter)
	}
	kp, priv, err := keypackages.Generate(cwk, Suite, keypackages.WithLifetime(0, uint64(na)))
	if err != nil {
		return nil, fmt.Errorf("crypto/mls: generate key package: %w", err)
	}
	raw := kp.Marshal()
	// Reparse so kp.Raw is set and the bytes we hand out are the ones the
	// library hashes.
	parsed, err := keypackages.UnmarshalKeyPackage(raw)
	if err != nil {
		return nil, fmt.Errorf("crypto/mls: reparse own key package: %w", err)
	}
	return &OwnKeyPackage{
		kp: parsed, raw: raw, initPriv: priv.InitKey, encPriv: priv.EncryptionKey,
		lastResort: lastResort, notAfter: time.Unix(na, 0).UTC(),
	}, nil
}

// Bytes is the KeyPackage as it goes on the wire (a bare KeyPackage, not an
// MLSMessage): what ParseKeyPackage takes.
func (k *OwnKeyPackage) Bytes() []byte { return append([]byte(nil), k.raw...) }

// Ref is the KeyPackageRef (RFC 9420 §5.2) of the KeyPackage.
func (k *OwnKeyPackage) Ref() [32]byte { return keyPackageRef(k.raw) }

// Hash16 is the first 16 bytes of Ref: what our announce carries.
func (k *OwnKeyPackage) Hash16() [16]byte { return hash16(k.Ref()) }

// LastResort reports whether the KeyPackage may be used by more than one Join.
func (k *OwnKeyPackage) LastResort() bool { return k.lastResort }

// NotAfter is the end of the KeyPackage's lifetime.
func (k *OwnKeyPackage) NotAfter() time.Time { return k.notAfter }

func hash16(ref [32]byte) [16]byte {
	var h [16]byte
	copy(h[:], ref[:16])
	return h
}

const ownKPVersion = 1

// MarshalBinary encodes the KeyPackage with its private keys:
// version(1) flags(1) len(2) kp | init_priv(32) | enc_priv(32).
// The caller stores it encrypted.
func (k *OwnKeyPackage) MarshalBinary() ([]byte, error) {
	if len(k.raw) > MaxKeyPackageSize {
		return nil, errorf(ErrTooLarge, "key package %d bytes", len(k.raw))
	}
	b := make([]byte, 0, 4+len(k.raw)+64)
	var flags byte
	if k.lastResort {
		flags |= 1
	}
	b = append(b, ownKPVersion, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(len(k.raw)))
	b = append(b, k.raw...)
	b = append(b, k.initPriv.Bytes()...)
	b = append(b, k.encPriv.Bytes()...)
	return b, nil
}

// UnmarshalOwnKeyPackage decodes what MarshalBinary wrote and checks that the
// private keys match the KeyPackage's public keys.
func UnmarshalOwnKeyPackage(b []byte) (*OwnKeyPackage, error) {
	if len(b) > MaxStateSize {
		return nil, errorf(ErrTooLarge, "%d bytes", len(b))
	}
	if len(b) < 4 || b[0] != ownKPVersion || b[1]&^1 != 0 {
		return nil, errorf(ErrMalformed, "own key package header")
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n > MaxKeyPackageSize {
		return nil, errorf(ErrTooLarge, "key package %d bytes", n)
	}
	if len(b) != 4+n+64 {
		return nil, errorf(ErrMalformed, "own key package has %d bytes, want %d", len(b), 4+n+64)
	}
	raw := append([]byte(nil), b[4:4+n]...)
	kp, err := parseKP(raw)
	if err != nil {
		return nil, err
	}
	initPriv, err1 := ecdh.X25519().NewPrivateKey(b[4+n : 4+n+32])
	encPriv, err2 := ecdh.X25519().NewPrivateKey(b[4+n+32:])
	if err1 != nil || err2 != nil {
		return nil, errorf(ErrMalformed, "private keys")
	}
	if string(initPriv.PublicKey().Bytes()) != string(kp.InitKey) ||
		string(encPriv.PublicKey().Bytes()) != string(kp.LeafNode.EncryptionKey) {
		return nil, errorf(ErrMalformed, "private keys do not match the key package")
	}
	return &OwnKeyPackage{
		kp: kp, raw: raw, initPriv: initPriv, encPriv: encPriv,
		lastResort: b[1]&1 != 0, notAfter: lifetimeEnd(kp),
	}, nil
}

// KeyPackage is a peer's KeyPackage, checked by ParseKeyPackage.
type KeyPackage struct {
	// Owner is the mesh address the KeyPackage's credential binds to its key.
	Owner crypto.Address
	// Hash16 is the first 16 bytes of the KeyPackageRef.
	Hash16 [16]byte
	// NotAfter is the end of the KeyPackage's lifetime.
	NotAfter time.Time
	// Bytes is the KeyPackage as received.
	Bytes []byte

	kp *keypackages.KeyPackage
}

// ParseKeyPackage checks the size, the decoding, the cipher suite, the
// KeyPackage and LeafNode signatures, the lifetime against now (ErrExpired)
// and the binding of the credential to the signature key (ErrCredential).
func ParseKeyPackage(b []byte, now time.Time) (*KeyPackage, error) {
	if len(b) > MaxKeyPackageSize {
		return nil, errorf(ErrTooLarge, "key package %d bytes, limit %d", len(b), MaxKeyPackageSize)
	}
	raw := append([]byte(nil), b...)
	kp, err := parseKP(raw)
	if err != nil {
		return nil, err
	}
	owner, err := checkCredential(kp.LeafNode.Credential, kp.LeafNode.SignatureKeyBytes)
	if err != nil {
		return nil, err
	}
	lt := kp.LeafNode.Lifetime
	if lt == nil {
		return nil, errorf(ErrMalformed, "key package without lifetime")
	}
	t := now.Unix()
	if t < 0 || uint64(t) < lt.NotBefore || uint64(t) > lt.NotAfter {
		return nil, errorf(ErrExpired, "lifetime %d..%d, now %d", lt.NotBefore, lt.NotAfter, t)
	}
	return &KeyPackage{
		Owner: owner, Hash16: hash16(keyPackageRef(raw)), NotAfter: lifetimeEnd(kp),
		Bytes: raw, kp: kp,
	}, nil
}

// parseKP decodes and verifies a KeyPackage: exact decoding, suite, structure,
// both signatures. Lifetime and credential binding are the callers' checks.
func parseKP(raw []byte) (kp *keypackages.KeyPackage, err error) {
	defer func() {
		// The decoder is the library's; a panic in it is bad input to us.
		if r := recover(); r != nil {
			kp, err = nil, errorf(ErrMalformed, "key package decoder panicked: %v", r)
		}
	}()
	kp, err = keypackages.UnmarshalKeyPackage(raw)
	if err != nil {
		return nil, errorf(ErrMalformed, "key package: %v", err)
	}
	// The decoder ignores trailing bytes: insist the bytes are canonical, so
	// that the Ref we compute is the one the library computes and the
	// announce's hash names exactly one encoding.
	if string(kp.Marshal()) != string(raw) {
		return nil, errorf(ErrMalformed, "key package is not canonically encoded")
	}
	if kp.CipherSuite != Suite {
		return nil, errorf(ErrMalformed, "cipher suite %d, want %d", kp.CipherSuite, Suite)
	}
	if err := kp.Validate(); err != nil {
		return nil, errorf(ErrMalformed, "key package: %v", err)
	}
	if len(kp.InitKey) != 32 || len(kp.LeafNode.EncryptionKey) != 32 {
		return nil, errorf(ErrMalformed, "HPKE keys are not X25519")
	}
	if err := kp.Verify(Suite); err != nil {
		return nil, errorf(ErrBadSignature, "key package: %v", err)
	}
	if err := verifyLeafNodeSignature(kp); err != nil {
		return nil, err
	}
	return kp, nil
}

func lifetimeEnd(kp *keypackages.KeyPackage) time.Time {
	if kp.LeafNode.Lifetime == nil || kp.LeafNode.Lifetime.NotAfter > math.MaxInt64 {
		return time.Unix(math.MaxInt64/2, 0).UTC()
	}
	return time.Unix(int64(kp.LeafNode.Lifetime.NotAfter), 0).UTC()
}
