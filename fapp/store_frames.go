package fapp

import (
	"bytes"
	"sort"
)

// Frames returns the encoded announces the store holds that have not
// expired, at most max of them (max <= 0: all), those expiring last
// first: what a relay hands a neighbour that just came up.
func (s *Store) Frames(max int) [][]byte {
	type held struct {
		expiry uint32
		addr   [16]byte
		frame  []byte
	}
	now := s.clk.Now()
	s.mu.Lock()
	live := make([]held, 0, len(s.entries))
	for _, e := range s.entries {
		if e.ann != nil && e.ann.ExpiresAt().After(now) {
			live = append(live, held{e.ann.Expiry, e.addr, e.frame})
		}
	}
	s.mu.Unlock()
	sort.Slice(live, func(i, j int) bool {
		if live[i].expiry != live[j].expiry {
			return live[i].expiry > live[j].expiry
		}
		return bytes.Compare(live[i].addr[:], live[j].addr[:]) < 0
	})
	if max > 0 && len(live) > max {
		live = live[:max]
	}
	out := make([][]byte, len(live))
	for i, h := range live {
		out[i] = h.frame
	}
	return out
}
