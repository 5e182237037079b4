package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// countCommits makes q count its committed write transactions.
func countCommits(q *Queue) *int {
	n := new(int)
	q.OnCommit = func() { *n++ }
	return n
}

func TestApplyStoresTheValidAndReportsEachRefusal(t *testing.T) {
	q, _, _ := newQueue(t, Limits{PerDest: 3, MaxFrame: 40})
	commits := countCommits(q)
	if err := q.Put(item(1, 1, 100), sec(10)); err != nil {
		t.Fatal(err)
	}
	big := item(2, 9, 100)
	big.Frame = make([]byte, 41)
	puts := []Item{
		item(1, 2, 100), // stored
		item(1, 1, 100), // held already
		item(2, 3, 10),  // expires now
		big,             // too large
		item(2, 4, 100), // stored
		item(2, 4, 100), // a duplicate of a put earlier in the same batch
		item(1, 5, 100), // stored: the third for 1
		item(1, 6, 100), // the fourth for 1: over the per-destination cap
		item(3, 7, 5),   // expired
	}
	want := []error{nil, ErrDuplicate, ErrExpired, ErrTooLarge, nil, ErrDuplicate, nil, ErrFull, ErrExpired}
	res, err := q.Apply(puts, nil, sec(10))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errs) != len(puts) {
		t.Fatalf("%d results for %d puts", len(res.Errs), len(puts))
	}
	for i, w := range want {
		if got := res.Errs[i]; (w == nil) != (got == nil) || !errors.Is(got, w) {
			t.Errorf("put %d: %v, want %v", i, got, w)
		}
	}
	if res.Stored != 3 || res.Acked != 0 {
		t.Fatalf("Stored %d Acked %d, want 3 and 0", res.Stored, res.Acked)
	}
	if *commits != 2 {
		t.Fatalf("%d commits for one Put and one Apply", *commits)
	}
	if got, _ := q.Peek(dest(1), 0, sec(10)); !slices.Equal(ids(got), []int{1, 2, 5}) {
		t.Fatalf("held for 1: %v", ids(got))
	}
	if got, _ := q.Peek(dest(2), 0, sec(10)); !slices.Equal(ids(got), []int{4}) {
		t.Fatalf("held for 2: %v", ids(got))
	}
	if q.Len() != 4 || q.LenFor(dest(1)) != 3 || q.Bytes() != int64(len("frame 1 for 1")*3+len("frame 4 for 2")) {
		t.Fatalf("Len %d LenFor(1) %d Bytes %d", q.Len(), q.LenFor(dest(1)), q.Bytes())
	}
	// A batch in which everything is refused writes nothing and costs no
	// fsync.
	if res, err := q.Apply([]Item{item(1, 1, 100), item(1, 8, 100)}, nil, sec(10)); err != nil || res.Stored != 0 || *commits != 2 {
		t.Fatalf("all refused: %+v, %v, %d commits", res, err, *commits)
	}
}

// Caps count what the batch itself stored before each put.
func TestApplyTotalCapsCountTheBatch(t *testing.T) {
	q, _, _ := newQueue(t, Limits{Total: 3, TotalBytes: 1 << 20})
	var puts []Item
	for i := range 5 {
		puts = append(puts, item(byte(i), i, 100))
	}
	res, err := q.Apply(puts, nil, sec(0))
	if err != nil || res.Stored != 3 || !errors.Is(res.Errs[3], ErrFull) || !errors.Is(res.Errs[4], ErrFull) {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
}

func TestApplyAckInTheSameBatchAsItsPutRemovesIt(t *testing.T) {
	q, db, _ := newQueue(t, Limits{})
	q.Put(item(1, 1, 100), sec(0))
	// 2 is put and acked in the same batch, 1 was held and is acked, 77
	// was never held.
	res, err := q.Apply([]Item{item(1, 2, 100), item(1, 3, 100)}, acksFor(dest(1), fid(2), fid(1), fid(77)), sec(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != 2 || res.Acked != 2 {
		t.Fatalf("Stored %d Acked %d, want 2 and 2", res.Stored, res.Acked)
	}
	if got, _ := q.Peek(dest(1), 0, sec(0)); !slices.Equal(ids(got), []int{3}) || q.Len() != 1 {
		t.Fatalf("held: %v (Len %d), want [3]", ids(got), q.Len())
	}
	// The indexes agree: one id, one expiry entry.
	db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{framesBucket, idsBucket, expiryBucket} {
			if n := tx.Bucket(b).Stats().KeyN; n != 1 {
				t.Errorf("bucket %s has %d keys, want 1", b, n)
			}
		}
		return nil
	})
	// The order in the batch does not matter: an ack before its put, and
	// an id held already that is both put again and acked.
	// Acked counts frames removed: 3 twice (the copy held, then the copy
	// put again), so put and delivered counters keep matching what is held.
	res, err = q.Apply([]Item{item(1, 4, 100), item(1, 3, 100)}, acksFor(dest(1), fid(4), fid(3)), sec(0))
	if err != nil || res.Stored != 2 || res.Acked != 3 || q.Len() != 0 {
		t.Fatalf("Apply = %+v, %v; Len %d", res, err, q.Len())
	}
}

// The acks of a batch free room for its puts.
func TestApplyAcksMakeRoomForPuts(t *testing.T) {
	q, _, _ := newQueue(t, Limits{PerDest: 2})
	q.Put(item(1, 1, 100), sec(0))
	q.Put(item(1, 2, 100), sec(0))
	res, err := q.Apply([]Item{item(1, 3, 100)}, acksFor(dest(1), fid(1)), sec(0))
	if err != nil || res.Stored != 1 || res.Acked != 1 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if got, _ := q.Peek(dest(1), 0, sec(0)); !slices.Equal(ids(got), []int{2, 3}) {
		t.Fatalf("held: %v", ids(got))
	}
}

// corruptID makes the id index point id at a frame that does not exist.
func corruptID(t *testing.T, db *bolt.DB, id [16]byte) {
	t.Helper()
	d := dest(9)
	fk := append(d[:], 0, 0, 0, 0, 0, 0, 0xff, 0xff)
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(idsBucket).Put(id[:], fk) }); err != nil {
		t.Fatal(err)
	}
}

func TestApplyFailsWholeOnACorruptRecord(t *testing.T) {
	q, db, _ := newQueue(t, Limits{})
	corruptID(t, db, fid(66))
	_, err := q.Apply([]Item{item(1, 1, 100)}, acksFor(dest(9), fid(66)), sec(0))
	if !errors.Is(err, ErrCorrupt) || q.Len() != 0 {
		t.Fatalf("Apply = %v, Len %d; want ErrCorrupt and nothing stored", err, q.Len())
	}
}

// applyBatch retries item by item when the batch transaction fails, so a
// corrupt record costs only its own item.
func TestApplyBatchFallsBackToOneItemPerTransaction(t *testing.T) {
	q, db, _ := newQueue(t, Limits{})
	q.Put(item(1, 5, 100), sec(0))
	corruptID(t, db, fid(66))
	res, err := applyBatch(q, []Item{item(1, 1, 100), item(1, 2, 100), item(1, 5, 100)}, append(acksFor(dest(9), fid(66)), acksFor(dest(1), fid(1))...), sec(0))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	if res.Stored != 2 || res.Acked != 1 || res.Errs[0] != nil || res.Errs[1] != nil || !errors.Is(res.Errs[2], ErrDuplicate) {
		t.Fatalf("applyBatch = %+v", res)
	}
	if got, _ := q.Peek(dest(1), 0, sec(0)); !slices.Equal(ids(got), []int{5, 2}) {
		t.Fatalf("held: %v, want [5 2]", ids(got))
	}
}

func acksFor(d [16]byte, ids ...[16]byte) []Ack {
	out := make([]Ack, len(ids))
	for i, id := range ids {
		out[i] = Ack{ID: id, Dest: d}
	}
	return out
}

// A receipt names ids, and any node can name an id it saw pass: an ack
// lets a frame go only when the receipt's signer is the frame's
// destination. Before, a receipt signed by anyone naming the id of a
// frame a relay held made the relay drop it.
func TestAckFromAnotherNodeKeepsTheFrame(t *testing.T) {
	q, _, _ := newQueue(t, Limits{})
	q.Put(item(1, 1, 100), sec(0))
	q.Put(item(2, 2, 100), sec(0))
	res, err := q.Apply(nil, []Ack{{ID: fid(1), Dest: dest(2)}, {ID: fid(2), Dest: dest(3)}}, sec(0))
	if err != nil || res.Acked != 0 || q.Len() != 2 {
		t.Fatalf("acks by other nodes: %+v, %v; Len %d, want both frames held", res, err, q.Len())
	}
	// Through the actor's batch path (and its one-by-one fallback) too.
	if res, err := applyBatch(q, nil, []Ack{{ID: fid(1), Dest: dest(2)}}, sec(0)); err != nil || res.Acked != 0 || q.Len() != 2 {
		t.Fatalf("applyBatch: %+v, %v; Len %d", res, err, q.Len())
	}
	if res, err := q.Apply(nil, []Ack{{ID: fid(1), Dest: dest(1)}}, sec(0)); err != nil || res.Acked != 1 || q.LenFor(dest(1)) != 0 || q.Len() != 1 {
		t.Fatalf("the destination's own ack: %+v, %v; Len %d", res, err, q.Len())
	}
}

func TestAckIsOneTransaction(t *testing.T) {
	q, _, _ := newQueue(t, Limits{})
	q.Put(item(1, 1, 100), sec(0))
	q.Put(item(2, 2, 100), sec(0))
	commits := countCommits(q)
	if n, err := q.Ack(dest(2), fid(2)); err != nil || n != 1 || *commits != 1 {
		t.Fatalf("Ack = %d, %v with %d commits; want 1, nil, 1", n, err, *commits)
	}
	// An id not held: nothing removed, nothing committed.
	if n, err := q.Ack(dest(2), fid(2)); err != nil || n != 0 || *commits != 1 {
		t.Fatalf("second Ack = %d, %v with %d commits", n, err, *commits)
	}
	if q.Len() != 1 || q.LenFor(dest(2)) != 0 {
		t.Fatalf("Len %d LenFor(2) %d", q.Len(), q.LenFor(dest(2)))
	}
}

func TestPeekAfterWalksInBatches(t *testing.T) {
	q, _, _ := newQueue(t, Limits{})
	for i := range 9 {
		expiry := 100
		if i == 4 {
			expiry = 5 // expired: skipped, but the walk goes past it
		}
		q.Put(item(1, i, expiry), sec(0))
	}
	q.Put(item(2, 50, 100), sec(0))
	var batches [][]int
	var after []byte
	for step := 0; ; step++ {
		items, next, err := q.PeekAfter(dest(1), after, 3, sec(10))
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, ids(items))
		if step == 0 {
			// Stored during the walk: it queues behind everything handed
			// out and this walk sees it.
			q.Put(item(1, 9, 100), sec(0))
			// Acking the frame the cursor names does not lose the place.
			q.Ack(dest(1), fid(2))
		}
		if next == nil {
			break
		}
		after = next
	}
	want := [][]int{{0, 1, 2}, {3, 5, 6}, {7, 8, 9}}
	if !slices.EqualFunc(batches, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", batches, want)
	}
	// A batch that ends exactly at the end says so.
	if _, next, _ := q.PeekAfter(dest(2), nil, 1, sec(10)); next != nil {
		t.Fatalf("next %x after the only frame", next)
	}
	// A cursor that is not one of dest's frame keys is refused.
	_, key, _ := q.PeekAfter(dest(1), nil, 1, sec(10))
	if _, _, err := q.PeekAfter(dest(2), key, 1, sec(10)); err == nil {
		t.Fatal("PeekAfter(2) took a cursor of 1")
	}
}

// TestApplyMatchesSequentialModel: random batches against a model that
// applies the acks, then the puts one by one with Put's checks, then the
// acks again.
func TestApplyMatchesSequentialModel(t *testing.T) {
	lim := Limits{PerDest: 5, Total: 12, TotalBytes: 1 << 20, MaxFrame: 64}
	q, _, _ := newQueue(t, lim)
	type rec struct {
		dest [16]byte
		id   int
	}
	var model []rec // in arrival order
	indexOf := func(id int) int { return slices.IndexFunc(model, func(r rec) bool { return r.id == id }) }
	perDest := func(d [16]byte) int {
		n := 0
		for _, r := range model {
			if r.dest == d {
				n++
			}
		}
		return n
	}
	seed := uint64(7)
	rnd := func(n int) int { seed = seed*6364136223846793005 + 1442695040888963407; return int(seed>>33) % n }
	for step := range 400 {
		var puts []Item
		var acks []Ack
		for range rnd(8) {
			it := item(byte(rnd(3)), rnd(30), 100)
			if rnd(10) == 0 {
				it.Expiry = sec(0)
			}
			puts = append(puts, it)
		}
		for range rnd(4) {
			acks = append(acks, Ack{ID: fid(rnd(30)), Dest: dest(byte(rnd(3)))})
		}
		// Acked counts every frame an ack removed, in either pass.
		wantAcked := 0
		ackModel := func() {
			for _, a := range acks {
				id := int(a.ID[1]) | int(a.ID[2])<<8
				if i := indexOf(id); i >= 0 && model[i].dest == a.Dest {
					model = slices.Delete(model, i, i+1)
					wantAcked++
				}
			}
		}
		ackModel()
		var wantErrs []error
		stored := 0
		for _, it := range puts {
			id := int(it.ID[1]) | int(it.ID[2])<<8
			var e error
			switch {
			case !it.Expiry.After(sec(0)):
				e = ErrExpired
			case indexOf(id) >= 0:
				e = ErrDuplicate
			case perDest(it.Dest) >= lim.PerDest || len(model) >= lim.Total:
				e = ErrFull
			default:
				model = append(model, rec{it.Dest, id})
				stored++
			}
			wantErrs = append(wantErrs, e)
		}
		if stored > 0 {
			ackModel()
		}
		res, err := q.Apply(puts, acks, sec(0))
		if err != nil {
			t.Fatal(err)
		}
		if res.Stored != stored || res.Acked != wantAcked {
			t.Fatalf("step %d: Stored %d Acked %d, model %d %d", step, res.Stored, res.Acked, stored, wantAcked)
		}
		for i, w := range wantErrs {
			if g := res.Errs[i]; (g == nil) != (w == nil) || !errors.Is(g, w) {
				t.Fatalf("step %d put %d: %v, model %v", step, i, g, w)
			}
		}
		for b := range byte(3) {
			var want []int
			for _, r := range model {
				if r.dest == dest(b) {
					want = append(want, r.id)
				}
			}
			if got, _ := q.Peek(dest(b), 0, sec(0)); !slices.Equal(ids(got), want) || q.LenFor(dest(b)) != len(want) {
				t.Fatalf("step %d: held for %d %v, model %v", step, b, ids(got), want)
			}
		}
		if q.Len() != len(model) {
			t.Fatalf("step %d: Len %d, model %d", step, q.Len(), len(model))
		}
	}
}

// BenchmarkQueueApply256: 256 puts in one Apply against 256 Puts, with
// fsync on (what group commit saves is fsyncs). Reported per frame.
func BenchmarkQueueApply256(b *testing.B) {
	for _, batched := range []bool{false, true} {
		b.Run(fmt.Sprintf("batched=%v", batched), func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "q.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			q, err := NewQueue(db, Limits{PerDest: 1 << 20, Total: 1 << 20, TotalBytes: 1 << 40})
			if err != nil {
				b.Fatal(err)
			}
			frame := make([]byte, 200)
			n := 0
			batch := make([]Item, 256)
			b.ReportAllocs()
			for b.Loop() {
				for j := range batch {
					n++
					batch[j] = Item{Dest: dest(byte(n % 8)), ID: [16]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}, Frame: frame, Expiry: sec(3600)}
				}
				if batched {
					if res, err := q.Apply(batch, nil, t0); err != nil || res.Stored != len(batch) {
						b.Fatal(res, err)
					}
				} else {
					for _, it := range batch {
						if err := q.Put(it, t0); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
		})
	}
}
