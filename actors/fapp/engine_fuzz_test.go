package fapp

import (
	"crypto/rand"
	"sync"
	"testing"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
)

// FuzzEngineHandle: arbitrary frames from a neighbour, each twice, into
// an engine with every role (a relay store, a published practice, a
// pending search and a reservation). Handle never panics; everything it
// sends is a FAPP frame within MaxFrameSize; a frame sent on for others
// is the input with its hop count raised by one and never goes back to
// the neighbour it came from; the second copy of a frame is never sent
// on again.
func FuzzEngineHandle(f *testing.F) {
	seeds := engineFuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])
	}
	// One engine for all inputs (a bbolt store and an Argon2id binding
	// per input would be most of the time): what earlier inputs left in
	// it is more state to be robust against.
	tm := newTestMesh(&testing.T{})
	tm.dir = f.TempDir()
	n := tm.add(Roles{Relay: true, Therapist: true, Patient: true})
	if _, _, _, err := n.eng.Publish([]fapp.Slot{testSlot(tm.clk.Now(), 1, 1)}); err != nil {
		f.Fatal(err)
	}
	if _, _, err := n.eng.StartSearch(fapp.Filter{}); err != nil {
		f.Fatal(err)
	}
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, data []byte) {
		mu.Lock()
		defer mu.Unlock()
		from := crypto.Address{0xAA}
		kind, hops, _, perr := fapp.Peek(data)
		sentOn := false
		for round := range 3 {
			src := from
			if round == 2 {
				// Only when it was sent on: one over the neighbour's
				// budget is not remembered and may pass from another.
				if perr != nil || kind != fapp.KindReserve || !sentOn {
					break
				}
				// A reservation is sent on again from the same neighbour
				// (a retransmission), never when it comes by another way.
				src = crypto.Address{0xBB}
			}
			for _, o := range n.eng.Handle(src, data) {
				if len(o.Data) > fapp.MaxFrameSize {
					t.Fatalf("sent a frame of %d bytes", len(o.Data))
				}
				k, h, _, err := fapp.Peek(o.Data)
				if err != nil {
					t.Fatalf("sent a frame Peek refuses: %v", err)
				}
				if perr != nil || k != kind || o.Kind != k {
					continue // an answer of its own (a response, an immediate answer)
				}
				// Sent on for others.
				if h != hops+1 {
					t.Fatalf("forwarded %s with hops %d, came with %d", k, h, hops)
				}
				if !o.All && o.Peer == src || o.All && o.Except != src {
					t.Fatalf("forwarded %s back towards its sender: %+v", k, o)
				}
				if round == 1 && k != fapp.KindReserve || round == 2 {
					t.Fatalf("the copy %d of a %s was sent on again", round+1, k)
				}
				sentOn = true
			}
		}
	})
}

// engineFuzzSeeds are valid frames of every kind.
func engineFuzzSeeds(f *testing.F) [][]byte {
	tm := newTestMesh(&testing.T{})
	tr := tm.add(Roles{Therapist: true})
	_, _, outs, err := tr.eng.Publish([]fapp.Slot{testSlot(tm.clk.Now(), 1, 1)})
	if err != nil {
		f.Fatal(err)
	}
	ann := outs[0].Data
	q, err := fapp.NewQuery(fapp.Filter{}, 4, rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	query, _ := fapp.EncodeSlotQuery(q.Query)
	resp, err := fapp.NewSlotResponse(&q.Query, [][]byte{ann}, 2)
	if err != nil {
		f.Fatal(err)
	}
	a, _ := fapp.DecodeSlotAnnounce(ann)
	_, reserve, err := fapp.NewReservation(&a, 1, "note", 4, rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	_, answer, err := tr.eng.cfg.Practice.Receive(reserve, tm.clk.Now())
	if err != nil {
		f.Fatal(err)
	}
	seeds := [][]byte{ann, query, resp, reserve}
	if answer != nil {
		seeds = append(seeds, answer)
	}
	if reqs, err := tr.eng.Requests(); err == nil && len(reqs) == 1 {
		if _, outs, err := tr.eng.Answer(reqs[0].ID, false, "x"); err == nil {
			seeds = append(seeds, outs[0].Data)
		}
	}
	return seeds
}
