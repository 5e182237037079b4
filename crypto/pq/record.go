package pq

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/kem/xwing"

	"github.com/quicprochat/qpc/crypto"
)

// The PQ key record lets a node fetch another node's X-Wing key from the
// mesh and trust it whoever delivered it: the owner's identity key signs
// it, and the owner's address is the hash of that identity key.
//
//	owner (16 bytes) || X-Wing public key (1216 bytes) || Ed25519 signature (64 bytes)
//
// The signature is over recordLabel || owner || public key. The label keeps
// a record signature from being valid as any other signed qpc message.
const (
	// RecordSize is the exact length of a key record: 1296 bytes.
	RecordSize = crypto.AddressSize + PublicKeySize + ed25519.SignatureSize

	recordLabel = "qpc/pq-key/v1\x00"
)

// Errors of key records. VerifyRecord returns exactly one of ErrMalformed,
// ErrUnknownOwner, ErrOwnerMismatch, ErrBadSignature and ErrBadPublicKey
// for a record it refuses.
var (
	// ErrUnknownOwner: the owner's Ed25519 key is not known (no announce
	// from it seen yet), so the record cannot be checked.
	ErrUnknownOwner = errors.New("pq: key record owner unknown")
	// ErrOwnerMismatch: the key the lookup returned for the owner is not
	// a 32-byte Ed25519 key whose address is the owner.
	ErrOwnerMismatch = errors.New("pq: key record owner does not match its identity key")
	// ErrBadSignature: the signature is not the owner's over this record.
	ErrBadSignature = errors.New("pq: key record signature invalid")
)

// Record is a verified PQ key record: Owner's X-Wing public key.
type Record struct {
	Owner  crypto.Address
	Public []byte // PublicKeySize bytes; not shared with the input
}

// SignRecord makes the identity's key record: its address, its X-Wing
// public key (KeyFor) and its signature over both.
func SignRecord(id *crypto.Identity) []byte {
	return signRecord(id, KeyFor(id).pub[:])
}

func signRecord(id *crypto.Identity, pub []byte) []byte {
	owner := id.Address()
	out := make([]byte, 0, RecordSize)
	out = append(out, owner[:]...)
	out = append(out, pub...)
	return append(out, id.Sign(recordSigned(owner[:], pub))...)
}

func recordSigned(owner, pub []byte) []byte {
	msg := make([]byte, 0, len(recordLabel)+len(owner)+len(pub))
	msg = append(msg, recordLabel...)
	msg = append(msg, owner...)
	return append(msg, pub...)
}

// VerifyRecord checks a key record and returns it. In order: the length
// must be exactly RecordSize (ErrMalformed); pub must know the owner's
// Ed25519 key (ErrUnknownOwner), and that key's address must be the owner
// (ErrOwnerMismatch); the signature must verify (ErrBadSignature); the
// X-Wing key must pass ML-KEM's encapsulation key check (ErrBadPublicKey),
// so a record that verifies is one Seal accepts.
func VerifyRecord(b []byte, pub func(crypto.Address) (ed25519.PublicKey, bool)) (Record, error) {
	if len(b) != RecordSize {
		return Record{}, fmt.Errorf("%w: key record of %d bytes, want %d", ErrMalformed, len(b), RecordSize)
	}
	var owner crypto.Address
	copy(owner[:], b[:crypto.AddressSize])
	pk := b[crypto.AddressSize : crypto.AddressSize+PublicKeySize]
	sig := b[crypto.AddressSize+PublicKeySize:]

	edPub, ok := pub(owner)
	if !ok {
		return Record{}, fmt.Errorf("%w: %s", ErrUnknownOwner, owner)
	}
	if len(edPub) != ed25519.PublicKeySize || crypto.AddressOf(edPub) != owner {
		return Record{}, fmt.Errorf("%w: %s", ErrOwnerMismatch, owner)
	}
	if !ed25519.Verify(edPub, recordSigned(owner[:], pk), sig) {
		return Record{}, fmt.Errorf("%w: owner %s", ErrBadSignature, owner)
	}
	var check xwing.PublicKey
	if err := check.Unpack(pk); err != nil {
		return Record{}, fmt.Errorf("%w: owner %s: %v", ErrBadPublicKey, owner, err)
	}
	r := Record{Owner: owner, Public: make([]byte, PublicKeySize)}
	copy(r.Public, pk)
	return r, nil
}
