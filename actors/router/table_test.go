package router

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

var t0 = time.Unix(1_700_000_000, 0)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// node is a test identity: a signing key and the address derived from it.
// (The table only hashes the key, so it need not be a curve point.)
type node struct {
	key  [32]byte
	addr [16]byte
}

func mkNode(i int) node {
	var n node
	binary.BigEndian.PutUint64(n.key[:], uint64(i)+1)
	n.key[31] = 0x5e
	n.addr = crypto.AddressOf(n.key[:])
	return n
}

// announce builds the route an announce of n with seq heard via next
// describes. Keys and capabilities are a function of (n, seq), as they
// are for one signed announce.
func announce(n node, seq uint64, via [16]byte, hops uint8) Route {
	r := Route{Address: n.addr, SigningKey: n.key, NextHop: via, Link: fmt.Sprintf("tcp:%x", via[:2]), Hops: hops, Seq: seq}
	r.Capabilities = messages.Capabilities(seq % 5)
	r.SealingKey[0], r.SealingKey[1] = n.key[7], byte(seq)
	return r
}

// TestTableKeepsNoPathBackThroughItself is the routing loop of issue 12's
// LoRa mesh (acceptance 2): node 7 routes to X via 26 (3 hops) and passes
// the announce on; its neighbour 0 routes to X via 7 (4 hops) and passes
// it on too, so 7 hears X via 0 with 5 hops. When 7 loses 26, that path
// must not become its route: 0's goes through 7 (7 0 7 0 … until the hop
// limit). Only a path as short as the shortest is a safe alternate (one
// hop longer is not: its neighbour may have switched to a path through
// this node since, without a word), and so is a copy of the same
// announce over such a path after the route went; a newer announce is
// taken over any path.
func TestTableKeepsNoPathBackThroughItself(t *testing.T) {
	x := mkNode(1)
	via26, via0, via5 := mkNode(126).addr, mkNode(100).addr, mkNode(105).addr
	tab := NewTable(TableConfig{MaxPaths: 3})
	must := func(r Route, want Change) {
		t.Helper()
		got, err := tab.Update(r, t0)
		if err != nil || got != want {
			t.Fatalf("Update(via %x, %d hops) = %v, %v; want %v", r.NextHop[:2], r.Hops, got, err, want)
		}
	}
	must(announce(x, 5, via26, 3), ChangeAdded)
	must(announce(x, 5, via0, 5), ChangeNone) // back through us: not kept
	must(announce(x, 5, via5, 4), ChangeNone) // may be back through us too
	must(announce(x, 5, via5, 3), ChangeAlternate)
	if ps := tab.Paths(x.addr); len(ps) != 2 {
		t.Fatalf("paths %+v, want via 26 and via 5", ps)
	}
	if lost := tab.RemoveVia(via26); len(lost) != 0 {
		t.Fatalf("lost %x", lost)
	}
	if r, ok := tab.Lookup(x.addr); !ok || r.NextHop != via5 {
		t.Fatalf("after losing 26: %+v %v, want via 5", r, ok)
	}
	if lost := tab.RemoveVia(via5); len(lost) != 1 {
		t.Fatalf("lost %x, want x", lost)
	}
	must(announce(x, 5, via0, 5), ChangeNone)  // still possibly through us
	must(announce(x, 5, via5, 3), ChangeAdded) // 26's loss healed over 5
	// 5 passes the announce on with more hops now: it lost its path and
	// may have one through us; what it said before is stale.
	must(announce(x, 5, via5, 4), ChangeNone)
	if _, ok := tab.Lookup(x.addr); ok {
		t.Fatal("a route via 0 after the feasible paths went")
	}
	if _, ok := tab.Lookup(x.addr); ok {
		t.Fatal("a route via 5 after its news of a longer path")
	}
	must(announce(x, 6, via0, 5), ChangeAdded) // a newer announce, any path
	if st := tab.Stats(); st.Unfeasible != 4 {
		t.Fatalf("stats %+v, want 4 unfeasible", st)
	}
	// The record of the fewest hops survives a snapshot.
	back := NewTable(TableConfig{MaxPaths: 3})
	tab.RemoveVia(via0)
	if err := back.Restore(tab.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if got, _ := back.Update(announce(x, 6, via26, 6), t0); got != ChangeNone {
		t.Fatalf("after restore: a path of 6 hops (fewest 5) = %v, want none", got)
	}
}

// TestTableLookupExcept: a frame never goes back to the neighbour it
// came from while another path exists (split horizon).
func TestTableLookupExcept(t *testing.T) {
	x := mkNode(1)
	nb1, nb2 := mkNode(101).addr, mkNode(102).addr
	tab := NewTable(TableConfig{MaxPaths: 3})
	tab.Update(announce(x, 1, nb1, 2), t0)
	tab.Update(announce(x, 1, nb2, 2), t0)
	if r, ok := tab.LookupExcept(x.addr, nb1); !ok || r.NextHop != nb2 {
		t.Fatalf("except nb1: %+v %v", r, ok)
	}
	if r, ok := tab.LookupExcept(x.addr, nb2); !ok || r.NextHop != nb1 {
		t.Fatalf("except nb2: %+v %v", r, ok)
	}
	tab.RemoveVia(nb2)
	if _, ok := tab.LookupExcept(x.addr, nb1); ok {
		t.Fatal("the only path goes back to where the frame came from")
	}
}

func TestTableUpdateRules(t *testing.T) {
	a, b, c := mkNode(1), mkNode(2), mkNode(3)
	nb1, nb2, nb3 := mkNode(101).addr, mkNode(102).addr, mkNode(103).addr
	type step struct {
		name     string
		r        Route
		at       int
		want     Change
		err      error
		bestVia  [16]byte
		bestHops uint8
	}
	steps := []step{
		{"new destination", announce(a, 5, nb1, 3), 0, ChangeAdded, nil, nb1, 3},
		{"older sequence refused", announce(a, 4, nb2, 1), 1, ChangeNone, ErrStale, nb1, 3},
		{"flood copy changes nothing", announce(a, 5, nb1, 3), 2, ChangeNone, nil, nb1, 3},
		{"same seq, other neighbour, more hops: unfeasible", announce(a, 5, nb2, 4), 4, ChangeNone, nil, nb1, 3},
		{"same seq, other neighbour, as many hops, newer: best", announce(a, 5, nb2, 3), 4, ChangeBest, nil, nb2, 3},
		{"same seq, other neighbour, fewer hops: best", announce(a, 5, nb3, 2), 5, ChangeBest, nil, nb3, 2},
		{"same seq, same neighbour, fewer hops", announce(a, 5, nb1, 1), 6, ChangeBest, nil, nb1, 1},
		{"newer seq via a longer path replaces all", announce(a, 6, nb2, 5), 7, ChangeBest, nil, nb2, 5},
		{"the old best's copy of it comes later", announce(a, 6, nb1, 1), 8, ChangeBest, nil, nb1, 1},
		{"older again refused", announce(a, 5, nb1, 1), 9, ChangeNone, ErrStale, nb1, 1},
		{"direct neighbour", announce(b, 1, b.addr, 1), 10, ChangeAdded, nil, b.addr, 1},
		{"bad: zero hops", announce(c, 1, nb1, 0), 11, ChangeNone, ErrBadRoute, [16]byte{}, 0},
		{"bad: zero next hop", announce(c, 1, [16]byte{}, 1), 12, ChangeNone, ErrBadRoute, [16]byte{}, 0},
		{"bad: address not its key's", func() Route { r := announce(c, 1, nb1, 1); r.Address = a.addr; return r }(), 13, ChangeNone, ErrBadRoute, nb1, 1},
	}
	tab := NewTable(TableConfig{MaxPaths: 3})
	for _, s := range steps {
		got, err := tab.Update(s.r, sec(s.at))
		if got != s.want || !errors.Is(err, s.err) {
			t.Fatalf("%s: Update = %v, %v; want %v, %v", s.name, got, err, s.want, s.err)
		}
		best, ok := tab.Lookup(s.r.Address)
		if s.bestHops == 0 {
			if ok {
				t.Fatalf("%s: route stored: %+v", s.name, best)
			}
			continue
		}
		if !ok || best.NextHop != s.bestVia || best.Hops != s.bestHops {
			t.Fatalf("%s: best = via %x hops %d (ok %v), want via %x hops %d", s.name, best.NextHop[:2], best.Hops, ok, s.bestVia[:2], s.bestHops)
		}
	}
	// The copy of 4 hops was refused, the paths of 3, 2 and 5 went when
	// shorter copies came (feasibility: at most the fewest hops).
	if st := tab.Stats(); st.Stale != 2 || st.Routes != 2 || st.Paths != 2 || st.Unfeasible != 5 {
		t.Fatalf("stats %+v, want 2 stale, 2 routes, 2 paths, 5 unfeasible", st)
	}
	if r, _ := tab.Lookup(b.addr); !r.Direct() {
		t.Fatal("direct neighbour's route is not Direct")
	}
	if r, _ := tab.Lookup(a.addr); r.Direct() || r.Seq != 6 || r.Capabilities != messages.Capabilities(6%5) {
		t.Fatalf("route fields: %+v", r)
	}
}

func TestTableBestPathTieBreaksOnFreshness(t *testing.T) {
	a := mkNode(1)
	nb1, nb2 := mkNode(101).addr, mkNode(102).addr
	tab := NewTable(TableConfig{})
	tab.Update(announce(a, 1, nb1, 2), sec(0))
	if ch, _ := tab.Update(announce(a, 1, nb2, 2), sec(1)); ch != ChangeBest {
		t.Fatalf("equal hops, fresher: %v, want best", ch)
	}
	if r, _ := tab.Lookup(a.addr); r.NextHop != nb2 {
		t.Fatal("fresher path of equal length not preferred")
	}
}

func TestTableMaxPathsKeepsTheBest(t *testing.T) {
	a := mkNode(1)
	tab := NewTable(TableConfig{MaxPaths: 2})
	tab.Update(announce(a, 1, mkNode(101).addr, 4), sec(0))
	tab.Update(announce(a, 1, mkNode(102).addr, 3), sec(0))
	if ch, _ := tab.Update(announce(a, 1, mkNode(103).addr, 5), sec(0)); ch != ChangeNone {
		t.Fatalf("worse third path: %v, want none", ch)
	}
	if ch, _ := tab.Update(announce(a, 1, mkNode(104).addr, 3), sec(1)); ch != ChangeBest {
		t.Fatalf("better third path: %v, want best", ch)
	}
	var hops []uint8
	for _, r := range tab.Paths(a.addr) {
		hops = append(hops, r.Hops)
	}
	if !slices.Equal(hops, []uint8{3, 3}) {
		t.Fatalf("paths kept with hops %v, want [3 3]", hops)
	}
}

func TestTableRemoveViaFallsBackAndReportsLost(t *testing.T) {
	a, b := mkNode(1), mkNode(2)
	nb1, nb2 := mkNode(101).addr, mkNode(102).addr
	tab := NewTable(TableConfig{})
	tab.Update(announce(a, 1, nb1, 2), sec(0))
	tab.Update(announce(a, 1, nb2, 2), sec(0))
	tab.Update(announce(b, 7, nb1, 2), sec(0))
	lost := tab.RemoveVia(nb1)
	if !slices.Equal(lost, [][16]byte{b.addr}) {
		t.Fatalf("lost %x, want only b", lost)
	}
	if r, ok := tab.Lookup(a.addr); !ok || r.NextHop != nb2 {
		t.Fatal("a did not fall back to its path via nb2")
	}
	// b's sequence outlives its route.
	if _, err := tab.Update(announce(b, 6, nb2, 1), sec(1)); !errors.Is(err, ErrStale) {
		t.Fatalf("older announce of a lost route: %v, want ErrStale", err)
	}
	if seq, ok := tab.Seq(b.addr); !ok || seq != 7 {
		t.Fatalf("Seq(b) = %d, %v; want 7", seq, ok)
	}
	if ch, err := tab.Update(announce(b, 7, nb2, 1), sec(1)); err != nil || ch != ChangeAdded {
		t.Fatalf("same sequence via another neighbour: %v, %v; want added", ch, err)
	}
}

func TestTableExpire(t *testing.T) {
	a, b := mkNode(1), mkNode(2)
	nb1, nb2 := mkNode(101).addr, mkNode(102).addr
	tab := NewTable(TableConfig{TTL: 60 * time.Second})
	tab.Update(announce(a, 1, nb1, 1), sec(0))
	tab.Update(announce(a, 1, nb2, 1), sec(30))
	tab.Update(announce(b, 1, nb1, 1), sec(10))
	if lost := tab.Expire(sec(59)); len(lost) != 0 || tab.Stats().Paths != 3 {
		t.Fatalf("Expire(59s): lost %x, %d paths", lost, tab.Stats().Paths)
	}
	if lost := tab.Expire(sec(60)); len(lost) != 0 {
		t.Fatalf("Expire(60s) lost %x; a still has its path via nb2", lost)
	}
	if r, _ := tab.Lookup(a.addr); r.NextHop != nb2 {
		t.Fatal("a's expired path still best")
	}
	if lost := tab.Expire(sec(90)); !slices.Equal(lost, [][16]byte{a.addr, b.addr}) && !slices.Equal(lost, [][16]byte{b.addr, a.addr}) {
		t.Fatalf("Expire(90s) lost %x, want a and b", lost)
	}
	if tab.Len() != 0 || tab.Stats().Expired != 3 {
		t.Fatalf("Len %d, stats %+v", tab.Len(), tab.Stats())
	}
	if _, err := tab.Update(announce(a, 0, nb1, 1), sec(91)); !errors.Is(err, ErrStale) {
		t.Fatalf("replayed older announce after expiry: %v, want ErrStale", err)
	}
}

func TestTableCapEvictsStalest(t *testing.T) {
	tab := NewTable(TableConfig{MaxRoutes: 3, MaxSeqs: 2})
	nb := mkNode(100).addr
	for i := range 3 {
		tab.Update(announce(mkNode(i), 1, nb, 1), sec(i))
	}
	tab.Update(announce(mkNode(0), 2, nb, 1), sec(5)) // 0 is now the freshest
	tab.Update(announce(mkNode(3), 1, nb, 1), sec(6)) // evicts 1
	if _, ok := tab.Lookup(mkNode(1).addr); ok || tab.Len() != 3 {
		t.Fatalf("stalest (1) not evicted; Len %d", tab.Len())
	}
	tab.Update(announce(mkNode(4), 1, nb, 1), sec(7)) // evicts 2
	tab.Update(announce(mkNode(5), 1, nb, 1), sec(8)) // evicts 0; seq records: 1 drops
	st := tab.Stats()
	if st.Evicted != 3 || st.Seqs != 2 {
		t.Fatalf("stats %+v, want 3 evicted, 2 seq records", st)
	}
	if _, ok := tab.Seq(mkNode(1).addr); ok {
		t.Fatal("oldest sequence record kept past MaxSeqs")
	}
	if s, ok := tab.Seq(mkNode(0).addr); !ok || s != 2 {
		t.Fatalf("Seq(0) = %d, %v; want 2", s, ok)
	}
}

func TestTableLookupCountersAndByKey(t *testing.T) {
	a := mkNode(1)
	tab := NewTable(TableConfig{})
	tab.Update(announce(a, 1, mkNode(100).addr, 1), sec(0))
	if _, ok := tab.LookupByKey(ed25519.PublicKey(a.key[:])); !ok {
		t.Fatal("LookupByKey missed")
	}
	tab.Lookup(mkNode(2).addr)
	tab.LookupByKey(make(ed25519.PublicKey, 5))
	other := mkNode(2).key
	tab.LookupByKey(other[:])
	if st := tab.Stats(); st.Lookups != 4 || st.Misses != 3 {
		t.Fatalf("lookups %d misses %d, want 4 and 3", st.Lookups, st.Misses)
	}
}

func TestTableSnapshotRestore(t *testing.T) {
	tab := NewTable(TableConfig{})
	nb1, nb2 := mkNode(101).addr, mkNode(102).addr
	for i := range 5 {
		tab.Update(announce(mkNode(i), uint64(10+i), nb1, 2), sec(i))
		tab.Update(announce(mkNode(i), uint64(10+i), nb2, 3), sec(i))
	}
	tab.Update(announce(mkNode(9), 99, nb2, 1), sec(0))
	tab.RemoveVia(nb2) // 9 is lost; its sequence stays
	snap := tab.Snapshot()
	if len(snap.Routes) != 5 || len(snap.Seqs) != 1 || snap.Seqs[0].Seq != 99 {
		t.Fatalf("snapshot: %d routes, seqs %+v", len(snap.Routes), snap.Seqs)
	}
	back := NewTable(TableConfig{})
	if err := back.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !snapshotsEqual(back.Snapshot(), snap) {
		t.Fatalf("restored table differs:\n got %+v\nwant %+v", back.Snapshot(), snap)
	}
	if _, err := back.Update(announce(mkNode(9), 98, nb1, 1), sec(20)); !errors.Is(err, ErrStale) {
		t.Fatalf("sequence record not restored: %v", err)
	}
	bad := snap
	bad.Routes = append(slices.Clone(snap.Routes), Route{Address: mkNode(7).addr})
	if err := back.Restore(bad); !errors.Is(err, ErrBadRoute) {
		t.Fatalf("bad snapshot: %v, want ErrBadRoute", err)
	}
	if back.Len() != 5 {
		t.Fatal("a refused Restore changed the table")
	}
}

func routesEqual(a, b Route) bool {
	return a.Address == b.Address && a.SigningKey == b.SigningKey && a.SealingKey == b.SealingKey &&
		a.Capabilities == b.Capabilities && a.NextHop == b.NextHop && a.Link == b.Link && a.Hops == b.Hops &&
		a.Seq == b.Seq && a.Refreshed.Equal(b.Refreshed)
}

func snapshotsEqual(a, b Snapshot) bool {
	return slices.EqualFunc(a.Routes, b.Routes, routesEqual) &&
		slices.EqualFunc(a.Seqs, b.Seqs, func(x, y SeqRecord) bool {
			return x.Address == y.Address && x.Seq == y.Seq && x.Seen.Equal(y.Seen)
		})
}

// slowTable is the reference model for Table (CONVENTIONS 13, after
// wireguard's SlowRouter): the same rules over plain maps and slices,
// every choice made by brute force.
type slowTable struct {
	cfg    TableConfig
	routes map[[16]byte][]Route // unordered paths, all with the address's newest seq
	seqs   map[[16]byte]SeqRecord
	// min is the fewest hops of any path of the address's newest seq
	// (feasibility: only paths of at most min hops are kept).
	min map[[16]byte]uint8
}

func newSlowTable(cfg TableConfig) *slowTable {
	return &slowTable{cfg: cfg.withDefaults(), routes: map[[16]byte][]Route{}, seqs: map[[16]byte]SeqRecord{}, min: map[[16]byte]uint8{}}
}

// restored is what a Snapshot round trip keeps of min: the fewest hops
// of the paths kept.
func (s *slowTable) restored() {
	for a, ps := range s.routes {
		m := ps[0].Hops
		for _, p := range ps {
			m = min(m, p.Hops)
		}
		s.min[a] = m
	}
}

// modelCompare orders two paths to one destination as Table documents
// it, best first: fewest hops, then the most recently refreshed, then (a
// tie the documentation leaves open; the table breaks it so) the lower
// neighbour address. It is the model's own reading of the rule, written
// apart from the table's comparator so that the comparison is checked
// too, not trusted.
func modelCompare(a, b Route) int {
	return cmp.Or(
		cmp.Compare(a.Hops, b.Hops),
		b.Refreshed.Compare(a.Refreshed),
		bytes.Compare(a.NextHop[:], b.NextHop[:]),
	)
}

func (s *slowTable) best(a [16]byte) (Route, bool) {
	ps := s.routes[a]
	if len(ps) == 0 {
		return Route{}, false
	}
	b := ps[0]
	for _, p := range ps[1:] {
		if modelCompare(p, b) < 0 {
			b = p
		}
	}
	return b, true
}

func (s *slowTable) fresh(a [16]byte) time.Time {
	var f time.Time
	for _, p := range s.routes[a] {
		if p.Refreshed.After(f) {
			f = p.Refreshed
		}
	}
	return f
}

func (s *slowTable) kill(a [16]byte) {
	rec := SeqRecord{Address: a, Seq: s.routes[a][0].Seq, Seen: s.fresh(a), MinHops: s.min[a]}
	delete(s.routes, a)
	delete(s.min, a)
	if len(s.seqs) >= s.cfg.MaxSeqs {
		var old *SeqRecord
		for _, r := range s.seqs {
			if old == nil || r.Seen.Before(old.Seen) || r.Seen.Equal(old.Seen) && bytes.Compare(r.Address[:], old.Address[:]) < 0 {
				old = &r
			}
		}
		delete(s.seqs, old.Address)
	}
	s.seqs[a] = rec
}

func (s *slowTable) update(r Route, now time.Time) (Change, error) {
	r.Refreshed = now
	a := r.Address
	ps := s.routes[a]
	if len(ps) == 0 {
		m := r.Hops
		if rec, ok := s.seqs[a]; ok {
			if r.Seq < rec.Seq {
				return ChangeNone, ErrStale
			}
			if r.Seq == rec.Seq && rec.MinHops > 0 {
				if r.Hops > rec.MinHops {
					return ChangeNone, nil // unfeasible: may have come back through us
				}
				m = min(m, rec.MinHops)
			}
			delete(s.seqs, a)
		}
		if len(s.routes) >= s.cfg.MaxRoutes {
			var victim [16]byte
			var vf time.Time
			first := true
			for x := range s.routes {
				f := s.fresh(x)
				if first || f.Before(vf) || f.Equal(vf) && bytes.Compare(x[:], victim[:]) < 0 {
					victim, vf, first = x, f, false
				}
			}
			s.kill(victim)
		}
		s.routes[a] = []Route{r}
		s.min[a] = m
		return ChangeAdded, nil
	}
	if r.Seq < ps[0].Seq {
		return ChangeNone, ErrStale
	}
	if r.Seq > ps[0].Seq {
		s.routes[a] = []Route{r}
		s.min[a] = r.Hops
		return ChangeBest, nil
	}
	if m := s.min[a]; m > 0 && r.Hops > m {
		// Unfeasible; the neighbour's old path is stale news: it goes.
		i := slices.IndexFunc(ps, func(p Route) bool { return p.NextHop == r.NextHop })
		switch {
		case i < 0:
		case len(ps) == 1:
			s.kill(a)
		default:
			s.routes[a] = slices.Delete(ps, i, i+1)
		}
		return ChangeNone, nil
	}
	// Identity fields stay those of the first announce of this sequence.
	r.SigningKey, r.SealingKey, r.Capabilities = ps[0].SigningKey, ps[0].SealingKey, ps[0].Capabilities
	oldBest, _ := s.best(a)
	i := slices.IndexFunc(ps, func(p Route) bool { return p.NextHop == r.NextHop })
	switch {
	case i >= 0 && r.Hops < ps[i].Hops:
		ps[i] = r
	case i >= 0:
		return ChangeNone, nil
	case len(ps) < s.cfg.MaxPaths:
		ps = append(ps, r)
	default:
		w := 0
		for j := range ps {
			if modelCompare(ps[j], ps[w]) > 0 {
				w = j
			}
		}
		if modelCompare(r, ps[w]) >= 0 {
			return ChangeNone, nil
		}
		ps[w] = r
	}
	if m := s.min[a]; m == 0 || r.Hops < m {
		s.min[a] = r.Hops
		ps = slices.DeleteFunc(ps, func(p Route) bool { return p.Hops > r.Hops })
	}
	s.routes[a] = ps
	nb, _ := s.best(a)
	if routesEqual(nb, r) || nb.NextHop != oldBest.NextHop {
		return ChangeBest, nil
	}
	return ChangeAlternate, nil
}

func (s *slowTable) filter(keep func(Route) bool) [][16]byte {
	var lost [][16]byte
	for a, ps := range s.routes {
		var kept []Route
		for _, r := range ps {
			if keep(r) {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			lost = append(lost, a) // kill reads the old paths
			continue
		}
		s.routes[a] = kept
	}
	slices.SortFunc(lost, func(x, y [16]byte) int { return bytes.Compare(x[:], y[:]) })
	for _, a := range lost {
		s.kill(a)
	}
	return lost
}

// TestTableMatchesSlowModel drives Table and slowTable with the same
// random updates, expiries, neighbour losses and snapshot round trips, and
// compares every observable after each step.
func TestTableMatchesSlowModel(t *testing.T) {
	seen := map[string]int{}
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { testTableModel(t, seed, seen) })
	}
	// The run must have reached every outcome, or it proves little.
	for _, k := range []string{"added", "best", "alternate", "none", "stale", "evicted", "expired", "lost-via"} {
		if seen[k] == 0 {
			t.Errorf("no %q outcome in the randomized run (%v)", k, seen)
		}
	}
}

func testTableModel(t *testing.T, seed uint64, seen map[string]int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	cfg := TableConfig{MaxRoutes: 1 + rng.IntN(8), MaxPaths: 1 + rng.IntN(3), TTL: 100 * time.Second, MaxSeqs: 1 + rng.IntN(6)}
	tab, slow := NewTable(cfg), newSlowTable(cfg)
	nodes := make([]node, 12)
	for i := range nodes {
		nodes[i] = mkNode(i)
	}
	neighbours := make([][16]byte, 5)
	for i := range neighbours {
		neighbours[i] = mkNode(1000 + i).addr
	}
	now := t0
	for step := range 3000 {
		// Time moves by 0-40 s, so ties in freshness happen.
		now = now.Add(time.Duration(rng.IntN(5)) * 10 * time.Second)
		op := rng.IntN(20)
		switch {
		case op < 15:
			n := nodes[rng.IntN(len(nodes))]
			via := neighbours[rng.IntN(len(neighbours))]
			if rng.IntN(6) == 0 {
				via = n.addr
			}
			// Hops 1 to 4, half of them 2: equal paths (alternates) are
			// frequent, as feasibility keeps only the shortest.
			hops := uint8(1 + rng.IntN(4))
			if rng.IntN(2) == 0 {
				hops = 2
			}
			r := announce(n, uint64(rng.IntN(8)), via, hops)
			got, gerr := tab.Update(r, now)
			want, werr := slow.update(r, now)
			if got != want || !errors.Is(gerr, werr) || (gerr == nil) != (werr == nil) {
				t.Fatalf("step %d: Update(%x seq %d via %x hops %d) = %v, %v; model %v, %v",
					step, r.Address[:2], r.Seq, r.NextHop[:2], r.Hops, got, gerr, want, werr)
			}
			if gerr != nil {
				seen["stale"]++
			} else {
				seen[got.String()]++
			}
		case op < 17:
			got, want := tab.Expire(now), slow.filter(func(r Route) bool { return now.Before(r.Refreshed.Add(cfg.TTL)) })
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: Expire lost %x, model %x", step, got, want)
			}
			seen["expired"] += len(got)
		case op < 19:
			nb := neighbours[rng.IntN(len(neighbours))]
			got, want := tab.RemoveVia(nb), slow.filter(func(r Route) bool { return r.NextHop != nb })
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: RemoveVia lost %x, model %x", step, got, want)
			}
			seen["lost-via"] += len(got)
		default:
			back := NewTable(cfg)
			if err := back.Restore(tab.Snapshot()); err != nil {
				t.Fatalf("step %d: Restore: %v", step, err)
			}
			tab = back
			slow.restored()
		}
		compareToModel(t, step, tab, slow, nodes)
	}
	seen["evicted"] += int(tab.Stats().Evicted) // since the last Restore
}

func compareToModel(t *testing.T, step int, tab *Table, slow *slowTable, nodes []node) {
	t.Helper()
	if tab.Len() != len(slow.routes) {
		t.Fatalf("step %d: Len %d, model %d", step, tab.Len(), len(slow.routes))
	}
	for _, n := range nodes {
		got, gok := tab.Lookup(n.addr)
		want, wok := slow.best(n.addr)
		if gok != wok || gok && !routesEqual(got, want) {
			t.Fatalf("step %d: Lookup(%x) = %+v %v\nmodel %+v %v", step, n.addr[:2], got, gok, want, wok)
		}
		paths := tab.Paths(n.addr)
		model := slices.Clone(slow.routes[n.addr])
		slices.SortFunc(model, modelCompare)
		if !slices.EqualFunc(paths, model, routesEqual) {
			t.Fatalf("step %d: Paths(%x) = %+v\nmodel %+v", step, n.addr[:2], paths, model)
		}
		gs, gsok := tab.Seq(n.addr)
		var ws uint64
		wsok := false
		if ps := slow.routes[n.addr]; len(ps) > 0 {
			ws, wsok = ps[0].Seq, true
		} else if rec, ok := slow.seqs[n.addr]; ok {
			ws, wsok = rec.Seq, true
		}
		if gs != ws || gsok != wsok {
			t.Fatalf("step %d: Seq(%x) = %d %v, model %d %v", step, n.addr[:2], gs, gsok, ws, wsok)
		}
	}
	st := tab.Stats()
	if st.Seqs != len(slow.seqs) || st.Routes > slow.cfg.MaxRoutes || st.Seqs > slow.cfg.MaxSeqs {
		t.Fatalf("step %d: stats %+v, model has %d seq records", step, st, len(slow.seqs))
	}
}

func benchTable(b *testing.B, n int) (*Table, []node, [16]byte) {
	tab := NewTable(TableConfig{MaxRoutes: n})
	nodes := make([]node, n)
	nb := mkNode(1 << 30).addr
	for i := range nodes {
		nodes[i] = mkNode(i)
		if _, err := tab.Update(announce(nodes[i], 1, nb, 2), t0); err != nil {
			b.Fatal(err)
		}
	}
	return tab, nodes, nb
}

func BenchmarkTableLookup10k(b *testing.B) {
	tab, nodes, _ := benchTable(b, 10000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, ok := tab.Lookup(nodes[i%len(nodes)].addr); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkTableUpdate10k: a newer announce of a known destination (the
// steady state), including the address-key check (one SHA-256).
func BenchmarkTableUpdate10k(b *testing.B) {
	tab, nodes, nb := benchTable(b, 10000)
	routes := make([]Route, len(nodes))
	for i, n := range nodes {
		routes[i] = announce(n, 2, nb, 2)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		r := routes[i%len(routes)]
		r.Seq = uint64(2 + i/len(routes))
		if _, err := tab.Update(r, t0.Add(time.Duration(i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTableUpdateNewAtCap10k: every update is a new destination that
// evicts the stalest (a flood of fresh addresses).
func BenchmarkTableUpdateNewAtCap10k(b *testing.B) {
	tab, _, nb := benchTable(b, 10000)
	fresh := make([]Route, 1<<16)
	for i := range fresh {
		fresh[i] = announce(mkNode(1<<20+i), 1, nb, 2)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		r := fresh[i%len(fresh)]
		r.Seq = uint64(1 + i/len(fresh))
		if _, err := tab.Update(r, t0.Add(time.Duration(i))); err != nil {
			b.Fatal(err)
		}
	}
}
