package fapp

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The domain terms are German, as the people who use FAPP say them: a
// Fachrichtung is the kind of psychotherapy (the four procedures the
// Psychotherapie-Richtlinie recognises), Modalitaet how a session takes
// place, Kostentraeger who pays, SlotType what a free slot is for. A
// location is a PLZ (postcode) only, never an address.
//
// Each enum has a lower-case ASCII name, the one the command line and the
// JSON API use (Parse..., String, MarshalText); parsing anything else gives
// ErrBadValue with the allowed names. On the wire each is a small unsigned
// integer (one CBOR byte); sets are bit masks.

// Fachrichtung is a psychotherapy procedure, with KJP as a flag: the same
// procedure for children and adolescents (Kinder- und
// Jugendlichenpsychotherapie). The zero value means "any" in a query and is
// not valid in a slot.
type Fachrichtung uint8

// Fachrichtungen. The procedure is the low three bits; KJP is a flag on
// top (Verhaltenstherapie | KJP is behaviour therapy for children and
// adolescents).
const (
	Verhaltenstherapie   Fachrichtung = 1 // VT
	Tiefenpsychologisch  Fachrichtung = 2 // tiefenpsychologisch fundierte Psychotherapie (TP)
	Analytisch           Fachrichtung = 3 // analytische Psychotherapie (AP)
	Systemisch           Fachrichtung = 4 // systemische Therapie (ST)
	KJP                  Fachrichtung = 8 // flag: Kinder- und Jugendlichenpsychotherapie
	fachrichtungKindMask Fachrichtung = 7
)

var fachrichtungNames = []struct {
	f          Fachrichtung
	name, full string
}{
	{Verhaltenstherapie, "verhaltenstherapie", "Verhaltenstherapie"},
	{Tiefenpsychologisch, "tiefenpsychologisch", "tiefenpsychologisch fundierte Psychotherapie"},
	{Analytisch, "analytisch", "analytische Psychotherapie"},
	{Systemisch, "systemisch", "systemische Therapie"},
}

// kjpSuffix marks the KJP flag in a Fachrichtung's name:
// "verhaltenstherapie+kjp".
const kjpSuffix = "+kjp"

// Kind is the procedure without the KJP flag.
func (f Fachrichtung) Kind() Fachrichtung { return f & fachrichtungKindMask }

// IsKJP reports whether the KJP flag is set.
func (f Fachrichtung) IsKJP() bool { return f&KJP != 0 }

// Valid reports whether f names a procedure (with or without KJP) and has
// no other bits.
func (f Fachrichtung) Valid() bool {
	return f&^(fachrichtungKindMask|KJP) == 0 && f.Kind() >= Verhaltenstherapie && f.Kind() <= Systemisch
}

// String is the command-line name: "verhaltenstherapie",
// "systemisch+kjp"; "any" for 0.
func (f Fachrichtung) String() string {
	if f == 0 {
		return "any"
	}
	for _, n := range fachrichtungNames {
		if n.f == f.Kind() && f.Valid() {
			if f.IsKJP() {
				return n.name + kjpSuffix
			}
			return n.name
		}
	}
	return fmt.Sprintf("fachrichtung(%d)", uint8(f))
}

// German is the full German name: "tiefenpsychologisch fundierte
// Psychotherapie (Kinder- und Jugendlichenpsychotherapie)".
func (f Fachrichtung) German() string {
	for _, n := range fachrichtungNames {
		if n.f == f.Kind() && f.Valid() {
			if f.IsKJP() {
				return n.full + " (Kinder- und Jugendlichenpsychotherapie)"
			}
			return n.full
		}
	}
	return f.String()
}

// FachrichtungNames are the names ParseFachrichtung accepts (each also
// with "+kjp").
func FachrichtungNames() []string {
	out := make([]string, len(fachrichtungNames))
	for i, n := range fachrichtungNames {
		out[i] = n.name
	}
	return out
}

// ParseFachrichtung parses a command-line name, optionally with "+kjp".
func ParseFachrichtung(s string) (Fachrichtung, error) {
	base, kjp := strings.CutSuffix(s, kjpSuffix)
	for _, n := range fachrichtungNames {
		if n.name == base {
			if kjp {
				return n.f | KJP, nil
			}
			return n.f, nil
		}
	}
	return 0, fmt.Errorf("%w: fachrichtung %q, want one of %s (each optionally with %q)",
		ErrBadValue, s, strings.Join(FachrichtungNames(), ", "), kjpSuffix)
}

// MarshalText is String; 0 and invalid values are refused.
func (f Fachrichtung) MarshalText() ([]byte, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("%w: fachrichtung %d", ErrBadValue, uint8(f))
	}
	return []byte(f.String()), nil
}

// UnmarshalText is ParseFachrichtung.
func (f *Fachrichtung) UnmarshalText(b []byte) error {
	v, err := ParseFachrichtung(string(b))
	if err == nil {
		*f = v
	}
	return err
}

// Modalitaet is a set of ways a session can take place: in the practice,
// by video, by telephone. A slot offers one or more; a query matches any
// of its set (the empty set: any).
type Modalitaet uint8

// Modalitaeten, the bits of the set.
const (
	Praxis        Modalitaet = 1 << iota // in the practice
	Video                                // video consultation
	Telefon                              // by telephone
	modalitaetAll = Praxis | Video | Telefon
)

// Kostentraeger is a set of payers: gesetzliche Krankenversicherung,
// private Krankenversicherung, Selbstzahler (the patient pays), Beihilfe
// (civil servants' allowance). A slot accepts one or more; a query matches
// any of its set (the empty set: any).
type Kostentraeger uint8

// Kostentraeger, the bits of the set.
const (
	GKV Kostentraeger = 1 << iota
	PKV
	Selbstzahler
	Beihilfe
	kostentraegerAll = GKV | PKV | Selbstzahler | Beihilfe
)

var modalitaetNames = []string{"praxis", "video", "telefon"}
var kostentraegerNames = []string{"gkv", "pkv", "selbstzahler", "beihilfe"}

// ModalitaetNames are the names ParseModalitaet accepts.
func ModalitaetNames() []string { return append([]string(nil), modalitaetNames...) }

// KostentraegerNames are the names ParseKostentraeger accepts.
func KostentraegerNames() []string { return append([]string(nil), kostentraegerNames...) }

// parseSet parses names (each an element, or a comma-separated list) into
// a bit set of the names' positions.
func parseSet(what string, all []string, names []string) (uint8, error) {
	var set uint8
	for _, arg := range names {
		for _, s := range strings.Split(arg, ",") {
			found := false
			for i, n := range all {
				if s == n {
					set |= 1 << i
					found = true
					break
				}
			}
			if !found {
				return 0, fmt.Errorf("%w: %s %q, want one or more of %s", ErrBadValue, what, s, strings.Join(all, ", "))
			}
		}
	}
	return set, nil
}

func setNames(set uint8, all []string) []string {
	out := []string{}
	for i, n := range all {
		if set&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// ParseModalitaet parses names ("praxis", "video,telefon", ...) into a
// set. No names give the empty set.
func ParseModalitaet(names ...string) (Modalitaet, error) {
	s, err := parseSet("modalitaet", modalitaetNames, names)
	return Modalitaet(s), err
}

// Valid reports whether m has only known bits.
func (m Modalitaet) Valid() bool { return m&^modalitaetAll == 0 }

// Has reports whether m contains every element of o.
func (m Modalitaet) Has(o Modalitaet) bool { return m&o == o }

// Names lists the set's elements.
func (m Modalitaet) Names() []string { return setNames(uint8(m), modalitaetNames) }

// String is the comma-separated names ("praxis,video"); "any" when empty.
func (m Modalitaet) String() string {
	if m == 0 {
		return "any"
	}
	return strings.Join(m.Names(), ",")
}

// MarshalJSON is the array of names.
func (m Modalitaet) MarshalJSON() ([]byte, error) { return json.Marshal(m.Names()) }

// UnmarshalJSON takes an array of names.
func (m *Modalitaet) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("%w: modalitaet: %v", ErrBadValue, err)
	}
	v, err := ParseModalitaet(names...)
	if err == nil {
		*m = v
	}
	return err
}

// ParseKostentraeger parses names ("gkv", "pkv,beihilfe", ...) into a set.
func ParseKostentraeger(names ...string) (Kostentraeger, error) {
	s, err := parseSet("kostentraeger", kostentraegerNames, names)
	return Kostentraeger(s), err
}

// Valid reports whether k has only known bits.
func (k Kostentraeger) Valid() bool { return k&^kostentraegerAll == 0 }

// Has reports whether k contains every element of o.
func (k Kostentraeger) Has(o Kostentraeger) bool { return k&o == o }

// Names lists the set's elements.
func (k Kostentraeger) Names() []string { return setNames(uint8(k), kostentraegerNames) }

// String is the comma-separated names ("gkv,selbstzahler"); "any" when
// empty.
func (k Kostentraeger) String() string {
	if k == 0 {
		return "any"
	}
	return strings.Join(k.Names(), ",")
}

// MarshalJSON is the array of names.
func (k Kostentraeger) MarshalJSON() ([]byte, error) { return json.Marshal(k.Names()) }

// UnmarshalJSON takes an array of names.
func (k *Kostentraeger) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("%w: kostentraeger: %v", ErrBadValue, err)
	}
	v, err := ParseKostentraeger(names...)
	if err == nil {
		*k = v
	}
	return err
}

// SlotType is what a free slot is for. The zero value means "any" in a
// query and is not valid in a slot.
type SlotType uint8

// Slot types.
const (
	Sprechstunde   SlotType = 1 // psychotherapeutische Sprechstunde (first contact)
	Probatorik     SlotType = 2 // probatorische Sitzung (trial sessions before a therapy)
	Therapieplatz  SlotType = 3 // a place for a whole therapy
	Akutbehandlung SlotType = 4 // Akutbehandlung (short crisis treatment)
	Gruppe         SlotType = 5 // a place in group therapy
)

var slotTypeNames = []string{"sprechstunde", "probatorik", "therapieplatz", "akutbehandlung", "gruppe"}

// SlotTypeNames are the names ParseSlotType accepts.
func SlotTypeNames() []string { return append([]string(nil), slotTypeNames...) }

// Valid reports whether t is one of the slot types.
func (t SlotType) Valid() bool { return t >= Sprechstunde && t <= Gruppe }

// String is the command-line name; "any" for 0.
func (t SlotType) String() string {
	switch {
	case t == 0:
		return "any"
	case t.Valid():
		return slotTypeNames[t-1]
	}
	return fmt.Sprintf("slottype(%d)", uint8(t))
}

// ParseSlotType parses a command-line name.
func ParseSlotType(s string) (SlotType, error) {
	for i, n := range slotTypeNames {
		if n == s {
			return SlotType(i + 1), nil
		}
	}
	return 0, fmt.Errorf("%w: type %q, want one of %s", ErrBadValue, s, strings.Join(slotTypeNames, ", "))
}

// MarshalText is String; 0 and invalid values are refused.
func (t SlotType) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("%w: slot type %d", ErrBadValue, uint8(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText is ParseSlotType.
func (t *SlotType) UnmarshalText(b []byte) error {
	v, err := ParseSlotType(string(b))
	if err == nil {
		*t = v
	}
	return err
}

// PLZ is a German postcode: exactly five ASCII digits ("01067",
// "80331"). It is the only location FAPP carries.
type PLZ string

// PLZSize is the length of a PLZ.
const PLZSize = 5

// ParsePLZ checks that s is exactly five ASCII digits.
func ParsePLZ(s string) (PLZ, error) {
	if len(s) != PLZSize || !allDigits(s) {
		return "", fmt.Errorf("%w: PLZ %q, want exactly %d digits (0-9)", ErrBadValue, s, PLZSize)
	}
	return PLZ(s), nil
}

// Valid reports whether p is five ASCII digits.
func (p PLZ) Valid() bool { return len(p) == PLZSize && allDigits(string(p)) }

func (p PLZ) String() string { return string(p) }

// ParsePLZPrefix checks a query's PLZ prefix: one to five ASCII digits, or
// empty for any PLZ.
func ParsePLZPrefix(s string) (string, error) {
	if len(s) > PLZSize || !allDigits(s) {
		return "", fmt.Errorf("%w: PLZ prefix %q, want 1 to %d digits (0-9), or none for any", ErrBadValue, s, PLZSize)
	}
	return s, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
