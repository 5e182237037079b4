package fapp

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
)

// Issue 13, acceptance 6: queries answered by a relay holding 10,000
// slots of 500 therapists, the whole of what the relay's engine does per
// query (decode, dedup, reverse path, match, seal the response, forward
// the query), against the crypto it cannot avoid measured in the same run
// (BenchmarkRelayEngineSealOnly: sealing the same response).

func relayEngine(b *testing.B) (*Engine, *clock.Manual, fapp.SlotQuery) {
	b.Helper()
	clk := clock.NewManual(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	db, err := bolt.Open(filepath.Join(b.TempDir(), "relay.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	store, err := fapp.Open(db, clk, fapp.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	appr, err := testApprobation()
	if err != nil {
		b.Fatal(err)
	}
	t0 := clk.Now()
	for i := range 500 {
		id, err := crypto.NewIdentity(nil)
		if err != nil {
			b.Fatal(err)
		}
		p, err := fapp.NewPractice(id, fapp.PLZ(fmt.Sprintf("%05d", 80000+i%1000)), appr, 0)
		if err != nil {
			b.Fatal(err)
		}
		var slots []fapp.Slot
		for j := range 20 {
			slots = append(slots, fapp.Slot{ID: uint32(j + 1), Start: uint32(t0.Add(time.Duration((i*7+j*13)%(14*24)+1) * time.Hour).Unix()),
				Minutes: 50, Type: fapp.Therapieplatz, Fachrichtung: fapp.Fachrichtung(1 + (i+j)%4), Modalitaet: fapp.Praxis | fapp.Video,
				Kostentraeger: []fapp.Kostentraeger{fapp.GKV, fapp.PKV, fapp.GKV | fapp.Selbstzahler, fapp.Beihilfe}[j%4]})
		}
		f, err := p.Publish(slots, t0.Add(48*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := store.Insert(f); err != nil {
			b.Fatal(err)
		}
	}
	if store.Slots() != 10_000 {
		b.Fatalf("store holds %d slots, want 10000", store.Slots())
	}
	eng := NewEngine(EngineConfig{Self: crypto.Address{1}, Roles: Roles{Relay: true}, Store: store, Clock: clk,
		Metrics: metrics.New(metrics.Options{}).FAPP, Rand: rand.Reader})
	q, err := fapp.NewQuery(fapp.Filter{Fachrichtung: fapp.Verhaltenstherapie, Kostentraeger: fapp.GKV, PLZPrefix: "803",
		Modalitaet: fapp.Video | fapp.Praxis, From: t0, To: t0.Add(14 * 24 * time.Hour)}, fapp.DefaultQueryHops, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return eng, clk, q.Query
}

// queryFrames are n encodings of q, each with its own query id (a relay
// drops a query id it has seen).
func queryFrames(b *testing.B, q fapp.SlotQuery, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		binary.BigEndian.PutUint64(q.QueryID[8:], uint64(i))
		f, err := fapp.EncodeSlotQuery(q)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = f
	}
	return out
}

// BenchmarkRelayEngineQuery: one query in, its sealed response and the
// forwarded query out; queries/s = 1e9 / ns/op on one core. The queries
// come from one neighbour half a second apart on the engine's clock, the
// pace its forward budget (2 a second) lets through whole.
func BenchmarkRelayEngineQuery(b *testing.B) {
	eng, clk, q := relayEngine(b)
	frames := queryFrames(b, q, b.N)
	from := [16]byte{2}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		clk.Advance(500 * time.Millisecond)
		outs := eng.Handle(from, frames[i])
		if len(outs) != 2 {
			b.Fatalf("query %d: %d frames out, want the response and the forwarded query", i, len(outs))
		}
	}
}

// BenchmarkRelayEngineSealOnly seals the response the query above gets,
// without finding what goes in it: the baseline of BenchmarkRelayEngineQuery.
func BenchmarkRelayEngineSealOnly(b *testing.B) {
	eng, _, q := relayEngine(b)
	announces, _ := eng.cfg.Store.Answer(&q)
	if len(announces) == 0 {
		b.Fatal("the query matches nothing")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := fapp.NewSlotResponse(&q, announces, 1); err != nil {
			b.Fatal(err)
		}
	}
}
