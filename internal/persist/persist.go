// Package persist opens the node's bbolt database and owns its schema
// version. Later subsystems (routing table, store-and-forward queue,
// replay windows, FAPP state) keep their buckets in it.
package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this build reads and writes.
const SchemaVersion uint32 = 1

var (
	metaBucket = []byte("meta")
	schemaKey  = []byte("schema_version")
)

// Errors of the persistence layer.
var (
	// ErrLocked: another running node has the database open.
	ErrLocked = errors.New("persist: database is locked by another running node")
	// ErrSchema: the file was written by a newer qpc.
	ErrSchema = errors.New("persist: unsupported schema version")
)

// DB is the node's database.
type DB struct {
	*bolt.DB
	path string
}

// Open opens (creating if needed) the database at path with mode 0600. If
// another process holds the file lock it returns ErrLocked after
// lockTimeout instead of waiting forever.
func Open(path string, lockTimeout time.Duration) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("persist: create %s: %w", filepath.Dir(path), err)
	}
	if lockTimeout <= 0 {
		lockTimeout = time.Second
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (stop the other node or use another --data-dir)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("persist: open %s: %w", path, err)
	}
	db := &DB{DB: b, path: path}
	if err := db.checkSchema(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// Path is the file the database lives in.
func (db *DB) Path() string { return db.path }

func (db *DB) checkSchema() error {
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return fmt.Errorf("persist: meta bucket: %w", err)
		}
		v := meta.Get(schemaKey)
		if v == nil {
			var buf [4]byte
			binary.BigEndian.PutUint32(buf[:], SchemaVersion)
			return meta.Put(schemaKey, buf[:])
		}
		if len(v) != 4 {
			return fmt.Errorf("%w: %s: schema_version is %d bytes", ErrSchema, db.path, len(v))
		}
		if got := binary.BigEndian.Uint32(v); got > SchemaVersion {
			return fmt.Errorf("%w: %s has schema %d, this qpc reads up to %d", ErrSchema, db.path, got, SchemaVersion)
		}
		return nil
	})
}

// Schema reads the stored schema version.
func (db *DB) Schema() (uint32, error) {
	var v uint32
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(metaBucket).Get(schemaKey)
		if len(b) != 4 {
			return fmt.Errorf("%w: missing", ErrSchema)
		}
		v = binary.BigEndian.Uint32(b)
		return nil
	})
	return v, err
}
