package crypto

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Unix(1_700_000_000, 0)

func addr(b byte) Address { return Address{b} }

// openReplayDB opens (or reopens) the bbolt file at path, closed at the
// end of the test. Tests skip fsync: durability is bbolt's business.
func openReplayDB(t testing.TB, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newWindow(t testing.TB, db *bolt.DB, lim ReplayLimits) *ReplayWindow {
	t.Helper()
	w, err := NewReplayWindow(db, "", lim)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// reopen closes db and opens a new window over the same file: a restart.
func reopen(t testing.TB, db *bolt.DB, lim ReplayLimits) (*bolt.DB, *ReplayWindow) {
	t.Helper()
	path := db.Path()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openReplayDB(t, path)
	return db, newWindow(t, db, lim)
}

func errName(err error) string {
	for _, e := range []error{ErrReplay, ErrTooOld, ErrForgotten, ErrNoSequence, ErrExpired, ErrExpiryTooFar, ErrReplayStoreCorrupt} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), "crypto: ")
		}
	}
	if err == nil {
		return "accepted"
	}
	return err.Error()
}

func TestReplayWindowVerdicts(t *testing.T) {
	w := newWindow(t, nil, ReplayLimits{Window: 64, MaxSenders: 2, MaxTTL: time.Hour})
	now := t0
	exp := now.Add(time.Minute)
	s1, s2, s3 := addr(1), addr(2), addr(3)
	steps := []struct {
		name   string
		sender Address
		seq    uint64
		expiry time.Time
		want   error
		held   [2]int // Len, Floors after the step
	}{
		{"seq 0", s1, 0, exp, ErrNoSequence, [2]int{0, 0}},
		{"seq 0 before expired", s1, 0, now, ErrNoSequence, [2]int{0, 0}},
		{"expires now", s1, 1, now, ErrExpired, [2]int{0, 0}},
		{"expired", s1, 1, now.Add(-time.Second), ErrExpired, [2]int{0, 0}},
		{"past MaxTTL", s1, 1, now.Add(time.Hour + time.Nanosecond), ErrExpiryTooFar, [2]int{0, 0}},
		{"at MaxTTL", s1, 1, now.Add(time.Hour), nil, [2]int{1, 0}},
		{"replay", s1, 1, now.Add(time.Hour), ErrReplay, [2]int{1, 0}},
		{"replay with another expiry", s1, 1, exp, ErrReplay, [2]int{1, 0}},
		{"expired before replay", s1, 1, now, ErrExpired, [2]int{1, 0}},
		{"jump a whole window ahead", s1, 100, exp, nil, [2]int{1, 0}},
		{"inside the window, unseen", s1, 37, exp, nil, [2]int{1, 0}},
		{"inside the window, seen", s1, 37, exp, ErrReplay, [2]int{1, 0}},
		{"window's last", s1, 100, exp, ErrReplay, [2]int{1, 0}},
		{"just below the window", s1, 36, exp, ErrTooOld, [2]int{1, 0}},
		{"far below the window", s1, 1, exp, ErrTooOld, [2]int{1, 0}},
		{"same seq, other sender", s2, 1, exp, nil, [2]int{2, 0}},
		// s3's until is the soonest: its own window goes at once and
		// leaves a floor at 5.
		{"third sender evicts itself", s3, 5, now.Add(30 * time.Second), nil, [2]int{2, 1}},
		{"at the floor", s3, 5, exp, ErrForgotten, [2]int{2, 1}},
		{"below the floor", s3, 3, exp, ErrForgotten, [2]int{2, 1}},
		// Above the floor: a fresh window carrying the floor; s2 (until
		// now+1m) goes, s3 (now+2m) stays.
		{"above the floor", s3, 6, now.Add(2 * time.Minute), nil, [2]int{2, 1}},
		{"below the carried floor, inside the window", s3, 4, exp, ErrForgotten, [2]int{2, 1}},
		{"fresh window replay", s3, 6, exp, ErrReplay, [2]int{2, 1}},
		{"inside the fresh window", s3, 7, exp, nil, [2]int{2, 1}},
		{"evicted sender", s2, 1, exp, ErrForgotten, [2]int{2, 1}},
		{"evicted sender, new seq", s2, 2, now.Add(3 * time.Minute), nil, [2]int{2, 1}},
		{"the floor merged", s2, 1, exp, ErrForgotten, [2]int{2, 1}},
	}
	for _, s := range steps {
		before := w.Check(now, s.sender, s.seq, s.expiry)
		err := w.Accept(now, s.sender, s.seq, s.expiry)
		if err != s.want || before != err {
			t.Errorf("%s: Check %s, Accept %s; want %s", s.name, errName(before), errName(err), errName(s.want))
		}
		if got := [2]int{w.Len(), w.Floors()}; got != s.held {
			t.Errorf("%s: Len, Floors = %v, want %v", s.name, got, s.held)
		}
	}
}

func TestReplayWindowCheckChangesNothing(t *testing.T) {
	db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
	w := newWindow(t, db, ReplayLimits{MaxSenders: 1})
	exp := t0.Add(time.Hour)
	for range 3 {
		if err := w.Check(t0, addr(1), 7, exp); err != nil {
			t.Fatalf("Check of a fresh seq: %v", err)
		}
	}
	if w.Len() != 0 || len(w.dirty) != 0 {
		t.Fatalf("Check changed the window: Len %d, dirty %d", w.Len(), len(w.dirty))
	}
	if err := w.Accept(t0, addr(1), 7, exp); err != nil {
		t.Fatal(err)
	}
	if err := w.Check(t0, addr(1), 7, exp); !errors.Is(err, ErrReplay) {
		t.Fatalf("Check after Accept: %v, want ErrReplay", err)
	}
	if err := w.Accept(t0, addr(2), 1, exp.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if w.Len() != 1 || w.Floors() != 1 {
		t.Fatalf("Len %d, Floors %d, want 1 and 1", w.Len(), w.Floors())
	}
	if err := w.Check(t0, addr(1), 8, exp); err != nil {
		t.Fatalf("Check above a floor: %v", err)
	}
	if w.Len() != 1 || w.Floors() != 1 {
		t.Fatalf("Check above a floor changed it: Len %d, Floors %d", w.Len(), w.Floors())
	}
}

// TestReplayWindowOneSenderHundredThousand: a long burst from one sender,
// in order or reordered within 1000, is accepted exactly once, before and
// after a restart.
func TestReplayWindowOneSenderHundredThousand(t *testing.T) {
	const n = 100_000
	in := make([]uint64, n)
	for i := range in {
		in[i] = uint64(i + 1)
	}
	shuffled := append([]uint64(nil), in...)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i += 1000 {
		b := shuffled[i:min(i+1000, n)]
		rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
	}
	for _, tc := range []struct {
		name string
		seqs []uint64
	}{{"in order", in}, {"shuffled within 1000", shuffled}} {
		t.Run(tc.name, func(t *testing.T) {
			db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
			w := newWindow(t, db, ReplayLimits{})
			s := addr(1)
			exp := t0.Add(time.Hour)
			for i, seq := range tc.seqs {
				if err := w.Accept(t0, s, seq, exp); err != nil {
					t.Fatalf("seq %d: %v", seq, err)
				}
				if err := w.Accept(t0, s, seq, exp); !errors.Is(err, ErrReplay) {
					t.Fatalf("seq %d again at once: %v, want ErrReplay", seq, err)
				}
				if i%256 == 255 {
					if err := w.CommitNow(); err != nil {
						t.Fatal(err)
					}
				}
			}
			replayAll := func(when string) {
				var replay, tooOld int
				for _, seq := range tc.seqs {
					switch err := w.Accept(t0, s, seq, exp); {
					case errors.Is(err, ErrReplay):
						replay++
					case errors.Is(err, ErrTooOld):
						tooOld++
					default:
						t.Fatalf("%s: seq %d: %s, want a refusal with receipt", when, seq, errName(err))
					}
				}
				if replay != DefaultReplayLimits.Window || tooOld != n-replay {
					t.Fatalf("%s: %d ErrReplay, %d ErrTooOld; want %d and %d", when, replay, tooOld, DefaultReplayLimits.Window, n-DefaultReplayLimits.Window)
				}
			}
			replayAll("before restart")
			if err := w.CommitNow(); err != nil {
				t.Fatal(err)
			}
			db, w = reopen(t, db, ReplayLimits{})
			replayAll("after restart")
			if err := w.Accept(t0, s, n+1, exp); err != nil {
				t.Fatalf("next seq after restart: %v", err)
			}
		})
	}
}

// TestReplayWindowSybilFlood: fresh identities flooding the window with
// far-expiring messages never stop an honest sender, and never make one
// of its messages acceptable twice. The old id window refused honest
// messages below floors raised by such a flood.
func TestReplayWindowSybilFlood(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lim   ReplayLimits
		evict bool
	}{
		{"MaxSenders 50", ReplayLimits{MaxSenders: 50}, true},
		{"default limits", ReplayLimits{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
			w := newWindow(t, db, tc.lim)
			now := t0
			honest := Address{0xab, 0xcd}
			hexp := now.Add(time.Hour)
			for seq := uint64(1); seq <= 100; seq++ {
				if err := w.Accept(now, honest, seq, hexp); err != nil {
					t.Fatalf("honest seq %d: %v", seq, err)
				}
			}
			if err := w.CommitNow(); err != nil {
				t.Fatal(err)
			}
			// 100 identities, 2000 seqs each, sent in interleaved rounds
			// of 100 so that windows keep coming back from their floors.
			sexp := now.Add(DefaultReplayLimits.MaxTTL - time.Second)
			for round := range 20 {
				for id := range 100 {
					sybil := Address{0x5b, byte(id)}
					for i := range 100 {
						seq := uint64(round*100 + i + 1)
						if err := w.Accept(now, sybil, seq, sexp); err != nil {
							t.Fatalf("sybil %d seq %d: %v", id, seq, err)
						}
					}
				}
				if err := w.CommitNow(); err != nil {
					t.Fatal(err)
				}
			}
			if tc.evict != (w.Floors() > 0) || w.Len() > tc.lim.MaxSenders && tc.lim.MaxSenders > 0 {
				t.Fatalf("Len %d, Floors %d: eviction %v, want %v", w.Len(), w.Floors(), w.Floors() > 0, tc.evict)
			}
			check := func(when string) {
				t.Helper()
				for seq := uint64(1); seq <= 100; seq++ {
					err := w.Accept(now, honest, seq, hexp)
					want := ErrReplay
					if tc.evict {
						want = ErrForgotten // the honest window's until was the soonest
					}
					if !errors.Is(err, want) {
						t.Fatalf("%s: honest earlier seq %d: %s, want %s", when, seq, errName(err), errName(want))
					}
				}
			}
			check("after the flood")
			for seq := uint64(101); seq <= 200; seq++ {
				if err := w.Accept(now, honest, seq, hexp); err != nil {
					t.Fatalf("honest new seq %d after the flood: %v", seq, err)
				}
			}
			if err := w.CommitNow(); err != nil {
				t.Fatal(err)
			}
			db, w = reopen(t, db, tc.lim)
			check("after restart")
			for seq := uint64(101); seq <= 200; seq++ {
				if err := w.Accept(now, honest, seq, hexp); !errors.Is(err, ErrReplay) && !errors.Is(err, ErrForgotten) {
					t.Fatalf("after restart: honest seq %d again: %s", seq, errName(err))
				}
			}
			if err := w.Accept(now, honest, 201, hexp); err != nil {
				t.Fatalf("after restart: honest new seq: %v", err)
			}
		})
	}
}

func TestReplayWindowDiscardAndCommit(t *testing.T) {
	db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
	lim := ReplayLimits{MaxSenders: 1}
	w := newWindow(t, db, lim)
	s := addr(1)
	exp := t0.Add(time.Hour)
	mustAccept := func(sender Address, seq uint64) {
		t.Helper()
		if err := w.Accept(t0, sender, seq, exp); err != nil {
			t.Fatalf("%s seq %d: %v", sender.Short(), seq, err)
		}
	}
	mustBe := func(sender Address, seq uint64, want error) {
		t.Helper()
		if err := w.Check(t0, sender, seq, exp); !errors.Is(err, want) {
			t.Fatalf("%s seq %d: %s, want %s", sender.Short(), seq, errName(err), errName(want))
		}
	}
	mustAccept(s, 1)
	if err := w.CommitNow(); err != nil {
		t.Fatal(err)
	}

	// Uncommitted, then discarded: acceptable again.
	mustAccept(s, 2)
	if err := w.Discard(); err != nil {
		t.Fatal(err)
	}
	mustBe(s, 2, nil)
	mustBe(s, 1, ErrReplay)

	// The caller's transaction fails: Discard.
	mustAccept(s, 2)
	errBoom := errors.New("boom")
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := w.Commit(tx); err != nil {
			return err
		}
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	if err := w.Discard(); err != nil {
		t.Fatal(err)
	}
	mustBe(s, 2, nil)

	// An eviction is discarded too: the evicted window comes back.
	mustAccept(addr(2), 1)
	if w.Len() != 1 || w.Floors() != 1 {
		t.Fatalf("Len %d, Floors %d, want 1 and 1", w.Len(), w.Floors())
	}
	if err := w.Discard(); err != nil {
		t.Fatal(err)
	}
	if w.Len() != 1 || w.Floors() != 0 {
		t.Fatalf("after Discard: Len %d, Floors %d, want 1 and 0", w.Len(), w.Floors())
	}
	mustBe(s, 1, ErrReplay)
	mustBe(addr(2), 1, nil)

	// Commit, then an accept before the transaction is known to have
	// committed: that one stays dirty.
	mustAccept(s, 2)
	tx, err := db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(tx); err != nil {
		t.Fatal(err)
	}
	mustAccept(s, 3)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Committed()
	if len(w.dirty) != 1 {
		t.Fatalf("%d dirty records after Committed, want 1 (seq 3's window)", len(w.dirty))
	}
	// A crash now loses seq 3 only.
	db, w = reopen(t, db, lim)
	mustBe(s, 2, ErrReplay)
	mustBe(s, 3, nil)
	mustAccept(s, 3)
	if err := w.CommitNow(); err != nil {
		t.Fatal(err)
	}
	db, w = reopen(t, db, lim)
	mustBe(s, 3, ErrReplay)
	if err := w.CommitNow(); err != nil {
		t.Fatalf("CommitNow with nothing dirty: %v", err)
	}
}

func TestReplayWindowMemoryOnly(t *testing.T) {
	w := newWindow(t, nil, ReplayLimits{})
	if err := w.Accept(t0, addr(1), 1, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(nil); err != nil {
		t.Fatalf("Commit of a memory-only window: %v", err)
	}
	w.Committed()
	if err := w.CommitNow(); err != nil {
		t.Fatalf("CommitNow of a memory-only window: %v", err)
	}
	if err := w.Discard(); err != nil {
		t.Fatalf("Discard of a memory-only window: %v", err)
	}
	if err := w.Check(t0, addr(1), 1, t0.Add(time.Hour)); !errors.Is(err, ErrReplay) {
		t.Fatalf("memory-only window after Discard: %v, want ErrReplay (state kept)", err)
	}
}

func replayBucketKeys(t *testing.T, db *bolt.DB) []string {
	t.Helper()
	var keys []string
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(DefaultReplayBucket)).ForEach(func(k, _ []byte) error {
			keys = append(keys, fmt.Sprintf("%c%x", k[0], k[1:2]))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestReplayWindowGC(t *testing.T) {
	db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
	lim := ReplayLimits{MaxSenders: 2}
	w := newWindow(t, db, lim)
	accept := func(s Address, seq uint64, exp time.Time) {
		t.Helper()
		if err := w.Accept(t0, s, seq, exp); err != nil {
			t.Fatal(err)
		}
	}
	accept(addr(1), 1, t0.Add(10*time.Second))
	accept(addr(1), 2, t0.Add(5*time.Second)) // until stays at +10s
	accept(addr(2), 1, t0.Add(20*time.Second+time.Millisecond))
	accept(addr(3), 1, t0.Add(30*time.Second)) // evicts addr(1) to a floor
	if err := w.CommitNow(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(replayBucketKeys(t, db)); got != "[f01 w02 w03]" {
		t.Fatalf("records %s, want [f01 w02 w03]", got)
	}
	steps := []struct {
		now       time.Duration
		n         int
		len, flrs int
	}{
		{9 * time.Second, 0, 2, 1},
		{10 * time.Second, 1, 2, 0},                      // the floor: its until has come
		{20 * time.Second, 0, 2, 0},                      // +20.001s rounds up to +21s
		{21 * time.Second, 1, 1, 0},                      // now it has passed
		{21 * time.Second, 0, 1, 0},                      // nothing left to do
		{30*time.Second + time.Millisecond, 1, 0, 0},     // the last
		{time.Hour, 0, 0, 0},                             // empty
		{30*time.Second + 2*time.Millisecond, 0, 0, 0},   // time going back is harmless
		{-time.Hour, 0, 0, 0},                            // even far back
		{30*time.Second + 500*time.Millisecond, 0, 0, 0}, // and forward again
	}
	for _, s := range steps {
		if n := w.GC(t0.Add(s.now)); n != s.n || w.Len() != s.len || w.Floors() != s.flrs {
			t.Fatalf("GC at +%s: %d went, Len %d, Floors %d; want %d, %d, %d", s.now, n, w.Len(), w.Floors(), s.n, s.len, s.flrs)
		}
		if s.now == 21*time.Second && s.n == 1 {
			if got := fmt.Sprint(replayBucketKeys(t, db)); got != "[f01 w02 w03]" {
				t.Fatalf("GC wrote before Commit: records %s", got)
			}
			if err := w.CommitNow(); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(replayBucketKeys(t, db)); got != "[w03]" {
				t.Fatalf("records %s after GC and Commit, want [w03]", got)
			}
		}
	}
	if err := w.CommitNow(); err != nil {
		t.Fatal(err)
	}
	if keys := replayBucketKeys(t, db); len(keys) != 0 {
		t.Fatalf("records %v left after GC of everything", keys)
	}
	_, w = reopen(t, db, lim)
	if w.Len() != 0 || w.Floors() != 0 {
		t.Fatalf("reopened: Len %d, Floors %d, want 0", w.Len(), w.Floors())
	}
}

// replayValue builds a window record value.
func replayValue(version byte, highest uint64, until int64, floor uint64, bits []uint64) []byte {
	v := []byte{version}
	v = binary.BigEndian.AppendUint64(v, highest)
	v = binary.BigEndian.AppendUint64(v, uint64(until))
	v = binary.BigEndian.AppendUint64(v, floor)
	for _, x := range bits {
		v = binary.BigEndian.AppendUint64(v, x)
	}
	return v
}

func TestReplayWindowRefusesCorruptRecords(t *testing.T) {
	wk := func(b byte) []byte { k := replayRecordKey(replayKindWindow, addr(b)); return k[:] }
	fk := func(b byte) []byte { k := replayRecordKey(replayKindFloor, addr(b)); return k[:] }
	until := t0.Unix() + 60
	good := replayValue(1, 5, until, 0, make([]uint64, 64))
	good[len(good)-64*8+7] = 1 << 5 // bit 5: seq 5 seen
	if _, err := decodeReplayRecord(wk(1), good, make([]uint64, 64)); err != nil {
		t.Fatalf("the good record: %v", err)
	}
	floor := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte{1}, 5), uint64(until))
	type rec struct{ k, v []byte }
	cases := []struct {
		name string
		recs []rec
	}{
		{"short key", []rec{{[]byte("w123"), good}}},
		{"long key", []rec{{append(wk(1), 0), good}}},
		{"unknown kind", []rec{{append([]byte{'x'}, wk(1)[1:]...), good}}},
		{"empty window value", []rec{{wk(1), []byte{}}}},
		{"window version 2", []rec{{wk(1), append([]byte{2}, good[1:]...)}}},
		{"window without bitmap", []rec{{wk(1), good[:replayWindowHead]}}},
		{"window bitmap of 7 bytes", []rec{{wk(1), good[:replayWindowHead+7]}}},
		{"window bitmap too large", []rec{{wk(1), replayValue(1, 5, until, 0, make([]uint64, ReplayMaxWindow/64+1))}}},
		{"window highest 0", []rec{{wk(1), replayValue(1, 0, until, 0, make([]uint64, 64))}}},
		{"window floor at highest", []rec{{wk(1), replayValue(1, 5, until, 5, []uint64{1 << 5})}}},
		{"window highest not seen", []rec{{wk(1), replayValue(1, 5, until, 0, []uint64{1 << 4})}}},
		{"floor of 16 bytes", []rec{{fk(1), floor[:16]}}},
		{"floor of 18 bytes", []rec{{fk(1), append(floor, 0)}}},
		{"floor version 0", []rec{{fk(1), append([]byte{0}, floor[1:]...)}}},
		{"floor highest 0", []rec{{fk(1), append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0}, floor[9:]...)}}},
		{"window and floor of one sender", []rec{{wk(1), good}, {fk(1), floor}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
			if err := db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte(DefaultReplayBucket))
				if err != nil {
					return err
				}
				if err := b.Put(wk(9), good[:]); err != nil { // a good record too
					return err
				}
				for _, r := range tc.recs {
					if err := b.Put(r.k, r.v); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			_, err := NewReplayWindow(db, "", ReplayLimits{})
			if !errors.Is(err, ErrReplayStoreCorrupt) {
				t.Fatalf("NewReplayWindow: %v, want ErrReplayStoreCorrupt", err)
			}
			if k := tc.recs[len(tc.recs)-1].k; !strings.Contains(err.Error(), hex.EncodeToString(k)) && !strings.Contains(err.Error(), hex.EncodeToString(wk(1))) {
				t.Errorf("error %q does not name the record %x", err, k)
			}
		})
	}
	t.Run("nested bucket", func(t *testing.T) {
		db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte(DefaultReplayBucket))
			if err != nil {
				return err
			}
			_, err = b.CreateBucket(wk(1))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := NewReplayWindow(db, "", ReplayLimits{}); !errors.Is(err, ErrReplayStoreCorrupt) {
			t.Fatalf("NewReplayWindow: %v, want ErrReplayStoreCorrupt", err)
		}
	})
	// A record found corrupt by Discard makes the window refuse
	// everything until a Discard succeeds.
	t.Run("during Discard", func(t *testing.T) {
		db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
		w := newWindow(t, db, ReplayLimits{})
		if err := w.Accept(t0, addr(1), 1, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		put := func(v []byte) {
			t.Helper()
			if err := db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(DefaultReplayBucket))
				if v == nil {
					return b.Delete(wk(1))
				}
				return b.Put(wk(1), v)
			}); err != nil {
				t.Fatal(err)
			}
		}
		put([]byte{1, 2, 3})
		if err := w.Discard(); !errors.Is(err, ErrReplayStoreCorrupt) {
			t.Fatalf("Discard: %v, want ErrReplayStoreCorrupt", err)
		}
		if err := w.Accept(t0, addr(2), 1, t0.Add(time.Minute)); !errors.Is(err, ErrReplayStoreCorrupt) {
			t.Fatalf("Accept on a broken window: %v, want its error", err)
		}
		if err := w.CommitNow(); !errors.Is(err, ErrReplayStoreCorrupt) {
			t.Fatalf("CommitNow on a broken window: %v, want its error", err)
		}
		put(nil)
		if err := w.Discard(); err != nil {
			t.Fatalf("Discard after the repair: %v", err)
		}
		if err := w.Accept(t0, addr(1), 1, t0.Add(time.Minute)); err != nil {
			t.Fatalf("Accept after the repair: %v", err)
		}
	})
}

// TestReplayWindowResize: a window stored with another Window size loads,
// and no seq gets a more permissive answer than before: what was refused
// stays refused, and what was acceptable is never answered with a receipt.
func TestReplayWindowResize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qpc.db")
	db := openReplayDB(t, path)
	old := ReplayLimits{Window: 128}
	w := newWindow(t, db, old)
	s := addr(1)
	exp := t0.Add(time.Hour)
	for _, seq := range []uint64{10, 200, 250, 290, 300} {
		if err := w.Accept(t0, s, seq, exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CommitNow(); err != nil {
		t.Fatal(err)
	}
	before := make(map[uint64]error)
	for seq := uint64(1); seq <= 310; seq++ {
		before[seq] = w.Check(t0, s, seq, exp)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		window int
		exact  map[uint64]error
	}{
		{64, map[uint64]error{300: ErrReplay, 290: ErrReplay, 250: ErrReplay, 260: nil, 237: nil,
			236: ErrForgotten, 200: ErrForgotten, 1: ErrForgotten, 301: nil}},
		{256, map[uint64]error{300: ErrReplay, 200: ErrReplay, 173: nil, 172: ErrReplay, 45: ErrReplay,
			44: ErrTooOld, 10: ErrTooOld, 301: nil}},
		{128, map[uint64]error{300: ErrReplay, 173: nil, 172: ErrTooOld}},
	} {
		t.Run(fmt.Sprint(tc.window), func(t *testing.T) {
			db := openReplayDB(t, path)
			w := newWindow(t, db, ReplayLimits{Window: tc.window})
			for seq := uint64(1); seq <= 310; seq++ {
				got := w.Check(t0, s, seq, exp)
				if want, ok := tc.exact[seq]; ok && got != want {
					t.Errorf("seq %d: %s, want %s", seq, errName(got), errName(want))
				}
				switch was := before[seq]; {
				case was != nil && got == nil:
					t.Errorf("seq %d: was %s, now accepted", seq, errName(was))
				case was == nil && got != nil && got != ErrForgotten:
					t.Errorf("seq %d: was acceptable, now %s (a receipt for a message never accepted)", seq, errName(got))
				}
			}
			if t.Failed() {
				return
			}
			// The window is rewritten in its new size with the next commit.
			if err := w.Accept(t0, s, 305, exp); err != nil {
				t.Fatal(err)
			}
			if err := w.CommitNow(); err != nil {
				t.Fatal(err)
			}
			var size int
			db.View(func(tx *bolt.Tx) error {
				k := replayRecordKey(replayKindWindow, s)
				size = len(tx.Bucket([]byte(DefaultReplayBucket)).Get(k[:]))
				return nil
			})
			if size != replayWindowHead+tc.window/8 {
				t.Fatalf("record of %d bytes after the commit, want %d", size, replayWindowHead+tc.window/8)
			}
			// Back to the original size for the next case.
			db.Update(func(tx *bolt.Tx) error {
				k := replayRecordKey(replayKindWindow, s)
				return tx.Bucket([]byte(DefaultReplayBucket)).Delete(k[:])
			})
			w = newWindow(t, db, old)
			for _, seq := range []uint64{10, 200, 250, 290, 300} {
				if err := w.Accept(t0, s, seq, exp); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.CommitNow(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReplayWindowLimits(t *testing.T) {
	for _, lim := range []ReplayLimits{
		{Window: 100}, {Window: -64}, {Window: ReplayMaxWindow + 64},
		{MaxSenders: -1}, {MaxFloors: -1}, {MaxTTL: -time.Second},
	} {
		if _, err := NewReplayWindow(nil, "", lim); err == nil {
			t.Errorf("NewReplayWindow(%+v) accepted", lim)
		}
	}
	w := newWindow(t, nil, ReplayLimits{MaxTTL: time.Hour})
	if want := (ReplayLimits{Window: 4096, MaxSenders: 1 << 16, MaxFloors: 1 << 20, MaxTTL: time.Hour}); w.lim != want {
		t.Fatalf("limits %+v, want %+v", w.lim, want)
	}
	w = newWindow(t, nil, ReplayLimits{Window: 192})
	if err := w.Accept(t0, addr(1), 1000, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := w.Check(t0, addr(1), 809, t0.Add(time.Hour)); err != nil {
		t.Fatalf("Window 192, 191 below: %v", err)
	}
	if err := w.Check(t0, addr(1), 808, t0.Add(time.Hour)); !errors.Is(err, ErrTooOld) {
		t.Fatalf("Window 192, 192 below: %v, want ErrTooOld", err)
	}

	// A database holding more than the limits allow is cut down on load,
	// soonest until first, windows leaving floors.
	db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
	w = newWindow(t, db, ReplayLimits{})
	for i := range 10 {
		if err := w.Accept(t0, addr(byte(i)), 7, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CommitNow(); err != nil {
		t.Fatal(err)
	}
	db, w = reopen(t, db, ReplayLimits{MaxSenders: 4})
	if w.Len() != 4 || w.Floors() != 6 {
		t.Fatalf("reopened with MaxSenders 4: Len %d, Floors %d; want 4 and 6", w.Len(), w.Floors())
	}
	for i := range 10 {
		want := ErrReplay
		if i < 6 {
			want = ErrForgotten
		}
		if err := w.Check(t0, addr(byte(i)), 7, t0.Add(time.Hour)); !errors.Is(err, want) {
			t.Fatalf("sender %d: %s, want %s", i, errName(err), errName(want))
		}
	}
	if err := w.CommitNow(); err != nil {
		t.Fatal(err)
	}
	_, w = reopen(t, db, ReplayLimits{MaxSenders: 4, MaxFloors: 2})
	if w.Len() != 4 || w.Floors() != 2 {
		t.Fatalf("reopened with MaxFloors 2: Len %d, Floors %d; want 4 and 2", w.Len(), w.Floors())
	}
}

// TestReplayWindowEvictionOfExpired: an evicted window whose newest
// expiry has passed leaves no floor; one still live does.
func TestReplayWindowEvictionOfExpired(t *testing.T) {
	for _, tc := range []struct {
		name   string
		now    time.Duration // when the second sender arrives
		floors int
	}{
		{"live", 9*time.Second + 999*time.Millisecond, 1},
		{"expiring that second", 10 * time.Second, 0},
		{"expired", 11 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWindow(t, nil, ReplayLimits{MaxSenders: 1})
			if err := w.Accept(t0, addr(1), 1, t0.Add(10*time.Second)); err != nil {
				t.Fatal(err)
			}
			now := t0.Add(tc.now)
			if err := w.Accept(now, addr(2), 1, now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if w.Len() != 1 || w.Floors() != tc.floors {
				t.Fatalf("Len %d, Floors %d; want 1 and %d", w.Len(), w.Floors(), tc.floors)
			}
		})
	}
}

// TestReplayWindowFloorOverflowIsTheOnlyReplay pins the one documented
// way a replay gets through: more live identities than MaxSenders plus
// MaxFloors, so that a floor is dropped.
func TestReplayWindowFloorOverflowIsTheOnlyReplay(t *testing.T) {
	w := newWindow(t, nil, ReplayLimits{MaxSenders: 1, MaxFloors: 1})
	for i := range 3 {
		if err := w.Accept(t0, addr(byte(i)), 1, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if w.Len() != 1 || w.Floors() != 1 {
		t.Fatalf("Len %d, Floors %d; want 1 and 1", w.Len(), w.Floors())
	}
	if err := w.Check(t0, addr(1), 1, t0.Add(2*time.Minute)); !errors.Is(err, ErrForgotten) {
		t.Fatalf("sender 1, whose floor was kept: %v, want ErrForgotten", err)
	}
	if err := w.Check(t0, addr(0), 1, t0.Add(time.Minute)); err != nil {
		t.Fatalf("sender 0, whose floor was dropped: %v; expected the documented replay", err)
	}
}

// TestReplayWindowMemory checks the cost per sender and per floor stated
// in ReplayWindow's doc comment.
func TestReplayWindowMemory(t *testing.T) {
	measure := func(n int, lim ReplayLimits) float64 {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		w := newWindow(t, nil, lim)
		for i := range n {
			s := Address{byte(i), byte(i >> 8), byte(i >> 16), 1}
			if err := w.Accept(t0, s, 1, t0.Add(time.Hour+time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&b)
		runtime.KeepAlive(w)
		return float64(b.HeapAlloc-a.HeapAlloc) / float64(n)
	}
	const n = 50_000
	win := measure(n, ReplayLimits{})
	floor := measure(n, ReplayLimits{MaxSenders: 1})
	t.Logf("per sender window: %.0f bytes (Window/8 = %d); per floor: %.0f bytes", win, DefaultReplayLimits.Window/8, floor)
	if win > float64(DefaultReplayLimits.Window/8+200) || floor > 150 {
		t.Fatalf("memory above what the doc comment says: window %.0f, floor %.0f bytes", win, floor)
	}
}

// FuzzReplayRecord: the record decoder never panics, refuses with
// ErrReplayStoreCorrupt, and round-trips what it accepts.
func FuzzReplayRecord(f *testing.F) {
	wk := replayRecordKey(replayKindWindow, addr(1))
	fk := replayRecordKey(replayKindFloor, addr(2))
	seen := func(seqs ...uint64) []uint64 {
		bits := make([]uint64, 2)
		for _, s := range seqs {
			bits[(s%128)/64] |= 1 << (s % 64)
		}
		return bits
	}
	f.Add(wk[:], replayValue(1, 5, 1_700_000_000, 0, seen(5, 3)), byte(1))
	f.Add(wk[:], replayValue(1, 300, 1_700_000_000, 100, seen(300, 250, 200)), byte(0))
	f.Add(wk[:], replayValue(1, 300, -1, 17, seen(300, 290, 180)), byte(3))
	f.Add(wk[:], replayValue(1, 1<<63, 1<<62, 1<<62, seen(1<<63)), byte(1))
	f.Add(wk[:], replayValue(2, 5, 0, 0, seen(5)), byte(1))
	f.Add(wk[:], replayValue(1, 5, 0, 5, seen(5)), byte(1))
	f.Add(wk[:], []byte{1, 2, 3}, byte(1))
	f.Add(fk[:], binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte{1}, 77), 1_700_000_000), byte(0))
	f.Add(fk[:], []byte{1}, byte(0))
	f.Add([]byte{'w'}, []byte{}, byte(0))
	f.Fuzz(func(t *testing.T, k, v []byte, sel byte) {
		words := 1 + int(sel%4)
		r, err := decodeReplayRecord(k, v, make([]uint64, words))
		if err != nil {
			if !errors.Is(err, ErrReplayStoreCorrupt) {
				t.Fatalf("error %v is not ErrReplayStoreCorrupt", err)
			}
			return
		}
		if r.highest == 0 {
			t.Fatalf("decoded highest 0: %+v", r)
		}
		var enc []byte
		if r.kind == replayKindFloor {
			enc = appendReplayFloor(nil, &replayFloor{addr: r.addr, highest: r.highest, until: r.until})
		} else {
			s := &replayWin{replayFloor: replayFloor{addr: r.addr, highest: r.highest, until: r.until}, floor: r.floor, bits: r.bits}
			if r.floor >= r.highest || !s.has(r.highest, uint64(words)*64) || len(r.bits) != words {
				t.Fatalf("decoded an inconsistent window: %+v", r)
			}
			enc = appendReplayWindow(nil, s)
		}
		if len(enc) == len(v) && !bytes.Equal(enc, v) {
			t.Fatalf("round trip changed the record:\n%x\n%x", v, enc)
		}
		r2, err := decodeReplayRecord(k, enc, make([]uint64, words))
		if err != nil {
			t.Fatalf("re-decoding %x: %v", enc, err)
		}
		if fmt.Sprint(r2) != fmt.Sprint(r) {
			t.Fatalf("re-decoded %+v, want %+v", r2, r)
		}
	})
}

// BenchmarkReplayAccept: Accept of fresh seqs in memory, and Accept with a
// bbolt commit every 256 messages (ns/op is per message).
func BenchmarkReplayAccept(b *testing.B) {
	for _, senders := range []int{1, 1024} {
		b.Run(fmt.Sprintf("memory/senders=%d", senders), func(b *testing.B) {
			w := newWindow(b, nil, ReplayLimits{})
			now := t0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				now = now.Add(time.Millisecond)
				if err := w.Accept(now, Address{byte(i % senders), byte(i % senders >> 8)}, uint64(i/senders+1), now.Add(time.Minute)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	for _, tc := range []struct {
		senders int
		sync    bool
	}{{1, true}, {256, true}, {1, false}, {256, false}} {
		name := fmt.Sprintf("bolt/batch=256/senders=%d/fsync=%v", tc.senders, tc.sync)
		b.Run(name, func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "qpc.db"), 0o600, &bolt.Options{NoSync: !tc.sync})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			w := newWindow(b, db, ReplayLimits{})
			now := t0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				now = now.Add(time.Millisecond)
				if err := w.Accept(now, Address{byte(i % tc.senders), 1}, uint64(i/tc.senders+1), now.Add(time.Minute)); err != nil {
					b.Fatal(err)
				}
				if i++; i%256 == 0 {
					if err := w.CommitNow(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// Prepare encodes what is dirty now; the window goes on accepting while
// another goroutine writes the encoding, and what it accepted meanwhile
// stays dirty for the next round (the router's pipelined group commit).
func TestReplayWindowPrepareWhileAccepting(t *testing.T) {
	db := openReplayDB(t, filepath.Join(t.TempDir(), "qpc.db"))
	w := newWindow(t, db, ReplayLimits{})
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Hour)
	if err := w.Accept(now, addr(1), 1, exp); err != nil {
		t.Fatal(err)
	}
	writes := w.Prepare()
	if writes.Len() != 1 {
		t.Fatalf("prepared %d records", writes.Len())
	}
	// Accepted after the encoding: not in it.
	if err := w.Accept(now, addr(1), 2, exp); err != nil {
		t.Fatal(err)
	}
	if err := w.Accept(now, addr(2), 1, exp); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- db.Update(writes.Write) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.Committed()
	if !w.Dirty() {
		t.Fatal("what was accepted during the write is not dirty any more")
	}
	db2, w2 := reopen(t, db, ReplayLimits{})
	if err := w2.Check(now, addr(1), 1, exp); !errors.Is(err, ErrReplay) {
		t.Fatalf("seq 1 after restart: %v", err)
	}
	if err := w2.Check(now, addr(1), 2, exp); err != nil {
		t.Fatalf("seq 2 was not written yet, but: %v", err)
	}
	_ = db2
}
