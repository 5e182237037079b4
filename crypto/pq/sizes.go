package pq

import (
	"bytes"

	"github.com/quicprochat/qpc/crypto"
)

// Size is one measured size: the length of a real encoding.
type Size struct {
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
	Note  string `json:"note"`
}

// Sizes signs a key record and seals a 32-byte text with fixed identities,
// in the PQ hybrid mode and the classic one (crypto.Seal), and returns the
// lengths.
func Sizes() []Size {
	src := sizesIdentity(1)
	dst := sizesIdentity(2)
	aad := crypto.SealAAD(src.Address(), dst.Address())
	text := bytes.Repeat([]byte{'x'}, 32)

	rec := SignRecord(dst)
	pqSealed, err := Seal(KeyFor(dst).Public(), text, aad)
	if err != nil {
		panic("pq: Sizes: " + err.Error()) // a bug: the key is valid
	}
	classicKey, err := crypto.SealingKeyFor(dst)
	if err != nil {
		panic("pq: Sizes: " + err.Error())
	}
	classic, err := crypto.Seal(classicKey.Public(), text, aad)
	if err != nil {
		panic("pq: Sizes: " + err.Error())
	}
	return []Size{
		{"pq-key-record", len(rec), "signed X-Wing key record: owner 16 + X-Wing public key 1216 + Ed25519 signature 64"},
		{"pq-sealed-overhead", len(pqSealed) - len(text), "PQ sealed payload overhead: X-Wing ciphertext 1120 + ChaCha20-Poly1305 tag 16"},
		{"pq-sealed-32", len(pqSealed), "PQ sealed payload of a 32-byte text"},
		{"classic-sealed-overhead", len(classic) - len(text), "classic (HPKE X25519) sealed payload overhead, for comparison: enc 32 + tag 16"},
		{"classic-sealed-32", len(classic), "classic sealed payload of a 32-byte text, for comparison"},
	}
}

func sizesIdentity(b byte) *crypto.Identity {
	id, err := crypto.IdentityFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		panic("pq: Sizes: " + err.Error())
	}
	return id
}
