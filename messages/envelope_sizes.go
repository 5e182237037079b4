package messages

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"
)

// SizeRow is one measured wire size: the length of a real encoding.
type SizeRow struct {
	Name  string `json:"name"`  // stable, for scripts and docs/wire-format.md
	Bytes int    `json:"bytes"` // encoded length
	Note  string `json:"note"`  // what was encoded
}

// sealOverhead is what sealing adds to a 1:1 plaintext: the X25519
// ephemeral public key (32) and the ChaCha20-Poly1305 tag (16).
const sealOverhead = 32 + 16

// Sizes encodes typical frames of every wire type with a fixed key and
// returns their lengths, for `qpc sizes` and the table in
// docs/wire-format.md (a test keeps the two equal). Announces are measured
// with capabilities above 0xFF (3 bytes, the widest) and envelopes with
// hop count, hop limit and seq below 24 (one byte each), as sent.
func Sizes() []SizeRow {
	seed := sha256.Sum256([]byte("qpc sizes key"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	pub := priv.Public().(ed25519.PublicKey)
	sign := func(m []byte) []byte { return ed25519.Sign(priv, m) }
	sealPriv, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		panic("messages: Sizes: " + err.Error())
	}
	sealKey := sealPriv.PublicKey().Bytes()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must := func(b []byte, err error) int {
		if err != nil {
			panic("messages: Sizes: " + err.Error()) // a bug: these frames are valid
		}
		return len(b)
	}

	var rows []SizeRow

	b := NewBeacon(pub, at, []BeaconListener{{Scheme: SchemeTCP, Port: 7701}, {Scheme: SchemeQUIC, Port: 7702}})
	if err := b.Sign(sign); err != nil {
		panic("messages: Sizes: " + err.Error())
	}
	rows = append(rows, SizeRow{"beacon", must(EncodeBeacon(b)), "LAN beacon, 2 listeners, hosts empty (the source address)"})

	for _, c := range []struct {
		name string
		kp   int
		caps Capabilities
		note string
	}{
		{"announce", 0, CapRelay | CapStore, "announce without a KeyPackage hash (groups.enabled = false), capabilities relay and store"},
		{"announce-kp16", KeyPackageHashSize, CapRelay | CapStore | CapFAPPRelay, "announce with a 16-byte KeyPackage hash (as sent with groups.enabled, the default), capabilities above 0xFF"},
		{"announce-kp32", MaxKeyPackageHashSize, CapRelay | CapStore | CapFAPPRelay, "announce with a 32-byte KeyPackage hash (whole KeyPackageRef), capabilities above 0xFF"},
	} {
		a := NewAnnounce(pub, sealKey, c.caps, bytes.Repeat([]byte{0xAB}, c.kp), at)
		if err := a.Sign(sign); err != nil {
			panic("messages: Sizes: " + err.Error())
		}
		rows = append(rows, SizeRow{c.name, must(EncodeAnnounce(a)), c.note})
	}

	dst := AddressOf(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey))
	for _, c := range []struct {
		name    string
		payload int
		note    string
	}{
		{"envelope-empty", 0, "envelope, empty payload: the envelope overhead"},
		{"envelope-sealed-32", 32 + sealOverhead, "envelope, sealed 32-byte text (80-byte payload)"},
		{"envelope-sealed-94", 94 + sealOverhead, "envelope, sealed 94-byte text (142-byte payload): the most one 255-byte LoRa frame holds"},
		{"envelope-256", 256, "envelope, 256-byte payload"},
		{"envelope-sealed-256", 256 + sealOverhead, "envelope, sealed 256-byte text (304-byte payload)"},
	} {
		e := NewEnvelope(AddressOf(pub), dst, DefaultHopLimit, at.Add(24*time.Hour), PayloadSealed, bytes.Repeat([]byte{0xCD}, c.payload))
		e.Seq = 1 // one byte for seq 1..23, three up to 65535, five up to 2^32
		if err := e.Sign(sign); err != nil {
			panic("messages: Sizes: " + err.Error())
		}
		rows = append(rows, SizeRow{c.name, must(EncodeEnvelope(e)), c.note})
	}
	for _, c := range []struct {
		name string
		text int
		note string
	}{
		{"compact-sealed-32", 32, "compact sealed envelope (constrained links), 32-byte text: HPKE auth mode, no signature"},
		{"compact-sealed-94", 94, "compact sealed envelope, 94-byte text"},
		{"compact-sealed-256", 256, "compact sealed envelope, 256-byte text"},
	} {
		k := NewCompact(AddressOf(pub), dst, DefaultHopLimit, at.Add(24*time.Hour), 1)
		k.Sealed = bytes.Repeat([]byte{0xCD}, c.text+CompactSealOverhead)
		rows = append(rows, SizeRow{c.name, must(EncodeCompact(k)), c.note})
	}
	return rows
}

func (r SizeRow) String() string { return fmt.Sprintf("%-20s %6d  %s", r.Name, r.Bytes, r.Note) }
