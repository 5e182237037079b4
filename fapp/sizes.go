package fapp

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// Sizes encodes typical FAPP frames with fixed keys and returns their
// lengths, for `qpc sizes` and the FAPP table in docs/wire-format.md (a
// test keeps the two equal). Hop counts are 0, slot ids below 24, times in
// 2026; sealed frames have random bytes but fixed lengths.
func Sizes() []messages.SizeRow {
	must := func(b []byte, err error) []byte {
		if err != nil {
			panic("fapp: Sizes: " + err.Error()) // a bug: these frames are valid
		}
		return b
	}
	seed := sha256.Sum256([]byte("qpc fapp sizes therapist"))
	id, err := crypto.IdentityFromSeed(seed[:])
	if err != nil {
		panic("fapp: Sizes: " + err.Error())
	}
	// The Approbation's bytes do not change its size: skip the Argon2 work.
	appr := Approbation{Salt: bytes.Repeat([]byte{1}, ApprobationSaltSize), Hash: bytes.Repeat([]byte{2}, ApprobationHashSize)}
	p, err := NewPractice(id, "80331", appr, 0)
	if err != nil {
		panic("fapp: Sizes: " + err.Error())
	}
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	slots := func(n int) []Slot {
		out := make([]Slot, n)
		for i := range out {
			out[i] = Slot{ID: uint32(i + 1), Start: uint32(at.Add(time.Duration(i) * time.Hour).Unix()), Minutes: 50,
				Type: Therapieplatz, Fachrichtung: Verhaltenstherapie, Modalitaet: Praxis | Video, Kostentraeger: GKV | Selbstzahler}
		}
		return out
	}
	var rows []messages.SizeRow
	var ann1, ann4 []byte
	for _, c := range []struct {
		name string
		n    int
		note string
	}{
		{"fapp-announce-0", 0, "SlotAnnounce with no free slots (withdraws the set)"},
		{"fapp-announce-1", 1, "SlotAnnounce, 1 slot"},
		{"fapp-announce-4", 4, "SlotAnnounce, 4 slots"},
		{"fapp-announce-32", 32, "SlotAnnounce, 32 slots (the most one announce holds)"},
	} {
		f := must(p.Publish(slots(c.n), at.Add(-time.Hour).Add(24*time.Hour)))
		switch c.n {
		case 1:
			ann1 = f
		case 4:
			ann4 = f
		}
		rows = append(rows, messages.SizeRow{Name: c.name, Bytes: len(f), Note: c.note})
	}
	qseed := sha256.Sum256([]byte("qpc fapp sizes query"))
	q, err := NewQuery(Filter{Fachrichtung: Verhaltenstherapie, Modalitaet: Praxis | Video, Kostentraeger: GKV, PLZPrefix: "803",
		From: at, To: at.Add(14 * 24 * time.Hour), Max: 20}, DefaultQueryHops, bytes.NewReader(bytes.Repeat(qseed[:], 4)))
	if err != nil {
		panic("fapp: Sizes: " + err.Error())
	}
	rows = append(rows, messages.SizeRow{Name: "fapp-query", Bytes: len(must(EncodeSlotQuery(q.Query))),
		Note: "SlotQuery: fachrichtung, 2 modalitaeten, 1 kostentraeger, PLZ prefix of 3, a 14-day window, max 20"})
	rows = append(rows, messages.SizeRow{Name: "fapp-response-1x1", Bytes: len(must(NewSlotResponse(&q.Query, [][]byte{ann1}, DefaultQueryHops))),
		Note: "SlotResponse, one announce of 1 slot, sealed to the query's key"})
	rows = append(rows, messages.SizeRow{Name: "fapp-response-2x4", Bytes: len(must(NewSlotResponse(&q.Query, [][]byte{ann4, ann4}, DefaultQueryHops))),
		Note: "SlotResponse, two announces of 4 slots each"})
	a, err := DecodeSlotAnnounce(ann4)
	if err != nil {
		panic("fapp: Sizes: " + err.Error())
	}
	for _, c := range []struct {
		name, note string
		n          int
	}{
		{"fapp-reserve", "SlotReserve, empty note, sealed to the therapist", 0},
		{"fapp-reserve-note-64", "SlotReserve, 64-byte note", 64},
	} {
		_, f, err := NewReservation(&a, 1, strings.Repeat("n", c.n), DefaultAnnounceHops, bytes.NewReader(bytes.Repeat(qseed[:], 4)))
		rows = append(rows, messages.SizeRow{Name: c.name, Bytes: len(must(f, err)), Note: c.note})
	}
	req := Request{Slot: 1}
	copy(req.ReplyKey[:], q.Query.ReplyKey[:])
	rows = append(rows, messages.SizeRow{Name: "fapp-confirm", Bytes: len(must(SealConfirm(p.key, p.addr, req, SlotConfirm{Slot: 1, Text: "Praxis Beispiel, Marienplatz 1, 089 123456"}, DefaultAnnounceHops))),
		Note: "SlotAnswer with a SlotConfirm, 42-byte text (padded to 64)"})
	rows = append(rows, messages.SizeRow{Name: "fapp-decline-taken", Bytes: len(must(SealDecline(p.key, p.addr, req, SlotDecline{Slot: 1, Taken: true}, DefaultAnnounceHops))),
		Note: "SlotAnswer with a SlotDecline \"taken\", no text (padded to 32)"})
	return rows
}
