package mlslite

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/crypto"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The golden vectors: the keys of messages' golden vectors (seeds
// SHA-256("qpc golden announce key") from, SHA-256("qpc golden beacon
// key") to), group id 16 bytes 0x00..0x0f, epoch 3, an exporter standing
// for MLS's whose secret is SHA-256("qpc golden mls-lite epoch secret"),
// hop limit 8, counter 1, the text "golden mls-lite text, 32 bytes.." .
func goldenKeys() (src, dst ed25519.PrivateKey) {
	a := sha256.Sum256([]byte("qpc golden announce key"))
	b := sha256.Sum256([]byte("qpc golden beacon key"))
	return ed25519.NewKeyFromSeed(a[:]), ed25519.NewKeyFromSeed(b[:])
}

func goldenEpoch(t testing.TB) *Epoch {
	secret := sha256.Sum256([]byte("qpc golden mls-lite epoch secret"))
	var group [16]byte
	for i := range group {
		group[i] = byte(i)
	}
	e, err := DeriveEpoch(exporter(string(secret[:])), group, 3)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var goldenText = []byte("golden mls-lite text, 32 bytes..")

func readGoldenFile(t testing.TB, name string) (frame []byte, comments map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	comments = map[string]string{}
	var h strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "# "), ": "); ok && strings.HasPrefix(line, "# ") {
			comments[k] = v
		} else if line != "" && !strings.HasPrefix(line, "#") {
			h.WriteString(line)
		}
	}
	frame, err = hex.DecodeString(h.String())
	if err != nil {
		t.Fatalf("testdata/%s: %v", name, err)
	}
	return frame, comments
}

func readGoldenHex(t testing.TB, name string) []byte {
	f, _ := readGoldenFile(t, name)
	return f
}

func TestGolden(t *testing.T) {
	src, dst := goldenKeys()
	srcAddr := crypto.AddressOf(src.Public().(ed25519.PublicKey))
	dstAddr := crypto.AddressOf(dst.Public().(ed25519.PublicKey))
	e := goldenEpoch(t)
	key, base := senderMaterial(e.secret, srcAddr)
	for _, c := range []struct {
		file   string
		signer ed25519.PrivateKey
		size   int
		head   byte
	}{{"mls-lite.golden", nil, 95, 0x89}, {"mls-lite-signed.golden", src, 161, 0x8a}} {
		got, err := e.Seal(srcAddr, dstAddr, 8, 1, goldenText, c.signer)
		if err != nil {
			t.Fatal(err)
		}
		f := mustDecode(t, got)
		id := f.ID()
		if *update {
			lines := []string{
				"MLS-Lite frame v0 (crypto/mlslite), hex of the CBOR encoding; see golden_test.go for the inputs.",
				"signed: " + map[bool]string{false: "no", true: "yes"}[c.signer != nil],
				"epoch secret: " + hex.EncodeToString(e.secret),
				"group ref: " + hex.EncodeToString(e.ref[:]),
				"sender key: " + hex.EncodeToString(key[:]),
				"sender base nonce: " + hex.EncodeToString(base[:]),
				"aad: " + hex.EncodeToString(f.AAD()),
				"id: " + hex.EncodeToString(id[:]),
			}
			var s strings.Builder
			for _, l := range lines {
				s.WriteString("# " + l + "\n")
			}
			s.WriteString(hex.EncodeToString(got) + "\n")
			if err := os.WriteFile(filepath.Join("testdata", c.file), []byte(s.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, com := readGoldenFile(t, c.file)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: encoding changed (run with -update if intended):\n got %x\nwant %x", c.file, got, want)
		}
		for k, v := range map[string][]byte{"epoch secret": e.secret, "group ref": e.ref[:], "sender key": key[:],
			"sender base nonce": base[:], "aad": f.AAD(), "id": id[:]} {
			if com[k] != hex.EncodeToString(v) {
				t.Errorf("%s: %s %x, golden %s", c.file, k, v, com[k])
			}
		}
		if len(want) != c.size {
			t.Errorf("%s: %d bytes, documented %d", c.file, len(want), c.size)
		}
		dstSide := goldenEpoch(t)
		o, err := dstSide.Open(want, dstAddr, pubs(member{src, src.Public().(ed25519.PublicKey), srcAddr}), c.signer != nil, NewWindows())
		if err != nil || !bytes.Equal(o.Plaintext, goldenText) || o.ID != id {
			t.Fatalf("%s: open: %+v %v", c.file, o, err)
		}
		// The layout of docs/crypto.md: 89|8a 08 00 08 50<src> 50<dst> 44<ref> 03 01 5830<ct> [5840<sig>].
		prefix := append([]byte{c.head, 0x08, 0x00, 0x08, 0x50}, srcAddr[:]...)
		prefix = append(append(append(prefix, 0x50), dstAddr[:]...), 0x44)
		prefix = append(append(prefix, e.ref[:]...), 0x03, 0x01, 0x58, 0x30)
		if !bytes.HasPrefix(want, prefix) {
			t.Errorf("%s: does not start %x", c.file, prefix)
		}
	}
}
