package fapp

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// TestPracticeBoundedUnderHostileReservations: 100,000 fresh reservations
// (of free, confirmed and unknown slots, with the longest note) leave a
// practice whose state record stays far below MaxPracticeState, restores,
// and still takes a genuine reservation; pending ones are capped per slot
// and in all, the rest answered declined at once.
func TestPracticeBoundedUnderHostileReservations(t *testing.T) {
	// The state saturates after about 1,300 requests; 10,000 keeps the
	// test short under -race (before the bounds, a few hundred with notes
	// made a record the decoder refused). QPCTEST_FAPP_HOSTILE=100000 runs the long form
	// (100,000: a record of 64,757 bytes, 46 s without -race).
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("QPCTEST_FAPP_HOSTILE")); err == nil && v > 0 {
		n = v
	}
	if testing.Short() {
		n = 3_000
	}
	id := identityFrom(t, "T1")
	p := newPractice(t, "T1", "80331")
	exp := t0.Add(48 * time.Hour)
	var slots []Slot
	for i := uint32(1); i <= MaxSlotsPerAnnounce; i++ {
		slots = append(slots, testSlot(i, int(i)+20))
	}
	ann := publish(t, p, exp, slots...)
	// Confirm one slot, so "taken" answers come too.
	_, req := reserveFrom(t, ann, 1, "first")
	r, _, _ := p.Receive(req, t0)
	if _, _, _, err := p.Confirm(r.ID, "ja", exp); err != nil {
		t.Fatal(err)
	}
	// Slot 32 leaves the set, so "not available" answers come too.
	ann2 := publish(t, p, exp, slots[1:MaxSlotsPerAnnounce-1]...)
	a, err := DecodeSlotAnnounce(ann)
	if err != nil {
		t.Fatal(err)
	}
	note := strings.Repeat("x", MaxNoteSize)
	counts := map[ReceiveOutcome]int{}
	var first []byte
	for i := 0; i < n; i++ {
		slot := uint32(i%MaxSlotsPerAnnounce) + 1 // 1 confirmed, 32 gone
		_, f, err := NewReservation(&a, slot, note, DefaultAnnounceHops, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = f
		}
		_, _, oc, err := p.ReceiveOutcome(f, t0.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(i, err)
		}
		counts[oc]++
	}
	if counts[ReceivePending] > MaxPending || counts[ReceiveRefused] == 0 || counts[ReceiveAtOnce] == 0 {
		t.Fatalf("outcomes %v", counts)
	}
	if got := len(p.requests); got > MaxPending+MaxAtOnceRequests+MaxDecidedRequests+len(p.confirmed) {
		t.Fatalf("%d requests kept", got)
	}
	state, err := p.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if len(state) > MaxPracticeState/4 {
		t.Fatalf("state of %d bytes after %d hostile reservations, want at most %d", len(state), n, MaxPracticeState/4)
	}
	t.Logf("%d reservations %v: %d requests kept, state %d bytes", n, counts, len(p.requests), len(state))
	q, err := RestorePractice(id, "80331", approbation(t), state)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := q.MarshalState(); !bytes.Equal(again, state) {
		t.Fatal("state does not round-trip")
	}
	// The decided ones are bounded too: the therapist declines every
	// pending one, the history keeps MaxDecidedRequests.
	for _, ri := range q.Requests() {
		if ri.Status == Pending {
			if _, _, err := q.Decline(ri.ID, "", exp); err != nil {
				t.Fatal(err)
			}
		}
	}
	if q.decided > MaxDecidedRequests {
		t.Fatalf("%d decided kept", q.decided)
	}
	// A retransmission of the first (pending, then declined) gets an
	// answer; a genuine new reservation is pending again.
	if _, ans, err := q.Receive(first, t0.Add(time.Hour)); err != nil || ans == nil {
		t.Fatalf("retransmission: %v", err)
	}
	_, g := reserveFrom(t, ann2, 2, "genuine")
	if _, ans, oc, err := q.ReceiveOutcome(g, t0.Add(2*time.Hour)); err != nil || ans != nil || oc != ReceivePending {
		t.Fatalf("genuine: %v %v", oc, err)
	}
}

// TestPracticePendingCapPerSlot: the ninth reservation of one slot is
// declined at once with RefusedText, and stays so when repeated.
func TestPracticePendingCapPerSlot(t *testing.T) {
	p := newPractice(t, "T1", "80331")
	exp := t0.Add(48 * time.Hour)
	ann := publish(t, p, exp, testSlot(1, 26), testSlot(2, 30))
	for i := 0; i < MaxPendingPerSlot; i++ {
		_, f := reserveFrom(t, ann, 1, "")
		if _, ans, oc, err := p.ReceiveOutcome(f, t0); err != nil || ans != nil || oc != ReceivePending {
			t.Fatalf("%d: %v %v", i, oc, err)
		}
	}
	res, f := reserveFrom(t, ann, 1, "")
	_, ans, oc, err := p.ReceiveOutcome(f, t0)
	if err != nil || oc != ReceiveRefused || ans == nil {
		t.Fatalf("over the cap: %v %v", oc, err)
	}
	if st, err := res.OpenAnswer(ans); err != nil || st != Declined || res.Text != RefusedText {
		t.Fatalf("refusal: %v %v %q", st, err, res.Text)
	}
	if _, again, oc, _ := p.ReceiveOutcome(f, t0); oc != ReceiveRepeat || !bytes.Equal(again, ans) {
		t.Fatal("repeat of a refused one")
	}
	// Another slot still takes reservations.
	_, f2 := reserveFrom(t, ann, 2, "")
	if _, _, oc, _ := p.ReceiveOutcome(f2, t0); oc != ReceivePending {
		t.Fatal(oc)
	}
}

// TestRestorePracticeCutsAnOldUnboundedRecord: a record written before the
// bounds (thousands of answered requests) restores and is cut to them.
func TestRestorePracticeCutsAnOldUnboundedRecord(t *testing.T) {
	id := identityFrom(t, "T1")
	st := practiceState{Version: practiceStateVersion, Seq: 3}
	for i := 0; i < 3*MaxDecidedRequests; i++ {
		var rid [16]byte
		rid[0], rid[1] = byte(i), byte(i>>8)
		st.Requests = append(st.Requests, requestState{ID: rid, Slot: 9, Status: Declined, AtMilli: int64(i)})
	}
	b, err := messages.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	p, err := RestorePractice(id, "80331", approbation(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.requests) != MaxDecidedRequests || p.Seq() != 3 {
		t.Fatalf("%d requests", len(p.requests))
	}
	if _, err := RestorePractice(id, "80331", approbation(t), append(b, 0)); !errors.Is(err, ErrDamagedRecord) {
		t.Fatal(err)
	}
}
