package keys

import (
	"bytes"
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// FuzzVaultOpen: whatever bytes are stored under a record's key (a
// damaged page, another build's record), reading it never panics and
// fails with a typed error, and a record that opens is one this vault
// sealed.
func FuzzVaultOpen(f *testing.F) {
	v, db, _ := newVault(f, seedOf(1))
	db.NoSync = true // a test database: no fsync per input
	good, err := v.seal(BucketGroups, gid(1), []byte("group state"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(gid(1), good)
	f.Add(gid(2), good)
	f.Add(gid(1), good[:len(good)-1])
	f.Add(gid(1), append([]byte{2}, good[1:]...))
	f.Add(gid(1), []byte{})
	f.Add(gid(1), []byte{1})
	f.Add([]byte{}, good)
	f.Fuzz(func(t *testing.T, key, stored []byte) {
		plain, err := v.open(BucketGroups, key, stored)
		if err == nil {
			// Only a record sealed with this seed, in its own place, opens
			// (the seeds hold the only ones; a fuzz worker's differ in
			// their nonce).
			if !bytes.Equal(key, gid(1)) || len(stored) != len(good) || stored[0] != 1 || string(plain) != "group state" {
				t.Fatalf("opened %x under %x as %q", stored, key, plain)
			}
		} else if !errors.Is(err, ErrSealed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadKey) {
			t.Fatalf("untyped error %v", err)
		}
		if len(key) == 0 || len(key) > bolt.MaxKeySize {
			return
		}
		// Through the database: Get and ForEach agree with open, and
		// neither deletes the record.
		putRaw(t, db, BucketKeyPackages, key, stored)
		defer db.Update(func(tx *bolt.Tx) error { return tx.Bucket(dbBucket(BucketKeyPackages)).Delete(key) })
		_, gerr := v.Get(BucketKeyPackages, key)
		damaged, ferr := v.ForEach(BucketKeyPackages, func(k, p []byte) error { return nil })
		if ferr != nil {
			t.Fatalf("foreach: %v", ferr)
		}
		if (gerr == nil) != (len(damaged) == 0) {
			t.Fatalf("get says %v, foreach %+v", gerr, damaged)
		}
		if gerr != nil && !errors.Is(gerr, ErrSealed) && !errors.Is(gerr, ErrTooLarge) && !errors.Is(gerr, ErrBadKey) {
			t.Fatalf("untyped error %v", gerr)
		}
		if !bytes.Equal(raw(t, db, BucketKeyPackages, key), stored) {
			t.Fatal("a read changed the record")
		}
	})
}
