// Package persisttest builds data dirs like a node leaves them and
// damages copies of them, for the tests of damaged data dirs (persist,
// cmd/qpc, test/). Everything it writes is deterministic: the same
// calls give the same bytes.
package persisttest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
)

// Seed is the identity seed of every data dir built here.
var Seed = bytes.Repeat([]byte{7}, 32)

// Text is the text of inbox message i (from 1).
func Text(i int) string {
	return fmt.Sprintf("message %04d: the quick brown fox jumps over the lazy dog", i)
}

// Identity is the identity of the data dirs built here.
func Identity(t testing.TB) *crypto.Identity {
	t.Helper()
	id, err := crypto.IdentityFromSeed(Seed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// DataDir writes identity.pem and qpc.db with n inbox messages into dir,
// committed 50 to a transaction as the router's group commit does, and
// returns the path of qpc.db.
func DataDir(t testing.TB, dir string, n int) string {
	t.Helper()
	id := Identity(t)
	if err := crypto.SaveIdentity(filepath.Join(dir, "identity.pem"), id); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "qpc.db")
	db, err := persist.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.BindOwner(id.Address().Bytes(), false); err != nil {
		t.Fatal(err)
	}
	box, err := inbox.Open(db.DB)
	if err != nil {
		t.Fatal(err)
	}
	from := crypto.AddressOf(bytes.Repeat([]byte{9}, 32))
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 1; i <= n; {
		err := db.Update(func(tx *bolt.Tx) error {
			for j := 0; j < 50 && i <= n; j, i = j+1, i+1 {
				var mid [16]byte
				copy(mid[:], fmt.Sprintf("id-%013d", i))
				m := &messages.InboxMessage{From: [16]byte(from), Text: []byte(Text(i)), At: at.Add(time.Duration(i) * time.Second), Hops: 1}
				m.ID = mid
				if err := box.AddTx(tx, m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// Copy copies the data dir src into a new temporary dir and returns it.
func Copy(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := in.Stat()
		out, err := os.OpenFile(filepath.Join(dst, e.Name()), os.O_CREATE|os.O_WRONLY|os.O_EXCL, st.Mode().Perm())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// Truncate cuts the file to half its length.
func Truncate(t testing.TB, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// Empty makes the file 0 bytes long.
func Empty(t testing.TB, path string) {
	t.Helper()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
}

// Flip inverts n bytes of the file at positions drawn from a generator
// seeded with seed, past the two meta pages (pageSize each).
func Flip(t testing.TB, path string, n int, seed uint64, pageSize int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	lo := 2 * pageSize
	for i := 0; i < n; i++ {
		p := lo + rng.IntN(len(b)-lo)
		b[p] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// ZeroPageHolding zeroes the page of the file that holds text and returns
// its number.
func ZeroPageHolding(t testing.TB, path, text string, pageSize int) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(text))
	if i < 0 {
		t.Fatalf("%s does not hold %q", path, text)
	}
	pg := i / pageSize
	clear(b[pg*pageSize : (pg+1)*pageSize])
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return pg
}

// Sum is the SHA-256 of the file, to show it was left unchanged.
func Sum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
