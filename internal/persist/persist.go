// Package persist opens the node's bbolt database and owns its schema
// version. Later subsystems (routing table, store-and-forward queue,
// replay windows, FAPP state) keep their buckets in it.
package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
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
	path   string
	report *Report
}

// errTimeout is bbolt's answer when the file lock stays taken.
var errTimeout = bolterrors.ErrTimeout

// Option changes how Open checks the file.
type Option func(*CheckOptions)

// WithCheck replaces StartCheck, the bounds of the check at open.
func WithCheck(o CheckOptions) Option { return func(c *CheckOptions) { *c = o } }

// Open opens (creating if needed) the database at path with mode 0600. If
// another process holds the file lock it returns ErrLocked after
// lockTimeout instead of waiting forever. An existing file is checked
// first (Check, bounded by StartCheck): a damaged one is refused with a
// *DamagedError (errors.Is ErrDamaged) and left as it is, and so is an
// empty one, which bbolt would silently make a new database of.
func Open(path string, lockTimeout time.Duration, opts ...Option) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("persist: create %s: %w", filepath.Dir(path), err)
	}
	if lockTimeout <= 0 {
		lockTimeout = time.Second
	}
	co := StartCheck
	for _, f := range opts {
		f(&co)
	}
	co.LockTimeout = lockTimeout
	var rep *Report
	if _, err := os.Stat(path); err == nil {
		if rep, err = walkCheck(path, co); err != nil {
			return nil, err
		}
		if !rep.OK() {
			return nil, &DamagedError{Path: path, Report: rep}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("persist: %s: %w", path, err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, openError(path, err)
	}
	if rep != nil && rep.BboltCheck == "" {
		// Before anything writes: tx.Check on a read transaction must not
		// run beside a writer.
		start := time.Now()
		err := b.View(func(tx *bolt.Tx) error { runBboltCheck(tx, rep); return nil })
		rep.Elapsed += time.Since(start)
		rep.ElapsedSec = rep.Elapsed.Seconds()
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("persist: check %s: %w", path, err)
		}
		if !rep.OK() {
			b.Close()
			return nil, &DamagedError{Path: path, Report: rep}
		}
	}
	db := &DB{DB: b, path: path, report: rep}
	if err := db.checkSchema(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// CheckReport is what the check at open found (nil for a new file).
func (db *DB) CheckReport() *Report { return db.report }

// Path is the file the database lives in.
func (db *DB) Path() string { return db.path }

// checkSchema writes the schema version into a new file and checks it in
// an existing one, without writing there (a file refused later, for
// belonging to another node, stays as it was).
func (db *DB) checkSchema() error {
	write := false
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if meta == nil || meta.Get(schemaKey) == nil {
			write = true
			return nil
		}
		return db.schemaOK(meta.Get(schemaKey))
	})
	if err != nil || !write {
		return err
	}
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
		return db.schemaOK(v)
	})
}

func (db *DB) schemaOK(v []byte) error {
	if len(v) != 4 {
		return fmt.Errorf("%w: %s: schema_version is %d bytes", ErrSchema, db.path, len(v))
	}
	if got := binary.BigEndian.Uint32(v); got > SchemaVersion {
		return fmt.Errorf("%w: %s has schema %d, this qpc reads up to %d", ErrSchema, db.path, got, SchemaVersion)
	}
	return nil
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

var ownerKey = []byte("node_address")

// ErrOtherNode: the database was written by a node with another identity.
var ErrOtherNode = errors.New("persist: the database belongs to another node")

// Owner is the address of the node that wrote the database, or nil when
// none is recorded (a new file, or one from before addresses were kept).
func (db *DB) Owner() ([]byte, error) {
	var v []byte
	err := db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(metaBucket); b != nil {
			v = append([]byte(nil), b.Get(ownerKey)...)
		}
		return nil
	})
	if len(v) == 0 {
		v = nil
	}
	return v, err
}

// BindOwner records addr as the node the database belongs to. A database
// that already belongs to another address is refused with ErrOtherNode,
// unless takeOver, which records addr instead.
func (db *DB) BindOwner(addr []byte, takeOver bool) error {
	old, err := db.Owner()
	if err != nil {
		return err
	}
	if old != nil && string(old) != string(addr) && !takeOver {
		return fmt.Errorf("%w: %s was written by node %x, not by %x", ErrOtherNode, db.path, old, addr)
	}
	if string(old) == string(addr) {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		return b.Put(ownerKey, addr)
	})
}
