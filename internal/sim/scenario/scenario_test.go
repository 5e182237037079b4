package scenario

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const base = `name = "t"
duration = "1h"

[[node]]
name = "a"
media = ["lora", "tcp"]
position = [0, 0]

[[node]]
name = "b"
roles = ["relay"]
media = ["lora", "tcp"]
position = [500, 0]

[[node]]
name = "c"
roles = ["patient"]
`

func TestParseMinimal(t *testing.T) {
	s, err := Parse([]byte(base+`
[[link]]
from = "a"
to = "b"
kind = "lora"

[[link]]
from = "b"
to = "c"
kind = "tcp"
latency = "15ms"
jitter = "2ms"
loss = 0.01
bandwidth = "1.5Mbit"

[[traffic]]
kind = "messages"
from = ["a", "b"]
to = "role:patient"
rate = "2/min"
`), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Seed != 1 || s.LoRa.SF != 9 || s.LoRa.BW != 125000 || s.LoRa.CR != 5 || s.LoRa.DutyCycle != 0.01 || !s.LoRa.Collisions || s.LoRa.Range != 1000 {
		t.Fatalf("defaults not applied: seed %d lora %+v", s.Seed, s.LoRa)
	}
	tr := s.Traffic[0]
	if math.Abs(tr.Rate.PerSecond()-2.0/60) > 1e-12 || tr.Size != 32 || tr.Start.D() != 0 || tr.Stop.D() != time.Hour {
		t.Fatalf("traffic defaults: %+v", tr)
	}
	if s.Links[1].Bandwidth.BitsPerSecond() != 1500000 || s.Links[1].Latency.D() != 15*time.Millisecond {
		t.Fatalf("link values: %+v", s.Links[1])
	}
	topo, err := s.Expand(s.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Nodes) != 3 || len(topo.Links) != 2 {
		t.Fatalf("topology %+v", topo)
	}
	l := topo.Links[0]
	if l.Kind != LoRaMedium || l.Distance != 500 || math.Abs(l.Loss-0.2*0.25) > 1e-12 {
		t.Fatalf("lora link from positions: %+v", l)
	}
	if c := topo.Nodes[2]; !reflect.DeepEqual(c.Media, []string{TCP}) || c.HasPosition {
		t.Fatalf("c's media come from its link: %+v", c)
	}
	if f := topo.Traffic[0]; !reflect.DeepEqual(f.From, []int{0, 1}) || !reflect.DeepEqual(f.To, []int{2}) {
		t.Fatalf("flow selectors: %+v", f)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, doc string
		line      int
		field     string
		msg       string
	}{
		{"unknown field", base + "colour = \"red\"\n", 18, "node[2].colour", "unknown field"},
		{"unknown top-level field", "name = \"t\"\nduraton = \"1h\"\n", 2, "duraton", "unknown field"},
		{"unknown node in link", base + "\n[[link]]\nfrom = \"a\"\nto = \"x9\"\nkind = \"tcp\"\n", 21, "link[0].to", `unknown node "x9"`},
		{"negative rate", base + "\n[[traffic]]\nkind = \"messages\"\nfrom = \"a\"\nto = \"c\"\nrate = \"-2/min\"\n", 23, "traffic[0].rate", "negative"},
		{"rate without unit", base + "\n[[traffic]]\nkind = \"messages\"\nfrom = \"a\"\nto = \"c\"\nrate = 5\n", 23, "traffic[0].rate", "needs a unit"},
		{"bad link kind", base + "\n[[link]]\nfrom = \"a\"\nto = \"b\"\nkind = \"wifi\"\n", 22, "link[0].kind", `unknown link kind "wifi"`},
		{"sf out of range", base + "[lora]\nsf = 13\n", 19, "lora.sf", "not in 7..12"},
		{"bw", base + "[lora]\nbw = 100000\n", 19, "lora.bw", "125000"},
		{"duty cycle", base + "[lora]\nduty_cycle = 0\n", 19, "lora.duty_cycle", "0 < x <= 1"},
		{"loss above 1", base + "\n[[link]]\nfrom = \"a\"\nto = \"b\"\nkind = \"tcp\"\nloss = 1.5\n", 23, "link[0].loss", "not in 0..1"},
		{"duplicate node", base + "\n[[node]]\nname = \"b\"\n", 20, "node[3].name", `duplicate node name "b"`},
		{"selector matches nothing", base + "\n[[traffic]]\nkind = \"messages\"\nfrom = \"role:therapist\"\nto = \"c\"\nrate = \"1/h\"\n", 21, "traffic[0].from", "matches no node"},
		{"unknown name in selector list", base + "\n[[traffic]]\nkind = \"messages\"\nfrom = [\"a\", \"zz\"]\nto = \"c\"\nrate = \"1/h\"\n", 21, "traffic[0].from[1]", `"zz" matches no node`},
		{"zero duration", "name = \"t\"\nduration = \"0s\"\n[[node]]\nname = \"a\"\n", 2, "duration", "more than 0s"},
		{"duration without unit", "name = \"t\"\nduration = 600\n[[node]]\nname = \"a\"\n", 2, "duration", "needs a unit"},
		{"missing duration", "name = \"t\"\n[[node]]\nname = \"a\"\n", 0, "duration", "required"},
		{"no nodes", "name = \"t\"\nduration = \"1h\"\n", 0, "", "no nodes"},
		{"wrong type", "name = 5\nduration = \"1h\"\n", 1, "name", "cannot decode TOML integer"},
		{"syntax", "name = \"t\nduration = \"1h\"\n", 1, "", ""},
		{"lora link with latency", base + "\n[[link]]\nfrom = \"a\"\nto = \"b\"\nkind = \"lora\"\nlatency = \"1s\"\n", 23, "link[0].latency", "no latency"},
		{"link medium", base + "\n[[link]]\nfrom = \"a\"\nto = \"b\"\nkind = \"mem\"\n", 20, "link[0].from", "not on mem"},
		{"duplicate link", base + "\n[[link]]\nfrom = \"a\"\nto = \"b\"\nkind = \"tcp\"\n[[link]]\nfrom = \"b\"\nto = \"a\"\nkind = \"tcp\"\n", 23, "link[1]", "second tcp link"},
		{"lora too far", base + "\n[[link]]\nfrom = \"a\"\nto = \"b\"\nkind = \"lora\"\ndistance = 5000\n", 23, "link[0].distance", "beyond lora.range"},
		{"bad bandwidth", base + "\n[[link]]\nfrom = \"a\"\nto = \"b\"\nkind = \"tcp\"\nbandwidth = \"fast\"\n", 23, "link[0].bandwidth", "bandwidth"},
		{"unknown role", base + "\n[[node]]\nname = \"d\"\nroles = [\"relay\", \"king\"]\n", 21, "node[3].roles[1]", `unknown role "king"`},
		{"inline table unknown key", "name = \"t\"\nduration = \"1h\"\nnode = [{name = \"a\"},\n  {name = \"b\", colour = 1}]\n", 4, "node[1].colour", "unknown field"},
		{"traffic stop after end", base + "\n[[traffic]]\nkind = \"messages\"\nfrom = \"a\"\nto = \"c\"\nrate = \"1/h\"\nstop = \"2h\"\n", 24, "traffic[0].stop", "after the end"},
		{"field of another kind", base + "\n[[traffic]]\nkind = \"messages\"\nfrom = \"a\"\nto = \"c\"\nrate = \"1/h\"\nslots = 3\n", 24, "traffic[0].slots", "not used by kind"},
		{"unknown group", base + "\n[[traffic]]\nkind = \"group\"\ngroup = \"g\"\nrate = \"1/h\"\n", 21, "traffic[0].group", `unknown group "g"`},
		{"heal without partition", base + "\n[[churn]]\nat = \"10m\"\nkind = \"heal\"\n", 20, "churn[0].at", "no partition"},
		{"restart without down", base + "\n[[churn]]\nat = \"10m\"\nkind = \"restart\"\nnodes = \"b\"\n", 19, "churn[0].down", "required for restart"},
		{"churn after end", base + "\n[[churn]]\nat = \"2h\"\nkind = \"leave\"\nnodes = \"b\"\n", 20, "churn[0].at", "before the end"},
		{"bad churn kind", base + "\n[[churn]]\nat = \"1m\"\nkind = \"explode\"\n", 21, "churn[0].kind", "unknown churn kind"},
		{"count too large", "name = \"t\"\nduration = \"1h\"\n[topology]\nkind = \"line\"\ncount = 100001\n", 5, "topology.count", "more than 100000"},
		{"nodes and topology", base + "[topology]\nkind = \"line\"\ncount = 3\n", 18, "topology", "not both"},
		{"random geometric without area", "name = \"t\"\nduration = \"1h\"\n[topology]\nkind = \"random_geometric\"\ncount = 5\n", 3, "topology.area", "needs area"},
		{"generator kind", "name = \"t\"\nduration = \"1h\"\n[topology]\nkind = \"ring\"\ncount = 5\n", 4, "topology.kind", `unknown generator "ring"`},
		{"shares leave nodes out", "name = \"t\"\nduration = \"1h\"\n[topology]\nkind = \"line\"\ncount = 10\nlora_share = 0.5\ntcp_share = 0.2\n", 7, "topology.tcp_share", "without a medium"},
		{"assign too many", "name = \"t\"\nduration = \"1h\"\n[topology]\nkind = \"line\"\ncount = 10\n[[topology.assign]]\nrole = \"patient\"\ncount = 11\n", 6, "topology.assign[0]", "only 10"},
		{"tcp rule", "name = \"t\"\nduration = \"1h\"\n[topology]\nkind = \"line\"\ncount = 10\nlora_share = 0\n[topology.tcp]\nrule = \"star\"\n", 8, "topology.tcp.rule", "not nearest or hubs"},
		{"generated name unknown", "name = \"t\"\nduration = \"1h\"\n[topology]\nkind = \"line\"\ncount = 10\n[[traffic]]\nkind = \"messages\"\nfrom = \"n10\"\nto = \"*\"\nrate = \"1/h\"\n", 8, "traffic[0].from", `"n10" matches no node`},
		{"key in other case", base + "[topology]\nKind = \"line\"\n", 19, "topology.Kind", "lower case"},
		{"negative seed", "name = \"t\"\nseed = -1\nduration = \"1h\"\n[[node]]\nname = \"a\"\n", 2, "seed", "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc), "mesh.toml")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if e.File != "mesh.toml" || e.Line != c.line || e.Field != c.field || !strings.Contains(e.Msg, c.msg) {
				t.Fatalf("got %q (line %d, field %q), want line %d, field %q, message containing %q", e.Error(), e.Line, e.Field, c.line, c.field, c.msg)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "mesh.toml", Line: 14, Field: "link[3].to", Msg: `unknown node "x9"`}
	if got := e.Error(); got != `mesh.toml:14: link[3].to: unknown node "x9"` {
		t.Fatal(got)
	}
	e = &Error{File: "mesh.toml", Msg: "too big"}
	if got := e.Error(); got != "mesh.toml: too big" {
		t.Fatal(got)
	}
}

func TestSizeLimit(t *testing.T) {
	doc := base + "#" + strings.Repeat("x", MaxFileSize) + "\n"
	_, err := Parse([]byte(doc), "big.toml")
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Msg, "more than the 1048576 allowed") {
		t.Fatalf("err = %v", err)
	}
	p := filepath.Join(t.TempDir(), "big.toml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); !errors.As(err, &e) || !strings.Contains(e.Msg, "allowed") {
		t.Fatalf("Load: err = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); !errors.As(err, &e) {
		t.Fatalf("Load missing: %v", err)
	}
}

func TestValues(t *testing.T) {
	for in, want := range map[string]float64{"2/min": 2.0 / 60, "0.5/s": 0.5, "3/h": 3.0 / 3600, "24/d": 1.0 / 3600, "0/s": 0, "1/sec": 1, "1/hour": 1.0 / 3600} {
		r := Rate{raw: in, set: true}
		if err := r.check(); err != nil || math.Abs(r.PerSecond()-want) > 1e-15 {
			t.Errorf("rate %q = %v, %v; want %v", in, r.PerSecond(), err, want)
		}
	}
	for _, in := range []string{"2", "2/week", "x/s", "-1/s", "NaN/s", "Inf/s"} {
		r := Rate{raw: in, set: true}
		if err := r.check(); err == nil {
			t.Errorf("rate %q accepted", in)
		}
	}
	if PerSec(0.5).Interval() != 2*time.Second || (Rate{}).Interval() != 0 {
		t.Error("Interval")
	}
	for in, want := range map[string]int64{"9600": 9600, "250kbit": 250000, "1Mbit": 1000000, "1.5Mbit": 1500000, "1Gbit/s": 1e9, "1 mbit": 1e6, "300bit": 300, "0": 0} {
		b := Bandwidth{raw: in, set: true}
		if err := b.check(); err != nil || b.BitsPerSecond() != want {
			t.Errorf("bandwidth %q = %d, %v; want %d", in, b.BitsPerSecond(), err, want)
		}
	}
	for _, in := range []string{"fast", "-5", "1Tbit", "101Gbit", "Mbit"} {
		b := Bandwidth{raw: in, set: true}
		if err := b.check(); err == nil {
			t.Errorf("bandwidth %q accepted", in)
		}
	}
	for _, in := range []string{"600", "-1s", "soon"} {
		d := Duration{raw: in, set: true}
		if err := d.check(); err == nil {
			t.Errorf("duration %q accepted", in)
		}
	}
}

func TestBandwidthNumber(t *testing.T) {
	s, err := Parse([]byte(base+"\n[[link]]\nfrom = \"a\"\nto = \"b\"\nkind = \"tcp\"\nbandwidth = 250000\n"), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Links[0].Bandwidth.BitsPerSecond() != 250000 {
		t.Fatal(s.Links[0].Bandwidth)
	}
	_, err = Parse([]byte(base+"\n[[link]]\nfrom = \"a\"\nto = \"b\"\nkind = \"tcp\"\nbandwidth = -1\n"), "m.toml")
	var e *Error
	if !errors.As(err, &e) || e.Field != "link[0].bandwidth" || e.Line != 23 {
		t.Fatalf("negative bandwidth: %v", err)
	}
}
