package fapp

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quicprochat/qpc/crypto"
)

// The bounded heap Query keeps while scanning gives exactly the first lim
// results of the fully sorted list, for every lim and any order offered.
func TestTopResultsIsSortTruncated(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := rnd.IntN(80)
		all := make([]Result, n)
		for i := range all {
			var a crypto.Address
			a[0] = byte(rnd.IntN(4)) // ties on start are common: the address and id decide
			all[i] = Result{ID: SlotID{Therapist: a, Slot: uint32(rnd.IntN(6))}, Slot: Slot{Start: uint32(1000 + rnd.IntN(10))}}
		}
		for _, lim := range []int{0, 1, 2, 20, 64} {
			top := topResults{lim: lim}
			for _, r := range all {
				top.offer(r)
			}
			want := slices.Clone(all)
			SortResults(want)
			want = want[:min(lim, len(want))]
			got := top.sorted()
			if len(got) != len(want) {
				t.Fatalf("round %d lim %d: %d results, want %d", round, lim, len(got), len(want))
			}
			for i := range got {
				if got[i].ID != want[i].ID || got[i].Slot.Start != want[i].Slot.Start {
					t.Fatalf("round %d lim %d: result %d is %v@%d, want %v@%d", round, lim, i, got[i].ID, got[i].Slot.Start, want[i].ID, want[i].Slot.Start)
				}
			}
		}
	}
}
