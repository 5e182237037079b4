package scenario

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// validator is the one validation pass after decoding: it fills in the
// defaults that depend on other values and checks everything, returning
// the first problem as an *Error with its line.
type validator struct {
	s     *Scenario
	lines *lineMap
	names map[string]bool // every node name (explicit or generated)
	roles map[string]bool // roles some node surely has
	nLoRa int             // generated: nodes with LoRa
	nTCP  int             // generated: nodes with TCP
}

type failure struct{ err *Error }

func (v *validator) fail(field, format string, args ...any) {
	panic(failure{&Error{File: v.s.File, Line: v.lines.line(field), Field: field, Msg: fmt.Sprintf(format, args...)}})
}

func (v *validator) has(field string) bool {
	_, ok := v.lines.byPath[field]
	return ok
}

func (v *validator) run() (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			err = f.err
		}
	}()
	s := v.s
	if strings.TrimSpace(s.Name) == "" {
		v.fail("name", "required: the scenario's name")
	}
	if len(s.Name) > 200 {
		v.fail("name", "longer than 200 characters")
	}
	v.duration("duration", &s.Duration)
	if !s.Duration.IsSet() || s.Duration.D() <= 0 {
		v.fail("duration", "required, more than 0s (simulated run time, e.g. \"1h\")")
	}
	v.duration("warmup", &s.Warmup)
	if s.Warmup.D() >= s.Duration.D() {
		v.fail("warmup", "%s is not less than duration %s", s.Warmup, s.Duration)
	}
	v.lora()
	v.nodes()
	v.links()
	v.groups()
	for i := range s.Traffic {
		v.traffic(i)
	}
	for i := range s.Churn {
		v.duration("churn["+strconv.Itoa(i)+"].at", &s.Churn[i].At)
	}
	for i := range s.Churn {
		v.churn(i)
	}
	return nil
}

func (v *validator) duration(field string, d *Duration) {
	if err := d.check(); err != nil {
		v.fail(field, "%v", err)
	}
}

func (v *validator) share(field string, x float64, what string) {
	if math.IsNaN(x) || x < 0 || x > 1 {
		v.fail(field, "%v is not in 0..1 (%s)", x, what)
	}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func (v *validator) lora() {
	l := &v.s.LoRa
	if l.SF < 7 || l.SF > 12 {
		v.fail("lora.sf", "spreading factor %d is not in 7..12", l.SF)
	}
	if l.BW != 125000 && l.BW != 250000 && l.BW != 500000 {
		v.fail("lora.bw", "bandwidth %d Hz is not 125000, 250000 or 500000", l.BW)
	}
	if l.CR < 5 || l.CR > 8 {
		v.fail("lora.cr", "coding rate %d is not in 5..8 (4/5..4/8)", l.CR)
	}
	if !(l.DutyCycle > 0 && l.DutyCycle <= 1) {
		v.fail("lora.duty_cycle", "%v is not in 0 < x <= 1 (0.01 is 1%%)", l.DutyCycle)
	}
	if !finite(l.Range) || l.Range <= 0 {
		v.fail("lora.range", "%v metres is not more than 0", l.Range)
	}
	v.share("lora.edge_loss", l.EdgeLoss, "loss at the edge of the range")
}

var nameOK = func(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

func (v *validator) roleList(field string, roles []string) {
	for i, r := range roles {
		f := field + "[" + strconv.Itoa(i) + "]"
		if !slices.Contains(allRoles, r) {
			v.fail(f, "unknown role %q (relay, store, therapist or patient)", r)
		}
		if slices.Contains(roles[:i], r) {
			v.fail(f, "role %q given twice", r)
		}
	}
}

func (v *validator) nodes() {
	s := v.s
	v.names, v.roles = map[string]bool{}, map[string]bool{}
	switch {
	case len(s.Nodes) > 0 && s.HasTopology:
		v.fail("topology", "give either [[node]] entries or a [topology], not both")
	case len(s.Nodes) == 0 && !s.HasTopology:
		v.fail("", "no nodes: give [[node]] entries or a [topology] generator")
	case s.HasTopology:
		v.generator()
		return
	}
	if len(s.Nodes) > MaxNodes {
		v.fail("node", "%d nodes, more than %d", len(s.Nodes), MaxNodes)
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		f := "node[" + strconv.Itoa(i) + "]"
		if !nameOK(n.Name) {
			v.fail(f+".name", "name %q: want 1..64 characters of A-Z a-z 0-9 _ . -", n.Name)
		}
		if v.names[n.Name] {
			v.fail(f+".name", "duplicate node name %q", n.Name)
		}
		v.names[n.Name] = true
		v.roleList(f+".roles", n.Roles)
		for _, r := range n.Roles {
			v.roles[r] = true
		}
		if n.Position != nil && (len(n.Position) != 2 || !finite(n.Position[0]) || !finite(n.Position[1])) {
			v.fail(f+".position", "want [x, y] in metres")
		}
		for j, m := range n.Media {
			mf := f + ".media[" + strconv.Itoa(j) + "]"
			if !slices.Contains(allMedia, m) {
				v.fail(mf, "unknown medium %q (lora, tcp, quic or mem)", m)
			}
			if slices.Contains(n.Media[:j], m) {
				v.fail(mf, "medium %q given twice", m)
			}
		}
	}
}

// shareCount is how many of n nodes a share picks.
func shareCount(share float64, n int) int { return int(math.Round(share * float64(n))) }

func (v *validator) generator() {
	g := &v.s.Topology
	switch g.Kind {
	case Line, Grid, RandomGeometric, ScaleFree:
	case "":
		v.fail("topology.kind", "required: line, grid, random_geometric or scale_free")
	default:
		v.fail("topology.kind", "unknown generator %q (line, grid, random_geometric or scale_free)", g.Kind)
	}
	if g.Count > MaxNodes {
		v.fail("topology.count", "%d nodes, more than %d", g.Count, MaxNodes)
	}
	if g.Count < 2 {
		v.fail("topology.count", "required, at least 2 (got %d)", g.Count)
	}
	if !finite(g.Spacing) || g.Spacing < 0 {
		v.fail("topology.spacing", "%v metres is negative", g.Spacing)
	}
	if g.Spacing == 0 {
		g.Spacing = v.s.LoRa.Range
	}
	if g.Columns < 0 {
		v.fail("topology.columns", "%d is negative", g.Columns)
	}
	if g.Columns == 0 {
		g.Columns = int(math.Ceil(math.Sqrt(float64(g.Count))))
	}
	if g.Kind == RandomGeometric {
		if len(g.Area) != 2 || !finite(g.Area[0]) || !finite(g.Area[1]) || g.Area[0] <= 0 || g.Area[1] <= 0 {
			v.fail("topology.area", "random_geometric needs area = [width, height] in metres, both more than 0")
		}
	} else if g.Area != nil {
		v.fail("topology.area", "only random_geometric takes an area")
	}
	if g.Kind == ScaleFree && (g.M < 1 || g.M >= g.Count) {
		v.fail("topology.m", "%d is not in 1..count-1", g.M)
	}
	if g.Attempts < 1 || g.Attempts > 10000 {
		v.fail("topology.attempts", "%d is not in 1..10000", g.Attempts)
	}
	if g.LoRaShare == nil {
		ls := 1.0
		if g.Kind == ScaleFree {
			ls = 0
		}
		g.LoRaShare = &ls
	}
	v.share("topology.lora_share", *g.LoRaShare, "share of nodes with LoRa")
	if g.Kind == ScaleFree && *g.LoRaShare != 0 {
		v.fail("topology.lora_share", "scale_free makes %s links only: lora_share must be 0", g.TCP.Kind)
	}
	if g.TCPShare == nil {
		ts := 1 - *g.LoRaShare
		g.TCPShare = &ts
	}
	v.share("topology.tcp_share", *g.TCPShare, "share of nodes with TCP")
	v.nLoRa, v.nTCP = shareCount(*g.LoRaShare, g.Count), shareCount(*g.TCPShare, g.Count)
	if v.nLoRa+v.nTCP < g.Count {
		v.fail("topology.tcp_share", "lora_share %v + tcp_share %v leave %d of %d nodes without a medium", *g.LoRaShare, *g.TCPShare, g.Count-v.nLoRa-v.nTCP, g.Count)
	}
	v.roleList("topology.roles", g.Roles)
	for _, r := range g.Roles {
		v.roles[r] = true
	}
	picked := 0
	for i := range g.Assign {
		a := &g.Assign[i]
		f := "topology.assign[" + strconv.Itoa(i) + "]"
		if !slices.Contains(allRoles, a.Role) {
			v.fail(f+".role", "unknown role %q (relay, store, therapist or patient)", a.Role)
		}
		if a.Count < 0 {
			v.fail(f+".count", "%d is negative", a.Count)
		}
		v.share(f+".share", a.Share, "share of all nodes")
		if (a.Count > 0) == (a.Share > 0) {
			v.fail(f, "give count or share (one of them, more than 0)")
		}
		pool := g.Count
		switch a.Media {
		case "":
			a.Media = "any"
		case "any":
		case LoRaMedium:
			pool = v.nLoRa
		case TCP:
			pool = v.nTCP
		default:
			v.fail(f+".media", "%q is not any, lora or tcp", a.Media)
		}
		n := a.Count
		if a.Share > 0 {
			n = shareCount(a.Share, g.Count)
		}
		if n > pool {
			v.fail(f, "%d nodes wanted, only %d are on %s", n, pool, a.Media)
		}
		picked += n
		if picked > g.Count {
			v.fail(f, "assign entries pick %d nodes, more than the %d there are", picked, g.Count)
		}
		if n > 0 {
			v.roles[a.Role] = true
		}
	}
	t := &g.TCP
	switch t.Kind {
	case TCP, QUIC, Mem:
	default:
		v.fail("topology.tcp.kind", "%q is not tcp, quic or mem", t.Kind)
	}
	switch t.Rule {
	case Nearest:
		if v.has("topology.tcp.hubs") {
			v.fail("topology.tcp.hubs", "only rule \"hubs\" takes hubs")
		}
	case Hubs:
		if t.Hubs < 1 || t.Hubs > v.nTCP {
			v.fail("topology.tcp.hubs", "%d is not in 1..%d (the TCP nodes)", t.Hubs, v.nTCP)
		}
		v.roles[Relay] = true
	default:
		v.fail("topology.tcp.rule", "%q is not nearest or hubs", t.Rule)
	}
	if t.K < 1 {
		v.fail("topology.tcp.k", "%d is less than 1", t.K)
	}
	v.share("topology.tcp.loss", t.Loss, "frame loss")
	v.duration("topology.tcp.latency", &t.Latency)
	v.duration("topology.tcp.jitter", &t.Jitter)
	if err := t.Bandwidth.check(); err != nil {
		v.fail("topology.tcp.bandwidth", "%v", err)
	}
	w := len(strconv.Itoa(g.Count - 1))
	for i := 0; i < g.Count; i++ {
		v.names[genName(i, w)] = true
	}
}

func genName(i, width int) string {
	s := strconv.Itoa(i)
	return "n" + strings.Repeat("0", width-len(s)) + s
}

func (v *validator) nodeMedia(name string) []string {
	for i := range v.s.Nodes {
		if v.s.Nodes[i].Name == name {
			return v.s.Nodes[i].Media
		}
	}
	return nil
}

func (v *validator) links() {
	s := v.s
	type key struct{ a, b, kind string }
	seen := map[key]int{}
	for i := range s.Links {
		l := &s.Links[i]
		f := "link[" + strconv.Itoa(i) + "]"
		for _, end := range []struct{ field, name string }{{".from", l.From}, {".to", l.To}} {
			if end.name == "" {
				v.fail(f+end.field, "required: a node name")
			}
			if !v.names[end.name] {
				v.fail(f+end.field, "unknown node %q", end.name)
			}
		}
		if l.From == l.To {
			v.fail(f+".to", "a link from %q to itself", l.From)
		}
		if !slices.Contains(allMedia, l.Kind) {
			if l.Kind == "" {
				v.fail(f+".kind", "required: lora, tcp, quic or mem")
			}
			v.fail(f+".kind", "unknown link kind %q (lora, tcp, quic or mem)", l.Kind)
		}
		for _, end := range []struct{ field, name string }{{".from", l.From}, {".to", l.To}} {
			if m := v.nodeMedia(end.name); m != nil && !slices.Contains(m, l.Kind) {
				v.fail(f+end.field, "node %q is not on %s (its media: %s)", end.name, l.Kind, strings.Join(m, ", "))
			}
		}
		a, b := l.From, l.To
		if b < a {
			a, b = b, a
		}
		k := key{a, b, l.Kind}
		if j, dup := seen[k]; dup {
			v.fail(f, "a second %s link between %q and %q (the first is link[%d]; links are bidirectional)", l.Kind, a, b, j)
		}
		seen[k] = i
		v.share(f+".loss", l.Loss, "frame loss")
		v.duration(f+".latency", &l.Latency)
		v.duration(f+".jitter", &l.Jitter)
		if err := l.Bandwidth.check(); err != nil {
			v.fail(f+".bandwidth", "%v", err)
		}
		if !finite(l.Distance) || l.Distance < 0 {
			v.fail(f+".distance", "%v metres is negative", l.Distance)
		}
		if l.Kind == LoRaMedium {
			for _, k := range []string{"latency", "jitter", "bandwidth"} {
				if v.has(f + "." + k) {
					v.fail(f+"."+k, "a lora link takes no %s: its timing comes from [lora] (airtime, duty cycle)", k)
				}
			}
			if l.Distance > s.LoRa.Range {
				v.fail(f+".distance", "%v metres is beyond lora.range %v", l.Distance, s.LoRa.Range)
			}
			if v.has(f+".distance") && v.has(f+".loss") {
				v.fail(f+".distance", "give loss or distance, not both")
			}
			if !v.has(f+".distance") && !v.has(f+".loss") {
				if pa, pb := v.position(l.From), v.position(l.To); pa != nil && pb != nil {
					if d := math.Hypot(pa[0]-pb[0], pa[1]-pb[1]); d > s.LoRa.Range*(1+1e-9) {
						v.fail(f, "%q and %q are %.0f metres apart, beyond lora.range %v", l.From, l.To, d, s.LoRa.Range)
					}
				}
			}
		} else if v.has(f + ".distance") {
			v.fail(f+".distance", "only lora links take a distance")
		}
	}
}

func (v *validator) position(name string) []float64 {
	for i := range v.s.Nodes {
		if v.s.Nodes[i].Name == name {
			return v.s.Nodes[i].Position
		}
	}
	return nil
}

func (v *validator) groups() {
	seen := map[string]bool{}
	for i := range v.s.Groups {
		g := &v.s.Groups[i]
		f := "group[" + strconv.Itoa(i) + "]"
		if !nameOK(g.Name) {
			v.fail(f+".name", "group name %q: want 1..64 characters of A-Z a-z 0-9 _ . -", g.Name)
		}
		if seen[g.Name] {
			v.fail(f+".name", "duplicate group name %q", g.Name)
		}
		seen[g.Name] = true
		if len(g.Members) == 0 {
			v.fail(f+".members", "required: selectors of the group's nodes")
		}
		v.selectors(f+".members", g.Members, false)
	}
}

// onMedium reports whether some node is surely on medium m.
func (v *validator) onMedium(m string) bool {
	s := v.s
	for _, l := range s.Links {
		if l.Kind == m {
			return true
		}
	}
	if s.HasTopology {
		return m == LoRaMedium && v.nLoRa > 0 || m == s.Topology.TCP.Kind && v.nTCP > 0
	}
	for _, n := range s.Nodes {
		if slices.Contains(n.Media, m) {
			return true
		}
	}
	return false
}

func (v *validator) groupNamed(name string) bool {
	for _, g := range v.s.Groups {
		if g.Name == name {
			return true
		}
	}
	return false
}

// selectors checks that each selector is well formed and matches at
// least one node.
func (v *validator) selectors(field string, sels []string, groupsOK bool) {
	for i, sel := range sels {
		f := field
		if len(sels) > 1 || v.has(field+"[0]") {
			f = field + "[" + strconv.Itoa(i) + "]"
		}
		switch {
		case sel == "*":
		case strings.HasPrefix(sel, "role:"):
			r := strings.TrimPrefix(sel, "role:")
			if !slices.Contains(allRoles, r) {
				v.fail(f, "unknown role %q in selector %q (relay, store, therapist or patient)", r, sel)
			}
			if !v.roles[r] {
				v.fail(f, "selector %q matches no node: no node has role %s", sel, r)
			}
		case strings.HasPrefix(sel, "on:"):
			m := strings.TrimPrefix(sel, "on:")
			if !slices.Contains(allMedia, m) {
				v.fail(f, "unknown medium %q in selector %q (lora, tcp, quic or mem)", m, sel)
			}
			if !v.onMedium(m) {
				v.fail(f, "selector %q matches no node: no node is on %s", sel, m)
			}
		case strings.HasPrefix(sel, "group:"):
			if !groupsOK {
				v.fail(f, "selector %q: group members cannot name groups", sel)
			}
			if !v.groupNamed(strings.TrimPrefix(sel, "group:")) {
				v.fail(f, "selector %q matches no node: no such group", sel)
			}
		default:
			if !v.names[sel] {
				v.fail(f, "selector %q matches no node (a node name, \"*\", \"role:NAME\", \"on:MEDIUM\" or \"group:NAME\")", sel)
			}
		}
	}
}

// notFor refuses keys a kind does not use.
func (v *validator) notFor(prefix, kind string, keys ...string) {
	for _, k := range keys {
		if v.has(prefix + "." + k) {
			v.fail(prefix+"."+k, "not used by kind %q", kind)
		}
	}
}

func (v *validator) traffic(i int) {
	s := v.s
	t := &s.Traffic[i]
	f := "traffic[" + strconv.Itoa(i) + "]"
	if err := t.Rate.check(); err != nil {
		v.fail(f+".rate", "%v", err)
	}
	v.duration(f+".start", &t.Start)
	v.duration(f+".stop", &t.Stop)
	if !t.Start.IsSet() {
		t.Start = Dur(s.Warmup.D())
	}
	if !t.Stop.IsSet() {
		t.Stop = Dur(s.Duration.D())
	}
	if t.Stop.D() > s.Duration.D() {
		v.fail(f+".stop", "%s is after the end (duration %s)", t.Stop, s.Duration)
	}
	if t.Start.D() >= t.Stop.D() {
		v.fail(f+".start", "%s is not before stop %s", t.Start, t.Stop)
	}
	size := func() {
		if !v.has(f + ".size") {
			t.Size = 32
		}
		if t.Size < 1 || t.Size > 65536 {
			v.fail(f+".size", "%d bytes is not in 1..65536", t.Size)
		}
	}
	switch t.Kind {
	case Messages:
		v.notFor(f, t.Kind, "therapists", "patients", "slots", "reserve_share", "group")
		if len(t.From) == 0 {
			v.fail(f+".from", "required: selectors of the sending nodes")
		}
		if len(t.To) == 0 {
			v.fail(f+".to", "required: selectors of the receiving nodes")
		}
		v.selectors(f+".from", t.From, true)
		v.selectors(f+".to", t.To, true)
		if !t.Rate.IsSet() {
			v.fail(f+".rate", "required: messages per sending node, e.g. \"2/h\"")
		}
		size()
	case FAPP:
		v.notFor(f, t.Kind, "from", "to", "size", "group")
		if len(t.Therapists) == 0 {
			t.Therapists = []string{"role:" + Therapist}
		}
		if len(t.Patients) == 0 {
			t.Patients = []string{"role:" + Patient}
		}
		v.selectors(f+".therapists", t.Therapists, true)
		v.selectors(f+".patients", t.Patients, true)
		if !t.Rate.IsSet() {
			t.Rate = PerSec(1.0 / 3600)
		}
		if !v.has(f + ".slots") {
			t.Slots = 5
		}
		if t.Slots < 1 || t.Slots > 1000 {
			v.fail(f+".slots", "%d is not in 1..1000", t.Slots)
		}
		if !v.has(f + ".reserve_share") {
			t.ReserveShare = 0.5
		}
		v.share(f+".reserve_share", t.ReserveShare, "share of searches that reserve")
	case GroupChat:
		v.notFor(f, t.Kind, "from", "to", "therapists", "patients", "slots", "reserve_share")
		if t.Group == "" {
			v.fail(f+".group", "required: the name of a [[group]]")
		}
		if !v.groupNamed(t.Group) {
			v.fail(f+".group", "unknown group %q", t.Group)
		}
		if !t.Rate.IsSet() {
			v.fail(f+".rate", "required: messages per member, e.g. \"1/h\"")
		}
		size()
	case "":
		v.fail(f+".kind", "required: messages, fapp or group")
	default:
		v.fail(f+".kind", "unknown traffic kind %q (messages, fapp or group)", t.Kind)
	}
}

func (v *validator) churn(i int) {
	s := v.s
	c := &s.Churn[i]
	f := "churn[" + strconv.Itoa(i) + "]"
	v.duration(f+".at", &c.At)
	if !c.At.IsSet() {
		v.fail(f+".at", "required: when, in simulated time")
	}
	if c.At.D() >= s.Duration.D() {
		v.fail(f+".at", "%s is not before the end (duration %s)", c.At, s.Duration)
	}
	v.duration(f+".down", &c.Down)
	if c.Count < 0 {
		v.fail(f+".count", "%d is negative", c.Count)
	}
	switch c.Kind {
	case Leave, Join, Restart:
		v.notFor(f, c.Kind, "side_a", "side_b")
		if len(c.Nodes) == 0 {
			v.fail(f+".nodes", "required: selectors of the nodes that %s", c.Kind)
		}
		v.selectors(f+".nodes", c.Nodes, true)
		if c.Kind == Restart {
			if c.Down.D() <= 0 {
				v.fail(f+".down", "required for restart: how long the nodes stay down, more than 0s")
			}
		} else {
			v.notFor(f, c.Kind, "down")
		}
	case Partition:
		v.notFor(f, c.Kind, "nodes", "count", "down")
		if len(c.SideA) == 0 {
			v.fail(f+".side_a", "required: selectors of one side")
		}
		v.selectors(f+".side_a", c.SideA, true)
		v.selectors(f+".side_b", c.SideB, true)
	case Heal:
		v.notFor(f, c.Kind, "nodes", "count", "down", "side_a", "side_b")
		before := false
		for _, o := range s.Churn {
			if o.Kind == Partition && o.At.IsSet() && o.At.D() < c.At.D() {
				before = true
			}
		}
		if !before {
			v.fail(f+".at", "heal at %s: no partition before it", c.At)
		}
	case "":
		v.fail(f+".kind", "required: leave, join, partition, heal or restart")
	default:
		v.fail(f+".kind", "unknown churn kind %q (leave, join, partition, heal or restart)", c.Kind)
	}
}
