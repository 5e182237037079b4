package test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/quicprochat/qpc"

// TestPackageDependencyRules keeps the layering of DESIGN.md in a test,
// not in memory: messages and crypto import nothing of qpc, transports
// never imports actors, and only cmd/ reads viper or cobra. One exception:
// crypto/mlslite, which is a frame type as well as crypto, uses messages'
// canonical CBOR and frame-tag helpers (and messages never imports it).
func TestPackageDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(fields[0], module+"/"), fields[1:]
		for _, imp := range imports {
			ours := strings.HasPrefix(imp, module+"/")
			rel := strings.TrimPrefix(imp, module+"/")
			switch {
			case pkg == "crypto/mlslite" && rel == "messages":
			case (strings.HasPrefix(pkg, "messages") || strings.HasPrefix(pkg, "crypto")) && ours &&
				!strings.HasPrefix(rel, strings.SplitN(pkg, "/", 2)[0]):
				t.Errorf("%s imports %s: messages and crypto import nothing else of qpc", pkg, rel)
			case strings.HasPrefix(pkg, "transports") && ours && strings.HasPrefix(rel, "actors"):
				t.Errorf("%s imports %s: transports never imports actors", pkg, rel)
			case !strings.HasPrefix(pkg, "cmd/") && (strings.HasPrefix(imp, "github.com/spf13/viper") || strings.HasPrefix(imp, "github.com/spf13/cobra")):
				t.Errorf("%s imports %s: only cmd/ reads flags and viper", pkg, imp)
			}
		}
	}
}

// TestGofmt fails on any file gofmt would change.
func TestGofmt(t *testing.T) {
	out, err := exec.Command("gofmt", "-l", "..").CombinedOutput()
	if err != nil {
		t.Fatalf("gofmt: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("gofmt would change:\n%s", s)
	}
}

// TestEmbedderExampleNeedsNoInternalPackage: the Go API's example
// (actors/node/example_test.go) must build from another module, so it may
// import nothing under internal/ — Go refuses that outside this module.
func TestEmbedderExampleNeedsNoInternalPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{join .XTestImports \"\\n\"}}", module+"/actors/node").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := strings.Fields(string(out))
	if len(imports) == 0 {
		t.Fatal("actors/node has no external test package (its example)")
	}
	for _, imp := range imports {
		if strings.Contains(imp, "/internal/") || strings.HasSuffix(imp, "/internal") {
			t.Errorf("the example imports %s, which a module outside qpc cannot", imp)
		}
	}
}
