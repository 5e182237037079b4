package fapp

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayering: fapp is the domain layer. It may use messages, crypto and
// internal helpers of qpc, never actors, transports or cmd (they use it).
func TestLayering(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		ast, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			rel, ours := strings.CutPrefix(p, "github.com/quicprochat/qpc/")
			if !ours {
				continue
			}
			if !strings.HasPrefix(rel, "messages") && !strings.HasPrefix(rel, "crypto") && !strings.HasPrefix(rel, "internal/") {
				t.Errorf("%s imports %s: fapp uses only messages, crypto and internal/", f, p)
			}
		}
	}
}
