package fapp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseFachrichtung(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Fachrichtung
		err  bool
	}{
		{"verhaltenstherapie", Verhaltenstherapie, false},
		{"tiefenpsychologisch", Tiefenpsychologisch, false},
		{"analytisch", Analytisch, false},
		{"systemisch", Systemisch, false},
		{"verhaltenstherapie+kjp", Verhaltenstherapie | KJP, false},
		{"systemisch+kjp", Systemisch | KJP, false},
		{"Verhaltenstherapie", 0, true},
		{"kjp", 0, true},
		{"+kjp", 0, true},
		{"", 0, true},
		{"vt", 0, true},
	} {
		got, err := ParseFachrichtung(c.in)
		if c.err {
			if !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "verhaltenstherapie, tiefenpsychologisch, analytisch, systemisch") {
				t.Errorf("%q: err %v, want ErrBadValue naming the allowed values", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want || got.String() != c.in || !got.Valid() {
			t.Errorf("%q: %v %v (String %q)", c.in, got, err, got.String())
		}
	}
	if Tiefenpsychologisch.German() != "tiefenpsychologisch fundierte Psychotherapie" ||
		(Analytisch|KJP).German() != "analytische Psychotherapie (Kinder- und Jugendlichenpsychotherapie)" {
		t.Error("German names")
	}
	for _, f := range []Fachrichtung{0, KJP, 5, 6, 7, 0x10 | Verhaltenstherapie, 0xFF} {
		if f.Valid() {
			t.Errorf("%d valid", f)
		}
		_ = f.String() // never panics
	}
}

func TestParseSets(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want Modalitaet
		str  string
	}{
		{nil, 0, "any"},
		{[]string{"praxis"}, Praxis, "praxis"},
		{[]string{"video", "praxis"}, Praxis | Video, "praxis,video"},
		{[]string{"telefon,video"}, Video | Telefon, "video,telefon"},
		{[]string{"praxis,praxis"}, Praxis, "praxis"},
	} {
		got, err := ParseModalitaet(c.in...)
		if err != nil || got != c.want || got.String() != c.str {
			t.Errorf("%v: %v %v %q", c.in, got, err, got.String())
		}
	}
	if _, err := ParseModalitaet("praxis,haus"); !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "praxis, video, telefon") {
		t.Errorf("bad modalitaet: %v", err)
	}
	k, err := ParseKostentraeger("gkv", "beihilfe,selbstzahler")
	if err != nil || k != GKV|Selbstzahler|Beihilfe || k.String() != "gkv,selbstzahler,beihilfe" {
		t.Errorf("kostentraeger %v %v", k, err)
	}
	if _, err := ParseKostentraeger("GKV"); !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "gkv, pkv, selbstzahler, beihilfe") {
		t.Errorf("bad kostentraeger: %v", err)
	}
	if _, err := ParseKostentraeger(""); !errors.Is(err, ErrBadValue) {
		t.Errorf("empty name: %v", err)
	}
	// JSON is the array of names, as the API prints it.
	b, _ := json.Marshal(struct {
		M Modalitaet    `json:"modalitaet"`
		K Kostentraeger `json:"kostentraeger"`
		F Fachrichtung  `json:"fachrichtung"`
		T SlotType      `json:"type"`
	}{Praxis | Video, GKV, Verhaltenstherapie | KJP, Gruppe})
	if string(b) != `{"modalitaet":["praxis","video"],"kostentraeger":["gkv"],"fachrichtung":"verhaltenstherapie+kjp","type":"gruppe"}` {
		t.Errorf("JSON %s", b)
	}
	var back struct {
		M Modalitaet    `json:"modalitaet"`
		K Kostentraeger `json:"kostentraeger"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.M != Praxis|Video || back.K != GKV {
		t.Errorf("JSON back: %+v %v", back, err)
	}
}

func TestParseSlotType(t *testing.T) {
	for i, n := range []string{"sprechstunde", "probatorik", "therapieplatz", "akutbehandlung", "gruppe"} {
		got, err := ParseSlotType(n)
		if err != nil || got != SlotType(i+1) || got.String() != n {
			t.Errorf("%q: %v %v", n, got, err)
		}
	}
	if _, err := ParseSlotType("einzel"); !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "sprechstunde, probatorik, therapieplatz, akutbehandlung, gruppe") {
		t.Errorf("bad type: %v", err)
	}
	if SlotType(0).Valid() || SlotType(6).Valid() || SlotType(0).String() != "any" {
		t.Error("SlotType validity")
	}
}

func TestParsePLZ(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"80331", true}, {"01067", true}, {"99998", true},
		{"8033", false}, {"803311", false}, {"8033a", false}, {"", false}, {" 8033", false}, {"８0331", false},
	} {
		p, err := ParsePLZ(c.in)
		if c.ok != (err == nil) || (c.ok && (p.String() != c.in || !p.Valid())) {
			t.Errorf("%q: %v %v", c.in, p, err)
		}
		if !c.ok && !errors.Is(err, ErrBadValue) {
			t.Errorf("%q: %v, want ErrBadValue", c.in, err)
		}
	}
	for _, c := range []struct {
		in string
		ok bool
	}{{"", true}, {"8", true}, {"803", true}, {"80331", true}, {"803310", false}, {"8x", false}} {
		if _, err := ParsePLZPrefix(c.in); c.ok != (err == nil) {
			t.Errorf("prefix %q: %v", c.in, err)
		}
	}
}

func TestParseSlotID(t *testing.T) {
	id := SlotID{Therapist: identityFrom(t, "x").Address(), Slot: 42}
	got, err := ParseSlotID(id.String())
	if err != nil || got != id {
		t.Fatalf("%s: %v %v", id, got, err)
	}
	for _, bad := range []string{"", "42", id.Therapist.String(), id.Therapist.String() + "-", id.Therapist.String() + "-042",
		id.Therapist.String() + "-4294967296", id.Therapist.String()[2:] + "-1", "zz" + id.Therapist.String()[2:] + "-1", id.Therapist.String() + "--1"} {
		if _, err := ParseSlotID(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("%q: %v, want ErrBadValue", bad, err)
		}
	}
}
