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
	oldKey, cur := [16]byte{1}, [16]byte{2}
	f.note(oldKey, uint64(now.Add(-time.Hour).UnixMilli()), now)
	f.note(cur, uint64(now.UnixMilli()), now)
	f.note(cur, uint64(now.Add(-time.Second).UnixMilli()), now) // older: ignored
	var w writes
	f.prepare(&w)
	if len(f) != 0 {
		t.Fatal("prepare kept the records")
	}
	if err := db.Update(w.apply); err != nil {
		t.Fatal(err)
	}
	tb := NewTable(TableConfig{})
	if n, err := loadFresh(db, tb); err != nil || n != 2 {
		t.Fatalf("loaded %d: %v", n, err)
	}
	if s, ok := tb.Seq(cur); !ok || s != uint64(now.UnixMilli()) {
		t.Fatalf("seq of cur %d %v", s, ok)
	}
	old, err := staleFresh(db, now, 30*time.Minute)
	if err != nil || len(old) != 1 || string(old[0]) != string(oldKey[:]) {
		t.Fatalf("stale %x: %v", old, err)
	}
	var del writes
	del.del(freshBucket, old[0])
	if err := db.Update(del.apply); err != nil {
		t.Fatal(err)
	}
	tb = NewTable(TableConfig{})
	if n, _ := loadFresh(db, tb); n != 1 {
		t.Fatalf("after prune %d records", n)
	}
	if _, ok := tb.Seq(oldKey); ok {
		t.Fatal("the pruned record came back")
	}
	// A bad record is a clear error, not a panic.
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(freshBucket).Put(make([]byte, 16), []byte{1}) })
	if _, err := loadFresh(db, NewTable(TableConfig{})); err == nil {
		t.Fatal("a corrupt record loaded")
	}
}
