package crypto

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultReplayBucket is the bbolt bucket a BoltReplayStore uses unless
// told otherwise.
const DefaultReplayBucket = "replay"

// BoltReplayStore keeps a ReplayWindow's records in one bbolt bucket of the
// node's database. Each record is one key:
//
//	kind (1 byte) || sender (16) || id (16)  →  expiry (8 bytes, big-endian Unix nanoseconds)
//
// Every Commit is one bbolt transaction.
type BoltReplayStore struct {
	db     *bolt.DB
	bucket []byte
}

const (
	replayKeySize   = 1 + AddressSize + 16
	replayValueSize = 8
)

// NewBoltReplayStore uses (creating it if needed) the bucket named bucket
// (DefaultReplayBucket when empty) in db.
func NewBoltReplayStore(db *bolt.DB, bucket string) (*BoltReplayStore, error) {
	if bucket == "" {
		bucket = DefaultReplayBucket
	}
	s := &BoltReplayStore{db: db, bucket: []byte(bucket)}
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(s.bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("crypto: replay store bucket %q: %w", bucket, err)
	}
	return s, nil
}

func replayRecordKey(e ReplayEntry) []byte {
	k := make([]byte, replayKeySize)
	k[0] = byte(e.Kind)
	copy(k[1:], e.Sender[:])
	copy(k[1+AddressSize:], e.ID[:])
	return k
}

// Load implements ReplayStore. A record of the wrong size or kind is
// ErrReplayStoreCorrupt.
func (s *BoltReplayStore) Load(fn func(ReplayEntry)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(s.bucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrReplayStoreCorrupt, s.bucket)
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != replayKeySize || len(v) != replayValueSize {
				return fmt.Errorf("%w: record %x: key %d bytes, value %d bytes", ErrReplayStoreCorrupt, k, len(k), len(v))
			}
			e := ReplayEntry{Kind: ReplayKind(k[0]), Expiry: time.Unix(0, int64(binary.BigEndian.Uint64(v)))}
			if e.Kind < ReplaySeen || e.Kind > ReplayGlobalFloor {
				return fmt.Errorf("%w: record %x: kind %d", ErrReplayStoreCorrupt, k, k[0])
			}
			copy(e.Sender[:], k[1:])
			copy(e.ID[:], k[1+AddressSize:])
			fn(e)
			return nil
		})
	})
}

// Commit implements ReplayStore in one transaction.
func (s *BoltReplayStore) Commit(put, del []ReplayEntry) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(s.bucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrReplayStoreCorrupt, s.bucket)
		}
		for _, e := range del {
			if err := b.Delete(replayRecordKey(e)); err != nil {
				return err
			}
		}
		for _, e := range put {
			var v [replayValueSize]byte
			binary.BigEndian.PutUint64(v[:], uint64(e.Expiry.UnixNano()))
			if err := b.Put(replayRecordKey(e), v[:]); err != nil {
				return err
			}
		}
		return nil
	})
}
