package fapp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const slotsTOML = `
[[slot]]
start = 2026-12-03T10:00:00+01:00
minutes = 50
type = "therapieplatz"
modalitaet = ["praxis", "video"]
fachrichtung = "verhaltenstherapie"
kostentraeger = ["gkv"]

[[slot]]
start = 2026-12-04T08:30:00Z
minutes = 25
type = "sprechstunde"
modalitaet = "telefon"
`

func TestParseSlotsTOML(t *testing.T) {
	got, err := ParseSlotsTOML([]byte(slotsTOML), SlotDefaults{})
	if err != nil {
		t.Fatal(err)
	}
	want := []SlotInput{
		{Start: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC), Minutes: 50, Type: Therapieplatz, Modalitaet: Praxis | Video, Fachrichtung: Verhaltenstherapie, Kostentraeger: GKV},
		{Start: time.Date(2026, 12, 4, 8, 30, 0, 0, time.UTC), Minutes: 25, Type: Sprechstunde, Modalitaet: Telefon},
	}
	checkSlots(t, got, want)
	// A local date-time is in the local zone; the defaults fill in.
	got, err = ParseSlotsTOML([]byte("[[slot]]\nstart = 2026-12-03T10:00:00\nminutes = 30\n"), SlotDefaults{Type: Gruppe, Modalitaet: Video, Kostentraeger: PKV})
	if err != nil {
		t.Fatal(err)
	}
	checkSlots(t, got, []SlotInput{{Start: time.Date(2026, 12, 3, 10, 0, 0, 0, time.Local), Minutes: 30, Type: Gruppe, Modalitaet: Video, Kostentraeger: PKV}})
	if got, err := ParseSlotsTOML(nil, SlotDefaults{}); err != nil || len(got) != 0 {
		t.Errorf("an empty file: %v %v, want no slots (withdraw all)", got, err)
	}
}

func TestParseSlotsTOMLErrorsNameTheSlotAndField(t *testing.T) {
	ok := "start = 2026-12-03T10:00:00Z\nminutes = 50\ntype = \"gruppe\"\nmodalitaet = [\"praxis\"]\n"
	for _, c := range []struct{ file, want string }{
		{"[[slot]]\n" + ok + "[[slot]]\nminutes = 50\ntype = \"gruppe\"\nmodalitaet = [\"praxis\"]\n", "slot 2: start is missing"},
		{"[[slot]]\n" + strings.Replace(ok, "gruppe", "massage", 1), `slot 1: fapp: bad value: type "massage", want one of sprechstunde`},
		{"[[slot]]\n" + strings.Replace(ok, "praxis", "hausbesuch", 1), `slot 1: fapp: bad value: modalitaet "hausbesuch"`},
		{"[[slot]]\n" + strings.Replace(ok, "modalitaet = [\"praxis\"]\n", "", 1), "slot 1: fapp: bad value: modalitaet is missing"},
		{"[[slot]]\n" + strings.Replace(ok, "50", "481", 1), "slot 1: fapp: bad value: minutes 481, want 1 to 480"},
		{"[[slot]]\n" + ok + "kostentraeger = [\"aok\"]\n", `slot 1: fapp: bad value: kostentraeger "aok"`},
		{"[[slot]]\n" + ok + "kostentraeger = [1]\n", "kostentraeger: 1 is not a name"},
		{"[[slot]]\n" + ok + "fachrichtung = \"yoga\"\n", `slot 1: fapp: bad value: fachrichtung "yoga"`},
		{"[[slot]]\n" + ok + "minuten = 3\n", "line 6 column 1: toml: unknown field: slot.minuten (a [[slot]] takes start"},
		{"[[slot]]\nstart = 2026-12-03\n", "slot 1: start 2026-12-03: want a date and time"},
		{"[[slot]]\nstart = \n", "line 2 column"},
		{strings.Repeat("[[slot]]\n"+ok, MaxSlotsPerAnnounce+1), "33 slots, at most 32"},
	} {
		_, err := ParseSlotsTOML([]byte(c.file), SlotDefaults{})
		if !errors.Is(err, ErrSlotFile) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want ErrSlotFile with %q", c.file, err, c.want)
		}
	}
}

const slotsICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" +
	"BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n" +
	"BEGIN:VEVENT\r\nUID:1\r\nDTSTART;TZID=Europe/Berlin:20261203T100000\r\nDTEND;TZID=Europe/Berlin:20261203T105000\r\n" +
	"X-FAPP-TYPE:therapieplatz\r\nX-FAPP-MODALITAET:praxis\\,\r\n video\r\nX-FAPP-FACHRICHTUNG:verhaltenstherapie\r\nX-FAPP-KOSTENTRAEGER:GKV\r\n" +
	"BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDTSTART:19990101T000000Z\r\nEND:VALARM\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\nUID:2\nDTSTART:20261204T083000Z\nDURATION:PT1H15M\nEND:VEVENT\n" +
	"BEGIN:VEVENT\nUID:3\nSTATUS:CANCELLED\nDTSTART:20261205T083000Z\nDURATION:PT1H\nEND:VEVENT\n" +
	"BEGIN:VEVENT\nUID:4\nDTSTART:20261206T090000\nDTEND:20261206T093000\nSUMMARY;LANGUAGE=\"de:x\";X=y:Sprechstunde: bitte anrufen\nX-FAPP-TYPE:sprechstunde\nX-FAPP-MODALITAET:telefon\nEND:VEVENT\n" +
	"END:VCALENDAR\r\n"

func TestParseSlotsICS(t *testing.T) {
	got, err := ParseSlotsICS([]byte(slotsICS), SlotDefaults{Type: Probatorik, Modalitaet: Video})
	if err != nil {
		t.Fatal(err)
	}
	checkSlots(t, got, []SlotInput{
		{Start: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC), Minutes: 50, Type: Therapieplatz, Modalitaet: Praxis | Video, Fachrichtung: Verhaltenstherapie, Kostentraeger: GKV},
		{Start: time.Date(2026, 12, 4, 8, 30, 0, 0, time.UTC), Minutes: 75, Type: Probatorik, Modalitaet: Video},
		{Start: time.Date(2026, 12, 6, 9, 0, 0, 0, time.Local), Minutes: 30, Type: Sprechstunde, Modalitaet: Telefon},
	})
}

func TestParseSlotsICSErrorsNameTheLineAndField(t *testing.T) {
	wrap := func(ev string) string {
		return "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\n" + ev + "END:VEVENT\nEND:VCALENDAR\n"
	}
	ok := "DTSTART:20261204T083000Z\nDURATION:PT50M\nX-FAPP-TYPE:gruppe\nX-FAPP-MODALITAET:praxis\n"
	var many strings.Builder
	many.WriteString("BEGIN:VCALENDAR\n")
	for range MaxSlotsPerAnnounce + 1 {
		many.WriteString("BEGIN:VEVENT\n" + ok + "END:VEVENT\n")
	}
	many.WriteString("END:VCALENDAR\n")
	for _, c := range []struct{ file, want string }{
		{wrap(strings.Replace(ok, "gruppe", "massage", 1)), `line 6: X-FAPP-TYPE: fapp: bad value: type "massage"`},
		{wrap(strings.Replace(ok, "praxis", "zoom", 1)), `line 7: X-FAPP-MODALITAET: fapp: bad value: modalitaet "zoom"`},
		{wrap(ok + "X-FAPP-KOSTENTRAEGER:aok\n"), `line 8: X-FAPP-KOSTENTRAEGER`},
		{wrap(ok + "X-FAPP-FACHRICHTUNG:yoga\n"), `line 8: X-FAPP-FACHRICHTUNG`},
		{wrap(strings.Replace(ok, "DTSTART:20261204T083000Z\n", "", 1)), "VEVENT at line 3: DTSTART is missing"},
		{wrap(strings.Replace(ok, "DURATION:PT50M\n", "", 1)), "VEVENT at line 3: DTEND (or DURATION) is missing"},
		{wrap(ok + "DTEND:20261204T093000Z\n"), "both DTEND and DURATION"},
		{wrap(strings.Replace(ok, "PT50M", "PT9H", 1)), "lasts 9h0m0s, want whole minutes from 1 to 480"},
		{wrap(strings.Replace(ok, "PT50M", "PT50M30S", 1)), "want whole minutes"},
		{wrap(strings.Replace(ok, "PT50M", "-PT50M", 1)), "line 5: DURATION: fapp: bad value: DURATION \"-PT50M\" is negative"},
		{wrap(strings.Replace(ok, "PT50M", "50M", 1)), "want e.g. PT50M"},
		{wrap(strings.Replace(ok, "20261204T083000Z", "20261204", 1)), "line 4: DTSTART: fapp: bad value: \"20261204\" is a date: an all-day event is not a slot"},
		{wrap(strings.Replace(ok, "DTSTART:20261204T083000Z", "DTSTART;TZID=Mars/Olympus:20261204T083000", 1)), "TZID=Mars/Olympus is not a time zone"},
		{wrap(strings.Replace(ok, "DTSTART:", "DTSTART;TZID=Europe/Berlin:", 1)), "a UTC time takes no TZID"},
		{wrap(strings.Replace(ok, "20261204T083000Z", "2026-12-04 08:30", 1)), "want a date-time"},
		{wrap(ok + "RRULE:FREQ=WEEKLY\n"), "line 8: RRULE: recurring events are not expanded"},
		{wrap(strings.Replace(ok, "X-FAPP-TYPE:gruppe\n", "", 1)), "type is missing"},
		{wrap(ok + " folded\n"), "X-FAPP-MODALITAET"},
		{" x\n", "line 1: a continuation line"},
		{"BEGIN:VEVENT\nEND:VEVENT\n", "outside BEGIN:VCALENDAR"},
		{"VERSION:2.0\n", "outside BEGIN:VCALENDAR"},
		{"BEGIN:VCALENDAR\nBEGIN:VEVENT\n" + ok, "BEGIN:VEVENT is not closed"},
		{"BEGIN:VCALENDAR\nEND:VEVENT\n", "line 2: END:VEVENT does not close"},
		{"BEGIN:VCALENDAR\nnonsense\nEND:VCALENDAR\n", `line 2: "nonsense" is not NAME:VALUE`},
		{"BEGIN:VCALENDAR\nX;A=\"b:c\nEND:VCALENDAR\n", "unclosed quote"},
		{"BEGIN:VCALENDAR\nX;A=b;A=c:v\nEND:VCALENDAR\n", "parameter A given twice"},
		{"", "empty"},
		{many.String(), "more than 32 slots"},
	} {
		_, err := ParseSlotsICS([]byte(c.file), SlotDefaults{})
		if !errors.Is(err, ErrSlotFile) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n%v, want ErrSlotFile with %q", c.file, err, c.want)
		}
	}
}

func TestReadSlotFileChecksTheSizeAndPicksTheFormat(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, name := range []string{"a.toml", "a.txt"} {
		if got, err := ReadSlotFile(write(name, slotsTOML), SlotDefaults{}); err != nil || len(got) != 2 {
			t.Errorf("%s: %d slots, %v", name, len(got), err)
		}
	}
	for _, name := range []string{"a.ics", "a.ICAL", "calendar"} {
		if got, err := ReadSlotFile(write(name, slotsICS), SlotDefaults{Type: Gruppe, Modalitaet: Video}); err != nil || len(got) != 3 {
			t.Errorf("%s: %d slots, %v", name, len(got), err)
		}
	}
	big := write("big.toml", strings.Repeat("#", MaxSlotFileSize+1))
	if _, err := ReadSlotFile(big, SlotDefaults{}); !errors.Is(err, ErrSlotFile) || !strings.Contains(err.Error(), "over the limit of 1048576") {
		t.Errorf("a file over MaxSlotFileSize: %v", err)
	}
	if _, err := ReadSlotFile(dir, SlotDefaults{}); !errors.Is(err, ErrSlotFile) {
		t.Errorf("a directory: %v", err)
	}
	if _, err := ReadSlotFile(filepath.Join(dir, "none.toml"), SlotDefaults{}); !errors.Is(err, ErrSlotFile) {
		t.Errorf("a missing file: %v", err)
	}
	_, err := ReadSlotFile(write("bad.ics", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:x\nEND:VEVENT\nEND:VCALENDAR\n"), SlotDefaults{})
	if err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "bad.ics")+": ") {
		t.Errorf("errors name the file: %v", err)
	}
}

func checkSlots(t *testing.T, got, want []SlotInput) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d slots, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Start.Equal(w.Start) {
			t.Errorf("slot %d starts %s, want %s", i+1, g.Start, w.Start)
		}
		g.Start, w.Start = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("slot %d: %s, want %s", i+1, fmt.Sprintf("%+v", g), fmt.Sprintf("%+v", w))
		}
	}
}

// FuzzParseSlotsTOML: a slots file is user input; no panic, and what it
// returns is within the limits and publishable.
func FuzzParseSlotsTOML(f *testing.F) {
	f.Add([]byte(slotsTOML))
	f.Add([]byte("[[slot]]\nstart = 2026-12-03T10:00:00\nminutes = 30\nmodalitaet = \"praxis,video\"\n"))
	f.Add([]byte("[[slot]]\nstart = 1979-05-27\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsed(t, ParseSlotsTOML, data)
	})
}

// FuzzParseSlotsICS: as FuzzParseSlotsTOML for iCalendar.
func FuzzParseSlotsICS(f *testing.F) {
	f.Add([]byte(slotsICS))
	f.Add([]byte("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;TZID=\"Europe/Berlin\":20261203T100000\nDURATION:P0DT1H\nEND:VEVENT\nEND:VCALENDAR\n"))
	f.Add([]byte("BEGIN:VCALENDAR\n a\nX;A=\"b\";C=d:e\nEND:VCALENDAR"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsed(t, ParseSlotsICS, data)
	})
}

func checkParsed(t *testing.T, parse func([]byte, SlotDefaults) ([]SlotInput, error), data []byte) {
	slots, err := parse(data, SlotDefaults{Type: Gruppe, Modalitaet: Praxis})
	if err != nil {
		if !errors.Is(err, ErrSlotFile) {
			t.Fatalf("error %v is not an ErrSlotFile", err)
		}
		return
	}
	if len(slots) > MaxSlotsPerAnnounce {
		t.Fatalf("%d slots", len(slots))
	}
	for _, s := range slots {
		if _, err := s.Slot(); err != nil {
			t.Fatalf("returned slot %+v does not publish: %v", s, err)
		}
	}
}
