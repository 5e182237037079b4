package fapp

import (
	"testing"
	"time"
)

func pid(b byte, n int) (id [16]byte) {
	id[0], id[1], id[2] = b, byte(n), byte(n>>8)
	return id
}

// A neighbour flooding fresh ids fills the paths and then pushes out only
// its own oldest: a quiet neighbour's reverse paths stay.
func TestPathsFloodEvictsTheFloodersOwn(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := newPaths(100)
	quiet, flooder := pid(1, 0), pid(2, 0)
	for i := range 10 {
		p.put(pid(10, i), quiet, now.Add(time.Minute), now)
	}
	for i := range 10_000 {
		p.put(pid(20, i), flooder, now.Add(time.Minute), now)
	}
	if p.len() != 100 {
		t.Fatalf("%d paths, want the bound 100", p.len())
	}
	for i := range 10 {
		if peer, ok := p.get(pid(10, i), now); !ok || peer != quiet {
			t.Fatalf("the quiet neighbour's path %d was pushed out by the flood", i)
		}
	}
	// The flooder keeps its newest 90.
	if _, ok := p.get(pid(20, 9_999), now); !ok {
		t.Fatal("the flooder's newest path is gone")
	}
	if _, ok := p.get(pid(20, 9_909), now); ok {
		t.Fatal("the flooder's 91st newest path is still there")
	}
	if q := len(p.byPeer[flooder].q); q > 2*90+16 {
		t.Fatalf("the flooder's queue holds %d entries for 90 live: not compacted", q)
	}
}

// Expiry, replacement and a lost neighbour.
func TestPathsExpireReplaceDrop(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := newPaths(10)
	a, b := pid(1, 0), pid(2, 0)
	p.put(pid(9, 1), a, now.Add(time.Second), now)
	p.put(pid(9, 2), a, now.Add(time.Hour), now)
	if _, ok := p.get(pid(9, 1), now.Add(time.Second)); ok {
		t.Fatal("a path is served at its expiry")
	}
	p.sweep(now.Add(time.Second))
	if p.len() != 1 {
		t.Fatalf("%d paths after the sweep, want 1", p.len())
	}
	p.put(pid(9, 2), b, now.Add(time.Hour), now) // the same id from another neighbour
	if peer, _ := p.get(pid(9, 2), now); peer != b || p.len() != 1 {
		t.Fatalf("replaced path points at %x (len %d), want b", peer, p.len())
	}
	if _, ok := p.byPeer[a]; ok {
		t.Fatal("a neighbour without paths is still tracked")
	}
	p.put(pid(9, 3), b, now.Add(time.Hour), now)
	p.dropPeer(b)
	if p.len() != 0 || len(p.byPeer) != 0 {
		t.Fatalf("after dropping b: %d paths, %d neighbours", p.len(), len(p.byPeer))
	}
	// Full: an insert evicts, the map never grows past max.
	for i := range 25 {
		p.put(pid(8, i), pid(byte(3+i%3), 0), now.Add(time.Hour), now)
	}
	if p.len() != 10 {
		t.Fatalf("%d paths, want 10", p.len())
	}
}
