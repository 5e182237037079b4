package mls

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/thomas-vilte/mls-go/ciphersuite"
	"github.com/thomas-vilte/mls-go/credentials"
	"github.com/thomas-vilte/mls-go/group"
	"github.com/thomas-vilte/mls-go/keypackages"
)

// Suite is the only cipher suite qpc speaks:
// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (RFC 9420 §17.1, value 1).
const Suite = ciphersuite.MLS128DHKEMX25519

// Size limits, checked before anything is parsed.
const (
	// MaxKeyPackageSize bounds a KeyPackage as ParseKeyPackage takes it.
	MaxKeyPackageSize = 4 << 10
	// MaxMessageSize bounds an MLSMessage (application, commit or Welcome)
	// as Handle, Join and Peek take it.
	MaxMessageSize = 60 << 10
	// MaxStateSize bounds a marshalled Group (Load) and a marshalled
	// OwnKeyPackage (UnmarshalOwnKeyPackage).
	MaxStateSize = 1 << 20
)

// GroupIDSize is the length of a qpc group id.
const GroupIDSize = 16

// Errors of the package. Every error returned by a function that takes
// bytes from a peer wraps exactly one of them (errors.Is).
var (
	// ErrTooLarge: the input is over its Max*Size limit.
	ErrTooLarge = errors.New("crypto/mls: input too large")
	// ErrMalformed: the input does not decode, or is of a kind the call does
	// not take (a PublicMessage, a proposal, a Welcome given to Handle).
	ErrMalformed = errors.New("crypto/mls: malformed input")
	// ErrCredential: a credential is not a BasicCredential whose identity is
	// the address of its Ed25519 signature key, or a member's address changed.
	ErrCredential = errors.New("crypto/mls: credential not bound to its key")
	// ErrBadSignature: a signature does not verify.
	ErrBadSignature = errors.New("crypto/mls: bad signature")
	// ErrWrongGroup: the message is for another group.
	ErrWrongGroup = errors.New("crypto/mls: wrong group")
	// ErrWrongEpoch: a commit for an epoch other than the current one, or an
	// application message of an epoch whose keys are gone (or not yet known).
	ErrWrongEpoch = errors.New("crypto/mls: wrong epoch")
	// ErrReplay: an application message whose generation was handled before.
	ErrReplay = errors.New("crypto/mls: replayed message")
	// ErrDecrypt: AEAD decryption failed (tampered, or not for us).
	ErrDecrypt = errors.New("crypto/mls: decryption failed")
	// ErrNotMember: an address is not in the group, this node is not (or no
	// longer) a member, or a Welcome was made for none of our KeyPackages.
	ErrNotMember = errors.New("crypto/mls: not a member")
	// ErrExpired: a KeyPackage outside its lifetime.
	ErrExpired = errors.New("crypto/mls: key package expired")
	// ErrNoPSK: a commit or Welcome injects a PSK this node was not given.
	ErrNoPSK = errors.New("crypto/mls: PSK not held")
)

// errorf wraps sentinel with a formatted detail.
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// addressValidator implements group.CredentialValidator: the credential must
// be a BasicCredential whose identity is AddressOf(sigKey). mls-go v1.6.0
// accepts a group.WithCredentialValidator option but never calls it, so this
// package calls checkCredential itself wherever a credential is admitted.
type addressValidator struct{ sigKey []byte }

var _ group.CredentialValidator = addressValidator{}

// ValidateCredential checks the binding of cred to the validator's key.
func (v addressValidator) ValidateCredential(_ context.Context, cred *credentials.Credential) error {
	_, err := checkCredential(cred, v.sigKey)
	return err
}

// checkCredential returns the address a credential binds to sigKey, or
// ErrCredential.
func checkCredential(cred *credentials.Credential, sigKey []byte) (crypto.Address, error) {
	var a crypto.Address
	if cred == nil {
		return a, errorf(ErrCredential, "no credential")
	}
	if cred.Type() != credentials.BasicCredential {
		return a, errorf(ErrCredential, "credential type %s, want basic", cred.Type())
	}
	if len(sigKey) != ed25519.PublicKeySize {
		return a, errorf(ErrCredential, "signature key has %d bytes, want %d", len(sigKey), ed25519.PublicKeySize)
	}
	if len(cred.Identity) != crypto.AddressSize {
		return a, errorf(ErrCredential, "identity has %d bytes, want %d", len(cred.Identity), crypto.AddressSize)
	}
	a = crypto.AddressOf(ed25519.PublicKey(sigKey))
	if !bytes.Equal(cred.Identity, a[:]) {
		return crypto.Address{}, errorf(ErrCredential, "identity %x is not the address %s of its key", cred.Identity, a)
	}
	return a, nil
}

// credentialFor builds our BasicCredential for id.
func credentialFor(id ed25519.PrivateKey) (*credentials.CredentialWithKey, error) {
	if len(id) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("crypto/mls: identity key has %d bytes, want %d", len(id), ed25519.PrivateKeySize)
	}
	pub := id.Public().(ed25519.PublicKey)
	addr := crypto.AddressOf(pub)
	return &credentials.CredentialWithKey{
		Credential:        credentials.NewBasicCredential(addr[:]),
		Ed25519PrivateKey: id,
		SignatureKeyBytes: append([]byte(nil), pub...),
	}, nil
}

// refHash is RefHash(label, value) = SHA-256(VL(label) || VL(value))
// (RFC 9420 §5.2) for our suite's hash.
func refHash(label, value []byte) [32]byte {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	h.Write(varint(buf[:0], uint64(len(label))))
	h.Write(label)
	h.Write(varint(buf[:0], uint64(len(value))))
	h.Write(value)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// varint appends the MLS variable-length integer encoding (RFC 9420 §2.1.2)
// of n (n < 2^30) to b.
func varint(b []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, 0x40|byte(n>>8), byte(n))
	default:
		return append(b, 0x80|byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// keyPackageRefLabel is the RefHash label of a KeyPackageRef.
var keyPackageRefLabel = []byte("MLS 1.0 KeyPackage Reference")

// keyPackageRef is the KeyPackageRef of a KeyPackage's wire bytes.
func keyPackageRef(kp []byte) [32]byte { return refHash(keyPackageRefLabel, kp) }

// verifyLeafNodeSignature checks the LeafNode signature of a KeyPackage
// (source key_package, so LeafNodeTBS is the LeafNode without its signature;
// RFC 9420 §7.2). keypackages.Verify checks only the KeyPackage signature.
func verifyLeafNodeSignature(kp *keypackages.KeyPackage) error {
	ln := kp.LeafNode
	enc := ln.Marshal()
	suffix := varint(nil, uint64(len(ln.Signature)))
	suffix = append(suffix, ln.Signature...)
	if len(enc) < len(suffix) || !bytes.Equal(enc[len(enc)-len(suffix):], suffix) {
		return errorf(ErrMalformed, "leaf node encoding")
	}
	tbs := enc[:len(enc)-len(suffix)]
	pk := ciphersuite.NewMLSSignaturePublicKey(ln.SignatureKeyBytes, Suite.SignatureScheme())
	if err := ciphersuite.VerifyWithLabel(pk, "LeafNodeTBS", tbs, ciphersuite.NewSignature(ln.Signature)); err != nil {
		return errorf(ErrBadSignature, "leaf node: %v", err)
	}
	return nil
}
