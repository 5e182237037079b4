package fapp

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
)

// Benchmarks for issue 13's acceptance 6 (docs/benchmarks.md): a relay holding 10,000 slots from 500 therapists answering
// queries, and the memory a stored slot costs.

// relayStore fills a store with therapists × perT slots over PLZ 80000–
// 80999 and the four Fachrichtungen, starting within 14 days of t0.
func relayStore(b *testing.B, therapists, perT int) (*Store, *clock.Manual) {
	b.Helper()
	db, _ := tempDB(b)
	clk := clock.NewManual(t0)
	s, err := Open(db, clk, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range therapists {
		p := newPractice(b, fmt.Sprintf("bench%d", i), PLZ(fmt.Sprintf("%05d", 80000+i%1000)))
		var sl []Slot
		for j := range perT {
			x := testSlot(uint32(j+1), (i*7+j*13)%(14*24))
			x.Fachrichtung = Fachrichtung(1 + (i+j)%4)
			x.Kostentraeger = []Kostentraeger{GKV, PKV, GKV | Selbstzahler, Beihilfe}[j%4]
			sl = append(sl, x)
		}
		if _, err := s.Insert(publish(b, p, t0.Add(48*time.Hour), sl...)); err != nil {
			b.Fatal(err)
		}
	}
	return s, clk
}

// BenchmarkRelayQuery: one query answered from 10,000 slots of 500
// therapists (match, sort, pick the announces); queries/s = 1e9 / ns/op.
func BenchmarkRelayQuery(b *testing.B) {
	s, _ := relayStore(b, 500, 20)
	q, err := NewQuery(Filter{Fachrichtung: Verhaltenstherapie, Kostentraeger: GKV, PLZPrefix: "803", Modalitaet: Video | Praxis,
		From: t0, To: t0.Add(14 * 24 * time.Hour)}, DefaultQueryHops, &counterReader{label: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if frames, _ := s.Answer(&q.Query); len(frames) == 0 {
			b.Fatal("no results")
		}
	}
}

// BenchmarkRelayQueryAndSeal: the same, with the response sealed to the
// query's key, as a relay sends it.
func BenchmarkRelayQueryAndSeal(b *testing.B) {
	s, _ := relayStore(b, 500, 20)
	q, err := NewQuery(Filter{Fachrichtung: Verhaltenstherapie, PLZPrefix: "80"}, DefaultQueryHops, &counterReader{label: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		frames, _ := s.Answer(&q.Query)
		if _, err := NewSlotResponse(&q.Query, frames, 4); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResponseSealOnly is the baseline of BenchmarkRelayQueryAndSeal,
// measured in the same run: sealing the same response without finding
// what goes in it, the work a relay answering cannot avoid.
// RelayQueryAndSeal ÷ this is the cost of the store's matching.
func BenchmarkResponseSealOnly(b *testing.B) {
	s, _ := relayStore(b, 500, 20)
	q, err := NewQuery(Filter{Fachrichtung: Verhaltenstherapie, PLZPrefix: "80"}, DefaultQueryHops, &counterReader{label: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	frames, _ := s.Answer(&q.Query)
	if len(frames) == 0 {
		b.Fatal("no results")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewSlotResponse(&q.Query, frames, 4); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreMemoryPerSlot reports the heap a stored slot costs (the
// decoded announce, its frame and the index, divided over its slots).
func BenchmarkStoreMemoryPerSlot(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s, _ := relayStore(b, 500, 20)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(s.Slots()), "B/slot")
		runtime.KeepAlive(s)
	}
}

// BenchmarkDecodeSlotAnnounce: decode and verify one 4-slot announce, the
// work a relay does per announce received.
func BenchmarkDecodeSlotAnnounce(b *testing.B) {
	f := publish(b, newPractice(b, "bench", "80331"), t0.Add(time.Hour), testSlot(1, 2), testSlot(2, 3), testSlot(3, 4), testSlot(4, 5))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSlotAnnounce(f); err != nil {
			b.Fatal(err)
		}
	}
}
