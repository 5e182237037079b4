package scenario

import (
	"cmp"
	"math"
	"slices"
	"strconv"
)

// generate fills x.t.Nodes and x.t.Links from [topology], resampling the
// layout until the links join every node (at most topology.attempts
// times).
func (x *expander) generate() error {
	g := &x.s.Topology
	n := g.Count
	nL, nT := shareCount(*g.LoRaShare, n), shareCount(*g.TCPShare, n)
	// A layout is random when positions or the media split vary with the
	// seed; otherwise one attempt says it all.
	random := g.Kind == RandomGeometric || g.Kind == ScaleFree || (nL > 0 && nL < n) || (nT > 0 && nT < n)
	width := len(strconv.Itoa(n - 1))
	for attempt := 0; attempt < g.Attempts; attempt++ {
		nodes := make([]TopoNode, n)
		for i := range nodes {
			nodes[i] = TopoNode{Name: genName(i, width), Roles: slices.Clone(g.Roles)}
		}
		x.place(nodes)
		// Media: a random permutation; its first nL nodes get LoRa, its
		// last nT nodes TCP (overlap: bridges).
		perm := x.rng.Perm(n)
		for _, i := range perm[:nL] {
			addMedium(&nodes[i], LoRaMedium)
		}
		for _, i := range perm[n-nT:] {
			addMedium(&nodes[i], g.TCP.Kind)
		}
		for i := range nodes {
			slices.SortFunc(nodes[i].Media, func(a, b string) int { return slices.Index(allMedia, a) - slices.Index(allMedia, b) })
		}
		taken, err := x.assign(nodes)
		if err != nil {
			return err
		}
		var links []TopoLink
		if g.Kind == ScaleFree {
			links = x.scaleFree(n)
		} else {
			links = append(x.radioLinks(nodes), x.tcpLinks(nodes, taken)...)
		}
		if connected(n, links) {
			x.t.Nodes, x.t.Links = nodes, links
			return nil
		}
		if !random {
			return x.fail("topology", "the %s of %d nodes is not connected (spacing %v m, lora.range %v m): no attempt can change that", g.Kind, n, g.Spacing, x.s.LoRa.Range)
		}
	}
	what := ""
	if g.Kind == RandomGeometric {
		what = " (area " + ftoa(g.Area[0]) + "x" + ftoa(g.Area[1]) + " m, lora.range " + ftoa(x.s.LoRa.Range) + " m)"
	}
	return x.fail("topology", "no connected layout of %d nodes in %d attempts%s: widen lora.range, shrink the area, or raise tcp.k", n, g.Attempts, what)
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (x *expander) place(nodes []TopoNode) {
	g := &x.s.Topology
	for i := range nodes {
		p := &nodes[i]
		switch g.Kind {
		case Line:
			p.Position = [2]float64{float64(i) * g.Spacing, 0}
		case Grid:
			p.Position = [2]float64{float64(i%g.Columns) * g.Spacing, float64(i/g.Columns) * g.Spacing}
		case RandomGeometric:
			p.Position = [2]float64{x.rng.Float64() * g.Area[0], x.rng.Float64() * g.Area[1]}
		default:
			continue
		}
		p.HasPosition = true
	}
}

// assign hands out [[topology.assign]] roles: each entry picks its nodes
// at random among those on its media that no earlier entry picked.
// It returns which nodes an entry picked.
func (x *expander) assign(nodes []TopoNode) ([]bool, error) {
	g := &x.s.Topology
	taken := make([]bool, len(nodes))
	for i, a := range g.Assign {
		want := a.Count
		if a.Share > 0 {
			want = shareCount(a.Share, len(nodes))
		}
		var pool []int
		for j := range nodes {
			if taken[j] || a.Media == LoRaMedium && !nodes[j].On(LoRaMedium) || a.Media == TCP && !nodes[j].On(g.TCP.Kind) {
				continue
			}
			pool = append(pool, j)
		}
		if len(pool) < want {
			return nil, x.fail("topology.assign["+strconv.Itoa(i)+"]", "%d nodes wanted, only %d on %s are left after the entries before", want, len(pool), a.Media)
		}
		x.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		for _, j := range pool[:want] {
			taken[j] = true
			nodes[j].Roles = append(nodes[j].Roles, a.Role)
		}
	}
	for i := range nodes {
		slices.Sort(nodes[i].Roles)
		nodes[i].Roles = slices.Compact(nodes[i].Roles)
	}
	return taken, nil
}

// radioLinks joins every two LoRa nodes within lora.range, with loss
// edge_loss*(d/range)^2. A grid of range-sized cells keeps it near linear.
func (x *expander) radioLinks(nodes []TopoNode) []TopoLink {
	r := x.s.LoRa.Range
	type cell struct{ x, y int64 }
	cells := map[cell][]int{}
	at := func(p [2]float64) cell { return cell{int64(math.Floor(p[0] / r)), int64(math.Floor(p[1] / r))} }
	for i := range nodes {
		if nodes[i].On(LoRaMedium) {
			c := at(nodes[i].Position)
			cells[c] = append(cells[c], i)
		}
	}
	var links []TopoLink
	for i := range nodes {
		if !nodes[i].On(LoRaMedium) {
			continue
		}
		c := at(nodes[i].Position)
		for dx := int64(-1); dx <= 1; dx++ {
			for dy := int64(-1); dy <= 1; dy++ {
				for _, j := range cells[cell{c.x + dx, c.y + dy}] {
					if j <= i {
						continue
					}
					d := dist(nodes[i].Position, nodes[j].Position)
					if d <= r*(1+1e-9) {
						links = append(links, TopoLink{A: i, B: j, Kind: LoRaMedium, Loss: x.radioLoss(d), Distance: d})
					}
				}
			}
		}
	}
	slices.SortFunc(links, func(p, q TopoLink) int { return cmp.Or(cmp.Compare(p.A, q.A), cmp.Compare(p.B, q.B)) })
	return links
}

func (x *expander) tcpLink(a, b int) TopoLink {
	t := &x.s.Topology.TCP
	if a > b {
		a, b = b, a
	}
	return TopoLink{A: a, B: b, Kind: t.Kind, Loss: t.Loss, Latency: t.Latency.D(), Jitter: t.Jitter.D(), Bandwidth: t.Bandwidth.BitsPerSecond()}
}

// tcpLinks links the TCP nodes by topology.tcp.rule.
// Hubs are picked at random among the TCP nodes no assign entry took,
// then (if those are too few) among the others.
func (x *expander) tcpLinks(nodes []TopoNode, taken []bool) []TopoLink {
	t := &x.s.Topology.TCP
	var tcp []int
	for i := range nodes {
		if nodes[i].On(t.Kind) {
			tcp = append(tcp, i)
		}
	}
	seen := map[[2]int]bool{}
	var links []TopoLink
	add := func(a, b int) {
		if a > b {
			a, b = b, a
		}
		if a != b && !seen[[2]int{a, b}] {
			seen[[2]int{a, b}] = true
			links = append(links, x.tcpLink(a, b))
		}
	}
	targets := tcp
	if t.Rule == Hubs {
		var free, rest []int
		for _, i := range tcp {
			if taken[i] {
				rest = append(rest, i)
			} else {
				free = append(free, i)
			}
		}
		x.rng.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
		x.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		hubs := append(free, rest...)[:t.Hubs]
		slices.Sort(hubs)
		for i, a := range hubs {
			nodes[a].Roles = append(nodes[a].Roles, Relay)
			slices.Sort(nodes[a].Roles)
			nodes[a].Roles = slices.Compact(nodes[a].Roles)
			for _, b := range hubs[i+1:] {
				add(a, b)
			}
		}
		targets = hubs
	}
	for _, a := range tcp {
		if t.Rule == Hubs && slices.Contains(targets, a) {
			continue
		}
		for _, b := range nearest(nodes, a, targets, t.K) {
			add(a, b)
		}
	}
	slices.SortFunc(links, func(p, q TopoLink) int { return cmp.Or(cmp.Compare(p.A, q.A), cmp.Compare(p.B, q.B)) })
	return links
}

// nearest returns the k nodes of cands closest to a (not a itself; ties
// by index).
func nearest(nodes []TopoNode, a int, cands []int, k int) []int {
	type cd struct {
		i int
		d float64
	}
	all := make([]cd, 0, len(cands))
	for _, c := range cands {
		if c != a {
			all = append(all, cd{c, dist(nodes[a].Position, nodes[c].Position)})
		}
	}
	slices.SortFunc(all, func(p, q cd) int { return cmp.Or(cmp.Compare(p.d, q.d), cmp.Compare(p.i, q.i)) })
	out := make([]int, 0, k)
	for _, c := range all[:min(k, len(all))] {
		out = append(out, c.i)
	}
	return out
}

// scaleFree is Barabási–Albert: nodes 0..m form a complete graph; every
// later node links to m distinct earlier nodes picked with probability
// proportional to their degree.
func (x *expander) scaleFree(n int) []TopoLink {
	m := x.s.Topology.M
	var links []TopoLink
	var ends []int // each link's two ends: picking from it is degree-proportional
	for a := 0; a <= m; a++ {
		for b := a + 1; b <= m; b++ {
			links = append(links, x.tcpLink(a, b))
			ends = append(ends, a, b)
		}
	}
	for v := m + 1; v < n; v++ {
		picked := make([]int, 0, m)
		for len(picked) < m {
			u := ends[x.rng.IntN(len(ends))]
			if !slices.Contains(picked, u) {
				picked = append(picked, u)
			}
		}
		slices.Sort(picked)
		for _, u := range picked {
			links = append(links, x.tcpLink(u, v))
			ends = append(ends, u, v)
		}
	}
	slices.SortFunc(links, func(p, q TopoLink) int { return cmp.Or(cmp.Compare(p.A, q.A), cmp.Compare(p.B, q.B)) })
	return links
}

func connected(n int, links []TopoLink) bool {
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	comps := n
	for _, l := range links {
		a, b := find(l.A), find(l.B)
		if a != b {
			parent[a] = b
			comps--
		}
	}
	return comps == 1
}
