package messages

import (
	"fmt"
)

// KeyPackage messages: how a node fetches another's MLS KeyPackage
// without a server (docs/wire-format.md, "KeyPackages"). Each is the
// payload of a signed envelope (not sealed: a KeyPackage is public, and a
// relay that holds the one asked for answers in its owner's place).
//
//	request      (PayloadKeyPackageRequest)     owner (16) ‖ hash (16)         32 bytes
//	response     (PayloadKeyPackage)            owner (16) ‖ KeyPackage (≤ MaxKeyPackageSize)
//	unavailable  (PayloadKeyPackageUnavailable) owner (16) ‖ hash (16)         32 bytes
//
// The hash is the 16-byte KeyPackage hash of the owner's announce (all
// zero in a request: "the newest you have"). A request travels towards
// the owner; a relay with a matching KeyPackage in its cache answers and
// does not forward it. The requester accepts a response only if the
// KeyPackage's hash is the one the owner's signed announce carries now
// (any, when it heard none) and its MLS credential is the owner's:
// whoever answered, it cannot hand out another KeyPackage.

// MaxKeyPackageSize bounds a KeyPackage on the wire.
const MaxKeyPackageSize = 4 << 10

// KeyPackageRef is a request's or an unavailable answer's payload.
type KeyPackageRef struct {
	Owner [16]byte
	Hash  [16]byte
}

// Encode is the 32-byte payload.
func (r KeyPackageRef) Encode() []byte {
	b := make([]byte, 32)
	copy(b, r.Owner[:])
	copy(b[16:], r.Hash[:])
	return b
}

// DecodeKeyPackageRef reads a request's or an unavailable answer's
// payload: exactly 32 bytes.
func DecodeKeyPackageRef(p []byte) (KeyPackageRef, error) {
	var r KeyPackageRef
	if len(p) != 32 {
		return r, fmt.Errorf("%w: KeyPackage reference of %d bytes, want 32", ErrMalformed, len(p))
	}
	copy(r.Owner[:], p)
	copy(r.Hash[:], p[16:])
	return r, nil
}

// EncodeKeyPackagePayload is a response's payload.
func EncodeKeyPackagePayload(owner [16]byte, kp []byte) ([]byte, error) {
	if len(kp) == 0 || len(kp) > MaxKeyPackageSize {
		return nil, fmt.Errorf("%w: KeyPackage of %d bytes, want 1 to %d", ErrTooLarge, len(kp), MaxKeyPackageSize)
	}
	return append(append(make([]byte, 0, 16+len(kp)), owner[:]...), kp...), nil
}

// DecodeKeyPackagePayload splits a response's payload; the KeyPackage
// aliases p. The size is checked before anything else.
func DecodeKeyPackagePayload(p []byte) (owner [16]byte, kp []byte, err error) {
	if len(p) > 16+MaxKeyPackageSize {
		return owner, nil, fmt.Errorf("%w: KeyPackage payload of %d bytes, limit %d", ErrTooLarge, len(p), 16+MaxKeyPackageSize)
	}
	if len(p) <= 16 {
		return owner, nil, fmt.Errorf("%w: KeyPackage payload of %d bytes", ErrMalformed, len(p))
	}
	copy(owner[:], p)
	return owner, p[16:], nil
}
