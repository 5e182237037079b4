package mlslite

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"

	"github.com/quicprochat/qpc/crypto"
)

// LoRaLinkOverhead is what the LoRa link (transports/lora/link, version
// 1) adds to a frame that fits one DATA packet: 5-byte header, 5-byte
// fragment header, 4-byte MAC.
const LoRaLinkOverhead = 14

// Size is one measured MLS-Lite size: the length of a real encoding.
type Size struct {
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
	Note  string `json:"note"`
}

// Sizes seals a 32-byte text with fixed keys, hop limit 8, epoch 1 and
// counter 1 (one byte each), unsigned and signed, and returns the frame
// lengths, and the same with the LoRa link's overhead of one DATA packet.
func Sizes() []Size {
	seed := sha256.Sum256([]byte("qpc sizes key"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	src := crypto.AddressOf(priv.Public().(ed25519.PublicKey))
	dst := crypto.AddressOf(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey))
	export := func(label string, ctx []byte, n int) ([]byte, error) {
		return hkdf.Key(sha256.New, []byte("qpc sizes exporter"), nil, label+string(ctx), n)
	}
	e, err := DeriveEpoch(export, [16]byte{1}, 1)
	if err != nil {
		panic("mlslite: Sizes: " + err.Error())
	}
	text := bytes.Repeat([]byte{'x'}, 32)
	seal := func(signer ed25519.PrivateKey) int {
		b, err := e.Seal(src, dst, 8, 1, text, signer)
		if err != nil {
			panic("mlslite: Sizes: " + err.Error()) // a bug: the frame is valid
		}
		return len(b)
	}
	u, s := seal(nil), seal(priv)
	return []Size{
		{"mls-lite-32", u, "MLS-Lite frame, 32-byte text, unsigned (authenticated as some group member)"},
		{"mls-lite-signed-32", s, "MLS-Lite frame, 32-byte text, signed by the sender (Ed25519)"},
		{"mls-lite-32-lora", u + LoRaLinkOverhead, "the unsigned frame in one LoRa DATA packet (link v1, +14 bytes)"},
		{"mls-lite-signed-32-lora", s + LoRaLinkOverhead, "the signed frame in one LoRa DATA packet (link v1, +14 bytes)"},
	}
}
