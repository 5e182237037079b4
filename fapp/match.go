package fapp

import (
	"bytes"
	"sort"
)

// SortResults orders results by start time, then therapist address, then
// slot id: the order every search returns, so results from several
// responses merge into one stable list.
func SortResults(rs []Result) {
	sort.SliceStable(rs, func(i, j int) bool { return resultLess(&rs[i], &rs[j]) })
}

func resultLess(a, b *Result) bool {
	if a.Slot.Start != b.Slot.Start {
		return a.Slot.Start < b.Slot.Start
	}
	if c := bytes.Compare(a.ID.Therapist[:], b.ID.Therapist[:]); c != 0 {
		return c < 0
	}
	return a.ID.Slot < b.ID.Slot
}

// MergeResults merges the results of several responses to one query: per
// therapist only the slots of the newest announce (highest sequence) are
// kept, each slot once, sorted, at most limit (0: no limit). A relay that
// answers from an older set cannot bring back a slot the therapist has
// since given away.
func MergeResults(limit int, lists ...[]Result) []Result {
	newest := map[[16]byte]uint64{}
	for _, l := range lists {
		for _, r := range l {
			if r.Announce.Seq > newest[r.ID.Therapist] {
				newest[r.ID.Therapist] = r.Announce.Seq
			}
		}
	}
	seen := map[SlotID]bool{}
	var out []Result
	for _, l := range lists {
		for _, r := range l {
			if r.Announce.Seq != newest[r.ID.Therapist] || seen[r.ID] {
				continue
			}
			seen[r.ID] = true
			out = append(out, r)
		}
	}
	SortResults(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
