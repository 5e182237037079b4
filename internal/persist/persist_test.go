package persist

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenWritesSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "qpc.db")
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v, err := db.Schema()
	if err != nil || v != SchemaVersion {
		t.Fatalf("schema = %d, %v; want %d", v, err, SchemaVersion)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, time.Second)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	db.Close()
}

func TestOpenLockedByAnotherNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qpc.db")
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// bbolt takes an flock per open file description, so a second open in
	// the same process contends exactly as a second node would.
	_, err = Open(path, 50*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: err = %v, want ErrLocked", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qpc.db")
	db, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], SchemaVersion+1)
		return tx.Bucket(metaBucket).Put(schemaKey, b[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, time.Second); !errors.Is(err, ErrSchema) {
		t.Fatalf("err = %v, want ErrSchema", err)
	}
}
