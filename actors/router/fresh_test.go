package router

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestFreshRecordsRoundTripAndPrune(t *testing.T) {
	db := openTestDB(t)
	now := time.Unix(1_800_000_000, 0)
	f := make(freshRecords)
	old, cur := [16]byte{1}, [16]byte{2}
	f.note(old, uint64(now.Add(-time.Hour).UnixMilli()), now)
	f.note(cur, uint64(now.UnixMilli()), now)
	f.note(cur, uint64(now.Add(-time.Second).UnixMilli()), now) // older: ignored
	if err := db.Update(func(tx *bolt.Tx) error { return writeFresh(tx, f) }); err != nil {
		t.Fatal(err)
	}
	tb := NewTable(TableConfig{})
	if n, err := loadFresh(db, tb); err != nil || n != 2 {
		t.Fatalf("loaded %d: %v", n, err)
	}
	if s, ok := tb.Seq(cur); !ok || s != uint64(now.UnixMilli()) {
		t.Fatalf("seq of cur %d %v", s, ok)
	}
	if n, err := pruneFresh(db, now, 30*time.Minute); err != nil || n != 1 {
		t.Fatalf("pruned %d: %v", n, err)
	}
	tb = NewTable(TableConfig{})
	if n, _ := loadFresh(db, tb); n != 1 {
		t.Fatalf("after prune %d records", n)
	}
	if _, ok := tb.Seq(old); ok {
		t.Fatal("the pruned record came back")
	}
	// A bad record is a clear error, not a panic.
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(freshBucket).Put(make([]byte, 16), []byte{1}) })
	if _, err := loadFresh(db, NewTable(TableConfig{})); err == nil {
		t.Fatal("a corrupt record loaded")
	}
}
