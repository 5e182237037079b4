package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: a scenario file is user input. Parse must never panic and
// must return either a valid scenario or an *Error; a parsed scenario
// expands (small ones, few attempts, to keep the fuzzer fast) without panicking.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../../test/scenarios/*.toml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(base))
	f.Add([]byte(rgDoc))
	f.Add([]byte("name = \"t\"\nduration = \"1h\"\nnode = [{name = \"a\", position = [1, 2]}, {name = \"b\"}]\nlink = [{from = \"a\", to = \"b\", kind = \"mem\"}]\n"))
	f.Add([]byte("[[topology.assign]]\n[[topology.assign.x]]\na.b.c = 1\n[a]\n[[a.b]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, "f.toml")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || s != nil {
				t.Fatalf("Parse: %T %v", err, err)
			}
			return
		}
		n := len(s.Nodes)
		if s.HasTopology {
			n = s.Topology.Count
		}
		// Expand's cost is attempts x count x (TCP nodes): keep it small
		// so the fuzzer explores Parse rather than waits for layouts.
		s.Topology.Attempts = min(s.Topology.Attempts, 3)
		if n <= 64 {
			if _, err := s.Expand(1); err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("Expand: %T %v", err, err)
				}
			}
		}
	})
}
