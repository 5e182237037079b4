package fapp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// The golden vectors pin the encodings of every FAPP frame. Signed frames
// are deterministic (Ed25519 is); sealed frames contain fresh HPKE keys,
// so their vectors were sealed once and the tests open them with the
// fixed keys and check that they re-encode to the same bytes.

const (
	goldenTherapist = "qpc golden fapp therapist"
	goldenReply     = "qpc golden fapp reply key"
	goldenQueryKey  = "qpc golden fapp query key"
)

func goldenPractice(t testing.TB) *Practice { return newPractice(t, goldenTherapist, "80331") }

// goldenSlots: a Therapieplatz (VT, praxis+video, GKV+selbstzahler), a
// Sprechstunde for children (systemisch+kjp, video, GKV) and an
// Akutbehandlung (TP, telefon, PKV+beihilfe).
func goldenSlots() []Slot {
	s1 := testSlot(1, 26)
	s2 := Slot{ID: 2, Start: uint32(t0.Add(50 * time.Hour).Unix()), Minutes: 25, Type: Sprechstunde,
		Fachrichtung: Systemisch | KJP, Modalitaet: Video, Kostentraeger: GKV}
	s7 := Slot{ID: 7, Start: uint32(t0.Add(4 * time.Hour).Unix()), Minutes: 50, Type: Akutbehandlung,
		Fachrichtung: Tiefenpsychologisch, Modalitaet: Telefon, Kostentraeger: PKV | Beihilfe}
	return []Slot{s7, s1, s2}
}

func goldenAnnounceFrame(t testing.TB) []byte {
	return publish(t, goldenPractice(t), t0.Add(48*time.Hour), goldenSlots()...)
}

func goldenQuery(t testing.TB) *PendingQuery {
	qid := sha256.Sum256([]byte("qpc golden fapp query id"))
	key := sealingFrom(t, goldenQueryKey)
	q := SlotQuery{Tag: TagFAPP, Kind: KindQuery, HopLimit: DefaultQueryHops, Fachrichtung: Verhaltenstherapie,
		Modalitaet: Praxis | Video, Kostentraeger: GKV, PLZPrefix: "803", From: uint32(t0.Unix()),
		To: uint32(t0.Add(14 * 24 * time.Hour).Unix()), Max: 20}
	copy(q.QueryID[:], qid[:])
	copy(q.ReplyKey[:], key.Public())
	return &PendingQuery{Query: q, key: key}
}

func goldenReservation(t testing.TB) *Reservation {
	t.Helper()
	p := goldenPractice(t)
	rid := sha256.Sum256([]byte("qpc golden fapp reservation id"))
	var id [16]byte
	copy(id[:], rid[:])
	r, err := RestoreReservation(id, SlotID{p.Address(), 1}, p.key.Public(), Pending, sha256.Sum256([]byte(goldenReply)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func checkOrWrite(t *testing.T, name string, comments []string, got []byte) {
	t.Helper()
	if *update {
		writeGolden(t, name, comments, got)
		return
	}
	if want := readGolden(t, name); !bytes.Equal(got, want) {
		t.Fatalf("%s: encoding changed (run with -update if intended):\n got %x\nwant %x", name, got, want)
	}
}

func TestGoldenSlotAnnounce(t *testing.T) {
	got := goldenAnnounceFrame(t)
	checkOrWrite(t, "slot_announce.golden", []string{
		"SlotAnnounce (fapp/announce.go), FAPP v0 kind 1, hex of the CBOR encoding.",
		"therapist seed SHA-256(\"" + goldenTherapist + "\"), sealing key derived from it (crypto.SealingKeyFor),",
		"seq 1, expiry 2026-12-03T08:00:00Z, PLZ 80331, hop limit 8, hops 0,",
		"Approbation: licence \"LANR-123456789\", salt SHA-256(\"qpc golden approbation salt\")[:16], Argon2id t=2 m=19MiB p=1,",
		"slots 1 (therapieplatz, verhaltenstherapie, praxis+video, gkv+selbstzahler, 2026-12-02T10:00Z 50 min),",
		"2 (sprechstunde, systemisch+kjp, video, gkv, 2026-12-03T10:00Z 25 min), 7 (akutbehandlung, tiefenpsychologisch, telefon, pkv+beihilfe, 2026-12-01T12:00Z 50 min).",
		"therapist address: " + goldenPractice(t).Address().String(),
	}, got)
	a, err := DecodeSlotAnnounce(readGolden(t, "slot_announce.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Therapist() != goldenPractice(t).Address() || a.Seq != 1 || len(a.Slots) != 3 || a.Slots[2].ID != 7 || a.PLZ != "80331" {
		t.Fatalf("decoded %+v", a)
	}
	if !a.Approbation.Matches("LANR-123456789") || a.Approbation.Matches("LANR-123456780") {
		t.Fatal("Approbation binding does not match its licence id, or matches another")
	}
	again, err := EncodeSlotAnnounce(a)
	if err != nil || !bytes.Equal(again, got) {
		t.Fatalf("re-encode: %v\n%x", err, again)
	}
	// The head as docs/wire-format.md shows it.
	if hex.EncodeToString(got[:5]) != "8c06010008" {
		t.Fatalf("head %x, want 8c 06 01 00 08", got[:5])
	}
}

func TestGoldenSlotQuery(t *testing.T) {
	q := goldenQuery(t)
	got, err := EncodeSlotQuery(q.Query)
	if err != nil {
		t.Fatal(err)
	}
	checkOrWrite(t, "slot_query.golden", []string{
		"SlotQuery (fapp/query.go), FAPP v0 kind 2, hex of the CBOR encoding.",
		"query id SHA-256(\"qpc golden fapp query id\")[:16], reply key the sealing key of seed SHA-256(\"" + goldenQueryKey + "\"),",
		"verhaltenstherapie, praxis|video, gkv, PLZ prefix 803, any type, [2026-12-01T08:00Z, 2026-12-15T08:00Z), max 20, hop limit 4.",
	}, got)
	d, err := DecodeSlotQuery(readGolden(t, "slot_query.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if d != q.Query {
		t.Fatalf("decoded %+v, want %+v", d, q.Query)
	}
}

func TestGoldenSlotResponse(t *testing.T) {
	q := goldenQuery(t)
	if *update {
		f, err := NewSlotResponse(&q.Query, [][]byte{goldenAnnounceFrame(t)}, DefaultQueryHops)
		if err != nil {
			t.Fatal(err)
		}
		writeGolden(t, "slot_response.golden", []string{
			"SlotResponse (fapp/response.go), FAPP v0 kind 3, hex of the CBOR encoding.",
			"the golden query's id; sealed (HPKE base mode, fresh ephemeral key: sealed once) to the golden query's reply key;",
			"plaintext: [ slot_announce.golden ]. Opening it with the query finds slot 1 only.",
		}, f)
	}
	frame := readGolden(t, "slot_response.golden")
	rs, bad, err := q.Open(frame, t0)
	if err != nil || bad != 0 {
		t.Fatalf("Open: %v (bad %d)", err, bad)
	}
	if len(rs) != 1 || rs[0].Slot.ID != 1 || !bytes.Equal(rs[0].Frame, readGolden(t, "slot_announce.golden")) {
		t.Fatalf("results %+v", rs)
	}
	d, err := DecodeSlotResponse(frame)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := EncodeSlotResponse(d); err != nil || !bytes.Equal(again, frame) {
		t.Fatalf("re-encode: %v", err)
	}
}

func TestGoldenSlotReserve(t *testing.T) {
	r := goldenReservation(t)
	p := goldenPractice(t)
	if *update {
		f, err := r.reserveFrame(1, "Ich suche einen Platz ab Januar.", DefaultAnnounceHops)
		if err != nil {
			t.Fatal(err)
		}
		writeGolden(t, "slot_reserve.golden", []string{
			"SlotReserve (fapp/reserve.go), FAPP v0 kind 4, hex of the CBOR encoding.",
			"to the golden therapist, reservation id SHA-256(\"qpc golden fapp reservation id\")[:16],",
			"reply key the sealing key of seed SHA-256(\"" + goldenReply + "\"); sealed once (HPKE auth mode, reply key -> therapist);",
			"plaintext [slot 1, seq 1, note \"Ich suche einen Platz ab Januar.\"].",
		}, f)
	}
	frame := readGolden(t, "slot_reserve.golden")
	req, err := OpenReserve(p.key, p.Address(), frame)
	if err != nil {
		t.Fatal(err)
	}
	if req.ID != r.ID || req.Slot != 1 || req.Seq != 1 || req.Note != "Ich suche einen Platz ab Januar." || !bytes.Equal(req.ReplyKey[:], r.key.Public()) {
		t.Fatalf("request %+v", req)
	}
	d, err := DecodeSlotReserve(frame)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := EncodeSlotReserve(d); err != nil || !bytes.Equal(again, frame) {
		t.Fatalf("re-encode: %v", err)
	}
}

func TestGoldenSlotConfirmDecline(t *testing.T) {
	p := goldenPractice(t)
	for _, c := range []struct {
		file   string
		status Status
		text   string
		seal   func(Request) ([]byte, error)
	}{
		{"slot_confirm.golden", Confirmed, "Praxis Beispiel, Marienplatz 1, 80331 München", func(req Request) ([]byte, error) {
			return SealConfirm(p.key, p.Address(), req, SlotConfirm{Slot: 1, Text: "Praxis Beispiel, Marienplatz 1, 80331 München"}, DefaultAnnounceHops)
		}},
		{"slot_decline.golden", Taken, "", func(req Request) ([]byte, error) {
			return SealDecline(p.key, p.Address(), req, SlotDecline{Slot: 1, Taken: true}, DefaultAnnounceHops)
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			r := goldenReservation(t)
			if *update {
				req := Request{ID: r.ID, Slot: 1}
				copy(req.ReplyKey[:], r.key.Public())
				f, err := c.seal(req)
				if err != nil {
					t.Fatal(err)
				}
				writeGolden(t, c.file, []string{
					"SlotAnswer (fapp/reserve.go), FAPP v0 kind 5, hex of the CBOR encoding, carrying a " + map[Status]string{Confirmed: "SlotConfirm", Taken: "SlotDecline (taken)"}[c.status] + ".",
					"the golden reservation's id; sealed once (HPKE auth mode, golden therapist's sealing key -> golden reply key);",
					"plaintext [status " + c.status.String() + ", slot 1, text \"" + c.text + "\", zero padding to a multiple of 32 bytes].",
				}, f)
			}
			frame := readGolden(t, c.file)
			st, err := r.OpenAnswer(frame)
			if err != nil || st != c.status || r.Text != c.text {
				t.Fatalf("OpenAnswer = %s, %v, text %q", st, err, r.Text)
			}
			d, err := DecodeSlotAnswer(frame)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := EncodeSlotAnswer(d); err != nil || !bytes.Equal(again, frame) {
				t.Fatalf("re-encode: %v", err)
			}
		})
	}
}
