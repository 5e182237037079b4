package fapp

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// SlotInput is one slot as a therapist writes it (a slots file, the body
// of POST /v1/fapp/publish), before the node gives it its id and fills in
// what is left to the config. Fachrichtung 0 means the first of the
// therapist's; Kostentraeger empty means the therapist's set.
type SlotInput struct {
	Start         time.Time
	Minutes       int
	Type          SlotType
	Modalitaet    Modalitaet
	Fachrichtung  Fachrichtung
	Kostentraeger Kostentraeger
}

// Slot checks in and returns it as a Slot with ID 0 (the node assigns
// one) and Fachrichtung / Kostentraeger zero where in leaves them to the
// config. The error wraps ErrBadValue and names the field.
func (in SlotInput) Slot() (Slot, error) {
	unix := in.Start.Unix()
	switch {
	case in.Start.IsZero():
		return Slot{}, fmt.Errorf("%w: start is missing", ErrBadValue)
	case unix <= 0 || unix > math.MaxUint32:
		return Slot{}, fmt.Errorf("%w: start %s, want a time from 1970 to 2106", ErrBadValue, in.Start.Format(time.RFC3339))
	case in.Minutes < 1 || in.Minutes > MaxSlotMinutes:
		return Slot{}, fmt.Errorf("%w: minutes %d, want 1 to %d", ErrBadValue, in.Minutes, MaxSlotMinutes)
	case in.Type == 0:
		return Slot{}, fmt.Errorf("%w: type is missing, want one of %s", ErrBadValue, strings.Join(slotTypeNames, ", "))
	case !in.Type.Valid():
		return Slot{}, fmt.Errorf("%w: type %s, want one of %s", ErrBadValue, in.Type, strings.Join(slotTypeNames, ", "))
	case in.Modalitaet == 0 || !in.Modalitaet.Valid():
		return Slot{}, fmt.Errorf("%w: modalitaet is missing, want one or more of %s", ErrBadValue, strings.Join(modalitaetNames, ", "))
	case in.Fachrichtung != 0 && !in.Fachrichtung.Valid():
		return Slot{}, fmt.Errorf("%w: fachrichtung %d, want one of %s", ErrBadValue, uint8(in.Fachrichtung), strings.Join(FachrichtungNames(), ", "))
	case !in.Kostentraeger.Valid():
		return Slot{}, fmt.Errorf("%w: kostentraeger 0x%x, want any of %s", ErrBadValue, uint8(in.Kostentraeger), strings.Join(kostentraegerNames, ", "))
	}
	return Slot{
		Start:         uint32(unix),
		Minutes:       uint16(in.Minutes),
		Type:          in.Type,
		Fachrichtung:  in.Fachrichtung,
		Modalitaet:    in.Modalitaet,
		Kostentraeger: in.Kostentraeger,
	}, nil
}
