package verify

import (
	"crypto/ed25519"
	"sync/atomic"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/mlslite"
	"github.com/quicprochat/qpc/messages"
)

// Keys maps addresses to announced keys. A published Keys is never
// changed: build a new one.
type Keys map[[16]byte]Key

// Key is a node's announced keys: Ed25519 to verify what it signs, X25519
// to seal messages to it.
type Key struct {
	Signing ed25519.PublicKey
	Sealing []byte // nil for this node's own entry
	// KeyPackage is the announced KeyPackage hash (zero: none).
	KeyPackage [16]byte
}

// Directory holds the current Keys snapshot. It is safe for concurrent
// use: one writer (the router) and any number of readers.
type Directory struct{ p atomic.Pointer[Keys] }

// NewDirectory returns a directory that knows self's key.
func NewDirectory(self ed25519.PublicKey) *Directory {
	d := &Directory{}
	k := Keys{messages.AddressOf(self): Key{Signing: self}}
	d.p.Store(&k)
	return d
}

// Publish replaces the snapshot. k must not be changed afterwards.
func (d *Directory) Publish(k Keys) { d.p.Store(&k) }

// Lookup finds an address's signing key in the current snapshot.
func (d *Directory) Lookup(a [16]byte) (ed25519.PublicKey, bool) {
	k, ok := (*d.p.Load())[a]
	return k.Signing, ok
}

// SealingKey finds an address's announced sealing key.
func (d *Directory) SealingKey(a [16]byte) ([]byte, bool) {
	k, ok := (*d.p.Load())[a]
	return k.Sealing, ok && k.Sealing != nil
}

// KeyPackageHash finds an address's announced KeyPackage hash; false
// when the address is unknown or announced none.
func (d *Directory) KeyPackageHash(a [16]byte) ([16]byte, bool) {
	k, ok := (*d.p.Load())[a]
	return k.KeyPackage, ok && k.KeyPackage != [16]byte{}
}

// Len is the number of keys in the snapshot.
func (d *Directory) Len() int { return len(*d.p.Load()) }

// Drop reasons of the edge, as counted in qpc_mesh_envelopes_dropped_total
// (the same names as the router's).
const (
	DropMalformed    = "malformed"
	DropBadSignature = "bad_signature"
	DropOverload     = "overload"
)

// Check verifies one envelope frame. It returns the verified envelope, or
// nil and a drop reason, or nil and "" when the source's key is not in the
// snapshot (the router decides: it may know the key by now, or hold the
// frame until the announce arrives). A sealed envelope for self is opened
// with seal; if that fails, Opened stays nil and OpenFailed is set (the
// router counts it; nothing is recorded for it).
func Check(f *messages.InboundFrame, dir *Directory, self [16]byte, seal *crypto.SealingKey) (*messages.VerifiedEnvelope, string) {
	if messages.IsCompact(f.Data) {
		return checkCompact(f, dir, self, seal)
	}
	if mlslite.IsMLSLite(f.Data) {
		return nil, "" // nothing to check at the edge: the router and the keys actor do
	}
	env, err := messages.DecodeEnvelope(f.Data)
	if err != nil {
		return nil, DropMalformed
	}
	pub, ok := dir.Lookup(env.Source)
	if !ok {
		return nil, ""
	}
	id, err := env.VerifyID(pub)
	if err != nil {
		return nil, DropBadSignature
	}
	v := &messages.VerifiedEnvelope{In: f, Env: env, ID: id}
	if env.Destination == self && (env.PayloadType == messages.PayloadSealed || env.PayloadType == messages.PayloadGroup) && seal != nil {
		text, err := seal.Open(env.Payload, crypto.SealAAD(env.Source, env.Destination))
		if err != nil {
			v.OpenFailed = true
		} else {
			v.Opened = text
		}
	}
	return v, ""
}

// checkCompact is Check for a compact sealed envelope (messages.Compact),
// which has no signature: only its destination can authenticate it, by
// opening it in HPKE auth mode with the source's announced sealing key.
// For this node it is opened here (Opened, or OpenFailed: a tampered
// frame, or one sealed by a key that is not the claimed source's); a
// source whose sealing key the snapshot lacks goes to the router (nil,
// ""). One for another node goes to the router as it came (nil, ""):
// there is nothing to check here, relays cannot authenticate it
// (docs/wire-format.md), and the router's relay checks (known source and
// destination) are in one place, router.Core.HandleEnvelope.
func checkCompact(f *messages.InboundFrame, dir *Directory, self [16]byte, seal *crypto.SealingKey) (*messages.VerifiedEnvelope, string) {
	c, err := messages.DecodeCompact(f.Data)
	if err != nil {
		return nil, DropMalformed
	}
	if c.Destination != self || seal == nil {
		return nil, ""
	}
	from, ok := dir.SealingKey(c.Source)
	if !ok {
		return nil, ""
	}
	v := &messages.VerifiedEnvelope{In: f, Env: c.AsEnvelope(), ID: c.ID()}
	if text, err := seal.OpenAuth(c.Sealed, c.AAD(), from); err != nil {
		v.OpenFailed = true
	} else {
		v.Opened = append([]byte{}, text...) // never nil: nil means "not opened"
	}
	return v, ""
}
