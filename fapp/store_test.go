package fapp

import (
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
)

func openStore(t *testing.T, db *bolt.DB, clk clock.Clock, lim Limits) *Store {
	t.Helper()
	s, err := Open(db, clk, lim)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreInsertRules(t *testing.T) {
	db, _ := tempDB(t)
	clk := clock.NewManual(t0)
	s := openStore(t, db, clk, Limits{})
	p := newPractice(t, "T1", "80331")
	exp := t0.Add(24 * time.Hour)

	a1 := publish(t, p, exp, testSlot(1, 2), testSlot(2, 3))
	a2 := publish(t, p, exp, testSlot(2, 3)) // slot 1 given away
	fwd, _ := Forward(a2)

	type step struct {
		name    string
		frame   []byte
		want    Outcome
		wantErr error
		slots   int
	}
	for _, c := range []step{
		{"first", a1, Added, nil, 2},
		{"same again", a1, Duplicate, nil, 2},
		{"newer replaces", a2, Replaced, nil, 1},
		{"same, forwarded (hop count differs)", fwd, Duplicate, nil, 1},
		{"older is stale", a1, 0, ErrStale, 1},
	} {
		got, err := s.Insert(c.frame)
		if got != c.want || !errors.Is(err, c.wantErr) || s.Slots() != c.slots {
			t.Fatalf("%s: %v %v, %d slots; want %v %v %d", c.name, got, err, s.Slots(), c.want, c.wantErr, c.slots)
		}
	}
	// Same sequence, other content: a therapist's state was lost, or the
	// key is shared. The first is kept.
	q := newPractice(t, "T1", "80331")
	q.seq = 1 // the next one is 2, as a2
	conflict := publish(t, q, exp, testSlot(9, 5))
	if _, err := s.Insert(conflict); !errors.Is(err, ErrSeqConflict) {
		t.Fatalf("conflict: %v", err)
	}
	if got := s.Query(Filter{}); len(got) != 1 || got[0].Slot.ID != 2 {
		t.Fatalf("after conflict %+v", got)
	}

	// Expiry and TTL bounds on the injected clock.
	r := newPractice(t, "T2", "10115")
	if _, err := s.Insert(publish(t, r, t0.Add(DefaultLimits.MaxTTL+time.Minute), testSlot(1, 2))); !errors.Is(err, ErrTTLTooLong) {
		t.Fatalf("too long: %v", err)
	}
	if _, err := s.Insert(publish(t, r, t0, testSlot(1, 2))); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	// Forged: a valid announce with another key's signature.
	forged := publish(t, r, exp, testSlot(1, 2))
	forged[len(forged)-3] ^= 1
	if _, err := s.Insert(forged); !errors.Is(err, messages.ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
	if _, err := s.Insert(publish(t, r, t0.Add(2*time.Hour), testSlot(1, 5))); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Fatalf("Len %d", s.Len())
	}
	clk.Advance(2 * time.Hour) // r's announce expires now
	if got := s.Query(Filter{}); len(got) != 1 || got[0].ID.Therapist != p.Address() {
		t.Fatalf("expired announce still answered: %+v", got)
	}
	if n, gone, err := s.Expire(); n != 1 || gone != 0 || err != nil {
		t.Fatalf("Expire = %d %d %v", n, gone, err)
	}
	if s.Slots() != 1 || s.Seq(r.Address()) != 4 {
		t.Fatalf("after expiry: %d slots, seq %d", s.Slots(), s.Seq(r.Address()))
	}
	// An older announce of r, still valid, is refused: the sequence is
	// remembered after the set expired.
	old := newPractice(t, "T2", "10115")
	old.seq = 1
	if _, err := s.Insert(publish(t, old, t0.Add(20*time.Hour), testSlot(1, 8))); !errors.Is(err, ErrStale) {
		t.Fatalf("replay after expiry: %v", err)
	}
	clk.Advance(DefaultLimits.MaxTTL)
	if n, gone, err := s.Expire(); n != 1 || gone != 1 || err != nil { // p's expires, r is forgotten
		t.Fatalf("Expire = %d %d %v", n, gone, err)
	}
	if s.Len() != 0 || s.Slots() != 0 || s.Seq(r.Address()) != 0 {
		t.Fatalf("Len %d, slots %d", s.Len(), s.Slots())
	}
}

func TestStoreReopen(t *testing.T) {
	db, path := tempDB(t)
	clk := clock.NewManual(t0)
	s := openStore(t, db, clk, Limits{})
	var frames [][]byte
	for i := range 20 {
		p := newPractice(t, fmt.Sprintf("T%d", i), PLZ(fmt.Sprintf("%05d", 80000+i)))
		f := publish(t, p, t0.Add(time.Duration(i+1)*time.Hour), testSlot(1, i+2), testSlot(2, i+3))
		frames = append(frames, f)
		if _, err := s.Insert(f); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(90 * time.Minute) // T0's expires
	if n, _, _ := s.Expire(); n != 1 {
		t.Fatalf("expired %d", n)
	}
	before := s.Query(Filter{Max: MaxQueryResults})
	db.Close()

	db2, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	s2 := openStore(t, db2, clk, Limits{})
	if len(s2.Damaged()) != 0 || s2.Len() != 19 || s2.Slots() != 38 || s2.Seq(newPractice(t, "T0", "80000").Address()) != 1 {
		t.Fatalf("reopened: %d damaged, %d announces, %d slots", len(s2.Damaged()), s2.Len(), s2.Slots())
	}
	after := s2.Query(Filter{Max: MaxQueryResults})
	if len(after) != len(before) {
		t.Fatalf("query after reopen: %d results, before %d", len(after), len(before))
	}
	for i := range after {
		if after[i].ID != before[i].ID || after[i].Slot != before[i].Slot {
			t.Fatalf("result %d: %+v, before %+v", i, after[i], before[i])
		}
	}
	if out, err := s2.Insert(frames[5]); out != Duplicate || err != nil {
		t.Fatalf("dedup after reopen: %v %v", out, err)
	}
}

func TestStoreDamagedRecord(t *testing.T) {
	db, path := tempDB(t)
	clk := clock.NewManual(t0)
	s := openStore(t, db, clk, Limits{})
	var addrs []string
	for i := range 3 {
		p := newPractice(t, fmt.Sprintf("D%d", i), "80331")
		addrs = append(addrs, string(p.Address().Bytes()))
		if _, err := s.Insert(publish(t, p, t0.Add(time.Hour), testSlot(1, 2))); err != nil {
			t.Fatal(err)
		}
	}
	// Damage: a flipped byte in one signature, a truncated record, a key
	// of the wrong length.
	err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(StoreBucket)
		v := append([]byte(nil), b.Get([]byte(addrs[0]))...)
		v[len(v)-1] ^= 1
		if err := b.Put([]byte(addrs[0]), v); err != nil {
			return err
		}
		if err := b.Put([]byte(addrs[1]), []byte{recordVersion, 0}); err != nil {
			return err
		}
		return b.Put([]byte("short"), []byte{recordVersion})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	s2, err := Open(db2, clk, Limits{})
	if err != nil {
		t.Fatalf("Open with damaged records: %v", err)
	}
	dmg := s2.Damaged()
	if len(dmg) != 3 {
		t.Fatalf("damaged %d, want 3", len(dmg))
	}
	for _, d := range dmg {
		if !errors.Is(d.Err, ErrDamagedRecord) {
			t.Errorf("%x: %v, want ErrDamagedRecord", d.Key, d.Err)
		}
	}
	if s2.Len() != 1 || len(s2.Query(Filter{})) != 1 {
		t.Fatalf("the intact record is lost: %d announces", s2.Len())
	}
	// The damaged records are left as they were.
	_ = db2.View(func(tx *bolt.Tx) error {
		if tx.Bucket(StoreBucket).Stats().KeyN != 4 {
			t.Error("damaged records were deleted")
		}
		return nil
	})
}

// TestStoreFairness: a therapist flooding announces only replaces its own
// set; therapists flooding with full sets under many identities push out
// each other, never the small sets of the others; a newcomer is refused
// rather than push out someone holding no more than it brings.
func TestStoreFairness(t *testing.T) {
	db, _ := tempDB(t)
	clk := clock.NewManual(t0)
	s := openStore(t, db, clk, Limits{MaxSlots: 100, MaxTherapists: 20})
	exp := t0.Add(24 * time.Hour)
	var honest []*Practice
	for i := range 10 {
		p := newPractice(t, fmt.Sprintf("honest%d", i), "80331")
		honest = append(honest, p)
		if _, err := s.Insert(publish(t, p, exp, testSlot(1, i+1), testSlot(2, i+30), testSlot(3, i+60))); err != nil {
			t.Fatal(err)
		}
	}
	// One flooder announces a thousand times with a full set.
	flooder := newPractice(t, "flooder", "80331")
	full := func() []Slot {
		var sl []Slot
		for i := range MaxSlotsPerAnnounce {
			sl = append(sl, testSlot(uint32(i+1), i+1))
		}
		return sl
	}
	for range 1000 {
		if _, err := s.Insert(publish(t, flooder, exp, full()...)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Slots() != 30+MaxSlotsPerAnnounce {
		t.Fatalf("slots %d after one flooder", s.Slots())
	}
	// Sybils: 20 more identities with full sets.
	refused := 0
	for i := range 20 {
		if _, err := s.Insert(publish(t, newPractice(t, fmt.Sprintf("sybil%d", i), "80331"), exp, full()...)); errors.Is(err, ErrStoreFull) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// 30 + 32 + 32 fit in 100: the first sybil is held, the others would
	// have to push out a set no larger than their own.
	if refused != 19 {
		t.Fatalf("%d sybils refused, want 19", refused)
	}
	for _, p := range honest {
		if a, _, ok := s.Get(p.Address()); !ok || len(a.Slots) != 3 {
			t.Fatalf("honest therapist %s lost its slots", p.Address().Short())
		}
	}
	// Newcomers with smaller sets push out the largest sets, never the
	// honest small ones.
	var newcomers []*Practice
	for i := range 6 {
		p := newPractice(t, fmt.Sprintf("newcomer%d", i), "10115")
		newcomers = append(newcomers, p)
		var eight []Slot
		for j := range 8 {
			eight = append(eight, testSlot(uint32(j+1), j+1))
		}
		for range 3 { // announcing again changes nothing
			if _, err := s.Insert(publish(t, p, exp, eight...)); err != nil {
				t.Fatalf("newcomer%d: %v", i, err)
			}
		}
	}
	for _, p := range append(honest, newcomers...) {
		if _, _, ok := s.Get(p.Address()); !ok {
			t.Fatalf("therapist %s pushed out", p.Address().Short())
		}
	}
	if _, _, ok := s.Get(flooder.Address()); ok {
		t.Fatal("the flooder's full set was not pushed out")
	}
	for _, e := range s.entries {
		if e.cost() == MaxSlotsPerAnnounce {
			t.Fatalf("a full set is still held (%s) while smaller ones were refused room", e.addr.Short())
		}
	}
	if s.Slots() > 100 || len(s.entries) > 20 {
		t.Fatalf("over the limits: %d slots, %d therapists", s.Slots(), len(s.entries))
	}
}

func TestStoreQuery(t *testing.T) {
	db, _ := tempDB(t)
	clk := clock.NewManual(t0)
	s := openStore(t, db, clk, Limits{})
	exp := t0.Add(72 * time.Hour)
	slot := func(id uint32, h int, ty SlotType, f Fachrichtung, m Modalitaet, k Kostentraeger) Slot {
		s := testSlot(id, h)
		s.Type, s.Fachrichtung, s.Modalitaet, s.Kostentraeger = ty, f, m, k
		return s
	}
	muc := newPractice(t, "muc", "80331")
	muc2 := newPractice(t, "muc2", "80469")
	ber := newPractice(t, "ber", "10115")
	for _, f := range [][]byte{
		publish(t, muc, exp,
			slot(1, 30, Therapieplatz, Verhaltenstherapie, Praxis, GKV),
			slot(2, 5, Sprechstunde, Verhaltenstherapie, Video, GKV|PKV),
			slot(3, -1, Therapieplatz, Verhaltenstherapie, Praxis, GKV), // started an hour ago
			slot(4, 10, Gruppe, Verhaltenstherapie|KJP, Praxis, GKV)),
		publish(t, muc2, exp,
			slot(1, 20, Therapieplatz, Verhaltenstherapie, Telefon, GKV),
			slot(2, 7, Probatorik, Tiefenpsychologisch, Praxis|Video, Selbstzahler)),
		publish(t, ber, exp,
			slot(1, 3, Therapieplatz, Verhaltenstherapie, Praxis|Video, GKV),
			slot(2, 200, Therapieplatz, Verhaltenstherapie, Praxis, GKV)), // after exp? no: start can be later than the announce's expiry
	} {
		if _, err := s.Insert(f); err != nil {
			t.Fatal(err)
		}
	}
	id := func(p *Practice, n uint32) string { return SlotID{p.Address(), n}.String() }
	for _, c := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"everything, by start", Filter{}, []string{id(ber, 1), id(muc, 2), id(muc2, 2), id(muc, 4), id(muc2, 1), id(muc, 1), id(ber, 2)}},
		{"max 2", Filter{Max: 2}, []string{id(ber, 1), id(muc, 2)}},
		{"VT (not KJP)", Filter{Fachrichtung: Verhaltenstherapie}, []string{id(ber, 1), id(muc, 2), id(muc2, 1), id(muc, 1), id(ber, 2)}},
		{"VT+KJP", Filter{Fachrichtung: Verhaltenstherapie | KJP}, []string{id(muc, 4)}},
		{"video or praxis", Filter{Modalitaet: Video | Praxis, Fachrichtung: Verhaltenstherapie}, []string{id(ber, 1), id(muc, 2), id(muc, 1), id(ber, 2)}},
		{"telefon", Filter{Modalitaet: Telefon}, []string{id(muc2, 1)}},
		{"pkv or selbstzahler", Filter{Kostentraeger: PKV | Selbstzahler}, []string{id(muc, 2), id(muc2, 2)}},
		{"PLZ 803", Filter{PLZPrefix: "803"}, []string{id(muc, 2), id(muc, 4), id(muc, 1)}},
		{"PLZ 8", Filter{PLZPrefix: "8"}, []string{id(muc, 2), id(muc2, 2), id(muc, 4), id(muc2, 1), id(muc, 1)}},
		{"PLZ 80469 exactly", Filter{PLZPrefix: "80469"}, []string{id(muc2, 2), id(muc2, 1)}},
		{"PLZ 9", Filter{PLZPrefix: "9"}, nil},
		{"type therapieplatz", Filter{Type: Therapieplatz}, []string{id(ber, 1), id(muc2, 1), id(muc, 1), id(ber, 2)}},
		{"window [5h, 20h)", Filter{From: t0.Add(5 * time.Hour), To: t0.Add(20 * time.Hour)}, []string{id(muc, 2), id(muc2, 2), id(muc, 4)}},
		{"window [20h, 20h+1s)", Filter{From: t0.Add(20 * time.Hour), To: t0.Add(20*time.Hour + time.Second)}, []string{id(muc2, 1)}},
		{"from in the past is now", Filter{From: t0.Add(-48 * time.Hour), To: t0.Add(4 * time.Hour)}, []string{id(ber, 1)}},
		{"the issue's search", Filter{Fachrichtung: Verhaltenstherapie, Kostentraeger: GKV, PLZPrefix: "803", Modalitaet: Video | Praxis,
			From: t0, To: t0.Add(14 * 24 * time.Hour)}, []string{id(muc, 2), id(muc, 1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.f.Validate(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range s.Query(c.f) {
				got = append(got, r.ID.String())
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got  %v\nwant %v", got, c.want)
			}
		})
	}
	// The relay's answer: the announces holding the results, and the
	// patient finds the same results in them.
	pq, err := NewQuery(Filter{Fachrichtung: Verhaltenstherapie, PLZPrefix: "8"}, DefaultQueryHops, &counterReader{label: "q"})
	if err != nil {
		t.Fatal(err)
	}
	frames, covered := s.Answer(&pq.Query)
	if len(frames) != 2 || len(covered) != 3 {
		t.Fatalf("answer: %d announces, %d results", len(frames), len(covered))
	}
	resp, err := NewSlotResponse(&pq.Query, frames, 2)
	if err != nil {
		t.Fatal(err)
	}
	res, bad, err := pq.Open(resp, clk.Now())
	if err != nil || bad != 0 || len(res) != 3 {
		t.Fatalf("patient opened %d results (bad %d): %v", len(res), bad, err)
	}
	for i := range res {
		if res[i].ID != covered[i].ID {
			t.Fatalf("result %d: %s, relay %s", i, res[i].ID, covered[i].ID)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	for _, f := range []Filter{
		{Fachrichtung: 6}, {Modalitaet: 8}, {Kostentraeger: 16}, {Type: 9}, {Max: -1}, {Max: MaxQueryResults + 1},
		{PLZPrefix: "803311"}, {PLZPrefix: "8a"}, {From: t0, To: t0},
	} {
		if err := f.Validate(); !errors.Is(err, ErrBadValue) {
			t.Errorf("%+v: %v", f, err)
		}
		if _, err := NewQuery(f, 4, &counterReader{label: "v"}); !errors.Is(err, ErrBadValue) {
			t.Errorf("NewQuery %+v: %v", f, err)
		}
	}
	if _, err := NewQuery(Filter{}, 0, &counterReader{label: "v"}); !errors.Is(err, ErrBadValue) {
		t.Error("hop limit 0")
	}
}

// TestStoreTherapistLimit: at MaxTherapists new identities do not push
// out established therapists, whatever they bring; therapists remembered
// without slots make room.
func TestStoreTherapistLimit(t *testing.T) {
	db, _ := tempDB(t)
	clk := clock.NewManual(t0)
	s := openStore(t, db, clk, Limits{MaxTherapists: 4})
	exp := t0.Add(24 * time.Hour)
	for i := range 3 {
		if _, err := s.Insert(publish(t, newPractice(t, fmt.Sprintf("est%d", i), "80331"), exp, testSlot(1, 2), testSlot(2, 3))); err != nil {
			t.Fatal(err)
		}
	}
	short := newPractice(t, "short", "80331")
	if _, err := s.Insert(publish(t, short, t0.Add(time.Hour), testSlot(1, 2))); err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{0, 1, 0} {
		var sl []Slot
		for j := range n {
			sl = append(sl, testSlot(uint32(j+1), 2))
		}
		if _, err := s.Insert(publish(t, newPractice(t, fmt.Sprintf("new%d", i), "80331"), exp, sl...)); !errors.Is(err, ErrStoreFull) {
			t.Fatalf("newcomer %d with %d slots: %v, want ErrStoreFull", i, n, err)
		}
	}
	clk.Advance(time.Hour)
	if n, _, _ := s.Expire(); n != 1 {
		t.Fatal("short did not expire")
	}
	// short is remembered without slots: a newcomer takes its place.
	if _, err := s.Insert(publish(t, newPractice(t, "new9", "80331"), exp, testSlot(1, 5))); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if s.Seq(short.Address()) != 0 || s.Len() != 4 {
		t.Fatalf("seq %d, Len %d", s.Seq(short.Address()), s.Len())
	}
}

// TestStoreReplaceDoesNotFit: a therapist whose new, larger set does not
// fit loses its old (stale) set; its new sequence is remembered, so the
// old set cannot come back either.
func TestStoreReplaceDoesNotFit(t *testing.T) {
	db, _ := tempDB(t)
	s := openStore(t, db, clock.NewManual(t0), Limits{MaxSlots: 10})
	exp := t0.Add(24 * time.Hour)
	for i := range 4 {
		if _, err := s.Insert(publish(t, newPractice(t, fmt.Sprintf("o%d", i), "80331"), exp, testSlot(1, 2), testSlot(2, 3))); err != nil {
			t.Fatal(err)
		}
	}
	p := newPractice(t, "grower", "80331")
	old := publish(t, p, exp, testSlot(1, 2))
	if _, err := s.Insert(old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Insert(publish(t, p, exp, testSlot(1, 2), testSlot(2, 3), testSlot(3, 4))); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("larger set: %v, want ErrStoreFull", err)
	}
	if _, _, ok := s.Get(p.Address()); ok || s.Seq(p.Address()) != 2 || s.Slots() != 8 {
		t.Fatalf("stale set kept: ok %v seq %d slots %d", ok, s.Seq(p.Address()), s.Slots())
	}
	if _, err := s.Insert(old); !errors.Is(err, ErrStale) {
		t.Fatalf("old set again: %v", err)
	}
	// It fits again with two slots.
	if _, err := s.Insert(publish(t, p, exp, testSlot(1, 2), testSlot(2, 3))); err != nil {
		t.Fatal(err)
	}
}

// TestStoreModel runs random announces, replays and clock steps against a
// naive model (no capacity pressure): per therapist the highest sequence
// wins, expired sets are not answered, and the store agrees with the model
// after every step and after a reopen.
func TestStoreModel(t *testing.T) {
	db, path := tempDB(t)
	clk := clock.NewManual(t0)
	s := openStore(t, db, clk, Limits{})
	type model struct {
		seq   uint64
		exp   time.Time
		slots int
	}
	want := map[string]*model{}
	var practices []*Practice
	for i := range 6 {
		practices = append(practices, newPractice(t, fmt.Sprintf("m%d", i), "80331"))
	}
	var sent [][]byte
	rnd := &counterReader{label: "model"}
	next := func(n int) int {
		var b [1]byte
		rnd.Read(b[:])
		return int(b[0]) % n
	}
	for step := range 300 {
		switch op := next(10); {
		case op < 6: // a new set
			p := practices[next(len(practices))]
			var sl []Slot
			for j := range next(5) {
				sl = append(sl, testSlot(uint32(j+1), 1+next(40)))
			}
			exp := clk.Now().Add(time.Duration(1+next(12)) * time.Hour)
			f := publish(t, p, exp, sl...)
			sent = append(sent, f)
			if _, err := s.Insert(f); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			want[string(p.Address().Bytes())] = &model{seq: p.Seq(), exp: exp, slots: len(sl)}
		case op < 8 && len(sent) > 0: // a replay of something sent before
			f := sent[next(len(sent))]
			a, _ := DecodeSlotAnnounce(f)
			m := want[string(a.Therapist().Bytes())]
			out, err := s.Insert(f)
			switch {
			case !a.ExpiresAt().After(clk.Now()):
				if !errors.Is(err, ErrExpired) {
					t.Fatalf("step %d: replay of an expired set: %v %v", step, out, err)
				}
			case a.Seq < m.seq:
				if !errors.Is(err, ErrStale) {
					t.Fatalf("step %d: stale replay: %v %v", step, out, err)
				}
			case out != Duplicate || err != nil:
				t.Fatalf("step %d: duplicate: %v %v", step, out, err)
			}
		default:
			clk.Advance(time.Duration(next(90)) * time.Minute)
			if _, _, err := s.Expire(); err != nil {
				t.Fatal(err)
			}
		}
		check := func(s *Store) {
			t.Helper()
			total, held := 0, 0
			for _, p := range practices {
				m := want[string(p.Address().Bytes())]
				if m == nil {
					continue
				}
				a, _, ok := s.Get(p.Address())
				live := m.exp.After(clk.Now())
				if ok != live || s.Seq(p.Address()) != m.seq || (ok && (a.Seq != m.seq || len(a.Slots) != m.slots)) {
					t.Fatalf("step %d: %s: held %v (want %v), seq %d (want %d)", step, p.Address().Short(), ok, live, s.Seq(p.Address()), m.seq)
				}
				if live {
					total += m.slots
					held++
				}
			}
			got := 0
			for _, r := range s.Query(Filter{Max: MaxQueryResults, From: t0.Add(-time.Hour)}) {
				if !r.Slot.StartTime().Before(clk.Now()) {
					got++
				}
			}
			if s.Len() < held || got > total {
				t.Fatalf("step %d: Len %d (want ≥ %d), %d results of %d slots", step, s.Len(), held, got, total)
			}
		}
		check(s)
		if step == 299 {
			db.Close()
			db2, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			check(openStore(t, db2, clk, Limits{}))
		}
	}
}
