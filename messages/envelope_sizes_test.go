package messages

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func sizeOf(t *testing.T, rows []SizeRow, name string) int {
	t.Helper()
	for _, r := range rows {
		if r.Name == name {
			return r.Bytes
		}
	}
	t.Fatalf("Sizes has no row %q", name)
	return 0
}

// The size targets the wire formats were designed to.
func TestSizeTargets(t *testing.T) {
	rows := Sizes()
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.Name] || r.Name == "" || r.Bytes <= 0 || r.Note == "" {
			t.Errorf("bad or duplicate row %+v", r)
		}
		seen[r.Name] = true
	}
	if n := sizeOf(t, rows, "beacon"); n != 120 {
		t.Errorf("beacon: %d bytes, want 120 (as TestBeaconGolden)", n)
	}
	if n := sizeOf(t, rows, "announce"); n > 167 {
		t.Errorf("announce: %d bytes, more than Reticulum's 167", n)
	}
	if n := sizeOf(t, rows, "announce-kp16"); n > 167 {
		t.Errorf("announce with a KeyPackage hash: %d bytes, more than Reticulum's 167", n)
	}
	if n := sizeOf(t, rows, "envelope-sealed-32"); n > 200 {
		t.Errorf("envelope with a sealed 32-byte text: %d bytes, target 200", n)
	}
	if n := sizeOf(t, rows, "envelope-sealed-94"); n != 255 {
		t.Errorf("envelope with a sealed 94-byte text: %d bytes, want 255 (one LoRa frame)", n)
	}
	// Overhead: payload heads grow at 24 and 256 bytes.
	empty := sizeOf(t, rows, "envelope-empty")
	if n := sizeOf(t, rows, "envelope-256"); n != empty+2+256 {
		t.Errorf("envelope-256: %d bytes, want %d", n, empty+2+256)
	}
}

// TestSizesInDocs keeps the size table of docs/wire-format.md equal to
// Sizes(): the rows between the sizes markers must be exactly its rows.
// After changing a wire type, print them with `qpc sizes` (or run this test
// with -v) and update the table.
func TestSizesInDocs(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "wire-format.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	const begin, end = "<!-- sizes:begin -->", "<!-- sizes:end -->"
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("docs/wire-format.md has no %s ... %s table", begin, end)
	}
	doc := map[string]int{}
	for _, line := range strings.Split(text[i+len(begin):j], "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue // header, separator, blank
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		n, err := strconv.Atoi(strings.TrimSpace(cells[2]))
		if err != nil {
			t.Errorf("docs row %q: bytes %q: %v", name, cells[2], err)
			continue
		}
		doc[name] = n
	}
	for _, r := range Sizes() {
		t.Logf("| `%s` | %d | %s |", r.Name, r.Bytes, r.Note)
		got, ok := doc[r.Name]
		switch {
		case !ok:
			t.Errorf("docs/wire-format.md: no row for %s (%d bytes)", r.Name, r.Bytes)
		case got != r.Bytes:
			t.Errorf("docs/wire-format.md: %s is %d bytes, measured %d", r.Name, got, r.Bytes)
		}
		delete(doc, r.Name)
	}
	for name := range doc {
		t.Errorf("docs/wire-format.md: row %s is not measured by Sizes", name)
	}
}
