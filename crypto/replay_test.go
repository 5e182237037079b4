package crypto

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Unix(1_700_000_000, 0)

func addr(b byte) Address { return Address{b} }
func mid(b byte) [16]byte { return [16]byte{0xee, b} }

func newWindow(t *testing.T, s ReplayStore, lim ReplayLimits) *ReplayWindow {
	t.Helper()
	w, err := NewReplayWindow(s, lim)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestReplayWindowRules(t *testing.T) {
	w := newWindow(t, nil, ReplayLimits{MaxTTL: time.Hour})
	now := t0
	exp := now.Add(time.Minute)
	steps := []struct {
		name   string
		sender Address
		id     [16]byte
		expiry time.Time
		want   error
	}{
		{"first", addr(1), mid(1), exp, nil},
		{"duplicate", addr(1), mid(1), exp, ErrReplay},
		{"duplicate with another expiry", addr(1), mid(1), exp.Add(time.Second), ErrReplay},
		{"same id, other sender", addr(2), mid(1), exp, nil},
		{"expires now", addr(1), mid(2), now, ErrExpired},
		{"expired", addr(1), mid(3), now.Add(-time.Second), ErrExpired},
		{"at MaxTTL", addr(1), mid(4), now.Add(time.Hour), nil},
		{"past MaxTTL", addr(1), mid(5), now.Add(time.Hour + time.Nanosecond), ErrExpiryTooFar},
	}
	for _, s := range steps {
		if err := w.Accept(now, s.sender, s.id, s.expiry); !errors.Is(err, s.want) {
			t.Errorf("%s: %v, want %v", s.name, err, s.want)
		}
	}
	if w.Len() != 3 || w.LenFor(addr(1)) != 2 || w.LenFor(addr(2)) != 1 {
		t.Fatalf("Len=%d LenFor(1)=%d LenFor(2)=%d, want 3, 2, 1", w.Len(), w.LenFor(addr(1)), w.LenFor(addr(2)))
	}
}

func TestReplayWindowSurvivesRestart(t *testing.T) {
	store := NewMemReplayStore()
	w := newWindow(t, store, ReplayLimits{})
	exp := t0.Add(time.Hour)
	if err := w.Accept(t0, addr(1), mid(1), exp); err != nil {
		t.Fatal(err)
	}
	restarted := newWindow(t, store, ReplayLimits{})
	if err := restarted.Accept(t0.Add(time.Minute), addr(1), mid(1), exp); !errors.Is(err, ErrReplay) {
		t.Fatalf("after restart: %v, want ErrReplay", err)
	}
	if err := restarted.Accept(t0.Add(time.Minute), addr(1), mid(2), exp); err != nil {
		t.Fatalf("new id after restart: %v", err)
	}
}

func TestReplayWindowSurvivesRestartInBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qpc.db")
	open := func() (*bolt.DB, *ReplayWindow) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewBoltReplayStore(db, "")
		if err != nil {
			t.Fatal(err)
		}
		return db, newWindow(t, s, ReplayLimits{PerSender: 2, Total: 3})
	}
	db, w := open()
	for i := range byte(3) {
		if err := w.Accept(t0, addr(1), mid(i), t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Accept(t0, addr(2), mid(9), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, w = open()
	defer db.Close()
	// mid(0) was evicted by the per-sender cap; its floor came back too.
	for i := range byte(3) {
		if err := w.Accept(t0, addr(1), mid(i), t0.Add(time.Duration(i+1)*time.Minute)); !errors.Is(err, ErrReplay) {
			t.Errorf("id %d after reopen: %v, want ErrReplay", i, err)
		}
	}
	if err := w.Accept(t0, addr(2), mid(9), t0.Add(time.Hour)); !errors.Is(err, ErrReplay) {
		t.Errorf("sender 2 after reopen: %v, want ErrReplay", err)
	}
	if w.Len() != 3 || w.LenFor(addr(1)) != 2 {
		t.Fatalf("Len=%d LenFor(1)=%d after reopen, want 3 and 2", w.Len(), w.LenFor(addr(1)))
	}
	// GC everything and check the bucket empties.
	if n, err := w.GC(t0.Add(2 * time.Hour)); err != nil || n != 3 {
		t.Fatalf("GC = %d, %v; want 3", n, err)
	}
	var left int
	db.View(func(tx *bolt.Tx) error {
		left = tx.Bucket([]byte(DefaultReplayBucket)).Stats().KeyN
		return nil
	})
	if left != 0 {
		t.Fatalf("%d records left in bbolt after GC", left)
	}
}

func TestReplayBoltStoreRefusesCorruptRecords(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "qpc.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := NewBoltReplayStore(db, "r")
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("r")).Put([]byte("short"), []byte("x")) })
	if _, err := NewReplayWindow(s, ReplayLimits{}); !errors.Is(err, ErrReplayStoreCorrupt) {
		t.Fatalf("corrupt record: %v, want ErrReplayStoreCorrupt", err)
	}
}

func TestReplayWindowPerSenderCapEvictsSoonestAndKeepsItRefused(t *testing.T) {
	store := NewMemReplayStore()
	w := newWindow(t, store, ReplayLimits{PerSender: 3, Total: 100})
	now := t0
	minutes := func(n int) time.Time { return now.Add(time.Duration(n) * time.Minute) }
	for i := range byte(5) {
		if err := w.Accept(now, addr(1), mid(i), minutes(int(i)+1)); err != nil {
			t.Fatalf("id %d: %v", i, err)
		}
		if w.LenFor(addr(1)) > 3 {
			t.Fatalf("LenFor = %d after %d accepts, cap 3", w.LenFor(addr(1)), i+1)
		}
	}
	// The two soonest-expiring (ids 0 and 1) were evicted, but replaying
	// them is still refused: the sender's floor is now 2 minutes.
	for _, i := range []byte{0, 1} {
		if err := w.Accept(now, addr(1), mid(i), minutes(int(i)+1)); !errors.Is(err, ErrReplay) {
			t.Errorf("evicted id %d replayed: %v, want ErrReplay", i, err)
		}
	}
	// The price: a new message from that sender at or below its floor is
	// refused too; one above it is fine.
	if err := w.Accept(now, addr(1), mid(8), minutes(2)); !errors.Is(err, ErrReplay) {
		t.Errorf("new id at the floor: %v, want ErrReplay", err)
	}
	if err := w.Accept(now, addr(1), mid(9), minutes(10)); err != nil {
		t.Fatal(err)
	}
	// A message that would itself be the soonest-expiring is accepted,
	// evicted at once, and refused when replayed.
	// (The window holds 4, 5 and 10 minutes; the floor is 3.)
	between := now.Add(210 * time.Second)
	if err := w.Accept(now, addr(1), mid(10), between); err != nil {
		t.Fatal(err)
	}
	if w.LenFor(addr(1)) != 3 {
		t.Fatalf("LenFor = %d, want 3", w.LenFor(addr(1)))
	}
	if err := w.Accept(now, addr(1), mid(10), between); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay of an id evicted on arrival: %v, want ErrReplay", err)
	}
	// The floor is that sender's: others are not refused below it.
	if err := w.Accept(now, addr(2), mid(1), minutes(1)); err != nil {
		t.Fatalf("other sender below sender 1's floor: %v", err)
	}
	// Restart: the floor came back from the store.
	w = newWindow(t, store, ReplayLimits{PerSender: 3, Total: 100})
	if err := w.Accept(now, addr(1), mid(1), minutes(2)); !errors.Is(err, ErrReplay) {
		t.Fatalf("evicted id after restart: %v, want ErrReplay", err)
	}
}

func TestReplayWindowTotalCap(t *testing.T) {
	w := newWindow(t, nil, ReplayLimits{PerSender: 10, Total: 4})
	now := t0
	var n byte
	for s := byte(1); s <= 3; s++ {
		for i := range byte(3) {
			n++
			if err := w.Accept(now, addr(s), mid(i), now.Add(time.Duration(n)*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if w.Len() > 4 {
				t.Fatalf("Len = %d, cap 4", w.Len())
			}
		}
	}
	// Sender 1's ids (1-3 minutes) and sender 2's first two went; all are
	// still refused, by the global floor.
	if err := w.Accept(now, addr(1), mid(0), now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("evicted replay: %v, want ErrReplay", err)
	}
	if w.LenFor(addr(1)) != 0 || w.LenFor(addr(3)) != 3 {
		t.Fatalf("LenFor(1)=%d LenFor(3)=%d, want 0 and 3", w.LenFor(addr(1)), w.LenFor(addr(3)))
	}
	// The global floor (5 minutes) goes once it is behind now.
	if err := w.Accept(now.Add(5*time.Minute), addr(1), mid(0), now.Add(6*time.Minute)); err != nil {
		t.Fatalf("after the floor passed: %v", err)
	}
}

func TestReplayWindowGC(t *testing.T) {
	store := NewMemReplayStore()
	w := newWindow(t, store, ReplayLimits{PerSender: 1})
	w.Accept(t0, addr(1), mid(1), t0.Add(time.Minute))
	w.Accept(t0, addr(1), mid(2), t0.Add(2*time.Minute)) // evicts mid(1), floor 1m
	w.Accept(t0, addr(2), mid(1), t0.Add(3*time.Minute))
	if store.Len() != 3 { // two ids and one floor
		t.Fatalf("store has %d records, want 3", store.Len())
	}
	if n, err := w.GC(t0.Add(2 * time.Minute)); n != 1 || err != nil {
		t.Fatalf("GC = %d, %v; want 1", n, err)
	}
	if w.Len() != 1 || store.Len() != 1 {
		t.Fatalf("after GC: Len=%d store=%d, want 1 and 1 (sender 1's floor went with its last id)", w.Len(), store.Len())
	}
	// Accept collects on the way too.
	if err := w.Accept(t0.Add(time.Hour), addr(3), mid(1), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if w.Len() != 1 || store.Len() != 1 {
		t.Fatalf("after Accept: Len=%d store=%d, want 1 and 1", w.Len(), store.Len())
	}
}

func TestReplayWindowRestartWithLowerLimits(t *testing.T) {
	store := NewMemReplayStore()
	w := newWindow(t, store, ReplayLimits{})
	for i := range byte(10) {
		if err := w.Accept(t0, addr(1), mid(i), t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	w = newWindow(t, store, ReplayLimits{PerSender: 4})
	if w.LenFor(addr(1)) != 4 {
		t.Fatalf("LenFor = %d after restart with cap 4", w.LenFor(addr(1)))
	}
	if store.Len() != 5 { // four ids and the floor
		t.Fatalf("store has %d records, want 5", store.Len())
	}
	for i := range byte(10) {
		if err := w.Accept(t0, addr(1), mid(i), t0.Add(time.Duration(i+1)*time.Minute)); !errors.Is(err, ErrReplay) {
			t.Fatalf("id %d: %v, want ErrReplay", i, err)
		}
	}
}

// flakyStore fails Commit while fail is set.
type flakyStore struct {
	*MemReplayStore
	fail atomic.Bool
}

var errDisk = errors.New("disk on fire")

func (f *flakyStore) Commit(put, del []ReplayEntry) error {
	if f.fail.Load() {
		return errDisk
	}
	return f.MemReplayStore.Commit(put, del)
}

func TestReplayWindowStoreFailureRecordsNothing(t *testing.T) {
	fs := &flakyStore{MemReplayStore: NewMemReplayStore()}
	w := newWindow(t, fs, ReplayLimits{})
	if err := w.Accept(t0, addr(1), mid(1), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	if err := w.Accept(t0, addr(1), mid(2), t0.Add(time.Hour)); !errors.Is(err, errDisk) {
		t.Fatalf("failing store: %v, want errDisk", err)
	}
	if w.Len() != 1 {
		t.Fatalf("Len = %d after a failed commit, want 1 (rebuilt from the store)", w.Len())
	}
	fs.fail.Store(false)
	if err := w.Accept(t0, addr(1), mid(2), t0.Add(time.Hour)); err != nil {
		t.Fatalf("retry after the store recovered: %v", err)
	}
	if err := w.Accept(t0, addr(1), mid(1), t0.Add(time.Hour)); !errors.Is(err, ErrReplay) {
		t.Fatalf("earlier id: %v, want ErrReplay", err)
	}
}

// TestReplayWindowRandomized checks the window's promises over random
// traffic with restarts: nothing is accepted twice; the caps hold; and a
// fresh id whose expiry is later than anything accepted so far (so above
// every floor) is always accepted.
func TestReplayWindowRandomized(t *testing.T) {
	for _, lim := range []ReplayLimits{
		{PerSender: 5, Total: 12, MaxTTL: time.Hour},  // the total cap binds
		{PerSender: 3, Total: 100, MaxTTL: time.Hour}, // the per-sender cap binds
		{PerSender: 1, Total: 2, MaxTTL: time.Hour},
	} {
		t.Run(fmt.Sprintf("%d-%d", lim.PerSender, lim.Total), func(t *testing.T) { testReplayRandomized(t, lim) })
	}
}

func testReplayRandomized(t *testing.T, lim ReplayLimits) {
	rng := rand.New(rand.NewPCG(1, uint64(lim.PerSender)))
	store := NewMemReplayStore()
	w := newWindow(t, store, lim)
	type msg struct {
		s  Address
		id [16]byte
	}
	accepted := make(map[msg]time.Time)
	expiries := make(map[msg]time.Time) // fixed per message, as in a signed envelope
	var latest time.Time
	now := t0
	for step := range 20000 {
		now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
		switch rng.IntN(100) {
		case 0:
			w = newWindow(t, store, lim)
			continue
		case 1, 2:
			if _, err := w.GC(now); err != nil {
				t.Fatal(err)
			}
			continue
		}
		m := msg{addr(byte(rng.IntN(4))), mid(byte(rng.IntN(250)))}
		exp, seen := expiries[m]
		if !seen {
			exp = now.Add(time.Duration(rng.IntN(120)-5) * time.Second)
			expiries[m] = exp
		}
		err := w.Accept(now, m.s, m.id, exp)
		if err == nil {
			if at, dup := accepted[m]; dup {
				t.Fatalf("step %d: %v accepted twice (first at %v)", step, m, at)
			}
			accepted[m] = now
			if exp.After(latest) {
				latest = exp
			}
		} else if !seen && exp.After(now) && exp.After(latest) {
			t.Fatalf("step %d: fresh message above every floor refused: %v", step, err)
		}
		if w.Len() > lim.Total || w.LenFor(m.s) > lim.PerSender {
			t.Fatalf("step %d: caps broken: Len=%d LenFor=%d", step, w.Len(), w.LenFor(m.s))
		}
	}
	if len(accepted) < 50 {
		t.Fatalf("only %d messages accepted; the test exercised too little", len(accepted))
	}
}

func TestReplayWindowConcurrentAcceptsOnce(t *testing.T) {
	w := newWindow(t, nil, ReplayLimits{})
	var wins atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range byte(50) {
				if w.Accept(t0, addr(1), mid(i), t0.Add(time.Hour)) == nil {
					wins.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 50 {
		t.Fatalf("%d accepts of 50 distinct messages by 8 racers", wins.Load())
	}
}

func BenchmarkReplayAccept(b *testing.B) {
	w, err := NewReplayWindow(nil, ReplayLimits{PerSender: 1024, Total: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	var id [16]byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		id[0], id[1], id[2] = byte(i), byte(i>>8), byte(i>>16)
		now = now.Add(time.Millisecond)
		if err := w.Accept(now, addr(byte(i%64)), id, now.Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}
