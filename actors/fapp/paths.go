package fapp

import "time"

// paths is a bounded map of ids (query, reservation, therapist) to the
// neighbour to send back to, with an expiry each.
//
// It is fair across neighbours: when full, the entry that goes is the
// oldest of the neighbour holding the most, so a neighbour flooding
// queries (each a fresh id, within its rate limit) pushes out its own
// reverse paths, not the few of its neighbours. Every operation but sweep
// and dropPeer is O(1) in the entries (O(neighbours) to find the largest
// when full): a flood cannot make each insert scan the map.
type paths struct {
	m      map[[16]byte]*pathEntry
	byPeer map[[16]byte]*peerPaths
	max    int
}

type pathEntry struct {
	id    [16]byte
	peer  [16]byte
	until time.Time
	gone  bool // replaced or evicted; still in its peer's queue until popped
}

// peerPaths is one neighbour's entries, oldest first (lazily compacted).
type peerPaths struct {
	q    []*pathEntry
	live int
}

func newPaths(max int) *paths {
	return &paths{m: map[[16]byte]*pathEntry{}, byPeer: map[[16]byte]*peerPaths{}, max: max}
}

func (p *paths) len() int { return len(p.m) }

func (p *paths) get(id [16]byte, now time.Time) ([16]byte, bool) {
	e, ok := p.m[id]
	if !ok || !now.Before(e.until) {
		return [16]byte{}, false
	}
	return e.peer, true
}

func (p *paths) put(id, peer [16]byte, until, now time.Time) {
	if old, ok := p.m[id]; ok {
		p.remove(old)
	} else if len(p.m) >= p.max {
		p.evict()
	}
	e := &pathEntry{id: id, peer: peer, until: until}
	pp := p.byPeer[peer]
	if pp == nil {
		pp = &peerPaths{}
		p.byPeer[peer] = pp
	}
	pp.q = append(pp.q, e)
	pp.live++
	p.m[id] = e
}

// remove takes e out of the map; its queue drops it later.
func (p *paths) remove(e *pathEntry) {
	delete(p.m, e.id)
	e.gone = true
	pp := p.byPeer[e.peer]
	pp.live--
	if pp.live == 0 {
		delete(p.byPeer, e.peer)
		return
	}
	// Pop what is gone from the front; compact when mostly gone.
	for len(pp.q) > 0 && pp.q[0].gone {
		pp.q[0] = nil
		pp.q = pp.q[1:]
	}
	if len(pp.q) > 2*pp.live+16 {
		pp.q = compact(pp.q)
	}
}

// evict removes the oldest entry of the neighbour holding the most.
func (p *paths) evict() {
	var big *peerPaths
	for _, pp := range p.byPeer {
		if big == nil || pp.live > big.live {
			big = pp
		}
	}
	if big == nil {
		return
	}
	for _, e := range big.q {
		if !e.gone {
			p.remove(e)
			return
		}
	}
}

func compact(q []*pathEntry) []*pathEntry {
	out := make([]*pathEntry, 0, len(q)/2+1)
	for _, e := range q {
		if !e.gone {
			out = append(out, e)
		}
	}
	return out
}

// sweep removes every expired entry.
func (p *paths) sweep(now time.Time) {
	for _, e := range p.m {
		if !now.Before(e.until) {
			p.remove(e)
		}
	}
}

// dropPeer removes every entry pointing at peer (its link is gone).
func (p *paths) dropPeer(peer [16]byte) {
	pp := p.byPeer[peer]
	if pp == nil {
		return
	}
	for _, e := range pp.q {
		if !e.gone {
			delete(p.m, e.id)
			e.gone = true
		}
	}
	delete(p.byPeer, peer)
}
