package keys

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/internal/persist"
)

func seedOf(b byte) []byte { return bytes.Repeat([]byte{b}, ed25519.SeedSize) }

func openDB(t testing.TB, path string) *persist.DB {
	t.Helper()
	db, err := persist.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newVault(t testing.TB, seed []byte) (*Vault, *persist.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qpc.db")
	db := openDB(t, path)
	t.Cleanup(func() { db.Close() })
	v, err := OpenVault(db, seed)
	if err != nil {
		t.Fatal(err)
	}
	return v, db, path
}

func gid(i int) []byte { h := hash(i); return h[:] }

// raw is the stored value under key in bucket, nil when there is none.
func raw(t testing.TB, db *persist.DB, bucket string, key []byte) []byte {
	t.Helper()
	var out []byte
	if err := db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(dbBucket(bucket)).Get(key); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func putRaw(t testing.TB, db *persist.DB, bucket string, key, val []byte) {
	t.Helper()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(dbBucket(bucket)).Put(key, val) }); err != nil {
		t.Fatal(err)
	}
}

func TestVaultRoundTrip(t *testing.T) {
	v, db, _ := newVault(t, seedOf(1))
	state := []byte("group state with private keys")
	if err := v.Put(BucketGroups, gid(1), state); err != nil {
		t.Fatal(err)
	}
	got, err := v.Get(BucketGroups, gid(1))
	if err != nil || !bytes.Equal(got, state) {
		t.Fatalf("get: %q %v", got, err)
	}
	stored := raw(t, db, BucketGroups, gid(1))
	if len(stored) != SealOverhead+len(state) || stored[0] != 1 || bytes.Contains(stored, []byte("private")) {
		t.Fatalf("stored %x: want version 1, nonce, ciphertext", stored)
	}
	// A new nonce every write.
	if err := v.Put(BucketGroups, gid(1), state); err != nil {
		t.Fatal(err)
	}
	if again := raw(t, db, BucketGroups, gid(1)); bytes.Equal(again[1:25], stored[1:25]) || bytes.Equal(again, stored) {
		t.Fatal("the nonce was reused")
	}
	// Empty plain bytes are a record too.
	if err := v.Put(BucketKeyPackages, gid(2), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := v.Get(BucketKeyPackages, gid(2)); err != nil || len(got) != 0 {
		t.Fatalf("empty record: %q %v", got, err)
	}
	if _, err := v.Get(BucketGroups, gid(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing record: %v", err)
	}
	if err := v.Delete(BucketGroups, gid(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(BucketGroups, gid(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
	if err := v.Delete(BucketGroups, gid(1)); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
}

func TestVaultTx(t *testing.T) {
	v, db, _ := newVault(t, seedOf(1))
	err := db.Update(func(tx *bolt.Tx) error {
		if err := v.PutTx(tx, BucketGroups, gid(1), []byte("a")); err != nil {
			return err
		}
		return v.PutTx(tx, BucketGroupMeta, gid(1), []byte("b"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Get(BucketGroupMeta, gid(1)); err != nil || string(got) != "b" {
		t.Fatalf("%q %v", got, err)
	}
	// A failed transaction writes nothing.
	boom := errors.New("boom")
	err = db.Update(func(tx *bolt.Tx) error {
		if err := v.DeleteTx(tx, BucketGroups, gid(1)); err != nil {
			return err
		}
		if err := v.PutTx(tx, BucketGroups, gid(2), []byte("c")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got, err := v.Get(BucketGroups, gid(1)); err != nil || string(got) != "a" {
		t.Fatalf("rolled back delete: %q %v", got, err)
	}
	if _, err := v.Get(BucketGroups, gid(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rolled back put: %v", err)
	}
}

func TestVaultRefuses(t *testing.T) {
	v, db, _ := newVault(t, seedOf(1))
	if _, err := OpenVault(db, seedOf(1)[:31]); !errors.Is(err, ErrSeed) {
		t.Fatalf("short seed: %v", err)
	}
	if err := v.Put("inbox", gid(1), []byte("x")); !errors.Is(err, ErrUnknownBucket) {
		t.Fatalf("unknown bucket: %v", err)
	}
	if err := v.Put(BucketGroups, nil, []byte("x")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("empty key: %v", err)
	}
	if err := v.Put(BucketGroups, make([]byte, MaxKeySize+1), []byte("x")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("long key: %v", err)
	}
	if err := v.Put(BucketGroups, gid(1), make([]byte, MaxRecordSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	err := db.Update(func(tx *bolt.Tx) error { return v.PutTx(tx, BucketGroups, gid(1), make([]byte, MaxRecordSize+1)) })
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large in a transaction: %v", err)
	}
	if raw(t, db, BucketGroups, gid(1)) != nil {
		t.Fatal("a refused record was stored")
	}
	if err := v.Put(BucketGroups, gid(1), make([]byte, MaxRecordSize)); err != nil {
		t.Fatalf("exactly MaxRecordSize: %v", err)
	}
	// A stored value over the bound is refused before it is decrypted.
	putRaw(t, db, BucketGroups, gid(2), append([]byte{1}, make([]byte, MaxRecordSize+SealOverhead)...))
	if _, err := v.Get(BucketGroups, gid(2)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("stored value too large: %v", err)
	}
}

// TestVaultOtherSeed: a record sealed by another node's identity does not
// open, and stays.
func TestVaultOtherSeed(t *testing.T) {
	v, db, _ := newVault(t, seedOf(1))
	if err := v.Put(BucketKeyPackages, gid(1), []byte("our KeyPackage")); err != nil {
		t.Fatal(err)
	}
	other, err := OpenVault(db, seedOf(2))
	if err != nil {
		t.Fatal(err)
	}
	before := raw(t, db, BucketKeyPackages, gid(1))
	if _, err := other.Get(BucketKeyPackages, gid(1)); !errors.Is(err, ErrSealed) {
		t.Fatalf("another seed: %v", err)
	}
	damaged, err := other.ForEach(BucketKeyPackages, func(k, p []byte) error { t.Fatalf("opened %x", k); return nil })
	if err != nil || len(damaged) != 1 || !errors.Is(damaged[0].Err, ErrSealed) {
		t.Fatalf("foreach with another seed: %v %+v", err, damaged)
	}
	if !bytes.Equal(raw(t, db, BucketKeyPackages, gid(1)), before) {
		t.Fatal("a failed read changed the record")
	}
	if got, err := v.Get(BucketKeyPackages, gid(1)); err != nil || string(got) != "our KeyPackage" {
		t.Fatalf("the right seed after a failed read: %q %v", got, err)
	}
}

// TestVaultMovedRecord: a record copied under another key or into another
// bucket does not open there.
func TestVaultMovedRecord(t *testing.T) {
	v, db, _ := newVault(t, seedOf(1))
	if err := v.Put(BucketGroups, gid(1), []byte("group 1")); err != nil {
		t.Fatal(err)
	}
	stored := raw(t, db, BucketGroups, gid(1))
	putRaw(t, db, BucketGroups, gid(2), stored)
	putRaw(t, db, BucketGroupMeta, gid(1), stored)
	putRaw(t, db, BucketKeyPackages, gid(1), stored)
	for _, c := range []struct {
		bucket string
		key    []byte
	}{{BucketGroups, gid(2)}, {BucketGroupMeta, gid(1)}, {BucketKeyPackages, gid(1)}} {
		if _, err := v.Get(c.bucket, c.key); !errors.Is(err, ErrSealed) {
			t.Fatalf("moved to %s/%x: %v", c.bucket, c.key, err)
		}
	}
	if got, err := v.Get(BucketGroups, gid(1)); err != nil || string(got) != "group 1" {
		t.Fatalf("in its place: %q %v", got, err)
	}
}

func TestVaultUnknownVersion(t *testing.T) {
	v, db, _ := newVault(t, seedOf(1))
	if err := v.Put(BucketGroups, gid(1), []byte("x")); err != nil {
		t.Fatal(err)
	}
	stored := raw(t, db, BucketGroups, gid(1))
	stored[0] = 2
	putRaw(t, db, BucketGroups, gid(1), stored)
	if _, err := v.Get(BucketGroups, gid(1)); !errors.Is(err, ErrSealed) || !bytes.Contains([]byte(err.Error()), []byte("version 2")) {
		t.Fatalf("version 2: %v", err)
	}
}

// TestVaultFlippedByteOnDisk: one byte of one record flipped in the file
// (bbolt keeps no checksum of values, so the database still opens): ForEach
// reports that record as damaged and returns all the others, and nothing
// is deleted.
func TestVaultFlippedByteOnDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qpc.db")
	db := openDB(t, path)
	v, err := OpenVault(db, seedOf(1))
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	// One transaction: the file holds one copy of each record (bbolt
	// copies pages on write).
	if err := db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			if err := v.PutTx(tx, BucketGroups, gid(i), fmt.Appendf(nil, "state of group %d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	victim := raw(t, db, BucketGroups, gid(17))
	db.Close()

	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(file, victim)
	if at < 0 || bytes.Index(file[at+1:], victim) >= 0 {
		t.Fatal("the record is not in the file once")
	}
	file[at+len(victim)-20] ^= 0x01 // in the ciphertext
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, path)
	defer db.Close()
	v, err = OpenVault(db, seedOf(1))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	damaged, err := v.ForEach(BucketGroups, func(k, p []byte) error {
		seen[string(k)] = string(p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(damaged) != 1 || !bytes.Equal(damaged[0].Key, gid(17)) || damaged[0].Bucket != BucketGroups || !errors.Is(damaged[0].Err, ErrSealed) {
		t.Fatalf("damaged %+v", damaged)
	}
	if len(seen) != n-1 {
		t.Fatalf("%d records came back, want %d", len(seen), n-1)
	}
	for i := range n {
		if i == 17 {
			continue
		}
		if seen[string(gid(i))] != fmt.Sprintf("state of group %d", i) {
			t.Fatalf("record %d came back as %q", i, seen[string(gid(i))])
		}
	}
	if _, err := v.Get(BucketGroups, gid(17)); !errors.Is(err, ErrSealed) {
		t.Fatalf("get of the damaged record: %v", err)
	}
	// Nothing was deleted: the damaged record is still there as it was.
	flipped := raw(t, db, BucketGroups, gid(17))
	if len(flipped) != len(victim) || bytes.Equal(flipped, victim) {
		t.Fatalf("the damaged record is gone or changed: %x", flipped)
	}
	var keys int
	db.View(func(tx *bolt.Tx) error { keys = tx.Bucket(dbBucket(BucketGroups)).Stats().KeyN; return nil })
	if keys != n {
		t.Fatalf("%d records left of %d", keys, n)
	}
}

func TestVaultForEach(t *testing.T) {
	v, _, _ := newVault(t, seedOf(1))
	for i := range 5 {
		if err := v.Put(BucketKeyPackages, gid(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// fn may write to the vault: it runs outside the read transaction.
	var order []byte
	damaged, err := v.ForEach(BucketKeyPackages, func(k, p []byte) error {
		order = append(order, p[0])
		return v.Delete(BucketKeyPackages, k)
	})
	if err != nil || len(damaged) != 0 || !bytes.Equal(order, []byte{0, 1, 2, 3, 4}) {
		t.Fatalf("%v %+v %v", err, damaged, order)
	}
	if _, err := v.Get(BucketKeyPackages, gid(0)); !errors.Is(err, ErrNotFound) {
		t.Fatal("fn's delete was lost")
	}
	// An error from fn stops the walk.
	for i := range 5 {
		v.Put(BucketKeyPackages, gid(i), []byte{byte(i)})
	}
	stop, calls := errors.New("stop"), 0
	if _, err := v.ForEach(BucketKeyPackages, func(k, p []byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("%v after %d calls", err, calls)
	}
	if _, err := v.ForEach("nope", func(k, p []byte) error { return nil }); !errors.Is(err, ErrUnknownBucket) {
		t.Fatal(err)
	}
}

// TestVaultReopen: the key comes from the seed alone; records written
// before a restart open after it.
func TestVaultReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qpc.db")
	db := openDB(t, path)
	v, err := OpenVault(db, seedOf(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Put(BucketGroups, gid(1), []byte("kept")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, path)
	defer db.Close()
	v, err = OpenVault(db, seedOf(3))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Get(BucketGroups, gid(1)); err != nil || string(got) != "kept" {
		t.Fatalf("%q %v", got, err)
	}
}
