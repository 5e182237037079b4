package scenario

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, doc string) *Scenario {
	t.Helper()
	s, err := Parse([]byte(doc), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const rgDoc = `name = "rg"
duration = "1h"
[lora]
range = 1200
[topology]
kind = "random_geometric"
count = 60
area = [4000, 4000]
lora_share = 0.7
tcp_share = 0.4
[topology.tcp]
k = 2
[[topology.assign]]
role = "therapist"
count = 5
[[topology.assign]]
role = "patient"
share = 0.5
media = "lora"
[[traffic]]
kind = "fapp"
[[churn]]
at = "10m"
kind = "leave"
nodes = "role:patient"
count = 3
`

func TestExpandDeterministic(t *testing.T) {
	s := mustParse(t, rgDoc)
	a, err := s.Expand(7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mustParse(t, rgDoc).Expand(7)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same scenario and seed gave different topologies")
	}
	c, err := s.Expand(8)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Nodes, c.Nodes) {
		t.Fatal("seeds 7 and 8 gave the same random geometric layout")
	}
	if !connected(len(a.Nodes), a.Links) {
		t.Fatal("not connected")
	}
	// Media split: 42 on LoRa, 24 on TCP, so 6 bridges.
	var lora, tcp, both, ther, pat int
	for _, n := range a.Nodes {
		lora += b2i(n.On(LoRaMedium))
		tcp += b2i(n.On(TCP))
		both += b2i(n.On(LoRaMedium) && n.On(TCP))
		ther += b2i(n.Has(Therapist))
		pat += b2i(n.Has(Patient))
		if !n.Has(Relay) {
			t.Fatalf("%s lacks the default role relay", n.Name)
		}
		if n.Has(Therapist) && n.Has(Patient) {
			t.Fatalf("%s got two assign entries", n.Name)
		}
		if n.Has(Patient) && !n.On(LoRaMedium) {
			t.Fatalf("%s: patients were assigned among LoRa nodes only", n.Name)
		}
	}
	if lora != 42 || tcp != 24 || both != 6 || ther != 5 || pat != 30 {
		t.Fatalf("lora %d tcp %d both %d therapists %d patients %d", lora, tcp, both, ther, pat)
	}
	if a.Nodes[0].Name != "n00" || a.Nodes[59].Name != "n59" {
		t.Fatalf("names %s..%s", a.Nodes[0].Name, a.Nodes[59].Name)
	}
	for _, l := range a.Links {
		na, nb := a.Nodes[l.A], a.Nodes[l.B]
		if l.A >= l.B {
			t.Fatalf("link %+v: A >= B", l)
		}
		switch l.Kind {
		case LoRaMedium:
			d := dist(na.Position, nb.Position)
			if !na.On(LoRaMedium) || !nb.On(LoRaMedium) || d > 1200 || math.Abs(l.Distance-d) > 1e-9 || math.Abs(l.Loss-0.2*(d/1200)*(d/1200)) > 1e-12 {
				t.Fatalf("lora link %+v between %+v and %+v", l, na, nb)
			}
		case TCP:
			if !na.On(TCP) || !nb.On(TCP) || l.Latency.Milliseconds() != 20 || l.Jitter.Milliseconds() != 5 {
				t.Fatalf("tcp link %+v", l)
			}
		default:
			t.Fatalf("link kind %s", l.Kind)
		}
	}
	// Every pair of LoRa nodes in range is linked.
	lk := map[[2]int]bool{}
	for _, l := range a.Links {
		if l.Kind == LoRaMedium {
			lk[[2]int{l.A, l.B}] = true
		}
	}
	for i := range a.Nodes {
		for j := i + 1; j < len(a.Nodes); j++ {
			if a.Nodes[i].On(LoRaMedium) && a.Nodes[j].On(LoRaMedium) && dist(a.Nodes[i].Position, a.Nodes[j].Position) <= 1200 && !lk[[2]int{i, j}] {
				t.Fatalf("LoRa nodes %d and %d in range but not linked", i, j)
			}
		}
	}
	f := a.Traffic[0]
	if len(f.Therapists) != 5 || len(f.Patients) != 30 || f.Slots != 5 || f.ReserveShare != 0.5 || math.Abs(f.Rate.PerSecond()-1.0/3600) > 1e-15 {
		t.Fatalf("fapp flow %+v", f)
	}
	ev := a.Churn[0]
	if len(ev.Nodes) != 3 {
		t.Fatalf("churn picked %v", ev.Nodes)
	}
	for _, i := range ev.Nodes {
		if !a.Nodes[i].Has(Patient) {
			t.Fatalf("churn picked non-patient %d", i)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestLineAndGrid(t *testing.T) {
	s := mustParse(t, "name = \"l\"\nduration = \"1h\"\n[topology]\nkind = \"line\"\ncount = 12\nspacing = 800\n[lora]\nrange = 1000\n")
	topo, err := s.Expand(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Links) != 11 {
		t.Fatalf("line of 12: %d links, want 11", len(topo.Links))
	}
	for i, l := range topo.Links {
		if l.A != i || l.B != i+1 || l.Distance != 800 || math.Abs(l.Loss-0.2*0.64) > 1e-12 {
			t.Fatalf("link %d: %+v", i, l)
		}
	}
	if topo.Nodes[11].Position != [2]float64{8800, 0} {
		t.Fatal(topo.Nodes[11].Position)
	}
	// Grid of 9 with spacing = range: the 12 edges of a 3x3 grid.
	s = mustParse(t, "name = \"g\"\nduration = \"1h\"\n[topology]\nkind = \"grid\"\ncount = 9\n")
	topo, err = s.Expand(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Links) != 12 || topo.Nodes[4].Position != [2]float64{1000, 1000} || topo.Nodes[0].Name != "n0" {
		t.Fatalf("grid: %d links, centre at %v, first %s", len(topo.Links), topo.Nodes[4].Position, topo.Nodes[0].Name)
	}
	// Spacing beyond range cannot connect, whatever the seed.
	s = mustParse(t, "name = \"l\"\nduration = \"1h\"\n[topology]\nkind = \"line\"\ncount = 4\nspacing = 1500\n")
	_, err = s.Expand(1)
	var e *Error
	if !errors.As(err, &e) || e.Field != "topology" || e.Line != 3 || !strings.Contains(e.Msg, "not connected") {
		t.Fatalf("err = %v", err)
	}
}

func TestRandomGeometricCannotConnect(t *testing.T) {
	s := mustParse(t, "name = \"r\"\nduration = \"1h\"\n[lora]\nrange = 10\n[topology]\nkind = \"random_geometric\"\ncount = 50\narea = [10000, 10000]\nattempts = 20\n")
	_, err := s.Expand(1)
	var e *Error
	if !errors.As(err, &e) || e.Field != "topology" || e.Line != 5 || !strings.Contains(e.Msg, "in 20 attempts") {
		t.Fatalf("err = %v", err)
	}
}

func TestScaleFree(t *testing.T) {
	s := mustParse(t, "name = \"s\"\nduration = \"1h\"\n[topology]\nkind = \"scale_free\"\ncount = 300\nm = 3\n[topology.tcp]\nkind = \"quic\"\n")
	topo, err := s.Expand(3)
	if err != nil {
		t.Fatal(err)
	}
	// A complete graph of m+1 nodes, then m links per further node.
	if want := 6 + 3*(300-4); len(topo.Links) != want {
		t.Fatalf("%d links, want %d", len(topo.Links), want)
	}
	deg := make([]int, 300)
	seen := map[[2]int]bool{}
	for _, l := range topo.Links {
		if l.Kind != QUIC || seen[[2]int{l.A, l.B}] {
			t.Fatalf("link %+v (kind or duplicate)", l)
		}
		seen[[2]int{l.A, l.B}] = true
		deg[l.A]++
		deg[l.B]++
	}
	if !connected(300, topo.Links) || slices.Max(deg) < 20 || topo.Nodes[0].HasPosition || !topo.Nodes[0].On(QUIC) {
		t.Fatalf("connected %v, max degree %d (preferential attachment makes hubs)", connected(300, topo.Links), slices.Max(deg))
	}
	if _, err := Parse([]byte("name = \"s\"\nduration = \"1h\"\n[topology]\nkind = \"scale_free\"\ncount = 30\nlora_share = 0.5\n"), "t.toml"); err == nil || !strings.Contains(err.Error(), "lora_share must be 0") {
		t.Fatalf("scale_free with LoRa: %v", err)
	}
}

func TestHubs(t *testing.T) {
	s := mustParse(t, `name = "h"
duration = "1h"
[topology]
kind = "random_geometric"
count = 40
area = [10000, 10000]
lora_share = 0
roles = []
[topology.tcp]
rule = "hubs"
hubs = 4
k = 2
[[topology.assign]]
role = "patient"
count = 36
`)
	topo, err := s.Expand(1)
	if err != nil {
		t.Fatal(err)
	}
	var hubs []int
	for i, n := range topo.Nodes {
		if n.Has(Relay) {
			hubs = append(hubs, i)
			if n.Has(Patient) {
				t.Fatalf("hub %s is also a patient: hubs come from the nodes no assign took", n.Name)
			}
		}
	}
	if len(hubs) != 4 {
		t.Fatalf("hubs %v", hubs)
	}
	// 6 hub-hub links, 2 per other node.
	if len(topo.Links) != 6+36*2 {
		t.Fatalf("%d links", len(topo.Links))
	}
	for _, l := range topo.Links {
		if !slices.Contains(hubs, l.A) && !slices.Contains(hubs, l.B) {
			t.Fatalf("link %+v does not touch a hub", l)
		}
	}
}

func TestPartitionAndGroups(t *testing.T) {
	s := mustParse(t, base+`
[[group]]
name = "g"
members = ["a", "b"]
[[link]]
from = "a"
to = "b"
kind = "tcp"
[[link]]
from = "b"
to = "c"
kind = "tcp"
[[traffic]]
kind = "group"
group = "g"
rate = "1/h"
[[churn]]
at = "30m"
kind = "heal"
[[churn]]
at = "10m"
kind = "partition"
side_a = "group:g"
`)
	topo, err := s.Expand(1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(topo.Groups[0].Members, []int{0, 1}) || !reflect.DeepEqual(topo.Nodes[0].Groups, []string{"g"}) {
		t.Fatalf("groups %+v", topo.Groups)
	}
	if !reflect.DeepEqual(topo.Traffic[0].Members, []int{0, 1}) || topo.Traffic[0].Size != 32 {
		t.Fatalf("group flow %+v", topo.Traffic[0])
	}
	p := topo.Churn[0]
	if p.Kind != Partition || !reflect.DeepEqual(p.SideA, []int{0, 1}) || !reflect.DeepEqual(p.SideB, []int{2}) || topo.Churn[1].Kind != Heal {
		t.Fatalf("churn (sorted by time) %+v", topo.Churn)
	}
	s = mustParse(t, base+"[[churn]]\nat = \"10m\"\nkind = \"partition\"\nside_a = [\"a\", \"b\"]\nside_b = [\"b\", \"c\"]\n")
	_, err = s.Expand(1)
	var e *Error
	if !errors.As(err, &e) || e.Field != "churn[0].side_b" || e.Line != 22 || !strings.Contains(e.Msg, `"b" is on both sides`) {
		t.Fatalf("overlap: %v", err)
	}
}

func TestExplicitLinkOverridesGenerated(t *testing.T) {
	s := mustParse(t, "name = \"l\"\nduration = \"1h\"\n[topology]\nkind = \"line\"\ncount = 3\n[[link]]\nfrom = \"n0\"\nto = \"n1\"\nkind = \"lora\"\nloss = 0.5\n[[link]]\nfrom = \"n0\"\nto = \"n2\"\nkind = \"mem\"\n")
	topo, err := s.Expand(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Links) != 3 || topo.Links[0].Loss != 0.5 || topo.Links[1].Kind != Mem || !topo.Nodes[0].On(Mem) || topo.Nodes[1].On(Mem) {
		t.Fatalf("links %+v", topo.Links)
	}
}
