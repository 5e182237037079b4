package scenario

import (
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestExampleScenarios parses and expands every file in test/scenarios
// with seed 1, and checks the node count where the file name gives one
// (city-lora-50.toml: 50 nodes).
func TestExampleScenarios(t *testing.T) {
	files, err := filepath.Glob("../../../test/scenarios/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("found %d scenario files in test/scenarios, want at least 6", len(files))
	}
	size := regexp.MustCompile(`-(\d+)\.toml$`)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			topo, err := s.Expand(1)
			if err != nil {
				t.Fatal(err)
			}
			if m := size.FindStringSubmatch(f); m != nil {
				want, _ := strconv.Atoi(m[1])
				if len(topo.Nodes) != want {
					t.Fatalf("%d nodes, the file name says %d", len(topo.Nodes), want)
				}
			}
			if len(topo.Links) == 0 || len(topo.Traffic) == 0 {
				t.Fatalf("%d links, %d flows: an example should have both", len(topo.Links), len(topo.Traffic))
			}
			lora, tcp := 0, 0
			for _, n := range topo.Nodes {
				if n.On(LoRaMedium) {
					lora++
				}
				if n.On(TCP) {
					tcp++
				}
			}
			t.Logf("%s: %d nodes (%d lora, %d tcp), %d links, %d flows, %d churn events", s.Name, len(topo.Nodes), lora, tcp, len(topo.Links), len(topo.Traffic), len(topo.Churn))
		})
	}
}
