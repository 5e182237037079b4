package router

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Announce freshness: the newest announce sequence accepted per origin is
// written as it changes, in the router's group commit, not only with the
// table snapshot at a graceful stop — so after a crash a recorded older
// announce is still refused.
//
// Bucket router/fresh: origin(16) → seq(8) || seen(8, Unix nanoseconds).
// A record is useful only while an announce with its sequence could still
// be accepted: sequences are announce times in Unix milliseconds, and the
// announcer refuses announces older than their maximum age, so records
// older than that are pruned.

var freshBucket = []byte("router/fresh")

// freshRecords collects the changes until the next commit.
type freshRecords map[[16]byte][2]uint64 // seq, seen

func (f freshRecords) note(addr [16]byte, seq uint64, now time.Time) {
	if old, ok := f[addr]; ok && old[0] >= seq {
		return
	}
	f[addr] = [2]uint64{seq, uint64(now.UnixNano())}
}

// prepare encodes the collected records into w and forgets them.
func (f freshRecords) prepare(w *writes) {
	for addr, v := range f {
		val := make([]byte, 16)
		binary.BigEndian.PutUint64(val, v[0])
		binary.BigEndian.PutUint64(val[8:], v[1])
		w.put(freshBucket, bytes.Clone(addr[:]), val)
	}
	clear(f)
}

// loadFresh applies the stored records to t. A damaged record is skipped
// (and named in the error); the others still apply.
func loadFresh(db *bolt.DB, t *Table) (int, error) {
	n := 0
	var bad error
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(freshBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 16 || len(v) != 16 {
				if bad == nil {
					bad = fmt.Errorf("router: freshness record %x: %d-byte value, want 16 (skipped)", k, len(v))
				}
				return nil
			}
			var addr [16]byte
			copy(addr[:], k)
			t.NoteSeq(addr, binary.BigEndian.Uint64(v), time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))))
			n++
			return nil
		})
	})
	if err == nil {
		err = bad
	}
	return n, err
}

// staleFresh lists the records of announces older than maxAge at now, to
// be deleted in the next group commit.
func staleFresh(db *bolt.DB, now time.Time, maxAge time.Duration) ([][]byte, error) {
	limit := uint64(now.Add(-maxAge).UnixMilli())
	var doomed [][]byte
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(freshBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) != 16 || binary.BigEndian.Uint64(v) < limit {
				doomed = append(doomed, append([]byte(nil), k...))
			}
			return nil
		})
	})
	return doomed, err
}
