package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// replayModel is the naive reference for ReplayWindow: a set of seen seqs
// per sender instead of a bitmap, linear scans instead of heaps, and a
// deep copy as its "database".
type replayModel struct {
	lim    ReplayLimits
	wins   map[Address]*modelWin
	floors map[Address]modelFloor
	// Outside the window's promises: senders whose floor was dropped
	// (replays possible), and every message accepted, for the
	// exactly-once check.
	dropped  map[Address]bool
	accepted map[modelMsg]int
	log      []modelMsg // accepted, in order; a snapshot keeps its length
}

type modelWin struct {
	highest, floor uint64
	until          int64
	seen           map[uint64]bool
}

type modelFloor struct {
	highest uint64
	until   int64
}

type modelMsg struct {
	a      Address
	seq    uint64
	expiry time.Time
}

// modelSnap is what a commit made durable.
type modelSnap struct {
	wins    map[Address]*modelWin
	floors  map[Address]modelFloor
	dropped map[Address]bool
	logLen  int
}

func newReplayModel(lim ReplayLimits) *replayModel {
	lim, err := lim.withDefaults()
	if err != nil {
		panic(err)
	}
	return &replayModel{lim: lim, wins: map[Address]*modelWin{}, floors: map[Address]modelFloor{},
		dropped: map[Address]bool{}, accepted: map[modelMsg]int{}}
}

func (m *replayModel) snap() modelSnap {
	s := modelSnap{wins: map[Address]*modelWin{}, floors: maps.Clone(m.floors), dropped: maps.Clone(m.dropped), logLen: len(m.log)}
	for a, w := range m.wins {
		c := *w
		c.seen = maps.Clone(w.seen)
		s.wins[a] = &c
	}
	return s
}

// revert goes back to s: the window lost what was not committed.
func (m *replayModel) revert(s modelSnap) {
	m.wins = map[Address]*modelWin{}
	for a, w := range s.wins {
		cw := *w
		cw.seen = maps.Clone(w.seen)
		m.wins[a] = &cw
	}
	m.floors, m.dropped = maps.Clone(s.floors), maps.Clone(s.dropped)
	for _, msg := range m.log[s.logLen:] {
		if m.accepted[msg]--; m.accepted[msg] == 0 {
			delete(m.accepted, msg)
		}
	}
	m.log = m.log[:s.logLen]
}

func (m *replayModel) verdict(now time.Time, a Address, seq uint64, expiry time.Time) error {
	switch {
	case seq == 0:
		return ErrNoSequence
	case !expiry.After(now):
		return ErrExpired
	case expiry.Sub(now) > m.lim.MaxTTL:
		return ErrExpiryTooFar
	}
	if w := m.wins[a]; w != nil {
		switch {
		case seq > w.highest:
			return nil
		case seq <= w.floor:
			return ErrForgotten
		case w.highest-seq >= uint64(m.lim.Window):
			return ErrTooOld
		case w.seen[seq]:
			return ErrReplay
		}
		return nil
	}
	if f, ok := m.floors[a]; ok && seq <= f.highest {
		return ErrForgotten
	}
	return nil
}

// less orders by (until, address), as the window's heaps do.
func modelLess(ua int64, a Address, ub int64, b Address) bool {
	if ua != ub {
		return ua < ub
	}
	return bytes.Compare(a[:], b[:]) < 0
}

func (m *replayModel) accept(t *testing.T, now time.Time, a Address, seq uint64, expiry time.Time) error {
	if err := m.verdict(now, a, seq, expiry); err != nil {
		return err
	}
	msg := modelMsg{a, seq, expiry}
	if m.accepted[msg] > 0 && !m.dropped[a] {
		t.Fatalf("model: %s seq %d accepted twice", a.Short(), seq)
	}
	m.accepted[msg]++
	m.log = append(m.log, msg)
	until := ceilUnix(expiry)
	if w := m.wins[a]; w != nil {
		w.seen[seq] = true
		w.highest = max(w.highest, seq)
		w.until = max(w.until, until)
		for s := range w.seen {
			if w.highest-s >= uint64(m.lim.Window) {
				delete(w.seen, s)
			}
		}
		return nil
	}
	w := &modelWin{highest: seq, until: until, seen: map[uint64]bool{seq: true}}
	if f, ok := m.floors[a]; ok {
		w.floor, w.until = f.highest, max(until, f.until)
		delete(m.floors, a)
	}
	m.wins[a] = w
	for len(m.wins) > m.lim.MaxSenders {
		var lo Address
		first := true
		for b, x := range m.wins {
			if first || modelLess(x.until, b, m.wins[lo].until, lo) {
				lo, first = b, false
			}
		}
		x := m.wins[lo]
		delete(m.wins, lo)
		if x.until > now.Unix() {
			m.floors[lo] = modelFloor{x.highest, x.until}
		}
	}
	for len(m.floors) > m.lim.MaxFloors {
		var lo Address
		first := true
		for b, f := range m.floors {
			if first || modelLess(f.until, b, m.floors[lo].until, lo) {
				lo, first = b, false
			}
		}
		delete(m.floors, lo)
		m.dropped[lo] = true
	}
	return nil
}

func (m *replayModel) gc(now time.Time) int {
	n := 0
	for a, w := range m.wins {
		if w.until <= now.Unix() {
			delete(m.wins, a)
			n++
		}
	}
	for a, f := range m.floors {
		if f.until <= now.Unix() {
			delete(m.floors, a)
			n++
		}
	}
	return n
}

// TestReplayWindowRandomized runs random traffic, commits, failed
// commits, discards, GC, restarts and crashes against the window and the
// model, and checks that they agree on every verdict and size.
func TestReplayWindowRandomized(t *testing.T) {
	for i, lim := range []ReplayLimits{
		{Window: 64, MaxSenders: 3, MaxFloors: 2, MaxTTL: 100 * time.Second},   // both caps bind; floors drop
		{Window: 128, MaxSenders: 4, MaxFloors: 50, MaxTTL: 100 * time.Second}, // windows evicted to floors
		{Window: 192, MaxSenders: 50, MaxTTL: 100 * time.Second},               // no eviction; 192 is no power of 2
		{MaxSenders: 5, MaxTTL: 100 * time.Second},                             // the default Window
	} {
		t.Run(fmt.Sprintf("%d/W%d-S%d-F%d", i, lim.Window, lim.MaxSenders, lim.MaxFloors), func(t *testing.T) {
			testReplayRandomized(t, lim, uint64(i))
		})
	}
}

func testReplayRandomized(t *testing.T, lim ReplayLimits, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	path := filepath.Join(t.TempDir(), "qpc.db")
	db := openReplayDB(t, path)
	w := newWindow(t, db, lim)
	m := newReplayModel(lim)
	W := uint64(m.lim.Window)
	committed := m.snap()
	senders := make([]Address, 8)
	for i := range senders {
		senders[i] = Address{byte(i * 37), byte(i)}
	}
	top := make(map[Address]uint64)          // highest seq each sender has used
	sent := make(map[Address][]uint64)       // seqs each sender used lately
	expiryOf := make(map[modelMsg]time.Time) // a message's expiry is fixed, as in a signed envelope
	now := t0
	counts := make(map[string]int)

	pick := func() (Address, uint64, time.Time) {
		a := senders[rng.IntN(len(senders))]
		var seq uint64
		switch r := rng.IntN(100); {
		case r < 55:
			seq = top[a] + 1 + uint64(rng.IntN(3))
		case r < 75 && len(sent[a]) > 0: // a retransmission
			seq = sent[a][rng.IntN(len(sent[a]))]
		case r < 85:
			seq = top[a] - min(top[a], uint64(rng.IntN(int(2*W))))
		case r < 90:
			seq = 0
		default:
			seq = top[a] + uint64(rng.IntN(int(2*W)))
		}
		top[a] = max(top[a], seq)
		if sent[a] = append(sent[a], seq); len(sent[a]) > 40 {
			sent[a] = sent[a][1:]
		}
		k := modelMsg{a: a, seq: seq}
		exp, ok := expiryOf[k]
		if !ok || rng.IntN(10) == 0 {
			exp = now.Add(time.Duration(rng.Int64N(int64(m.lim.MaxTTL+6*time.Second))) - 3*time.Second)
			expiryOf[k] = exp
		}
		return a, seq, exp
	}
	accept := func(step int) {
		a, seq, exp := pick()
		want := m.accept(t, now, a, seq, exp)
		got := w.Accept(now, a, seq, exp)
		if got != want {
			t.Fatalf("step %d: Accept(%s, seq %d, expiry now%+v) = %s, model %s", step, a.Short(), seq, exp.Sub(now), errName(got), errName(want))
		}
		counts[errName(got)]++
	}
	probe := func(step int) {
		for _, a := range senders {
			for d := range 2*W + 4 {
				seq := top[a] + 2 - min(top[a]+2, d)
				exp := now.Add(time.Second)
				if got, want := w.Check(now, a, seq, exp), m.verdict(now, a, seq, exp); got != want {
					t.Fatalf("step %d: Check(%s, seq %d) = %s, model %s", step, a.Short(), seq, errName(got), errName(want))
				}
			}
		}
	}
	errBoom := errors.New("boom")
	for step := range 10000 {
		now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		switch r := rng.IntN(100); {
		case r < 75:
			accept(step)
		case r < 80:
			a, seq, exp := pick()
			if got, want := w.Check(now, a, seq, exp), m.verdict(now, a, seq, exp); got != want {
				t.Fatalf("step %d: Check = %s, model %s", step, errName(got), errName(want))
			}
		case r < 85:
			if err := w.CommitNow(); err != nil {
				t.Fatal(err)
			}
			committed = m.snap()
		case r < 87: // the caller's transaction fails
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
			m.revert(committed)
		case r < 91: // accepts between Commit and the transaction's end
			tx, err := db.Begin(true)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(tx); err != nil {
				t.Fatal(err)
			}
			pending := m.snap()
			for range rng.IntN(4) {
				accept(step)
			}
			if r < 89 {
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				w.Committed()
				committed = pending
			} else {
				if err := tx.Rollback(); err != nil {
					t.Fatal(err)
				}
				if err := w.Discard(); err != nil {
					t.Fatal(err)
				}
				m.revert(committed)
			}
		case r < 93:
			if err := w.Discard(); err != nil {
				t.Fatal(err)
			}
			m.revert(committed)
		case r < 96:
			if got, want := w.GC(now), m.gc(now); got != want {
				t.Fatalf("step %d: GC = %d, model %d", step, got, want)
			}
		case r < 98: // clean restart
			if err := w.CommitNow(); err != nil {
				t.Fatal(err)
			}
			committed = m.snap()
			db, w = reopen(t, db, lim)
		default: // crash
			db, w = reopen(t, db, lim)
			m.revert(committed)
		}
		if w.Len() != len(m.wins) || w.Floors() != len(m.floors) {
			t.Fatalf("step %d: Len %d, Floors %d; model %d, %d", step, w.Len(), w.Floors(), len(m.wins), len(m.floors))
		}
		if w.Len() > m.lim.MaxSenders || w.Floors() > m.lim.MaxFloors {
			t.Fatalf("step %d: caps broken: Len %d, Floors %d", step, w.Len(), w.Floors())
		}
		if step%500 == 0 {
			probe(step)
		}
	}
	probe(-1)
	t.Logf("verdicts: %v; senders with a dropped floor: %d", counts, len(m.dropped))
	for _, k := range []string{"accepted", "replayed message", "sequence number below the replay window"} {
		if counts[k] < 20 {
			t.Errorf("only %d %q: the test exercised too little", counts[k], k)
		}
	}
}
