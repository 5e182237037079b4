package fapp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/internal/clock"
)

// TestStoreFairAcrossNeighbours: neighbour F floods 10,000 fresh
// identities (half with full sets, half with one slot); the established
// therapists that came through neighbour G keep their sets, and real
// therapists new through G afterwards are still stored and served. F's
// flood churns only F's share.
func TestStoreFairAcrossNeighbours(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 2_000
	}
	db, _ := tempDB(t)
	clk := clock.NewManual(t0)
	lim := Limits{MaxSlots: 4096, MaxTherapists: 1024}
	s := openStore(t, db, clk, lim)
	exp := t0.Add(24 * time.Hour)
	F, G := [16]byte{0xF}, [16]byte{0x6}
	var real []*Practice
	three := []Slot{testSlot(1, 2), testSlot(2, 3), testSlot(3, 4)}
	for i := range 10 {
		p := newPractice(t, fmt.Sprintf("real%d", i), "80331")
		real = append(real, p)
		if _, err := s.InsertFrom(publish(t, p, exp, three...), G); err != nil {
			t.Fatal(err)
		}
	}
	var full []Slot
	for i := range MaxSlotsPerAnnounce {
		full = append(full, testSlot(uint32(i+1), i+1))
	}
	refused := 0
	for i := range n {
		sl := full
		if i >= n/2 {
			sl = full[:1]
		}
		p := newPractice(t, fmt.Sprintf("sybil%d", i), "80331")
		if _, err := s.InsertFrom(publish(t, p, exp, sl...), F); errors.Is(err, ErrStoreFull) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			for _, r := range real {
				if a, _, ok := s.Get(r.Address()); !ok || len(a.Slots) != 3 {
					t.Fatalf("after %d sybils, %s lost its set", i+1, r.Address().Short())
				}
			}
		}
	}
	if s.Slots() > lim.MaxSlots || len(s.entries) > lim.MaxTherapists {
		t.Fatalf("over the limits: %d slots, %d therapists", s.Slots(), len(s.entries))
	}
	// Real therapists new through G are stored and served.
	for i := range 20 {
		p := newPractice(t, fmt.Sprintf("late%d", i), "10115")
		real = append(real, p)
		if _, err := s.InsertFrom(publish(t, p, exp, full...), G); err != nil {
			t.Fatalf("late %d through G: %v", i, err)
		}
	}
	for _, r := range real {
		if _, _, ok := s.Get(r.Address()); !ok {
			t.Fatalf("%s not served", r.Address().Short())
		}
	}
	if got := s.Query(Filter{PLZPrefix: "10115", Max: MaxQueryResults}); len(got) == 0 {
		t.Fatal("the late therapists are not found")
	}
	t.Logf("%d sybils from F: %d refused; store holds %d therapists, %d slots (F %d, G %d)",
		n, refused, len(s.entries), s.Slots(), len(s.groups[F].entries), len(s.groups[G].entries))
	// The introducer survives a reopen (version 2 records).
	s2 := openStore(t, db, clk, lim)
	if len(s2.groups[G].entries) != len(real) || len(s2.Damaged()) != 0 {
		t.Fatalf("after reopen G holds %d", len(s2.groups[G].entries))
	}
}

// TestStoreReadsVersion1Records: a record written before the introducer
// was kept (version 1) still opens, counted with neighbour zero.
func TestStoreReadsVersion1Records(t *testing.T) {
	db, _ := tempDB(t)
	clk := clock.NewManual(t0)
	p := newPractice(t, "old", "80331")
	frame := publish(t, p, t0.Add(time.Hour), testSlot(1, 2))
	v := make([]byte, recordHeader1)
	v[0] = recordVersion1
	binary.BigEndian.PutUint64(v[1:], uint64(t0.Add(time.Hour).Unix()))
	binary.BigEndian.PutUint64(v[9:], p.Seq())
	v = append(v, frame...)
	addr := p.Address()
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(storeBucket)
		if err != nil {
			return err
		}
		return b.Put(addr[:], v)
	}); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, db, clk, Limits{})
	if _, _, ok := s.Get(addr); !ok || len(s.Damaged()) != 0 || s.groups[[16]byte{}] == nil {
		t.Fatalf("version 1 record: ok %v, damaged %v", ok, s.Damaged())
	}
}
