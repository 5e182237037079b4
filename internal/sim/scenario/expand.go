package scenario

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Topology is a scenario made concrete for one seed: every node, every
// link, and the traffic and churn with their selectors resolved to node
// indices. The same scenario and seed give an identical Topology.
type Topology struct {
	Seed    uint64
	Nodes   []TopoNode  // explicit nodes in file order; generated ones in name order
	Links   []TopoLink  // sorted by A, then B, then kind
	Groups  []TopoGroup // in file order
	Traffic []Flow      // in file order
	Churn   []Event     // sorted by At (file order among equal times)

	byName map[string]int
}

// TopoNode is one node.
type TopoNode struct {
	Name        string
	Roles       []string // sorted; relay, store, therapist, patient
	Media       []string // in the order lora, tcp, quic, mem
	Groups      []string // names of the groups it is in, in file order
	Position    [2]float64
	HasPosition bool // Position is meaningful (always, for line, grid and random_geometric)
}

// Has reports whether the node has role r.
func (n *TopoNode) Has(r Role) bool { return slices.Contains(n.Roles, r) }

// On reports whether the node is on medium m.
func (n *TopoNode) On(m Medium) bool { return slices.Contains(n.Media, m) }

// TopoLink is one bidirectional link between Nodes[A] and Nodes[B].
type TopoLink struct {
	A, B      int    // indices into Topology.Nodes, A < B
	Kind      Medium // lora, tcp, quic or mem
	Loss      float64
	Latency   time.Duration // 0 for lora: airtime comes from [lora]
	Jitter    time.Duration
	Bandwidth int64   // bits per second, 0 = unlimited; 0 for lora
	Distance  float64 // metres, lora links whose length is known; else 0
}

// TopoGroup is a group with its members (sorted node indices).
type TopoGroup struct {
	Name    string
	Members []int
}

// Flow is one [[traffic]] entry with node indices (sorted) for its
// selectors. Fields not used by Kind are zero.
type Flow struct {
	Index        int // into Scenario.Traffic
	Kind         string
	From, To     []int // messages
	Therapists   []int // fapp
	Patients     []int // fapp
	Group        string
	Members      []int // group
	Rate         Rate
	Size         int
	Start, Stop  time.Duration
	Slots        int
	ReserveShare float64
}

// Event is one [[churn]] entry with node indices (sorted).
type Event struct {
	Index int // into Scenario.Churn
	At    time.Duration
	Kind  string
	Nodes []int // leave, join, restart (after Count picked its share)
	SideA []int // partition
	SideB []int // partition
	Down  time.Duration
}

// seedStream is the PCG stream constant: Expand's generator is
// rand.NewPCG(seed, seedStream).
const seedStream = 0x5ce7a210_9e3779b9

// Expand makes the scenario concrete for seed (usually s.Seed, or the
// runner's --seed). It fails with an *Error when a generator finds no
// connected layout in topology.attempts tries, when assign entries run
// out of nodes, or when partition sides overlap.
func (s *Scenario) Expand(seed uint64) (*Topology, error) {
	x := &expander{s: s, rng: rand.New(rand.NewPCG(seed, seedStream)), t: &Topology{Seed: seed, byName: map[string]int{}}}
	if err := x.run(); err != nil {
		return nil, err
	}
	return x.t, nil
}

type expander struct {
	s   *Scenario
	rng *rand.Rand
	t   *Topology
}

func (x *expander) fail(field, format string, args ...any) *Error {
	return &Error{File: x.s.File, Line: x.s.lines.line(field), Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (x *expander) has(field string) bool {
	if x.s.lines == nil {
		return false
	}
	_, ok := x.s.lines.byPath[field]
	return ok
}

func (x *expander) run() error {
	s, t := x.s, x.t
	if s.HasTopology {
		if err := x.generate(); err != nil {
			return err
		}
	} else {
		for _, n := range s.Nodes {
			tn := TopoNode{Name: n.Name, Roles: slices.Clone(n.Roles), Media: slices.Clone(n.Media)}
			if len(n.Position) == 2 {
				tn.Position, tn.HasPosition = [2]float64{n.Position[0], n.Position[1]}, true
			}
			t.Nodes = append(t.Nodes, tn)
		}
	}
	for i, n := range t.Nodes {
		t.byName[n.Name] = i
	}
	type lkey struct {
		a, b int
		kind string
	}
	generated := map[lkey]int{}
	for i, l := range t.Links {
		generated[lkey{l.A, l.B, l.Kind}] = i
	}
	for i, l := range s.Links {
		a, b := t.byName[l.From], t.byName[l.To]
		if a > b {
			a, b = b, a
		}
		tl := TopoLink{A: a, B: b, Kind: l.Kind, Loss: l.Loss}
		f := "link[" + strconv.Itoa(i) + "]"
		if l.Kind == LoRaMedium {
			na, nb := &t.Nodes[a], &t.Nodes[b]
			switch {
			case x.has(f + ".loss"):
			case x.has(f + ".distance"):
				tl.Distance = l.Distance
				tl.Loss = x.radioLoss(l.Distance)
			case na.HasPosition && nb.HasPosition:
				tl.Distance = dist(na.Position, nb.Position)
				tl.Loss = x.radioLoss(tl.Distance)
			}
		} else {
			tl.Latency, tl.Jitter, tl.Bandwidth = l.Latency.D(), l.Jitter.D(), l.Bandwidth.BitsPerSecond()
		}
		if j, dup := generated[lkey{a, b, l.Kind}]; dup {
			t.Links[j] = tl // an explicit link overrides the generated one
		} else {
			t.Links = append(t.Links, tl)
		}
		for _, e := range []int{a, b} {
			if s.HasTopology || len(s.Nodes[e].Media) == 0 {
				addMedium(&t.Nodes[e], l.Kind)
			}
		}
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		slices.Sort(n.Roles)
		n.Roles = slices.Compact(n.Roles)
		slices.SortFunc(n.Media, func(a, b string) int { return slices.Index(allMedia, a) - slices.Index(allMedia, b) })
	}
	slices.SortStableFunc(t.Links, func(p, q TopoLink) int {
		return cmp.Or(cmp.Compare(p.A, q.A), cmp.Compare(p.B, q.B), cmp.Compare(slices.Index(allMedia, p.Kind), slices.Index(allMedia, q.Kind)))
	})
	for _, g := range s.Groups {
		m, err := t.Select(g.Members)
		if err != nil {
			return x.fail("group", "%v", err)
		}
		t.Groups = append(t.Groups, TopoGroup{Name: g.Name, Members: m})
		for _, i := range m {
			t.Nodes[i].Groups = append(t.Nodes[i].Groups, g.Name)
		}
	}
	for i, tr := range s.Traffic {
		f := "traffic[" + strconv.Itoa(i) + "]"
		fl := Flow{Index: i, Kind: tr.Kind, Rate: tr.Rate, Size: tr.Size, Start: tr.Start.D(), Stop: tr.Stop.D(), Slots: tr.Slots, ReserveShare: tr.ReserveShare, Group: tr.Group}
		var err error
		sel := func(field string, sels []string) []int {
			if err != nil || len(sels) == 0 {
				return nil
			}
			var r []int
			if r, err = t.Select(sels); err == nil && len(r) == 0 {
				err = x.fail(f+"."+field, "%q matches no node", strings.Join(sels, ", "))
			} else if err != nil {
				err = x.fail(f+"."+field, "%v", err)
			}
			return r
		}
		switch tr.Kind {
		case Messages:
			fl.From, fl.To = sel("from", tr.From), sel("to", tr.To)
			if err == nil && len(fl.To) == 1 && slices.Equal(fl.From, fl.To) {
				err = x.fail(f+".to", "the only receiver is the only sender")
			}
			fl.Size = tr.Size
		case FAPP:
			fl.Therapists, fl.Patients = sel("therapists", tr.Therapists), sel("patients", tr.Patients)
		case GroupChat:
			fl.Members = sel("group", []string{"group:" + tr.Group})
		}
		if err != nil {
			return err
		}
		t.Traffic = append(t.Traffic, fl)
	}
	for i, c := range s.Churn {
		f := "churn[" + strconv.Itoa(i) + "]"
		ev := Event{Index: i, At: c.At.D(), Kind: c.Kind, Down: c.Down.D()}
		var err error
		switch c.Kind {
		case Leave, Join, Restart:
			if ev.Nodes, err = t.Select(c.Nodes); err != nil {
				return x.fail(f+".nodes", "%v", err)
			}
			if c.Count > len(ev.Nodes) {
				return x.fail(f+".count", "%d is more than the %d selected nodes", c.Count, len(ev.Nodes))
			}
			if c.Count > 0 {
				p := slices.Clone(ev.Nodes)
				x.rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
				ev.Nodes = p[:c.Count]
				slices.Sort(ev.Nodes)
			}
		case Partition:
			if ev.SideA, err = t.Select(c.SideA); err != nil {
				return x.fail(f+".side_a", "%v", err)
			}
			if len(c.SideB) > 0 {
				if ev.SideB, err = t.Select(c.SideB); err != nil {
					return x.fail(f+".side_b", "%v", err)
				}
			} else {
				for i := range t.Nodes {
					if _, in := slices.BinarySearch(ev.SideA, i); !in {
						ev.SideB = append(ev.SideB, i)
					}
				}
			}
			for _, a := range ev.SideA {
				if _, in := slices.BinarySearch(ev.SideB, a); in {
					return x.fail(f+".side_b", "node %q is on both sides", t.Nodes[a].Name)
				}
			}
			if len(ev.SideB) == 0 {
				return x.fail(f+".side_a", "side_a holds every node: nothing to partition from")
			}
		}
		t.Churn = append(t.Churn, ev)
	}
	slices.SortStableFunc(t.Churn, func(p, q Event) int { return cmp.Compare(p.At, q.At) })
	return nil
}

func addMedium(n *TopoNode, m string) {
	if !slices.Contains(n.Media, m) {
		n.Media = append(n.Media, m)
	}
}

// Index returns the index of the node with this name, or -1.
func (t *Topology) Index(name string) int {
	if i, ok := t.byName[name]; ok {
		return i
	}
	return -1
}

// Select resolves selectors (a node name, "*", "role:NAME", "on:MEDIUM",
// "group:NAME") to the sorted indices of the nodes they match.
func (t *Topology) Select(sels []string) ([]int, error) {
	in := make([]bool, len(t.Nodes))
	for _, sel := range sels {
		switch {
		case sel == "*":
			for i := range in {
				in[i] = true
			}
		case strings.HasPrefix(sel, "role:"):
			r := strings.TrimPrefix(sel, "role:")
			for i := range t.Nodes {
				if t.Nodes[i].Has(r) {
					in[i] = true
				}
			}
		case strings.HasPrefix(sel, "on:"):
			m := strings.TrimPrefix(sel, "on:")
			for i := range t.Nodes {
				if t.Nodes[i].On(m) {
					in[i] = true
				}
			}
		case strings.HasPrefix(sel, "group:"):
			name, found := strings.TrimPrefix(sel, "group:"), false
			for _, g := range t.Groups {
				if g.Name == name {
					found = true
					for _, i := range g.Members {
						in[i] = true
					}
				}
			}
			if !found {
				return nil, fmt.Errorf("no group %q", name)
			}
		default:
			i, ok := t.byName[sel]
			if !ok {
				return nil, fmt.Errorf("unknown node %q", sel)
			}
			in[i] = true
		}
	}
	var out []int
	for i, ok := range in {
		if ok {
			out = append(out, i)
		}
	}
	return out, nil
}

func dist(a, b [2]float64) float64 { return math.Hypot(a[0]-b[0], a[1]-b[1]) }

// radioLoss is the loss of a LoRa link d metres long:
// edge_loss*(d/range)^2, at most 1.
func (x *expander) radioLoss(d float64) float64 {
	r := d / x.s.LoRa.Range
	return math.Min(1, x.s.LoRa.EdgeLoss*r*r)
}
