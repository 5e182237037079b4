package fapp

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// signRaw signs and encodes a without the encoder's checks, to make
// frames a well-behaved encoder never would.
func signRaw(t *testing.T, a SlotAnnounce) []byte {
	t.Helper()
	id := identityFrom(t, goldenTherapist)
	tbs, err := a.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	a.Signature = id.Sign(tbs)
	b, err := messages.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func goldenAnnounce(t *testing.T) SlotAnnounce {
	a, err := DecodeSlotAnnounce(goldenAnnounceFrame(t))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDecodeSlotAnnounceRefuses(t *testing.T) {
	golden := goldenAnnounceFrame(t)
	query := readGolden(t, "slot_query.golden")
	mod := func(f func(a *SlotAnnounce)) []byte {
		a := goldenAnnounce(t)
		f(&a)
		return signRaw(t, a)
	}
	withByte := func(i int, b ...byte) []byte {
		out := append([]byte(nil), golden[:i]...)
		out = append(out, b...)
		return append(out, golden[i+1:]...)
	}
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", bytes.Repeat([]byte{0x8c}, MaxSlotAnnounceSize+1), messages.ErrTooLarge},
		{"empty", nil, messages.ErrMalformed},
		{"not an array", []byte{0x06}, messages.ErrMalformed},
		{"envelope tag", []byte{0x84, 0x11, 0x01, 0x00, 0x00}, messages.ErrUnknownType},
		{"FAPP version 1", withByte(1, 0x16), messages.ErrUnsupportedVersion},
		{"a query", query, messages.ErrUnknownType},
		{"kind 9", withByte(2, 0x09), messages.ErrUnknownType},
		{"hops over limit", withByte(3, 0x09), messages.ErrMalformed},
		{"hops not shortest", withByte(3, 0x18, 0x00), messages.ErrMalformed},
		{"seq not shortest", withByte(73, 0x18, 0x01), messages.ErrMalformed},
		{"truncated", golden[:len(golden)-1], messages.ErrMalformed},
		{"trailing byte", append(append([]byte(nil), golden...), 0x00), messages.ErrMalformed},
		{"signature flipped", withByte(len(golden)-1, golden[len(golden)-1]^1), messages.ErrBadSignature},
		{"signed field changed", withByte(81, '9'), messages.ErrBadSignature}, // a digit of the PLZ
		{"no approbation", mod(func(a *SlotAnnounce) { a.Approbation = Approbation{} }), ErrUnbound},
		{"short approbation hash", mod(func(a *SlotAnnounce) { a.Approbation.Hash = a.Approbation.Hash[:8] }), ErrUnbound},
		{"zero approbation hash", mod(func(a *SlotAnnounce) { a.Approbation.Hash = make([]byte, 16) }), ErrUnbound},
		{"seq 0", mod(func(a *SlotAnnounce) { a.Seq = 0 }), messages.ErrMalformed},
		{"no expiry", mod(func(a *SlotAnnounce) { a.Expiry = 0 }), messages.ErrMalformed},
		{"bad PLZ", mod(func(a *SlotAnnounce) { a.PLZ = "8033x" }), messages.ErrMalformed},
		{"hop limit 17", mod(func(a *SlotAnnounce) { a.HopLimit = 17 }), messages.ErrMalformed},
		{"low-order sealing key", mod(func(a *SlotAnnounce) { a.SealKey = make([]byte, 32) }), messages.ErrMalformed},
		{"short public key", mod(func(a *SlotAnnounce) { a.PublicKey = a.PublicKey[:31] }), messages.ErrMalformed},
		{"slot ids not increasing", mod(func(a *SlotAnnounce) { a.Slots[1].ID = 1; a.Slots[0].ID = 1 }), messages.ErrMalformed},
		{"slot type 0", mod(func(a *SlotAnnounce) { a.Slots[0].Type = 0 }), messages.ErrMalformed},
		{"slot fachrichtung 6", mod(func(a *SlotAnnounce) { a.Slots[0].Fachrichtung = 6 }), messages.ErrMalformed},
		{"slot without modalitaet", mod(func(a *SlotAnnounce) { a.Slots[0].Modalitaet = 0 }), messages.ErrMalformed},
		{"slot modalitaet bit 3", mod(func(a *SlotAnnounce) { a.Slots[0].Modalitaet = 8 }), messages.ErrMalformed},
		{"slot without kostentraeger", mod(func(a *SlotAnnounce) { a.Slots[0].Kostentraeger = 0 }), messages.ErrMalformed},
		{"slot of 481 minutes", mod(func(a *SlotAnnounce) { a.Slots[0].Minutes = 481 }), messages.ErrMalformed},
		{"slot without start", mod(func(a *SlotAnnounce) { a.Slots[0].Start = 0 }), messages.ErrMalformed},
		{"33 slots", mod(func(a *SlotAnnounce) {
			a.Slots = nil
			for i := range 33 {
				a.Slots = append(a.Slots, testSlot(uint32(i+1), i))
			}
		}), messages.ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeSlotAnnounce(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestEncodeRefusesUnsigned(t *testing.T) {
	a := goldenAnnounce(t)
	a.Signature = nil
	if _, err := EncodeSlotAnnounce(a); !errors.Is(err, messages.ErrBadSignature) {
		t.Fatalf("unsigned: %v", err)
	}
	a = goldenAnnounce(t)
	a.Approbation = Approbation{}
	if err := a.Sign(identityFrom(t, goldenTherapist).Sign); !errors.Is(err, ErrUnbound) {
		t.Fatalf("sign unbound: %v", err)
	}
	q := goldenQuery(t).Query
	q.Max = 0
	if _, err := EncodeSlotQuery(q); !errors.Is(err, messages.ErrMalformed) {
		t.Fatalf("query max 0: %v", err)
	}
}

func TestDecodeOtherKindsRefuse(t *testing.T) {
	ann := goldenAnnounceFrame(t)
	for _, c := range []struct {
		name  string
		dec   func([]byte) error
		limit int
		good  []byte
	}{
		{"query", func(b []byte) error { _, err := DecodeSlotQuery(b); return err }, MaxSlotQuerySize, readGolden(t, "slot_query.golden")},
		{"response", func(b []byte) error { _, err := DecodeSlotResponse(b); return err }, MaxSlotResponseSize, readGolden(t, "slot_response.golden")},
		{"reserve", func(b []byte) error { _, err := DecodeSlotReserve(b); return err }, MaxSlotReserveSize, readGolden(t, "slot_reserve.golden")},
		{"answer", func(b []byte) error { _, err := DecodeSlotAnswer(b); return err }, MaxSlotAnswerSize, readGolden(t, "slot_confirm.golden")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.dec(c.good); err != nil {
				t.Fatalf("golden: %v", err)
			}
			if err := c.dec(bytes.Repeat([]byte{0x86}, c.limit+1)); !errors.Is(err, messages.ErrTooLarge) {
				t.Errorf("too large: %v", err)
			}
			if err := c.dec(ann[:min(len(ann), c.limit)]); !errors.Is(err, messages.ErrUnknownType) && !errors.Is(err, messages.ErrMalformed) {
				t.Errorf("an announce: %v", err)
			}
			if len(ann) <= c.limit {
				if err := c.dec(ann); !errors.Is(err, messages.ErrUnknownType) {
					t.Errorf("an announce: %v, want ErrUnknownType", err)
				}
			}
			if err := c.dec(c.good[:len(c.good)-1]); !errors.Is(err, messages.ErrMalformed) {
				t.Errorf("truncated: %v", err)
			}
			bad := append([]byte(nil), c.good...)
			bad[3] = 0x11 // hops 17, over any hop limit
			if err := c.dec(bad); !errors.Is(err, messages.ErrMalformed) {
				t.Errorf("hops over limit: %v", err)
			}
		})
	}
}

func TestForward(t *testing.T) {
	frame := goldenAnnounceFrame(t)
	for hop := 1; hop <= DefaultAnnounceHops; hop++ {
		next, err := Forward(frame)
		if err != nil {
			t.Fatalf("hop %d: %v", hop, err)
		}
		if frame[3] != byte(hop-1) {
			t.Fatal("Forward changed its input")
		}
		a, err := DecodeSlotAnnounce(next)
		if err != nil || a.Hops != uint8(hop) {
			t.Fatalf("hop %d: %v, hops %d", hop, err, a.Hops)
		}
		k, h, l, err := Peek(next)
		if err != nil || k != KindAnnounce || h != uint8(hop) || l != DefaultAnnounceHops {
			t.Fatalf("Peek: %v %d %d %v", k, h, l, err)
		}
		frame = next
	}
	if _, err := Forward(frame); !errors.Is(err, messages.ErrHopLimit) {
		t.Fatalf("at the limit: %v", err)
	}
	for _, g := range []string{"slot_query.golden", "slot_response.golden", "slot_reserve.golden", "slot_decline.golden"} {
		f := readGolden(t, g)
		next, err := Forward(f)
		if err != nil || next[3] != 1 || !bytes.Equal(next[4:], f[4:]) {
			t.Errorf("%s: %v", g, err)
		}
	}
	if _, err := Forward([]byte{0x82, 0x06, 0x01}); !errors.Is(err, messages.ErrMalformed) {
		t.Errorf("short frame: %v", err)
	}
}

// TestLargestFrames: the widest valid frame of every kind fits its limit,
// so everything that encodes also decodes.
func TestLargestFrames(t *testing.T) {
	p := goldenPractice(t)
	var slots []Slot
	for i := range MaxSlotsPerAnnounce {
		slots = append(slots, Slot{ID: math.MaxUint32 - uint32(i), Start: math.MaxUint32, Minutes: MaxSlotMinutes,
			Type: Gruppe, Fachrichtung: Systemisch | KJP, Modalitaet: modalitaetAll, Kostentraeger: kostentraegerAll})
	}
	a := NewSlotAnnounce(p.id.PublicKey(), p.key.Public(), math.MaxUint64, time.Unix(math.MaxUint32, 0), p.plz, p.appr, slots)
	a.HopLimit, a.Hops = MaxHopLimit, MaxHopLimit
	if err := a.Sign(p.id.Sign); err != nil {
		t.Fatal(err)
	}
	ann, err := EncodeSlotAnnounce(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(ann) != 772 {
		t.Errorf("largest announce %d bytes, documented 772", len(ann))
	}
	if _, err := DecodeSlotAnnounce(ann); err != nil {
		t.Fatal(err)
	}
	q := goldenQuery(t).Query
	q.Fachrichtung, q.Modalitaet, q.Kostentraeger, q.PLZPrefix, q.Type = Systemisch|KJP, modalitaetAll, kostentraegerAll, "80331", Gruppe
	q.From, q.To, q.Max, q.Hops, q.HopLimit = math.MaxUint32-1, math.MaxUint32, MaxQueryResults, MaxHopLimit, MaxHopLimit
	qf, err := EncodeSlotQuery(q)
	if err != nil || len(qf) != 78 {
		t.Errorf("largest query: %d bytes, %v; documented 78", len(qf), err)
	}
	var eight [][]byte
	for range MaxResponseAnnounces {
		eight = append(eight, ann)
	}
	if _, err := NewSlotResponse(&q, eight, MaxHopLimit); err != nil {
		t.Errorf("largest response: %v", err)
	}
	if _, err := NewSlotResponse(&q, append(eight, ann), MaxHopLimit); !errors.Is(err, messages.ErrTooLarge) {
		t.Errorf("9 announces: %v", err)
	}
	an := goldenAnnounce(t)
	r, rf, err := NewReservation(&an, 1, strings.Repeat("ü", MaxNoteSize/2), MaxHopLimit, &counterReader{label: "largest"})
	if err != nil {
		t.Fatalf("largest reservation: %v", err)
	}
	if _, err := DecodeSlotReserve(rf); err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewReservation(&an, 1, strings.Repeat("n", MaxNoteSize+1), MaxHopLimit, &counterReader{label: "x"}); !errors.Is(err, ErrBadValue) {
		t.Errorf("long note: %v", err)
	}
	req := Request{ID: r.ID, Slot: math.MaxUint32}
	copy(req.ReplyKey[:], r.key.Public())
	for _, n := range []int{0, 1, 23, 24, 25, 100, MaxNoteSize} {
		f, err := SealAnswer(p.key, p.addr, req, Declined, strings.Repeat("x", n), MaxHopLimit)
		if err != nil {
			t.Fatalf("answer text %d: %v", n, err)
		}
		if _, err := DecodeSlotAnswer(f); err != nil {
			t.Fatalf("answer text %d: %v", n, err)
		}
	}
}

// TestPaddingHidesTheAnswer: a confirmation and a decline with texts of
// similar length are the same size on the wire.
func TestPaddingHidesTheAnswer(t *testing.T) {
	p := goldenPractice(t)
	r := goldenReservation(t)
	req := Request{ID: r.ID, Slot: 1}
	copy(req.ReplyKey[:], r.key.Public())
	for n := 0; n <= MaxNoteSize; n++ {
		c, err1 := SealAnswer(p.key, p.addr, req, Confirmed, strings.Repeat("a", n), 4)
		d, err2 := SealAnswer(p.key, p.addr, req, Declined, strings.Repeat("b", n), 4)
		tk, err3 := SealAnswer(p.key, p.addr, req, Taken, strings.Repeat("b", n), 4)
		if err1 != nil || err2 != nil || err3 != nil || len(c) != len(d) || len(c) != len(tk) {
			t.Fatalf("text %d: %d %d %d bytes (%v %v %v)", n, len(c), len(d), len(tk), err1, err2, err3)
		}
	}
	taken, _ := SealAnswer(p.key, p.addr, req, Taken, "", 4)
	declined, _ := SealAnswer(p.key, p.addr, req, Declined, "", 4)
	confirm, _ := SealAnswer(p.key, p.addr, req, Confirmed, "", 4)
	if len(taken) != len(declined) || len(taken) != len(confirm) {
		t.Fatal("answers without text differ in size")
	}
}

// TestSizesInDocs: the FAPP size table in docs/wire-format.md is what
// Sizes measures.
func TestSizesInDocs(t *testing.T) {
	raw, err := os.ReadFile("../docs/wire-format.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "<!-- fapp-sizes:begin -->\n")
	table, _, ok2 := strings.Cut(rest, "<!-- fapp-sizes:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/wire-format.md has no fapp-sizes markers")
	}
	var want strings.Builder
	want.WriteString("| name | bytes | what |\n|---|---|---|\n")
	for _, r := range Sizes() {
		fmt.Fprintf(&want, "| `%s` | %d | %s |\n", r.Name, r.Bytes, r.Note)
	}
	if table != want.String() {
		t.Fatalf("docs/wire-format.md FAPP sizes differ; want:\n%s", want.String())
	}
}
