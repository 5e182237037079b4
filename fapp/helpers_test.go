package fapp

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
)

// Golden vectors: `go test ./fapp -run Golden -update` rewrites them.
var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/")

// t0 is the tests' "now": 2026-12-01T08:00:00Z.
var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// identityFrom is a fixed identity: its seed is SHA-256(label).
func identityFrom(t testing.TB, label string) *crypto.Identity {
	t.Helper()
	seed := sha256.Sum256([]byte(label))
	id, err := crypto.IdentityFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sealingFrom(t testing.TB, label string) *crypto.SealingKey {
	t.Helper()
	k, err := crypto.SealingKeyFor(identityFrom(t, label))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// goldenApprobation is the binding of licence id "LANR-123456789" with salt
// SHA-256("qpc golden approbation salt")[:16], computed once (Argon2id
// takes a while under -race).
var goldenApprobation = sync.OnceValues(func() (Approbation, error) {
	salt := sha256.Sum256([]byte("qpc golden approbation salt"))
	return ApprobationWithSalt("LANR-123456789", salt[:ApprobationSaltSize])
})

func approbation(t testing.TB) Approbation {
	t.Helper()
	a, err := goldenApprobation()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// testSlot is a slot starting h hours after t0.
func testSlot(id uint32, h int) Slot {
	return Slot{ID: id, Start: uint32(t0.Add(time.Duration(h) * time.Hour).Unix()), Minutes: 50, Type: Therapieplatz,
		Fachrichtung: Verhaltenstherapie, Modalitaet: Praxis | Video, Kostentraeger: GKV | Selbstzahler}
}

// newPractice is a practice of the identity SHA-256(label) at plz.
func newPractice(t testing.TB, label string, plz PLZ) *Practice {
	t.Helper()
	p, err := NewPractice(identityFrom(t, label), plz, approbation(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func publish(t testing.TB, p *Practice, expires time.Time, slots ...Slot) []byte {
	t.Helper()
	f, err := p.Publish(slots, expires)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tempDB(t testing.TB) (*bolt.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fapp.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// counterReader is a deterministic byte source for tests (never for keys
// outside tests): SHA-256 of label and a counter.
type counterReader struct {
	label string
	n     uint64
	buf   []byte
}

func (r *counterReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		r.n++
		s := sha256.Sum256([]byte(r.label + "/" + string(rune('a'+r.n%26)) + hex.EncodeToString([]byte{byte(r.n >> 8), byte(r.n)})))
		r.buf = append(r.buf, s[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var h strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			h.WriteString(line)
		}
	}
	b, err := hex.DecodeString(h.String())
	if err != nil {
		t.Fatalf("testdata/%s: %v", name, err)
	}
	return b
}

func writeGolden(t testing.TB, name string, comments []string, data []byte) {
	t.Helper()
	var s strings.Builder
	for _, c := range comments {
		s.WriteString("# " + c + "\n")
	}
	s.WriteString(hex.EncodeToString(data) + "\n")
	if err := os.WriteFile(filepath.Join("testdata", name), []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
