package fapp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// A slots file is what `qpc fapp publish --file` reads: the therapist's
// whole set of free slots, as TOML ([[slot]] tables) or as iCalendar
// (one VEVENT per slot, RFC 5545). Both come from the user; the parsers
// check the size before reading, refuse more than MaxSlotsPerAnnounce
// slots, and return errors that name the slot or line and the field
// (ErrSlotFile); they never panic (fuzz_test.go).

// MaxSlotFileSize is the largest slots file read (checked before reading).
const MaxSlotFileSize = 1 << 20

// ErrSlotFile is wrapped by every error of the slots-file parsers.
var ErrSlotFile = errors.New("fapp: slots file")

// SlotDefaults fill in what a slot of a file leaves out: Type and
// Modalitaet from the command line (--type, --modalitaet); Fachrichtung
// and Kostentraeger zero leave them to the node's config.
type SlotDefaults struct {
	Type          SlotType
	Modalitaet    Modalitaet
	Fachrichtung  Fachrichtung
	Kostentraeger Kostentraeger
}

// ReadSlotFile reads a slots file: .ics or .ical as iCalendar, anything
// else as TOML unless it begins with BEGIN:VCALENDAR.
func ReadSlotFile(path string, def SlotDefaults) ([]SlotInput, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSlotFile, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSlotFile, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrSlotFile, path)
	}
	if st.Size() > MaxSlotFileSize {
		return nil, fmt.Errorf("%w: %s: %d bytes, over the limit of %d", ErrSlotFile, path, st.Size(), MaxSlotFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSlotFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSlotFile, path, err)
	}
	return ParseSlotFile(path, data, def)
}

// ParseSlotFile parses data as the slots file name (the name chooses the
// format and prefixes errors).
func ParseSlotFile(name string, data []byte, def SlotDefaults) ([]SlotInput, error) {
	var slots []SlotInput
	var err error
	ext := strings.ToLower(filepath.Ext(name))
	if ext == ".ics" || ext == ".ical" || (ext != ".toml" && looksLikeICS(data)) {
		slots, err = ParseSlotsICS(data, def)
	} else {
		slots, err = ParseSlotsTOML(data, def)
	}
	if err != nil && name != "" {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return slots, err
}

func looksLikeICS(data []byte) bool {
	data = bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	return len(data) >= 15 && strings.EqualFold(string(data[:15]), "BEGIN:VCALENDAR")
}

// fileErr is an ErrSlotFile error at where ("slot 2", "line 14").
func fileErr(where string, format string, a ...any) error {
	if where != "" {
		where += ": "
	}
	return fmt.Errorf("%w: %s%s", ErrSlotFile, where, fmt.Sprintf(format, a...))
}

// finish fills in the defaults and checks the slot.
func finish(where string, in SlotInput, def SlotDefaults) (SlotInput, error) {
	if in.Type == 0 {
		in.Type = def.Type
	}
	if in.Modalitaet == 0 {
		in.Modalitaet = def.Modalitaet
	}
	if in.Fachrichtung == 0 {
		in.Fachrichtung = def.Fachrichtung
	}
	if in.Kostentraeger == 0 {
		in.Kostentraeger = def.Kostentraeger
	}
	if _, err := in.Slot(); err != nil {
		return in, fileErr(where, "%v", err)
	}
	return in, nil
}

// tomlSlot is one [[slot]] table. Modalitaet and Kostentraeger take an
// array of names or one name (a comma-separated list).
type tomlSlot struct {
	Start         any    `toml:"start"`
	Minutes       int    `toml:"minutes"`
	Type          string `toml:"type"`
	Modalitaet    any    `toml:"modalitaet"`
	Fachrichtung  string `toml:"fachrichtung"`
	Kostentraeger any    `toml:"kostentraeger"`
}

// ParseSlotsTOML parses a TOML slots file: [[slot]] tables with start (an
// offset date-time, or a local one in the local time zone), minutes,
// type, modalitaet, and optionally fachrichtung and kostentraeger.
func ParseSlotsTOML(data []byte, def SlotDefaults) ([]SlotInput, error) {
	if len(data) > MaxSlotFileSize {
		return nil, fileErr("", "%d bytes, over the limit of %d", len(data), MaxSlotFileSize)
	}
	var doc struct {
		Slot []tomlSlot `toml:"slot"`
	}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		var de *toml.DecodeError
		var se *toml.StrictMissingError
		switch {
		case errors.As(err, &de):
			row, col := de.Position()
			if k := de.Key(); len(k) > 0 {
				return nil, fileErr(fmt.Sprintf("line %d column %d", row, col), "%v: %s (a [[slot]] takes start, minutes, type, modalitaet, fachrichtung, kostentraeger)", de, strings.Join(k, "."))
			}
			return nil, fileErr(fmt.Sprintf("line %d column %d", row, col), "%v", de)
		case errors.As(err, &se):
			var keys []string
			for _, e := range se.Errors {
				row, _ := e.Position()
				keys = append(keys, fmt.Sprintf("%s (line %d)", strings.Join(e.Key(), "."), row))
			}
			return nil, fileErr("", "unknown key %s: a [[slot]] takes start, minutes, type, modalitaet, fachrichtung, kostentraeger", strings.Join(keys, ", "))
		}
		return nil, fileErr("", "%v", err)
	}
	if len(doc.Slot) > MaxSlotsPerAnnounce {
		return nil, fileErr("", "%d slots, at most %d in one set", len(doc.Slot), MaxSlotsPerAnnounce)
	}
	out := make([]SlotInput, 0, len(doc.Slot))
	for i, s := range doc.Slot {
		where := fmt.Sprintf("slot %d", i+1)
		in := SlotInput{Minutes: s.Minutes}
		switch v := s.Start.(type) {
		case nil:
			return nil, fileErr(where, "start is missing (start = 2026-12-03T10:00:00+01:00)")
		case time.Time:
			in.Start = v
		case toml.LocalDateTime:
			in.Start = v.AsTime(time.Local)
		default:
			return nil, fileErr(where, "start %v: want a date and time (2026-12-03T10:00:00+01:00)", v)
		}
		var err error
		if s.Type != "" {
			if in.Type, err = ParseSlotType(s.Type); err != nil {
				return nil, fileErr(where, "%v", err)
			}
		}
		if s.Fachrichtung != "" {
			if in.Fachrichtung, err = ParseFachrichtung(s.Fachrichtung); err != nil {
				return nil, fileErr(where, "%v", err)
			}
		}
		names, err := tomlNames("modalitaet", s.Modalitaet)
		if err != nil {
			return nil, fileErr(where, "%v", err)
		}
		if len(names) > 0 {
			if in.Modalitaet, err = ParseModalitaet(names...); err != nil {
				return nil, fileErr(where, "%v", err)
			}
		}
		if names, err = tomlNames("kostentraeger", s.Kostentraeger); err != nil {
			return nil, fileErr(where, "%v", err)
		}
		if len(names) > 0 {
			if in.Kostentraeger, err = ParseKostentraeger(names...); err != nil {
				return nil, fileErr(where, "%v", err)
			}
		}
		if in, err = finish(where, in, def); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// tomlNames is a TOML value that is a name or an array of names.
func tomlNames(key string, v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%w: %s: %v is not a name", ErrBadValue, key, e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s: %v, want a name or an array of names", ErrBadValue, key, v)
}

// icsLine is one unfolded content line of an iCalendar file.
type icsLine struct {
	n      int // line number where it starts
	name   string
	params map[string]string
	value  string
}

// ParseSlotsICS parses an iCalendar slots file: each VEVENT is a slot
// from DTSTART to DTEND (or DTSTART plus DURATION), with the FAPP fields
// in X-FAPP-TYPE, X-FAPP-MODALITAET, X-FAPP-FACHRICHTUNG and
// X-FAPP-KOSTENTRAEGER (comma-separated names; what an event leaves out
// comes from def). A time is UTC (…Z), in a TZID the system knows
// (IANA: Europe/Berlin), or floating (local). A cancelled event is left
// out; a recurring one (RRULE, RDATE) is refused: list each slot.
func ParseSlotsICS(data []byte, def SlotDefaults) ([]SlotInput, error) {
	if len(data) > MaxSlotFileSize {
		return nil, fileErr("", "%d bytes, over the limit of %d", len(data), MaxSlotFileSize)
	}
	lines, err := unfoldICS(data)
	if err != nil {
		return nil, err
	}
	var out []SlotInput
	var stack []string // open components
	var ev []icsLine   // the VEVENT's own properties
	evLine := 0
	for _, l := range lines {
		where := fmt.Sprintf("line %d", l.n)
		switch l.name {
		case "BEGIN":
			comp := strings.ToUpper(l.value)
			if len(stack) == 0 && comp != "VCALENDAR" {
				return nil, fileErr(where, "BEGIN:%s outside BEGIN:VCALENDAR: not an iCalendar file", l.value)
			}
			if len(stack) >= 8 {
				return nil, fileErr(where, "components nested more than 8 deep")
			}
			stack = append(stack, comp)
			if comp == "VEVENT" {
				if len(stack) != 2 {
					return nil, fileErr(where, "a VEVENT inside %s", stack[len(stack)-2])
				}
				ev, evLine = ev[:0], l.n
			}
			continue
		case "END":
			comp := strings.ToUpper(l.value)
			if len(stack) == 0 || stack[len(stack)-1] != comp {
				return nil, fileErr(where, "END:%s does not close the open component", l.value)
			}
			stack = stack[:len(stack)-1]
			if comp == "VEVENT" {
				in, skip, err := icsEvent(ev, evLine, def)
				if err != nil {
					return nil, err
				}
				if !skip {
					if len(out) == MaxSlotsPerAnnounce {
						return nil, fileErr(where, "more than %d slots (VEVENTs), at most %d in one set", MaxSlotsPerAnnounce, MaxSlotsPerAnnounce)
					}
					out = append(out, in)
				}
			}
			continue
		}
		if len(stack) == 0 {
			return nil, fileErr(where, "%s outside BEGIN:VCALENDAR: not an iCalendar file", l.name)
		}
		if len(stack) == 2 && stack[1] == "VEVENT" {
			ev = append(ev, l)
		}
	}
	if len(stack) > 0 {
		return nil, fileErr("", "BEGIN:%s is not closed (END:%s missing)", stack[len(stack)-1], stack[len(stack)-1])
	}
	if lines == nil {
		return nil, fileErr("", "empty: not an iCalendar file (BEGIN:VCALENDAR)")
	}
	if out == nil {
		out = []SlotInput{}
	}
	return out, nil
}

// icsEvent turns one VEVENT's properties into a slot; skip is set for a
// cancelled event.
func icsEvent(props []icsLine, line int, def SlotDefaults) (SlotInput, bool, error) {
	var in SlotInput
	var start, end time.Time
	var dur time.Duration
	haveDur := false
	evWhere := fmt.Sprintf("VEVENT at line %d", line)
	for _, p := range props {
		where := fmt.Sprintf("line %d", p.n)
		var err error
		value := strings.ToLower(icsUnescape(p.value))
		if strings.HasPrefix(p.name, "X-FAPP-") {
			value = strings.ReplaceAll(value, " ", "") // "praxis, video"
		}
		switch p.name {
		case "DTSTART":
			if !start.IsZero() {
				return in, false, fileErr(where, "a second DTSTART in the %s", evWhere)
			}
			start, err = icsTime(p)
		case "DTEND":
			if !end.IsZero() {
				return in, false, fileErr(where, "a second DTEND in the %s", evWhere)
			}
			end, err = icsTime(p)
		case "DURATION":
			dur, err = icsDuration(p.value)
			haveDur = true
		case "RRULE", "RDATE":
			return in, false, fileErr(where, "%s: recurring events are not expanded; list each slot as its own VEVENT", p.name)
		case "STATUS":
			if value == "cancelled" {
				return in, true, nil
			}
		case "X-FAPP-TYPE":
			in.Type, err = ParseSlotType(value)
		case "X-FAPP-MODALITAET":
			in.Modalitaet, err = ParseModalitaet(value)
		case "X-FAPP-FACHRICHTUNG":
			in.Fachrichtung, err = ParseFachrichtung(value)
		case "X-FAPP-KOSTENTRAEGER":
			in.Kostentraeger, err = ParseKostentraeger(value)
		}
		if err != nil {
			return in, false, fileErr(where, "%s: %v", p.name, err)
		}
	}
	switch {
	case start.IsZero():
		return in, false, fileErr(evWhere, "DTSTART is missing")
	case !end.IsZero() && haveDur:
		return in, false, fileErr(evWhere, "both DTEND and DURATION: give one")
	case end.IsZero() && !haveDur:
		return in, false, fileErr(evWhere, "DTEND (or DURATION) is missing")
	case !end.IsZero():
		dur = end.Sub(start)
	}
	if dur <= 0 || dur%time.Minute != 0 || dur > MaxSlotMinutes*time.Minute {
		return in, false, fileErr(evWhere, "lasts %s, want whole minutes from 1 to %d", dur, MaxSlotMinutes)
	}
	in.Start, in.Minutes = start, int(dur/time.Minute)
	in, err := finish(evWhere, in, def)
	return in, false, err
}

// icsTime parses a DATE-TIME property: UTC (…Z), with TZID, or floating.
func icsTime(p icsLine) (time.Time, error) {
	if strings.EqualFold(p.params["VALUE"], "DATE") || len(p.value) == 8 {
		return time.Time{}, fmt.Errorf("%w: %q is a date: an all-day event is not a slot; give a start time", ErrBadValue, p.value)
	}
	loc := time.Local
	v := p.value
	if tz, ok := p.params["TZID"]; ok {
		if strings.HasSuffix(v, "Z") {
			return time.Time{}, fmt.Errorf("%w: %q with TZID=%s: a UTC time takes no TZID", ErrBadValue, v, tz)
		}
		l, err := time.LoadLocation(strings.TrimPrefix(tz, "/"))
		if err != nil || tz == "" || strings.EqualFold(tz, "local") {
			return time.Time{}, fmt.Errorf("%w: TZID=%s is not a time zone this system knows (want an IANA name: Europe/Berlin)", ErrBadValue, tz)
		}
		loc = l
	}
	if s, ok := strings.CutSuffix(v, "Z"); ok {
		v, loc = s, time.UTC
	}
	t, err := time.ParseInLocation("20060102T150405", v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q, want a date-time (20261203T100000, …Z for UTC)", ErrBadValue, p.value)
	}
	return t, nil
}

// icsDuration parses an RFC 5545 duration: [+]P[nW] or P[nD][T[nH][nM][nS]].
func icsDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%w: DURATION %q, want e.g. PT50M, PT1H30M", ErrBadValue, s)
	v := strings.TrimPrefix(s, "+")
	if strings.HasPrefix(v, "-") {
		return 0, fmt.Errorf("%w: DURATION %q is negative", ErrBadValue, s)
	}
	v, ok := strings.CutPrefix(v, "P")
	if !ok || v == "" {
		return 0, bad
	}
	var total time.Duration
	inTime, seen := false, false
	units := map[bool]map[byte]time.Duration{
		false: {'W': 7 * 24 * time.Hour, 'D': 24 * time.Hour},
		true:  {'H': time.Hour, 'M': time.Minute, 'S': time.Second},
	}
	for v != "" {
		if v[0] == 'T' {
			if inTime {
				return 0, bad
			}
			inTime, v = true, v[1:]
			if v == "" {
				return 0, bad
			}
			continue
		}
		i := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == 0 || i > 6 || i == len(v) {
			return 0, bad
		}
		n, _ := strconv.Atoi(v[:i])
		unit, ok := units[inTime][v[i]]
		if !ok {
			return 0, bad
		}
		total += time.Duration(n) * unit
		seen, v = true, v[i+1:]
	}
	if !seen {
		return 0, bad
	}
	return total, nil
}

// icsUnescape undoes the TEXT escapes \, \; \\ \n.
func icsUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == 'n' || s[i] == 'N' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unfoldICS splits data into content lines, joining folded ones (a line
// that begins with a space or tab continues the one before), and parses
// each into name, parameters and value.
func unfoldICS(data []byte) ([]icsLine, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var out []icsLine
	var cur []byte
	start := 0
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		l, err := parseICSLine(string(cur), start)
		if err != nil {
			return err
		}
		out = append(out, l)
		cur = cur[:0]
		return nil
	}
	for n, raw := range bytes.Split(data, []byte("\n")) {
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		if len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t') {
			if len(cur) == 0 {
				return nil, fileErr(fmt.Sprintf("line %d", n+1), "a continuation line with no line before it")
			}
			cur = append(cur, raw[1:]...)
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		cur, start = append(cur, raw...), n+1
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// parseICSLine parses name *(";" param "=" value) ":" value; a parameter
// value may be quoted.
func parseICSLine(s string, n int) (icsLine, error) {
	where := fmt.Sprintf("line %d", n)
	l := icsLine{n: n}
	i := strings.IndexAny(s, ";:")
	if i <= 0 {
		return l, fileErr(where, "%q is not NAME:VALUE", shorten(s))
	}
	l.name = strings.ToUpper(s[:i])
	for s[i] == ';' {
		s = s[i+1:]
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return l, fileErr(where, "%s: a parameter without =", l.name)
		}
		key := strings.ToUpper(s[:eq])
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return l, fileErr(where, "%s: an unclosed quote in parameter %s", l.name, key)
			}
			val, s = s[1:end+1], s[end+2:]
			i = 0
			if s == "" || (s[0] != ';' && s[0] != ':') {
				return l, fileErr(where, "%s: parameter %s: want ; or : after the quoted value", l.name, key)
			}
		} else {
			i = strings.IndexAny(s, ";:")
			if i < 0 {
				return l, fileErr(where, "%s: no : before the value", l.name)
			}
			val = s[:i]
		}
		if l.params == nil {
			l.params = map[string]string{}
		}
		if _, dup := l.params[key]; dup {
			return l, fileErr(where, "%s: parameter %s given twice", l.name, key)
		}
		l.params[key] = val
		if s[i] == ':' {
			break
		}
	}
	l.value = s[i+1:]
	return l, nil
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
