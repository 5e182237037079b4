package crypto

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A write of the replay window that fails: the error is typed, the window
// keeps no accept the store did not take, and no message is ever accepted
// twice — neither one committed before the failure nor, while the store
// is broken, any other.
func TestReplayWindowFailedWrites(t *testing.T) {
	exp := t0.Add(time.Minute)
	// Commit into a read-only transaction: bbolt refuses the Put.
	t.Run("put refused", func(t *testing.T) {
		db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
		w := newWindow(t, db, ReplayLimits{})
		mustAccept(t, w, 1, exp)
		if err := w.CommitNow(); err != nil {
			t.Fatal(err)
		}
		mustAccept(t, w, 2, exp)
		err := db.View(w.Commit)
		if !errors.Is(err, bolt.ErrTxNotWritable) {
			t.Fatalf("Commit in a read-only transaction: %v, want bolt.ErrTxNotWritable", err)
		}
		if err := w.Discard(); err != nil {
			t.Fatal(err)
		}
		// Seq 1 was committed: still refused. Seq 2 was not: it may be
		// accepted (its caller was told the write failed), once.
		if err := w.Accept(t0, addr(1), 1, exp); !errors.Is(err, ErrReplay) {
			t.Fatalf("seq 1 after the failed write: %v, want ErrReplay", err)
		}
		mustAccept(t, w, 2, exp)
		if err := w.Accept(t0, addr(1), 2, exp); !errors.Is(err, ErrReplay) {
			t.Fatalf("seq 2 again: %v, want ErrReplay", err)
		}
		if err := w.CommitNow(); err != nil {
			t.Fatal(err)
		}
		reopened := newWindow(t, db, ReplayLimits{})
		for seq := uint64(1); seq <= 2; seq++ {
			if err := reopened.Check(t0, addr(1), seq, exp); !errors.Is(err, ErrReplay) {
				t.Fatalf("seq %d after reopening: %v, want ErrReplay", seq, err)
			}
		}
	})
	// The bucket is gone under the window: CommitNow fails, its Discard
	// cannot reload, and the window refuses everything (ErrReplayStoreCorrupt)
	// until the bucket is back and a Discard succeeds.
	t.Run("bucket gone", func(t *testing.T) {
		db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
		w := newWindow(t, db, ReplayLimits{})
		mustAccept(t, w, 1, exp)
		if err := w.CommitNow(); err != nil {
			t.Fatal(err)
		}
		var saved []byte
		if err := db.Update(func(tx *bolt.Tx) error {
			k := replayRecordKey(replayKindWindow, addr(1))
			saved = append([]byte(nil), tx.Bucket([]byte(DefaultReplayBucket)).Get(k[:])...)
			return tx.DeleteBucket([]byte(DefaultReplayBucket))
		}); err != nil {
			t.Fatal(err)
		}
		mustAccept(t, w, 2, exp)
		err := w.CommitNow()
		if !errors.Is(err, ErrReplayStoreCorrupt) {
			t.Fatalf("CommitNow without its bucket: %v, want ErrReplayStoreCorrupt", err)
		}
		for seq := uint64(1); seq <= 3; seq++ {
			if err := w.Accept(t0, addr(1), seq, exp); !errors.Is(err, ErrReplayStoreCorrupt) {
				t.Fatalf("Accept seq %d on the broken window: %v, want ErrReplayStoreCorrupt", seq, err)
			}
			if err := w.Check(t0, addr(1), seq, exp); !errors.Is(err, ErrReplayStoreCorrupt) {
				t.Fatalf("Check seq %d on the broken window: %v, want ErrReplayStoreCorrupt", seq, err)
			}
		}
		if err := w.Accept(t0, addr(7), 1, exp); !errors.Is(err, ErrReplayStoreCorrupt) {
			t.Fatalf("another sender on the broken window: %v, want ErrReplayStoreCorrupt", err)
		}
		if err := w.CommitNow(); !errors.Is(err, ErrReplayStoreCorrupt) {
			t.Fatalf("CommitNow on the broken window: %v", err)
		}
		if wr := w.Prepare(); wr.Len() != 0 {
			t.Fatalf("a broken window prepared %d writes", wr.Len())
		}
		if err := db.Update(func(tx *bolt.Tx) error { return w.Commit(tx) }); !errors.Is(err, ErrReplayStoreCorrupt) {
			t.Fatalf("Commit on the broken window: %v", err)
		}
		// The bucket comes back with what was committed: the window works
		// again, seq 1 stays refused, seq 2 (never written) goes once.
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte(DefaultReplayBucket))
			if err != nil {
				return err
			}
			k := replayRecordKey(replayKindWindow, addr(1))
			return b.Put(k[:], saved)
		}); err != nil {
			t.Fatal(err)
		}
		if err := w.Discard(); err != nil {
			t.Fatalf("Discard after the repair: %v", err)
		}
		if err := w.Accept(t0, addr(1), 1, exp); !errors.Is(err, ErrReplay) {
			t.Fatalf("seq 1 after the repair: %v, want ErrReplay", err)
		}
		mustAccept(t, w, 2, exp)
		if err := w.Accept(t0, addr(1), 2, exp); !errors.Is(err, ErrReplay) {
			t.Fatalf("seq 2 twice: %v, want ErrReplay", err)
		}
		if err := w.CommitNow(); err != nil {
			t.Fatal(err)
		}
	})
	// Prepared writes whose bucket went before the transaction ran.
	t.Run("write without bucket", func(t *testing.T) {
		db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
		w := newWindow(t, db, ReplayLimits{})
		mustAccept(t, w, 1, exp)
		wr := w.Prepare()
		if wr.Len() != 1 {
			t.Fatalf("prepared %d writes, want 1", wr.Len())
		}
		err := db.Update(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket([]byte(DefaultReplayBucket)); err != nil {
				return err
			}
			return wr.Write(tx)
		})
		if !errors.Is(err, ErrReplayStoreCorrupt) {
			t.Fatalf("Write without the bucket: %v, want ErrReplayStoreCorrupt", err)
		}
		// The transaction rolled back: the bucket is still there, the record
		// never written; Discard forgets the accept.
		if err := w.Discard(); err != nil {
			t.Fatal(err)
		}
		mustAccept(t, w, 1, exp)
		if err := w.Accept(t0, addr(1), 1, exp); !errors.Is(err, ErrReplay) {
			t.Fatalf("seq 1 twice: %v, want ErrReplay", err)
		}
	})
}

func mustAccept(t *testing.T, w *ReplayWindow, seq uint64, exp time.Time) {
	t.Helper()
	if err := w.Accept(t0, addr(1), seq, exp); err != nil {
		t.Fatalf("accept seq %d: %v", seq, err)
	}
}
