package mlslite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/quicprochat/qpc/crypto"
)

// ExporterFunc is the MLS exporter of one epoch of a group (RFC 9420
// §8.5, MLS-Exporter): a secret of length bytes bound to label and
// context. crypto/mls hands it out; MLS-Lite sees nothing else of the
// epoch.
type ExporterFunc func(label string, context []byte, length int) ([]byte, error)

// Labels and sizes of the key schedule (docs/crypto.md, "MLS-Lite").
const (
	// ExporterLabel is the MLS exporter label of the MLS-Lite epoch
	// secret; the context is groupID ‖ epoch (8 bytes, big-endian).
	ExporterLabel = "qpc mls-lite"
	// SenderInfo prefixes the HKDF-Expand info of a sender's key and base
	// nonce; the sender's 16-byte address follows.
	SenderInfo = "qpc mls-lite sender"
	// RefLabel prefixes the group id in the hash that gives the group ref.
	RefLabel = "qpc mls-lite ref"

	SecretSize   = 32 // epoch secret
	KeySize      = 16 // AES-128-GCM key
	NonceSize    = 12 // AES-GCM nonce
	TagSize      = 16 // AES-GCM tag: the ciphertext is the text plus this
	GroupRefSize = 4
)

// maxCachedSenders bounds the per-sender AEADs an Epoch keeps; beyond it
// the cache starts again (they are cheap to derive again).
const maxCachedSenders = 1024

// An Epoch holds the MLS-Lite keys of one (group, epoch): the secret from
// the group's exporter and, derived from it on demand, every sender's key
// and base nonce. It is safe for concurrent use.
type Epoch struct {
	groupID [16]byte
	epoch   uint64
	ref     [GroupRefSize]byte
	secret  []byte

	mu      sync.Mutex
	senders map[crypto.Address]*senderKeys
}

// senderKeys is one sender's AEAD and base nonce in one epoch.
type senderKeys struct {
	aead cipher.AEAD
	base [NonceSize]byte
}

// DeriveEpoch takes the MLS-Lite secret of (groupID, epoch) from export:
// export(ExporterLabel, groupID ‖ epoch as 8 bytes big-endian, 32). export
// must be the exporter of that very epoch of that group; an error from it,
// or a secret of another length, is returned as an error.
func DeriveEpoch(export ExporterFunc, groupID [16]byte, epoch uint64) (*Epoch, error) {
	if export == nil {
		return nil, fmt.Errorf("mlslite: DeriveEpoch without an exporter")
	}
	ctx := make([]byte, 0, 24)
	ctx = append(ctx, groupID[:]...)
	ctx = binary.BigEndian.AppendUint64(ctx, epoch)
	secret, err := export(ExporterLabel, ctx, SecretSize)
	if err != nil {
		return nil, fmt.Errorf("mlslite: exporter: %w", err)
	}
	if len(secret) != SecretSize {
		return nil, fmt.Errorf("mlslite: exporter returned %d bytes, want %d", len(secret), SecretSize)
	}
	return &Epoch{
		groupID: groupID,
		epoch:   epoch,
		ref:     GroupRefOf(groupID),
		secret:  append([]byte(nil), secret...),
		senders: make(map[crypto.Address]*senderKeys),
	}, nil
}

// GroupRefOf is the 4-byte group ref that frames carry instead of the
// 16-byte group id: the first 4 bytes of SHA-256(RefLabel ‖ groupID). It
// lets a receiver find the group; it is not secret and not unique (two
// groups share a ref with chance 2^-32, and then one of them refuses the
// frame as ErrDecrypt).
func GroupRefOf(groupID [16]byte) [GroupRefSize]byte {
	h := sha256.New()
	h.Write([]byte(RefLabel))
	h.Write(groupID[:])
	var ref [GroupRefSize]byte
	copy(ref[:], h.Sum(nil))
	return ref
}

// GroupRef is the group ref of the Epoch's group (GroupRefOf).
func (e *Epoch) GroupRef() [GroupRefSize]byte { return e.ref }

// Epoch is the MLS epoch number the keys belong to.
func (e *Epoch) Epoch() uint64 { return e.epoch }

// GroupID is the MLS group id.
func (e *Epoch) GroupID() [16]byte { return e.groupID }

// senderMaterial is HKDF-Expand(secret, SenderInfo ‖ sender, 28): the
// sender's AES-128 key (16 bytes) and base nonce (12). The exporter's
// output is already a uniform secret, so it is the PRK without Extract.
func senderMaterial(secret []byte, sender crypto.Address) (key [KeySize]byte, base [NonceSize]byte) {
	out, err := hkdf.Expand(sha256.New, secret, SenderInfo+string(sender[:]), KeySize+NonceSize)
	if err != nil {
		panic("mlslite: hkdf: " + err.Error()) // 28 bytes of SHA-256 cannot fail
	}
	copy(key[:], out[:KeySize])
	copy(base[:], out[KeySize:])
	return key, base
}

// keys returns the sender's keys of this epoch.
func (e *Epoch) keys(sender crypto.Address) *senderKeys {
	e.mu.Lock()
	defer e.mu.Unlock()
	if k := e.senders[sender]; k != nil {
		return k
	}
	key, base := senderMaterial(e.secret, sender)
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic("mlslite: aes: " + err.Error()) // a 16-byte key cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("mlslite: gcm: " + err.Error())
	}
	if len(e.senders) >= maxCachedSenders {
		clear(e.senders)
	}
	k := &senderKeys{aead: aead, base: base}
	e.senders[sender] = k
	return k
}

// nonce is the base nonce XOR the counter, big-endian in its last 4 bytes.
func (k *senderKeys) nonce(counter uint32) [NonceSize]byte {
	n := k.base
	c := binary.BigEndian.Uint32(n[NonceSize-4:])
	binary.BigEndian.PutUint32(n[NonceSize-4:], c^counter)
	return n
}
