package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// MaxFileSize is the largest scenario file Parse and Load accept.
const MaxFileSize = 1 << 20

// MaxNodes is the most nodes a scenario may have.
const MaxNodes = 100000

// Error is every error Parse, Load and Expand return.
type Error struct {
	File  string // the file name given to Parse or Load
	Line  int    // 1-based; 0 when not known (e.g. a file too large)
	Field string // dotted path, e.g. "link[3].to", "lora.sf"; "" for the whole file
	Msg   string
}

// Error formats as "FILE:LINE: FIELD: MSG", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Load reads and parses a scenario file (see Parse). The file name in
// errors is path as given.
func Load(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	return Parse(data, path)
}

// Parse decodes a scenario strictly (unknown keys and wrong types are
// errors), fills in defaults and validates it. Every error is an *Error
// naming the line and field where the document says so. filename is used
// only in messages.
func Parse(data []byte, filename string) (*Scenario, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: filename, Msg: fmt.Sprintf("file is %d bytes, more than the %d allowed", len(data), MaxFileSize)}
	}
	lines, perr := scanLines(data)
	if perr != nil {
		return nil, decodeError(filename, perr, lines)
	}
	if lines.badKey != "" {
		// go-toml matches keys to fields ignoring case; the schema's keys
		// are lower case, and "Count" is a mistake like any unknown key.
		return nil, &Error{File: filename, Line: lines.badLine, Field: lines.badKey, Msg: "unknown field (keys are lower case)"}
	}
	s := defaults()
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return nil, decodeError(filename, err, lines)
	}
	s.File, s.lines = filename, lines
	_, s.HasTopology = lines.byPath["topology"]
	v := &validator{s: s, lines: lines}
	if err := v.run(); err != nil {
		return nil, err
	}
	return s, nil
}

func defaults() *Scenario {
	return &Scenario{
		Seed: 1,
		LoRa: LoRa{SF: 9, BW: 125000, CR: 5, DutyCycle: 0.01, Collisions: true, Range: 1000, EdgeLoss: 0.2},
		Topology: Generator{
			Attempts: 100,
			M:        2,
			Roles:    []string{Relay},
			TCP: TCPRule{
				Kind: TCP, Rule: Nearest, K: 2,
				Latency: Dur(20 * time.Millisecond), Jitter: Dur(5 * time.Millisecond),
			},
		},
	}
}

// decodeError turns a go-toml error into an *Error, finding the indexed
// field path ("link[2].rate") from the line go-toml reports.
func decodeError(file string, err error, lines *lineMap) *Error {
	var se *toml.StrictMissingError
	if errors.As(err, &se) && len(se.Errors) > 0 {
		de := se.Errors[0]
		row, _ := de.Position()
		return &Error{File: file, Line: row, Field: lines.field(row, de.Key()), Msg: "unknown field"}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return &Error{File: file, Line: row, Field: lines.field(row, de.Key()), Msg: strings.TrimPrefix(de.Error(), "toml: ")}
	}
	var pe *unstable.ParserError
	if errors.As(err, &pe) {
		line := 0
		if off := highlightOffset(lines, pe.Highlight); off >= 0 {
			line = 1 + bytes.Count(lines.data[:off], []byte("\n"))
		}
		return &Error{File: file, Line: line, Msg: pe.Message}
	}
	return &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

func highlightOffset(lines *lineMap, h []byte) int {
	if lines == nil || h == nil {
		return -1
	}
	off := cap(lines.data) - cap(h)
	if off < 0 || off+len(h) > len(lines.data) {
		return -1
	}
	return off
}

// lineMap knows the line of every key and array-of-tables entry of a
// document, by dotted path with indices: "link[3]" (the [[link]] header),
// "link[3].to", "lora.sf", "topology.assign[0].count",
// "node[1].position". It lets errors found after decoding name a line.
type lineMap struct {
	data    []byte
	badKey  string // the first key with an upper-case letter (go-toml would match it case-insensitively)
	badLine int
	byPath  map[string]int
	byLine  map[int][]string // paths of keys on a line, in order
}

// scanLines walks the document with go-toml's parser. It returns the
// parser's error for a document that is not TOML.
func scanLines(data []byte) (*lineMap, error) {
	m := &lineMap{data: data, byPath: map[string]int{}, byLine: map[int][]string{}}
	var p unstable.Parser
	p.Reset(data)
	counts := map[string]int{} // array-of-tables path -> entries so far
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			parts, line := keyParts(&p, e.Key())
			path := m.resolve(counts, parts[:len(parts)-1])
			path = join(path, parts[len(parts)-1])
			if e.Kind == unstable.ArrayTable {
				n := counts[path]
				counts[path] = n + 1
				path += "[" + strconv.Itoa(n) + "]"
			}
			table = path
			m.add(path, line)
			// Implicit parents ("[a.b]" makes "a") get the header's line
			// when they have none.
			for i := len(parts) - 1; i > 0; i-- {
				parent := m.resolve(counts, parts[:i])
				if _, ok := m.byPath[parent]; !ok {
					m.byPath[parent] = line
				}
			}
		case unstable.KeyValue:
			parts, line := keyParts(&p, e.Key())
			path := table
			for _, k := range parts {
				path = join(path, k)
			}
			m.add(path, line)
			m.value(&p, path, e.Value())
		}
	}
	if err := p.Error(); err != nil {
		return m, err
	}
	return m, nil
}

// value records the entries of inline arrays and tables under path.
func (m *lineMap) value(p *unstable.Parser, path string, v *unstable.Node) {
	if v == nil {
		return
	}
	switch v.Kind {
	case unstable.Array:
		i := 0
		for it := v.Children(); it.Next(); {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			sub := path + "[" + strconv.Itoa(i) + "]"
			i++
			if l := nodeLine(p, c); l > 0 {
				m.add(sub, l)
			}
			m.value(p, sub, c)
		}
	case unstable.InlineTable:
		for it := v.Children(); it.Next(); {
			c := it.Node()
			if c.Kind != unstable.KeyValue {
				continue
			}
			parts, line := keyParts(p, c.Key())
			sub := path
			for _, k := range parts {
				sub = join(sub, k)
			}
			m.add(sub, line)
			m.value(p, sub, c.Value())
		}
	}
}

func nodeLine(p *unstable.Parser, n *unstable.Node) int {
	if n.Raw.Length == 0 && n.Raw.Offset == 0 {
		if c := n.Child(); c != nil && n.Kind == unstable.Array {
			return nodeLine(p, c)
		}
		return 0
	}
	if int(n.Raw.Offset)+int(n.Raw.Length) > len(p.Data()) {
		return 0
	}
	return p.Shape(n.Raw).Start.Line
}

func keyParts(p *unstable.Parser, it unstable.Iterator) ([]string, int) {
	var parts []string
	line := 0
	for it.Next() {
		k := it.Node()
		parts = append(parts, string(k.Data))
		if line == 0 {
			line = nodeLine(p, k)
		}
	}
	if len(parts) == 0 {
		parts = []string{""}
	}
	return parts, line
}

// resolve turns key parts into a path, indexing every prefix that is an
// array of tables with its latest entry.
func (m *lineMap) resolve(counts map[string]int, parts []string) string {
	path := ""
	for _, k := range parts {
		path = join(path, k)
		if n, ok := counts[path]; ok {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return path
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func (m *lineMap) add(path string, line int) {
	if m.badKey == "" && strings.ToLower(path) != path {
		m.badKey, m.badLine = path, line
	}
	if _, ok := m.byPath[path]; ok {
		return
	}
	m.byPath[path] = line
	m.byLine[line] = append(m.byLine[line], path)
}

// line returns the line of path, or of its nearest parent that has one.
func (m *lineMap) line(path string) int {
	if m == nil {
		return 0
	}
	for path != "" {
		if l, ok := m.byPath[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// field finds the indexed path of a key go-toml reports without indices
// (["link", "rate"]) on line row.
func (m *lineMap) field(row int, key toml.Key) string {
	plain := strings.Join(key, ".")
	if m == nil {
		return plain
	}
	best := ""
	for _, p := range m.byLine[row] {
		if stripIndices(p) == plain {
			return p
		}
	}
	// go-toml names keys inside an inline table relative to it.
	for _, p := range m.byLine[row] {
		if strings.HasSuffix(stripIndices(p), "."+plain) {
			return p
		}
	}
	for _, p := range m.byLine[row] {
		if best == "" && strings.HasPrefix(plain, stripIndices(p)) {
			best = p
		}
	}
	if best != "" && len(key) > 0 {
		// A key inside an inline table on this line.
		rest := strings.TrimPrefix(plain, stripIndices(best))
		return best + rest
	}
	return plain
}

func stripIndices(p string) string {
	var b strings.Builder
	depth := 0
	for _, r := range p {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}
