package keys

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/quicprochat/qpc/internal/persist"
)

// The vault's buckets, as Vault's methods name them. In the database each
// is kept as "keys/<name>", beside the other packages' buckets.
const (
	BucketGroups      = "groups"      // 16-byte group id → the group's metadata and state
	BucketKeyPackages = "keypackages" // 16-byte KeyPackage hash → our KeyPackage with its private keys
	BucketGroupMeta   = "group-meta"  // for what the group state does not hold
)

var vaultBuckets = []string{BucketGroups, BucketKeyPackages, BucketGroupMeta}

// dbBucket is the database bucket of a vault bucket.
func dbBucket(name string) []byte { return []byte("keys/" + name) }

const (
	// MaxRecordSize bounds the plain bytes of one record; a stored value
	// longer than it with the seal's overhead is refused before it is
	// decrypted.
	MaxRecordSize = 2 << 20
	// MaxKeySize bounds a record's key.
	MaxKeySize = 255

	vaultVersion = 1
	vaultInfo    = "qpc/keys vault v1"
	// SealOverhead is what sealing adds to the plain bytes: the version
	// byte, the nonce and the tag.
	SealOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
)

// Errors of the vault.
var (
	ErrNotFound = errors.New("keys: vault record not found")
	// ErrSealed: the record does not open: it is damaged, was sealed by
	// another node's key or under another key or bucket, or has a
	// version this build does not read.
	ErrSealed = errors.New("keys: vault record does not open")
	// ErrTooLarge: the record is larger than MaxRecordSize.
	ErrTooLarge = errors.New("keys: vault record too large")
	// ErrBadKey: the record's key is empty or longer than MaxKeySize.
	ErrBadKey = errors.New("keys: bad vault record key")
	// ErrUnknownBucket: not one of the vault's buckets.
	ErrUnknownBucket = errors.New("keys: unknown vault bucket")
	// ErrSeed: the seed is not a 32-byte Ed25519 seed.
	ErrSeed = errors.New("keys: vault seed must be a 32-byte Ed25519 seed")
)

// DamagedRecord is a record ForEach could not open. It is left in the
// database.
type DamagedRecord struct {
	Bucket string
	Key    []byte
	Err    error // wraps ErrSealed, ErrTooLarge or ErrBadKey
}

// Vault keeps records encrypted at rest in the node's database: group
// state and our own KeyPackages, which hold private keys. Its key is
// derived from the node's Ed25519 seed (HKDF-SHA256, info "qpc/keys vault
// v1"); each record is sealed with XChaCha20-Poly1305 under a random nonce,
// and authenticated with its bucket and key, so a record moved elsewhere
// does not open. A stored value is version(1) ‖ nonce(24) ‖ ciphertext.
//
// A Vault is safe for concurrent use (bbolt serialises the writes).
type Vault struct {
	db   *persist.DB
	aead cipher.AEAD
}

// OpenVault opens the vault in db with the key derived from seed (the
// node's Ed25519 private key seed, crypto.Identity.PrivateKey().Seed()),
// creating its buckets.
func OpenVault(db *persist.DB, seed []byte) (*Vault, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrSeed, len(seed))
	}
	key, err := hkdf.Key(sha256.New, seed, nil, vaultInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("keys: vault key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("keys: vault cipher: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range vaultBuckets {
			if _, err := tx.CreateBucketIfNotExists(dbBucket(name)); err != nil {
				return fmt.Errorf("bucket %s: %w", dbBucket(name), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keys: open vault: %w", err)
	}
	return &Vault{db: db, aead: aead}, nil
}

func checkBucket(name string) error {
	for _, b := range vaultBuckets {
		if name == b {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrUnknownBucket, name)
}

func checkKey(key []byte) error {
	if len(key) == 0 || len(key) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrBadKey, len(key), MaxKeySize)
	}
	return nil
}

// txBucket is name's bucket in tx, after checking name and key.
func txBucket(tx *bolt.Tx, name string, key []byte) (*bolt.Bucket, error) {
	if err := checkBucket(name); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	b := tx.Bucket(dbBucket(name))
	if b == nil {
		return nil, fmt.Errorf("keys: vault bucket %s missing", dbBucket(name))
	}
	return b, nil
}

// aad binds a record to its place: database bucket ‖ 0x00 ‖ key.
func aad(bucket string, key []byte) []byte {
	b := dbBucket(bucket)
	out := make([]byte, 0, len(b)+1+len(key))
	out = append(out, b...)
	out = append(out, 0)
	return append(out, key...)
}

// seal is the stored value of plain under bucket and key.
func (v *Vault) seal(bucket string, key, plain []byte) ([]byte, error) {
	if len(plain) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(plain), MaxRecordSize)
	}
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, SealOverhead+len(plain))
	out[0] = vaultVersion
	nonce := out[1:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keys: vault nonce: %w", err)
	}
	return v.aead.Seal(out, nonce, plain, aad(bucket, key)), nil
}

// open is the plain bytes of a stored value; the result is a new slice.
func (v *Vault) open(bucket string, key, stored []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if len(stored) > MaxRecordSize+SealOverhead {
		return nil, fmt.Errorf("%w: %d bytes stored, at most %d", ErrTooLarge, len(stored), MaxRecordSize+SealOverhead)
	}
	if len(stored) < SealOverhead {
		return nil, fmt.Errorf("%w: %d bytes stored, a sealed record has at least %d", ErrSealed, len(stored), SealOverhead)
	}
	if stored[0] != vaultVersion {
		return nil, fmt.Errorf("%w: record version %d, this build reads %d", ErrSealed, stored[0], vaultVersion)
	}
	nonce, ct := stored[1:1+chacha20poly1305.NonceSizeX], stored[1+chacha20poly1305.NonceSizeX:]
	plain, err := v.aead.Open(make([]byte, 0, len(ct)-chacha20poly1305.Overhead), nonce, ct, aad(bucket, key))
	if err != nil {
		return nil, fmt.Errorf("%w: damaged, or sealed by another key or for another place", ErrSealed)
	}
	return plain, nil
}

// PutTx seals plain and stores it under key in bucket, inside the caller's
// transaction.
func (v *Vault) PutTx(tx *bolt.Tx, bucket string, key, plain []byte) error {
	b, err := txBucket(tx, bucket, key)
	if err != nil {
		return err
	}
	sealed, err := v.seal(bucket, key, plain)
	if err != nil {
		return err
	}
	if err := b.Put(key, sealed); err != nil {
		return fmt.Errorf("keys: vault put %s/%x: %w", bucket, key, err)
	}
	return nil
}

// Put seals plain and stores it under key in bucket.
func (v *Vault) Put(bucket string, key, plain []byte) error {
	// Seal before the write transaction: it holds the database's only
	// writer.
	if err := checkBucket(bucket); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	sealed, err := v.seal(bucket, key, plain)
	if err != nil {
		return err
	}
	return v.db.Update(func(tx *bolt.Tx) error {
		b, err := txBucket(tx, bucket, key)
		if err != nil {
			return err
		}
		return b.Put(key, sealed)
	})
}

// Get opens the record under key in bucket: ErrNotFound when there is
// none, ErrSealed or ErrTooLarge when it does not open (it is left as it
// is).
func (v *Vault) Get(bucket string, key []byte) ([]byte, error) {
	var plain []byte
	err := v.db.View(func(tx *bolt.Tx) error {
		b, err := txBucket(tx, bucket, key)
		if err != nil {
			return err
		}
		stored := b.Get(key)
		if stored == nil {
			return fmt.Errorf("%w: %s/%x", ErrNotFound, bucket, key)
		}
		plain, err = v.open(bucket, key, stored)
		if err != nil {
			return fmt.Errorf("%s/%x: %w", bucket, key, err)
		}
		return nil
	})
	return plain, err
}

// Delete removes the record under key in bucket; a missing one is no
// error.
func (v *Vault) Delete(bucket string, key []byte) error {
	return v.db.Update(func(tx *bolt.Tx) error { return v.DeleteTx(tx, bucket, key) })
}

// DeleteTx removes the record under key in bucket inside the caller's
// transaction; a missing one is no error.
func (v *Vault) DeleteTx(tx *bolt.Tx, bucket string, key []byte) error {
	b, err := txBucket(tx, bucket, key)
	if err != nil {
		return err
	}
	if err := b.Delete(key); err != nil {
		return fmt.Errorf("keys: vault delete %s/%x: %w", bucket, key, err)
	}
	return nil
}

type vaultRecord struct{ key, plain []byte }

// ForEach opens every record of bucket, in key order, and calls fn with
// each that opens. A record that does not open (a damaged page, another
// node's key, a version this build does not read) is reported in damaged
// and left in the database; the others are still passed to fn. fn runs
// after the read transaction has ended, so it may write to the vault; the
// slices are its own. An error from fn stops the walk and is returned.
func (v *Vault) ForEach(bucket string, fn func(key, plain []byte) error) (damaged []DamagedRecord, err error) {
	if err := checkBucket(bucket); err != nil {
		return nil, err
	}
	var recs []vaultRecord
	err = v.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(dbBucket(bucket))
		if b == nil {
			return fmt.Errorf("keys: vault bucket %s missing", dbBucket(bucket))
		}
		c := b.Cursor()
		for k, stored := c.First(); k != nil; k, stored = c.Next() {
			key := append([]byte(nil), k...)
			if stored == nil {
				damaged = append(damaged, DamagedRecord{Bucket: bucket, Key: key, Err: fmt.Errorf("%w: a nested bucket, not a record", ErrSealed)})
				continue
			}
			plain, err := v.open(bucket, key, stored)
			if err != nil {
				damaged = append(damaged, DamagedRecord{Bucket: bucket, Key: key, Err: err})
				continue
			}
			recs = append(recs, vaultRecord{key, plain})
		}
		return nil
	})
	if err != nil {
		return damaged, err
	}
	for _, r := range recs {
		if err := fn(r.key, r.plain); err != nil {
			return damaged, err
		}
	}
	return damaged, nil
}
