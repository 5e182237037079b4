package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Unix(1_700_000_000, 0)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func dest(b byte) [16]byte { return [16]byte{0xde, b} }
func fid(i int) [16]byte   { return [16]byte{0xf0, byte(i), byte(i >> 8)} }

func item(d byte, i int, expiry int) Item {
	return Item{Dest: dest(d), ID: fid(i), Frame: []byte(fmt.Sprintf("frame %d for %d", i, d)), Expiry: sec(expiry)}
}

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newQueue(t *testing.T, lim Limits) (*Queue, *bolt.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qpc.db")
	db := openDB(t, path)
	t.Cleanup(func() { db.Close() })
	q, err := NewQueue(db, lim)
	if err != nil {
		t.Fatal(err)
	}
	return q, db, path
}

func ids(items []Item) []int {
	var out []int
	for _, it := range items {
		out = append(out, int(it.ID[1])|int(it.ID[2])<<8)
	}
	return out
}

func TestQueueFIFOPerDestination(t *testing.T) {
	q, _, _ := newQueue(t, Limits{})
	for i, d := range []byte{1, 2, 1, 1, 2} {
		if err := q.Put(item(d, i, 100), sec(0)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := q.Peek(dest(1), 0, sec(0))
	if err != nil || !slices.Equal(ids(got), []int{0, 2, 3}) {
		t.Fatalf("Peek(1) = %v, %v; want [0 2 3]", ids(got), err)
	}
	if !bytes.Equal(got[0].Frame, []byte("frame 0 for 1")) || !got[0].Expiry.Equal(sec(100)) || got[0].Dest != dest(1) {
		t.Fatalf("item round trip: %+v", got[0])
	}
	if got, _ := q.Peek(dest(1), 2, sec(0)); !slices.Equal(ids(got), []int{0, 2}) {
		t.Fatalf("Peek(1, max 2) = %v", ids(got))
	}
	if q.Len() != 5 || q.LenFor(dest(1)) != 3 || q.LenFor(dest(2)) != 2 || q.LenFor(dest(3)) != 0 {
		t.Fatalf("Len %d LenFor %d/%d", q.Len(), q.LenFor(dest(1)), q.LenFor(dest(2)))
	}
	taken, err := q.Take(dest(2), 1, sec(0))
	if err != nil || !slices.Equal(ids(taken), []int{1}) {
		t.Fatalf("Take(2, 1) = %v, %v", ids(taken), err)
	}
	if taken, _ = q.Take(dest(2), 0, sec(0)); !slices.Equal(ids(taken), []int{4}) {
		t.Fatalf("Take(2) = %v", ids(taken))
	}
	if q.LenFor(dest(2)) != 0 || len(q.Destinations()) != 1 {
		t.Fatalf("after taking all of 2: LenFor %d, destinations %x", q.LenFor(dest(2)), q.Destinations())
	}
}

func TestQueuePeekAckDeletesOnlyWhatWasDelivered(t *testing.T) {
	q, _, _ := newQueue(t, Limits{})
	for i := range 3 {
		q.Put(item(1, i, 100), sec(0))
	}
	q.Put(item(2, 9, 100), sec(0))
	got, _ := q.Peek(dest(1), 0, sec(0))
	// Frame 1 failed to send; 0 and 2 went out. An ack naming another
	// destination's frame, or an unknown one, does nothing.
	n, err := q.Ack(dest(1), got[0].ID, got[2].ID, fid(9), fid(77))
	if err != nil || n != 2 {
		t.Fatalf("Ack = %d, %v; want 2", n, err)
	}
	if got, _ := q.Peek(dest(1), 0, sec(0)); !slices.Equal(ids(got), []int{1}) {
		t.Fatalf("left for 1: %v, want [1]", ids(got))
	}
	if q.LenFor(dest(2)) != 1 || q.Len() != 2 {
		t.Fatalf("Len %d, LenFor(2) %d", q.Len(), q.LenFor(dest(2)))
	}
	if n, _ := q.Ack(dest(1), got[0].ID); n != 0 {
		t.Fatalf("second ack of the same id removed %d", n)
	}
	// An acked id can be stored again.
	if err := q.Put(item(1, 0, 100), sec(0)); err != nil {
		t.Fatalf("Put after ack: %v", err)
	}
}

func TestQueueRefusals(t *testing.T) {
	q, _, _ := newQueue(t, Limits{PerDest: 2, Total: 3, TotalBytes: 100, MaxFrame: 40})
	big := item(5, 50, 100)
	big.Frame = make([]byte, 41)
	steps := []struct {
		name string
		it   Item
		want error
	}{
		{"first", item(1, 1, 100), nil},
		{"duplicate id", item(1, 1, 100), ErrDuplicate},
		{"duplicate id for another destination", item(2, 1, 100), ErrDuplicate},
		{"expires now", item(1, 2, 10), ErrExpired},
		{"expired", item(1, 2, 5), ErrExpired},
		{"too large", big, ErrTooLarge},
		{"second for 1", item(1, 2, 100), nil},
		{"third for 1: per-destination cap", item(1, 3, 100), ErrFull},
		{"other destination", item(2, 4, 100), nil},
		{"total cap", item(3, 5, 100), ErrFull},
		{"duplicate when full is still a duplicate", item(3, 4, 100), ErrDuplicate},
	}
	for _, s := range steps {
		if err := q.Put(s.it, sec(10)); !errors.Is(err, s.want) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
	}
	if q.Len() != 3 {
		t.Fatalf("Len %d, want 3", q.Len())
	}
}

func TestQueueByteCap(t *testing.T) {
	q, _, _ := newQueue(t, Limits{TotalBytes: 30})
	a := Item{Dest: dest(1), ID: fid(1), Frame: make([]byte, 20), Expiry: sec(100)}
	b := Item{Dest: dest(2), ID: fid(2), Frame: make([]byte, 11), Expiry: sec(100)}
	if err := q.Put(a, sec(0)); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(b, sec(0)); !errors.Is(err, ErrFull) {
		t.Fatalf("31 bytes under a 30-byte cap: %v", err)
	}
	b.Frame = b.Frame[:10]
	if err := q.Put(b, sec(0)); err != nil || q.Bytes() != 30 {
		t.Fatalf("exactly at the cap: %v, Bytes %d", err, q.Bytes())
	}
}

func TestQueueExpiry(t *testing.T) {
	q, db, _ := newQueue(t, Limits{})
	q.Put(item(1, 1, 50), sec(0))
	q.Put(item(1, 2, 20), sec(0))
	q.Put(item(1, 3, 80), sec(0))
	q.Put(item(2, 4, 20), sec(0))
	// Peek hides what has expired; Expire removes it.
	if got, _ := q.Peek(dest(1), 0, sec(20)); !slices.Equal(ids(got), []int{1, 3}) {
		t.Fatalf("Peek at 20s = %v, want [1 3]", ids(got))
	}
	if n, err := q.Expire(sec(20)); err != nil || n != 2 {
		t.Fatalf("Expire(20s) = %d, %v; want 2", n, err)
	}
	if q.Len() != 2 || q.LenFor(dest(2)) != 0 {
		t.Fatalf("Len %d LenFor(2) %d", q.Len(), q.LenFor(dest(2)))
	}
	// Take drops the expired frames it passes.
	got, _ := q.Take(dest(1), 0, sec(60))
	if !slices.Equal(ids(got), []int{3}) || q.Len() != 0 {
		t.Fatalf("Take at 60s = %v, Len %d", ids(got), q.Len())
	}
	// Nothing is left in any bucket, indexes included.
	db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{framesBucket, idsBucket, expiryBucket} {
			if n := tx.Bucket(b).Stats().KeyN; n != 0 {
				t.Errorf("bucket %s has %d keys left", b, n)
			}
		}
		return nil
	})
}

func TestQueueSurvivesCloseAndReopen(t *testing.T) {
	q, db, path := newQueue(t, Limits{PerDest: 3})
	for i := range 3 {
		q.Put(item(1, i, 100), sec(0))
	}
	q.Put(item(2, 7, 100), sec(0))
	q.Ack(dest(1), fid(0))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, path)
	defer db.Close()
	q, err := NewQueue(db, Limits{PerDest: 3})
	if err != nil {
		t.Fatal(err)
	}
	if q.Len() != 3 || q.LenFor(dest(1)) != 2 || q.Bytes() != int64(3*len("frame 1 for 1")) {
		t.Fatalf("after reopen: Len %d LenFor(1) %d Bytes %d", q.Len(), q.LenFor(dest(1)), q.Bytes())
	}
	if got, _ := q.Peek(dest(1), 0, sec(0)); !slices.Equal(ids(got), []int{1, 2}) {
		t.Fatalf("after reopen Peek(1) = %v", ids(got))
	}
	// Dedup and order carry over: a duplicate is refused, a new frame
	// queues behind the old ones.
	if err := q.Put(item(1, 2, 100), sec(0)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate after reopen: %v", err)
	}
	if err := q.Put(item(1, 9, 100), sec(0)); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Peek(dest(1), 0, sec(0)); !slices.Equal(ids(got), []int{1, 2, 9}) {
		t.Fatalf("Peek(1) = %v, want [1 2 9]", ids(got))
	}
	if err := q.Put(item(1, 10, 100), sec(0)); !errors.Is(err, ErrFull) {
		t.Fatalf("cap after reopen: %v", err)
	}
}

func TestQueueRefusesCorruptRecordsAtOpen(t *testing.T) {
	_, db, _ := newQueue(t, Limits{})
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(framesBucket).Put([]byte("bad"), []byte{9}) })
	if _, err := NewQueue(db, Limits{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt record: %v, want ErrCorrupt", err)
	}
}

// TestQueueMatchesModel runs random puts, takes, acks and expiries against
// a plain in-memory model, reopening the database now and then.
func TestQueueMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	lim := Limits{PerDest: 4, Total: 10, TotalBytes: 1 << 20, MaxFrame: 64}
	q, db, path := newQueue(t, lim)
	model := map[[16]byte][]Item{}
	held := func(id [16]byte) bool {
		for _, its := range model {
			for _, it := range its {
				if it.ID == id {
					return true
				}
			}
		}
		return false
	}
	total := func() int {
		n := 0
		for _, its := range model {
			n += len(its)
		}
		return n
	}
	live := func(its []Item, now time.Time) []Item {
		var out []Item
		for _, it := range its {
			if it.Expiry.After(now) {
				out = append(out, it)
			}
		}
		return out
	}
	now := t0
	for step := range 1500 {
		now = now.Add(time.Duration(rng.IntN(3)) * time.Second)
		d := dest(byte(rng.IntN(4)))
		switch op := rng.IntN(10); {
		case op < 5:
			it := Item{Dest: d, ID: fid(rng.IntN(40)), Frame: []byte{byte(step)}, Expiry: now.Add(time.Duration(rng.IntN(30)-2) * time.Second)}
			err := q.Put(it, now)
			var want error
			switch {
			case !it.Expiry.After(now):
				want = ErrExpired
			case held(it.ID):
				want = ErrDuplicate
			case len(model[d]) >= lim.PerDest || total() >= lim.Total:
				want = ErrFull
			}
			if !errors.Is(err, want) || (err == nil) != (want == nil) {
				t.Fatalf("step %d: Put = %v, model %v", step, err, want)
			}
			if err == nil {
				model[d] = append(model[d], it)
			}
		case op < 7:
			max := rng.IntN(3)
			got, err := q.Take(d, max, now)
			if err != nil {
				t.Fatal(err)
			}
			// Model: walk in order, keep collecting up to max live ones,
			// dropping everything passed.
			var want []Item
			rest := model[d]
			for len(rest) > 0 && (max <= 0 || len(want) < max) {
				if rest[0].Expiry.After(now) {
					want = append(want, rest[0])
				}
				rest = rest[1:]
			}
			model[d] = rest
			if !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("step %d: Take = %v, model %v", step, ids(got), ids(want))
			}
		case op < 8:
			its := live(model[d], now)
			if len(its) == 0 {
				continue
			}
			ack := its[rng.IntN(len(its))].ID
			if n, err := q.Ack(d, ack); err != nil || n != 1 {
				t.Fatalf("step %d: Ack = %d, %v", step, n, err)
			}
			model[d] = slices.DeleteFunc(model[d], func(it Item) bool { return it.ID == ack })
		case op < 9:
			n, err := q.Expire(now)
			want := 0
			for k, its := range model {
				l := live(its, now)
				want += len(its) - len(l)
				model[k] = l
			}
			if err != nil || n != want {
				t.Fatalf("step %d: Expire = %d, %v; model %d", step, n, err, want)
			}
		default:
			db.Close()
			db = openDB(t, path)
			t.Cleanup(func() { db.Close() })
			var err error
			if q, err = NewQueue(db, lim); err != nil {
				t.Fatal(err)
			}
		}
		if q.Len() != total() {
			t.Fatalf("step %d: Len %d, model %d", step, q.Len(), total())
		}
		for b := range byte(4) {
			got, _ := q.Peek(dest(b), 0, now)
			if want := live(model[dest(b)], now); !slices.Equal(ids(got), ids(want)) || q.LenFor(dest(b)) != len(model[dest(b)]) {
				t.Fatalf("step %d: Peek(%d) = %v (LenFor %d), model %v (%d)", step, b, ids(got), q.LenFor(dest(b)), ids(want), len(model[dest(b)]))
			}
		}
	}
}

// BenchmarkQueuePutTake: one Put per iteration, and every 8th a Take of
// each of 8 destinations (NoSync: this measures the queue, not the disk).
func BenchmarkQueuePutTake(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "q.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	q, err := NewQueue(db, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 200)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		it := Item{Dest: dest(byte(i % 8)), ID: [16]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)}, Frame: frame, Expiry: sec(3600)}
		if err := q.Put(it, t0); err != nil {
			b.Fatal(err)
		}
		if i%8 == 0 {
			for d := range byte(8) {
				if _, err := q.Take(dest(d), 0, t0); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
