package node

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
)

// TestEveryMetricIsDocumented: every qpc_ metric family a node exposes
// (one with a LoRa radio and a TCP listener, so the transports' families
// exist too) has a row in docs/operations.md's metrics table, and that
// table is one table with one header row (issue 9 item 6 found it split in
// two, the second part without a header).
func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := documentedMetrics(t, string(doc))

	cfg := testConfig(t)
	cfg.Transports.Listen = []string{"lora+mock://docs?sf=7", "tcp://127.0.0.1:0"}
	n, _ := startNode(t, cfg, WithLoRaMock(link.NewMockNetwork(lora.MediumOptions{})), WithProcessMetrics())
	code, body := get(t, "http://"+n.APIAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	seen := 0
	for _, line := range strings.Split(body, "\n") {
		name, ok := strings.CutPrefix(line, "# TYPE ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		if !strings.HasPrefix(name, "qpc_") {
			continue
		}
		seen++
		if !documented[name] {
			t.Errorf("%s is exposed but has no row in docs/operations.md's metrics table", name)
		}
	}
	if seen < 30 {
		t.Fatalf("only %d qpc_ families exposed: the scrape is not what it should be", seen)
	}
}

// documentedMetrics reads the names in the first column of the table under
// "## Metrics" ("`x_a_total` / `_b_total`" names x_a_total and x_b_total:
// the short form continues the name before it at a word boundary).
func documentedMetrics(t *testing.T, doc string) map[string]bool {
	t.Helper()
	_, sec, ok := strings.Cut(doc, "\n## Metrics\n")
	if !ok {
		t.Fatal("docs/operations.md has no ## Metrics section")
	}
	if end := strings.Index(sec, "\n## "); end >= 0 {
		sec = sec[:end]
	}
	var rows []string
	headers, inTable, tables := 0, false, 0
	for _, line := range strings.Split(sec, "\n") {
		isRow := strings.HasPrefix(line, "|")
		if isRow && !inTable {
			tables++
		}
		inTable = isRow
		switch {
		case strings.HasPrefix(line, "|---"):
			headers++
		case isRow:
			rows = append(rows, line)
		}
	}
	if tables != 1 || headers != 1 {
		t.Fatalf("the metrics section has %d tables and %d header rows, want one of each", tables, headers)
	}
	names := map[string]bool{}
	tick := regexp.MustCompile("`([^`]+)`")
	for _, row := range rows[1:] { // rows[0] is the header
		cells := strings.Split(row, "|")
		if len(cells) < 2 {
			continue
		}
		prev := ""
		for _, m := range tick.FindAllStringSubmatch(cells[1], -1) {
			name, _, _ := strings.Cut(m[1], "{")
			if strings.HasPrefix(name, "_") && prev != "" {
				// The short form continues the name before it at one of
				// its word boundaries: every such reading counts.
				for i := range len(prev) {
					if prev[i] == '_' {
						names[prev[:i]+name] = true
					}
				}
				continue
			}
			names[name] = true
			prev = name
		}
	}
	return names
}
