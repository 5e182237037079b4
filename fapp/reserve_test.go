package fapp

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// reserveFrom is a patient reserving slot of the therapist's current
// announce.
func reserveFrom(t *testing.T, announce []byte, slot uint32, note string) (*Reservation, []byte) {
	t.Helper()
	a, err := DecodeSlotAnnounce(announce)
	if err != nil {
		t.Fatal(err)
	}
	r, f, err := NewReservation(&a, slot, note, DefaultAnnounceHops, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return r, f
}

// TestReserveConfirmFlow is the story on the plain types: T1
// publishes, P1 reserves, T1 confirms, P1 sees "confirmed"; P2 reserving
// the same slot later gets "taken"; the new announce no longer holds it;
// a decline frees the slot again.
func TestReserveConfirmFlow(t *testing.T) {
	therapist := newPractice(t, "T1", "80331")
	exp := t0.Add(48 * time.Hour)
	ann := publish(t, therapist, exp, testSlot(1, 26), testSlot(2, 30))

	p1, req1 := reserveFrom(t, ann, 1, "P1")
	got, answer, err := therapist.Receive(req1, t0)
	if err != nil || answer != nil || got.Slot != 1 || got.Note != "P1" || got.Seq != 1 {
		t.Fatalf("Receive: %+v %x %v", got, answer, err)
	}
	// A retransmission is harmless: the same pending request, no answer.
	if again, answer, err := therapist.Receive(req1, t0.Add(time.Second)); err != nil || answer != nil || again.ID != got.ID || len(therapist.Requests()) != 1 {
		t.Fatalf("retransmission: %v %x", err, answer)
	}
	// P3 also asks for slot 1 before T1 confirms P1.
	p3, req3 := reserveFrom(t, ann, 1, "P3")
	if _, answer, err := therapist.Receive(req3, t0.Add(2*time.Second)); err != nil || answer != nil {
		t.Fatal(err)
	}

	conf, newAnn, taken, err := therapist.Confirm(got.ID, "Bis Mittwoch!", exp)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p1.OpenAnswer(conf); st != Confirmed || err != nil || p1.Text != "Bis Mittwoch!" {
		t.Fatalf("P1: %s %v", st, err)
	}
	if len(taken) != 1 {
		t.Fatalf("%d taken answers for the other pending request", len(taken))
	}
	if st, err := p3.OpenAnswer(taken[0]); st != Taken || err != nil {
		t.Fatalf("P3: %s %v", st, err)
	}
	na, err := DecodeSlotAnnounce(newAnn)
	if err != nil || na.Seq != 2 || len(na.Slots) != 1 || na.Slots[0].ID != 2 {
		t.Fatalf("announce after confirm: seq %d, %+v, %v", na.Seq, na.Slots, err)
	}
	// Twice: refused.
	if _, _, _, err := therapist.Confirm(got.ID, "", exp); !errors.Is(err, ErrNotPending) {
		t.Fatalf("confirm again: %v", err)
	}
	// P2, from the old announce, later: answered "taken" at once.
	p2, req2 := reserveFrom(t, ann, 1, "P2")
	r2, answer, err := therapist.Receive(req2, t0.Add(time.Hour))
	if err != nil || answer == nil {
		t.Fatalf("P2: %v", err)
	}
	if st, err := p2.OpenAnswer(answer); st != Taken || err != nil {
		t.Fatalf("P2: %s %v", st, err)
	}
	if _, _, _, err := therapist.Confirm(r2.ID, "", exp); !errors.Is(err, ErrNotPending) {
		t.Fatalf("confirm a taken one: %v", err)
	}
	// Re-publishing the same file does not bring the confirmed slot back.
	again := publish(t, therapist, exp, testSlot(1, 26), testSlot(2, 30))
	if a, _ := DecodeSlotAnnounce(again); len(a.Slots) != 1 {
		t.Fatalf("confirmed slot announced again: %+v", a.Slots)
	}
	// Slot 2: P4 reserves, T1 declines; P5 reserves it and T1 confirms.
	p4, req4 := reserveFrom(t, again, 2, "")
	r4, _, _ := therapist.Receive(req4, t0.Add(2*time.Hour))
	dec, ann4, err := therapist.Decline(r4.ID, "Leider nicht", exp)
	if err != nil || ann4 != nil {
		t.Fatalf("decline: %v %x", err, ann4)
	}
	if st, _ := p4.OpenAnswer(dec); st != Declined || p4.Text != "Leider nicht" {
		t.Fatalf("P4: %s", st)
	}
	if _, _, err := therapist.Decline(r4.ID, "", exp); !errors.Is(err, ErrNotPending) {
		t.Fatalf("decline twice: %v", err)
	}
	// T1 cancels P1's confirmed slot 1: it is free and announced again.
	cancel, freed, err := therapist.Decline(got.ID, "Praxis geschlossen", exp)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p1.OpenAnswer(cancel); st != Declined || err != nil {
		t.Fatalf("P1 after cancellation: %s %v", st, err)
	}
	fa, _ := DecodeSlotAnnounce(freed)
	if _, ok := fa.Slot(1); !ok {
		t.Fatal("declined slot not freed")
	}
	p6, req6 := reserveFrom(t, freed, 1, "P6")
	r6, _, _ := therapist.Receive(req6, t0.Add(3*time.Hour))
	c6, _, _, err := therapist.Confirm(r6.ID, "", exp)
	if err != nil {
		t.Fatalf("confirm the freed slot: %v", err)
	}
	if st, _ := p6.OpenAnswer(c6); st != Confirmed {
		t.Fatalf("P6: %s", st)
	}
	// Unknown reservations, slots not in the set.
	if _, _, _, err := therapist.Confirm([16]byte{1}, "", exp); !errors.Is(err, ErrUnknownReservation) {
		t.Fatalf("unknown: %v", err)
	}
	if _, _, err := NewReservation(&fa, 99, "", 4, rand.Reader); !errors.Is(err, ErrUnknownSlot) {
		t.Fatalf("unknown slot: %v", err)
	}
	if reqs := therapist.Requests(); len(reqs) != 5 || reqs[0].Note != "P1" || reqs[0].Status != Declined {
		t.Fatalf("requests: %+v", reqs)
	}
}

// TestReserveCrypto: only the therapist opens a reservation, only the
// patient opens the answer, and neither opens if a relay changed anything
// or sealed it itself.
func TestReserveCrypto(t *testing.T) {
	therapist := newPractice(t, "T1", "80331")
	other := newPractice(t, "T2", "80331")
	ann := publish(t, therapist, t0.Add(time.Hour), testSlot(1, 2))
	r, frame := reserveFrom(t, ann, 1, "geheim")

	if bytes.Contains(frame, []byte("geheim")) {
		t.Fatal("plaintext note on the wire")
	}
	if _, err := OpenReserve(other.key, other.addr, frame); !errors.Is(err, ErrOpen) {
		t.Fatalf("another therapist: %v", err)
	}
	// Another therapist's key, claiming to be T1: the AAD names T1 but
	// the key is wrong.
	if _, err := OpenReserve(other.key, therapist.addr, frame); !errors.Is(err, ErrOpen) {
		t.Fatalf("wrong key: %v", err)
	}
	// A relay swaps in a reply key of its own to read the answer: auth mode
	// binds the reply key, so it does not open.
	m, _ := DecodeSlotReserve(frame)
	relayKey, _ := freshSealingKey(rand.Reader)
	copy(m.ReplyKey[:], relayKey.Public())
	swapped, _ := EncodeSlotReserve(m)
	if _, err := OpenReserve(therapist.key, therapist.addr, swapped); !errors.Is(err, ErrOpen) {
		t.Fatalf("swapped reply key: %v", err)
	}
	// Moved to another reservation id.
	m, _ = DecodeSlotReserve(frame)
	m.ReservationID[0] ^= 1
	moved, _ := EncodeSlotReserve(m)
	if _, err := OpenReserve(therapist.key, therapist.addr, moved); !errors.Is(err, ErrOpen) {
		t.Fatalf("moved: %v", err)
	}
	// The forwarded frame still opens.
	fwd, _ := Forward(frame)
	req, err := OpenReserve(therapist.key, therapist.addr, fwd)
	if err != nil {
		t.Fatal(err)
	}

	// The answer: a relay knows the reply key, but an answer it seals
	// (even in auth mode with its own key) does not open for the patient.
	forged, err := SealAnswer(relayKey, therapist.addr, req, Confirmed, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.OpenAnswer(forged); !errors.Is(err, ErrOpen) || r.Status != Pending {
		t.Fatalf("forged answer: %v, status %s", err, r.Status)
	}
	real, err := SealAnswer(therapist.key, therapist.addr, req, Confirmed, "ok", 4)
	if err != nil {
		t.Fatal(err)
	}
	if secret, _ := SealAnswer(therapist.key, therapist.addr, req, Confirmed, "Marienplatz 1, Dienstag 10 Uhr", 4); bytes.Contains(secret, []byte("Marienplatz")) {
		t.Fatal("plaintext answer on the wire")
	}
	// To another reservation of the same patient: does not open.
	r2, _ := reserveFrom(t, ann, 1, "")
	if _, err := r2.OpenAnswer(real); !errors.Is(err, ErrOpen) {
		t.Fatalf("answer to another reservation: %v", err)
	}
	// A persisted and restored reservation opens it.
	back, err := RestoreReservation(r.ID, r.Slot, r.TherapistSealKey, r.Status, r.ReplySeed())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := back.OpenAnswer(real); st != Confirmed || err != nil {
		t.Fatalf("restored: %s %v", st, err)
	}
	if st, err := back.OpenAnswer(real); st != Confirmed || err != nil {
		t.Fatalf("the same answer again: %s %v", st, err)
	}
	taken, _ := SealAnswer(therapist.key, therapist.addr, req, Taken, "", 4)
	if _, err := back.OpenAnswer(taken); !errors.Is(err, ErrNotPending) {
		t.Fatalf("a different answer later: %v", err)
	}
	// Forward secrecy: each answer has a fresh ephemeral key.
	again, _ := SealAnswer(therapist.key, therapist.addr, req, Confirmed, "ok", 4)
	a1, _ := DecodeSlotAnswer(real)
	a2, _ := DecodeSlotAnswer(again)
	if bytes.Equal(a1.Sealed[:crypto.SealEncSize], a2.Sealed[:crypto.SealEncSize]) {
		t.Fatal("two answers share their ephemeral key")
	}
	if _, err := SealAnswer(therapist.key, therapist.addr, req, Pending, "", 4); !errors.Is(err, ErrBadValue) {
		t.Fatalf("answer pending: %v", err)
	}
}

// TestQueriesUnlinkable: two queries of one patient with the same filter
// share no bytes but the filter's (no id, no key, no address), and two
// reservations share nothing but the therapist and the slot's sealed
// length. What a relay could link them by would be a common substring of
// at least 4 bytes outside the filter fields.
func TestQueriesUnlinkable(t *testing.T) {
	f := Filter{Fachrichtung: Verhaltenstherapie, Kostentraeger: GKV, PLZPrefix: "803", Modalitaet: Video | Praxis,
		From: t0, To: t0.Add(14 * 24 * time.Hour)}
	q1, err := NewQuery(f, DefaultQueryHops, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	q2, err := NewQuery(f, DefaultQueryHops, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := EncodeSlotQuery(q1.Query)
	b2, _ := EncodeSlotQuery(q2.Query)
	if q1.Query.QueryID == q2.Query.QueryID || q1.Query.ReplyKey == q2.Query.ReplyKey {
		t.Fatal("two queries share their id or key")
	}
	// Everything but the 16-byte id and the 32-byte key is the filter.
	z1, z2 := q1.Query, q2.Query
	z1.QueryID, z1.ReplyKey, z2.QueryID, z2.ReplyKey = [16]byte{}, [32]byte{}, [16]byte{}, [32]byte{}
	if z1 != z2 {
		t.Fatalf("queries differ outside id and key: %+v %+v", z1, z2)
	}
	secret := func(q SlotQuery) []byte { return append(q.QueryID[:], q.ReplyKey[:]...) }
	if n := longestCommon(secret(q1.Query), b2); n >= 4 {
		t.Fatalf("query 2 contains %d bytes of query 1's id or key", n)
	}
	if n := longestCommon(secret(q2.Query), b1); n >= 4 {
		t.Fatalf("query 1 contains %d bytes of query 2's id or key", n)
	}
	// Responses to the two are sealed to different keys.
	therapist := newPractice(t, "T1", "80331")
	ann := publish(t, therapist, t0.Add(time.Hour), testSlot(1, 2))
	resp1, _ := NewSlotResponse(&q1.Query, [][]byte{ann}, 2)
	if _, _, err := q2.Open(resp1, t0); !errors.Is(err, ErrOpen) {
		t.Fatalf("response to q1 opened by q2: %v", err)
	}
	m, _ := DecodeSlotResponse(resp1)
	m.QueryID = q2.Query.QueryID
	relabelled, _ := EncodeSlotResponse(m)
	if _, _, err := q2.Open(relabelled, t0); !errors.Is(err, ErrOpen) {
		t.Fatalf("relabelled response: %v", err)
	}
	if bytes.Contains(resp1, ann[4:40]) {
		t.Fatal("response carries the announce in the clear")
	}

	// Reservations: fresh reply key and id each time.
	_, r1 := reserveFrom(t, ann, 1, "")
	_, r2 := reserveFrom(t, ann, 1, "")
	m1, _ := DecodeSlotReserve(r1)
	m2, _ := DecodeSlotReserve(r2)
	if m1.ReplyKey == m2.ReplyKey || m1.ReservationID == m2.ReservationID {
		t.Fatal("two reservations share a key or id")
	}
	if n := longestCommon(append(m1.ReservationID[:], m1.ReplyKey[:]...), r2); n >= 4 {
		t.Fatalf("reservation 2 contains %d bytes of reservation 1's id or key", n)
	}
	if n := longestCommon(m1.Sealed, m2.Sealed); n >= 4 {
		t.Fatalf("two sealed reservations share %d bytes", n)
	}
	if n := longestCommon(secret(q1.Query), r1); n >= 4 {
		t.Fatal("a reservation shares bytes with the query before it")
	}
}

// longestCommon is the length of the longest common substring of a and b.
func longestCommon(a, b []byte) int {
	best := 0
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
				best = max(best, cur[j])
			} else {
				cur[j] = 0
			}
		}
		prev, cur = cur, prev
	}
	return best
}

func TestPracticeRefuses(t *testing.T) {
	id := identityFrom(t, "T1")
	if _, err := NewPractice(id, "8033", approbation(t), 0); !errors.Is(err, ErrBadValue) {
		t.Errorf("bad PLZ: %v", err)
	}
	if _, err := NewPractice(id, "80331", Approbation{}, 0); !errors.Is(err, ErrUnbound) {
		t.Errorf("unbound: %v", err)
	}
	p := newPractice(t, "T1", "80331")
	if _, err := p.Publish([]Slot{testSlot(1, 2), testSlot(1, 3)}, t0.Add(time.Hour)); !errors.Is(err, ErrBadValue) {
		t.Errorf("duplicate ids: %v", err)
	}
	bad := testSlot(2, 2)
	bad.Modalitaet = 0
	if _, err := p.Publish([]Slot{bad}, t0.Add(time.Hour)); !errors.Is(err, ErrBadValue) || p.Seq() != 0 {
		t.Errorf("bad slot: %v, seq %d", err, p.Seq())
	}
	// A restarted practice continues from the persisted sequence.
	q, _ := NewPractice(id, "80331", approbation(t), 41)
	f, _ := q.Publish(nil, t0.Add(time.Hour))
	if a, err := DecodeSlotAnnounce(f); err != nil || a.Seq != 42 || len(a.Slots) != 0 {
		t.Errorf("restart: %v seq %d", err, a.Seq)
	}
	if _, err := ApprobationWithSalt("  ", make([]byte, 16)); !errors.Is(err, ErrBadValue) {
		t.Errorf("empty licence: %v", err)
	}
	a, err := NewApprobation("LANR-1", rand.Reader)
	if err != nil || a.Check() != nil || !a.Matches(" LANR-1 ") || a.Matches("LANR-2") {
		t.Errorf("NewApprobation: %v", err)
	}
	var short bytes.Buffer
	if _, err := NewApprobation("x", &short); err == nil {
		t.Error("salt from an empty reader")
	}
	_ = messages.ErrMalformed
}

// TestPracticeStateSurvivesRestart: a practice restored from its state
// record carries on: the confirmed slot stays taken, retransmissions get
// the same answer, a pending request can be confirmed, the sequence goes
// on.
func TestPracticeStateSurvivesRestart(t *testing.T) {
	id := identityFrom(t, "T1")
	p := newPractice(t, "T1", "80331")
	exp := t0.Add(48 * time.Hour)
	ann := publish(t, p, exp, testSlot(1, 26), testSlot(2, 30), testSlot(3, 40))
	p1, req1 := reserveFrom(t, ann, 1, "P1")
	_, req2 := reserveFrom(t, ann, 2, "P2")
	r1, _, _ := p.Receive(req1, t0)
	p.Receive(req2, t0.Add(time.Minute))
	conf, _, _, err := p.Confirm(r1.ID, "ja", exp)
	if err != nil {
		t.Fatal(err)
	}
	state, err := p.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	q, err := RestorePractice(id, "80331", approbation(t), state)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := q.MarshalState(); !bytes.Equal(again, state) {
		t.Fatal("state does not round-trip")
	}
	if q.Seq() != p.Seq() || len(q.Free()) != 2 || len(q.Requests()) != 2 {
		t.Fatalf("restored: seq %d, %d free, %d requests", q.Seq(), len(q.Free()), len(q.Requests()))
	}
	if _, answer, err := q.Receive(req1, t0.Add(time.Hour)); err != nil || !bytes.Equal(answer, conf) {
		t.Fatalf("retransmission after restart: %v", err)
	}
	if st, _ := p1.OpenAnswer(conf); st != Confirmed {
		t.Fatal(st)
	}
	_, req3 := reserveFrom(t, ann, 1, "P3")
	if _, answer, err := q.Receive(req3, t0.Add(time.Hour)); err != nil || answer == nil {
		t.Fatalf("taken after restart: %v", err)
	}
	reqs := q.Requests()
	if _, next, _, err := q.Confirm(reqs[1].ID, "", exp); err != nil {
		t.Fatal(err)
	} else if a, _ := DecodeSlotAnnounce(next); a.Seq != p.Seq()+1 || len(a.Slots) != 1 {
		t.Fatalf("after restart: seq %d, %d slots", a.Seq, len(a.Slots))
	}
	for _, bad := range [][]byte{nil, {0x80}, state[:len(state)-1], append(append([]byte(nil), state...), 0)} {
		if _, err := RestorePractice(id, "80331", approbation(t), bad); !errors.Is(err, ErrDamagedRecord) {
			t.Errorf("damaged state %x: %v", bad, err)
		}
	}
}
