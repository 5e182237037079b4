package fapp

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/quicprochat/qpc/actors/ratelimit"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/messages"
)

// failingState refuses to write while fail is set.
type failingState struct {
	fail     bool
	practice []byte
}

var errDisk = errors.New("disk full")

func (s *failingState) SavePractice(b []byte) error {
	if s.fail {
		return errDisk
	}
	s.practice = append([]byte(nil), b...)
	return nil
}

func (s *failingState) SaveReservation(*fapp.Reservation) error {
	if s.fail {
		return errDisk
	}
	return nil
}

// TestEnginePublishReportsAStateNotWritten: a Publish, Confirm or
// renewal whose state cannot be written returns the error (Publish,
// Answer) and leaves memory as it was on disk: same sequence, same set,
// nothing sent.
func TestEnginePublishReportsAStateNotWritten(t *testing.T) {
	tm := newTestMesh(t)
	th := tm.add(Roles{Therapist: true})
	st := &failingState{}
	th.eng.cfg.State = st
	now := tm.clk.Now()
	seq, _, _, err := th.eng.Publish([]fapp.Slot{testSlot(now, 1, 1)})
	if err != nil || seq != 1 {
		t.Fatal(seq, err)
	}
	st.fail = true
	if _, _, outs, err := th.eng.Publish([]fapp.Slot{testSlot(now, 2, 1), testSlot(now, 3, 2)}); !errors.Is(err, errDisk) || len(outs) != 0 {
		t.Fatalf("publish with a failing disk: %v, %d frames", err, len(outs))
	}
	if th.eng.cfg.Practice.Seq() != 1 || len(th.eng.Free()) != 1 || th.eng.Free()[0].ID != 1 {
		t.Fatalf("memory ahead of disk: seq %d, free %v", th.eng.cfg.Practice.Seq(), th.eng.Free())
	}
	if outs := th.eng.Reannounce(); len(outs) != 0 || th.eng.cfg.Practice.Seq() != 1 {
		t.Fatalf("renewal with a failing disk sent %d frames, seq %d", len(outs), th.eng.cfg.Practice.Seq())
	}
	st.fail = false
	if seq, _, _, err := th.eng.Publish([]fapp.Slot{testSlot(now, 2, 1)}); err != nil || seq != 2 {
		t.Fatalf("after the disk came back: seq %d, %v", seq, err)
	}
	_ = time.Second
}

// TestEngineTherapistBucketsBounded: 50,000 fresh therapist identities,
// none of whose buckets is ever full again in the window, keep the
// per-therapist buckets at about 2×MaxPaths, and an active therapist's
// limit holds throughout (its bucket stays in the current generation).
func TestEngineTherapistBucketsBounded(t *testing.T) {
	tm := newTestMesh(t)
	r := tm.add(Roles{Relay: true})
	now := tm.clk.Now()
	max := r.eng.cfg.MaxPaths
	var active crypto.Address
	active[0] = 0xAA
	for range DefaultTherapistBurst {
		if !r.eng.allowTherapist(active, now) {
			t.Fatal("burst refused")
		}
	}
	for i := range 50_000 {
		var a crypto.Address
		binary.BigEndian.PutUint64(a[:], uint64(i)+1)
		r.eng.allowTherapist(a, now)
		if n := r.eng.therapists.len(); n > 2*max {
			t.Fatalf("%d buckets after %d identities, max %d", n, i+1, 2*max)
		}
		if i%1000 == 0 && r.eng.allowTherapist(active, now) {
			t.Fatalf("the active therapist got a token back after %d identities", i)
		}
	}
	if r.eng.therapists.generations == 0 {
		t.Fatal("never rotated")
	}
}

// TestEngineTenConfirmsReachTheRelay: P – R – T; P reserves ten slots, T
// confirms all ten at once. T paces its announces to what R accepts and R
// keeps the newest it refused; within two simulated minutes (the actor's
// timers: FlushAnnounce when AnnounceDue, Sweep every 30 s) R holds T's
// newest sequence and a search returns no confirmed slot.
func TestEngineTenConfirmsReachTheRelay(t *testing.T) {
	tm := newTestMesh(t)
	p := tm.add(Roles{Patient: true})
	r := tm.add(Roles{Relay: true})
	tr := tm.add(Roles{Therapist: true})
	tm.link(p, r)
	tm.link(r, tr)
	now := tm.clk.Now()
	var slots []fapp.Slot
	for i := range 12 {
		slots = append(slots, testSlot(now, uint32(i+1), i+1))
	}
	_, _, outs, err := tr.eng.Publish(slots)
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(tr, outs)
	search := func() []fapp.Result {
		qid, outs, err := p.eng.StartSearch(fapp.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		tm.deliver(p, outs)
		rs, err := p.eng.EndSearch(qid)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	rs := search()
	if len(rs) != 12 {
		t.Fatalf("found %d", len(rs))
	}
	for _, x := range rs[:10] {
		tm.clk.Advance(time.Second) // within R's forward budget for P
		_, outs, err := p.eng.Reserve(x.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		tm.deliver(p, outs)
	}
	reqs, _ := tr.eng.Requests()
	if len(reqs) != 10 {
		t.Fatalf("%d requests", len(reqs))
	}
	for _, q := range reqs {
		_, outs, err := tr.eng.Answer(q.ID, true, "")
		if err != nil {
			t.Fatal(err)
		}
		tm.deliver(tr, outs)
	}
	want := tr.eng.cfg.Practice.Seq()
	deadline := tm.clk.Now().Add(2 * time.Minute)
	for r.eng.cfg.Store.Seq(tr.id.Address()) != want {
		if tm.clk.Now().After(deadline) {
			t.Fatalf("R holds seq %d after 2 min, want %d", r.eng.cfg.Store.Seq(tr.id.Address()), want)
		}
		d := tr.eng.AnnounceDue()
		if d <= 0 || d > 30*time.Second {
			d = 30 * time.Second
		}
		tm.clk.Advance(d)
		tm.deliver(tr, tr.eng.FlushAnnounce())
		tm.deliver(r, r.eng.Sweep())
	}
	if got := search(); len(got) != 2 {
		t.Fatalf("after the confirms a search found %d slots, want the 2 not confirmed", len(got))
	}
	if val(tr.m.Own, "announce_paced") == 0 {
		t.Fatal("T never paced")
	}
}

// TestEngineRelayAppliesTheNewestHeldSet: a therapist that does not pace
// (ten sets at once, straight from its practice): R refuses the ones over
// the rate, keeps the newest, and takes it at a sweep once the therapist
// has a token again; an older held one never replaces a newer.
func TestEngineRelayAppliesTheNewestHeldSet(t *testing.T) {
	tm := newTestMesh(t)
	r := tm.add(Roles{Relay: true})
	tr := tm.add(Roles{Therapist: true})
	now := tm.clk.Now()
	exp := now.Add(time.Hour)
	from := crypto.Address{1}
	var last uint64
	for i := range 10 {
		f, err := tr.eng.cfg.Practice.Publish([]fapp.Slot{testSlot(now, uint32(i+1), 1)}, exp)
		if err != nil {
			t.Fatal(err)
		}
		r.eng.Handle(from, f)
		last = tr.eng.cfg.Practice.Seq()
	}
	if got := r.eng.cfg.Store.Seq(tr.id.Address()); got != DefaultTherapistBurst {
		t.Fatalf("R took up to seq %d, want the burst %d", got, DefaultTherapistBurst)
	}
	if len(r.eng.held) != 1 || r.eng.held[tr.id.Address()].seq != last {
		t.Fatalf("held %d, want the newest", len(r.eng.held))
	}
	if outs := r.eng.Sweep(); len(outs) != 0 {
		t.Fatal("applied without a token")
	}
	tm.clk.Advance(11 * time.Second)
	outs := r.eng.Sweep()
	if len(outs) != 1 || r.eng.cfg.Store.Seq(tr.id.Address()) != last || len(r.eng.held) != 0 {
		t.Fatalf("after a token: %d frames, seq %d", len(outs), r.eng.cfg.Store.Seq(tr.id.Address()))
	}
}

// TestEngineOnePatientCannotStarveTheOthersBehindARelay: P1 and P2 next to
// R, R next to T; T admits R's FAPP frames through a per-neighbour bucket
// as ratelimit does (20/s, burst 60). P1 floods 1,000 searches at once;
// R forwards at most its budget of them, so P2's one search still reaches
// T and P2 gets T's answer.
func TestEngineOnePatientCannotStarveTheOthersBehindARelay(t *testing.T) {
	tm := newTestMesh(t)
	p1 := tm.add(Roles{Patient: true})
	p2 := tm.add(Roles{Patient: true})
	r := tm.add(Roles{Relay: true})
	tr := tm.add(Roles{Therapist: true})
	tm.link(p1, r)
	tm.link(p2, r)
	tm.link(r, tr)
	now := tm.clk.Now()
	_, _, outs, err := tr.eng.Publish([]fapp.Slot{testSlot(now, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(tr, outs)
	atT := &ratelimit.Bucket{Rate: 20, Burst: 60}
	refusedAtT := 0
	tm.admit = func(from, to crypto.Address, _ []byte) bool {
		if to == tr.id.Address() && from == r.id.Address() {
			if !atT.Allow(tm.clk.Now()) {
				refusedAtT++
				return false
			}
		}
		return true
	}
	for range 1000 {
		_, outs, err := p1.eng.StartSearch(fapp.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		tm.deliver(p1, outs)
	}
	if got := val(r.m.Forwarded, "query"); got > DefaultForwardBurst {
		t.Fatalf("R forwarded %v of P1's queries, budget %d", got, DefaultForwardBurst)
	}
	if val(r.m.Dropped, "query", "forward_budget") == 0 {
		t.Fatal("not counted")
	}
	qid, outs, err := p2.eng.StartSearch(fapp.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(p2, outs)
	rs, err := p2.eng.EndSearch(qid)
	// Two responses: R's from its store and T's, through T's bucket.
	if err != nil || len(rs) != 1 || val(p2.m.Own, "responses") != 2 {
		t.Fatalf("P2 found %d (%v), %v responses, behind P1's flood; T refused %d of R's frames",
			len(rs), err, val(p2.m.Own, "responses"), refusedAtT)
	}
}

// memState keeps what a State keeps, in memory, retries included.
type memState struct {
	practice []byte
	res      map[[16]byte]*fapp.Reservation
	retries  map[[16]byte]PendingReserve
}

func (s *memState) SavePractice(b []byte) error { s.practice = append([]byte(nil), b...); return nil }
func (s *memState) SaveReservation(r *fapp.Reservation) error {
	s.res[r.ID] = r
	return nil
}
func (s *memState) SaveRetry(p PendingReserve) error { s.retries[p.ID] = p; return nil }
func (s *memState) DeleteRetry(id [16]byte) error    { delete(s.retries, id); return nil }

// TestEngineRetransmitsALostReservation: P – R – T; the first SlotReserve
// from R to T is lost. P sends it again at its sweeps (30 s, then 60 s,
// …, at most 10 min apart) until it is answered: T gets it once, its
// repeat answer (confirmed) reaches P, and the retransmissions stop. A
// patient restarted with a reservation pending resumes them.
func TestEngineRetransmitsALostReservation(t *testing.T) {
	tm := newTestMesh(t)
	p := tm.add(Roles{Patient: true})
	r := tm.add(Roles{Relay: true})
	tr := tm.add(Roles{Therapist: true})
	tm.link(p, r)
	tm.link(r, tr)
	ms := &memState{res: map[[16]byte]*fapp.Reservation{}, retries: map[[16]byte]PendingReserve{}}
	p.eng.cfg.State = ms
	now := tm.clk.Now()
	_, _, outs, err := tr.eng.Publish([]fapp.Slot{testSlot(now, 1, 1), testSlot(now, 2, 2)})
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(tr, outs)
	qid, outs, _ := p.eng.StartSearch(fapp.Filter{})
	tm.deliver(p, outs)
	rs, _ := p.eng.EndSearch(qid)
	if len(rs) != 2 {
		t.Fatalf("found %d", len(rs))
	}
	lost := 0
	tm.admit = func(from, to crypto.Address, data []byte) bool {
		if k, _, _, _ := fapp.Peek(data); k == fapp.KindReserve && to == tr.id.Address() && lost == 0 {
			lost++
			return false
		}
		return true
	}
	res, outs, err := p.eng.Reserve(rs[0].ID, "bitte")
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(p, outs)
	if reqs, _ := tr.eng.Requests(); len(reqs) != 0 || lost != 1 {
		t.Fatalf("the first reserve was not lost: %d requests", len(reqs))
	}
	if len(ms.retries) != 1 {
		t.Fatal("the frame was not persisted for retransmission")
	}
	sweep := func(d time.Duration) {
		tm.clk.Advance(d)
		tm.deliver(p, p.eng.Sweep())
		tm.deliver(r, r.eng.Sweep())
	}
	sweep(10 * time.Second) // not due yet
	if val(p.m.Own, "reservations_retransmitted") != 0 {
		t.Fatal("retransmitted early")
	}
	sweep(30 * time.Second)
	reqs, _ := tr.eng.Requests()
	if len(reqs) != 1 || val(p.m.Own, "reservations_retransmitted") != 1 {
		t.Fatalf("after the retransmission T has %d requests", len(reqs))
	}
	// Still pending at T: more retransmissions change nothing there, and
	// come ever further apart.
	for range 20 {
		sweep(30 * time.Second)
	}
	if n := val(p.m.Own, "reservations_retransmitted"); n < 3 || n > 6 {
		t.Fatalf("%v retransmissions in 10.5 min, want a capped backoff (30 s, 60 s, 2 min, 4 min, …)", n)
	}
	if reqs, _ := tr.eng.Requests(); len(reqs) != 1 {
		t.Fatalf("T has %d requests", len(reqs))
	}
	// A restart of P with its reservation pending: the retransmissions
	// resume at the first sweep; T answers meanwhile, but the answer to
	// the old P is lost: the restarted P gets it by its retransmission
	// (T answers a repeat with the same answer).
	_, outs, err = tr.eng.Answer(reqs[0].ID, true, "willkommen")
	if err != nil {
		t.Fatal(err)
	}
	_ = outs // lost
	var restored []PendingReserve
	for _, x := range ms.retries {
		restored = append(restored, x)
	}
	p2 := tm.add(Roles{Patient: true})
	p2.eng = NewEngine(EngineConfig{Self: p.id.Address(), Roles: Roles{Patient: true}, Clock: tm.clk, Metrics: p2.m,
		State: ms, Reservations: []*fapp.Reservation{ms.res[res.ID]}, Retries: restored})
	delete(tm.nodes, p2.id.Address())
	p2.id = p.id
	tm.nodes[p.id.Address()] = p2
	p2.links = p.links
	sweep0 := val(p2.m.Own, "reservations_retransmitted")
	tm.clk.Advance(time.Second)
	tm.deliver(p2, p2.eng.Sweep())
	if val(p2.m.Own, "reservations_retransmitted") != sweep0+1 {
		t.Fatal("the restarted patient did not resume")
	}
	if got, _ := p2.eng.Reservation(res.ID); got.Status != fapp.Confirmed || got.Text != "willkommen" {
		t.Fatalf("after the restart P's reservation is %s", got.Status)
	}
	if len(ms.retries) != 0 {
		t.Fatal("the answered reservation is still scheduled")
	}
	tm.clk.Advance(time.Hour)
	if outs := p2.eng.Sweep(); len(outs) != 0 {
		t.Fatal("retransmitted after the answer")
	}
}

// TestEngineSkipsPatientOnlyLoRaNeighbours: a relay floods announces and
// queries to every link but those of neighbours reached over LoRa only
// whose announce says patient only; a patient over a fast link, a relay
// over LoRa, and a neighbour whose capabilities are not known still get
// them.
func TestEngineSkipsPatientOnlyLoRaNeighbours(t *testing.T) {
	tm := newTestMesh(t)
	r := tm.add(Roles{Relay: true})
	tr := tm.add(Roles{Therapist: true})
	loraP, fastP, loraR, unknown := [16]byte{1}, [16]byte{2}, [16]byte{3}, [16]byte{4}
	from := tr.id.Address()
	r.eng.LinkUp(from, 1, false)
	r.eng.LinkUp(loraP, 2, true)
	r.eng.LinkUp(fastP, 3, false)
	r.eng.LinkUp(loraR, 4, true)
	r.eng.LinkUp(unknown, 5, true)
	r.eng.SetRoutes([]messages.RouteInfo{
		{Address: loraP, NextHop: loraP, Capabilities: messages.CapFAPPPatient},
		{Address: fastP, NextHop: fastP, Capabilities: messages.CapFAPPPatient},
		{Address: loraR, NextHop: loraR, Capabilities: messages.CapFAPPRelay | messages.CapFAPPPatient},
	})
	_, _, outs, err := tr.eng.Publish([]fapp.Slot{testSlot(tm.clk.Now(), 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[[16]byte]bool{}
	for _, o := range r.eng.Handle(from, outs[0].Data) {
		if o.All {
			t.Fatal("a broadcast with a patient-only LoRa neighbour")
		}
		got[o.Peer] = true
	}
	if got[loraP] || got[from] || !got[fastP] || !got[loraR] || !got[unknown] || len(got) != 3 {
		t.Fatalf("announce went to %v", got)
	}
	q, err := fapp.NewQuery(fapp.Filter{}, 4, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	qf, _ := fapp.EncodeSlotQuery(q.Query)
	got = map[[16]byte]bool{}
	for _, o := range r.eng.Handle(fastP, qf) {
		if o.Kind == fapp.KindQuery {
			got[o.Peer] = true
		}
	}
	if got[loraP] || got[fastP] || !got[loraR] || !got[from] || len(got) != 3 {
		t.Fatalf("query went to %v", got)
	}
	if val(r.m.Dropped, "announce", "patient_only_lora") != 1 || val(r.m.Dropped, "query", "patient_only_lora") != 1 {
		t.Fatal("not counted")
	}
}

// TestEngineAnswerReportsAStateNotWritten: a confirm whose state cannot be
// written returns the error, sends nothing, and leaves the request
// pending (it can be confirmed once the disk is back).
func TestEngineAnswerReportsAStateNotWritten(t *testing.T) {
	tm := newTestMesh(t)
	p := tm.add(Roles{Patient: true})
	tr := tm.add(Roles{Therapist: true})
	tm.link(p, tr)
	st := &failingState{}
	tr.eng.cfg.State = st
	now := tm.clk.Now()
	_, _, outs, err := tr.eng.Publish([]fapp.Slot{testSlot(now, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(tr, outs)
	qid, outs, _ := p.eng.StartSearch(fapp.Filter{})
	tm.deliver(p, outs)
	rs, _ := p.eng.EndSearch(qid)
	if len(rs) != 1 {
		t.Fatalf("found %d", len(rs))
	}
	_, outs, _ = p.eng.Reserve(rs[0].ID, "")
	tm.deliver(p, outs)
	reqs, _ := tr.eng.Requests()
	if len(reqs) != 1 {
		t.Fatal(len(reqs))
	}
	st.fail = true
	if _, outs, err := tr.eng.Answer(reqs[0].ID, true, "ja"); !errors.Is(err, errDisk) || len(outs) != 0 {
		t.Fatalf("confirm with a failing disk: %v, %d frames", err, len(outs))
	}
	if again, _ := tr.eng.Requests(); again[0].Status != fapp.Pending || tr.eng.cfg.Practice.Seq() != 1 || len(tr.eng.Free()) != 1 {
		t.Fatalf("memory ahead of disk: %s, seq %d", again[0].Status, tr.eng.cfg.Practice.Seq())
	}
	st.fail = false
	if s, _, err := tr.eng.Answer(reqs[0].ID, true, "ja"); err != nil || s != fapp.Confirmed {
		t.Fatalf("after the disk came back: %v %v", s, err)
	}
}

// TestEngineStopsRetransmittingOnceTheSlotStarted: a reservation never
// answered is sent again only until its slot starts.
func TestEngineStopsRetransmittingOnceTheSlotStarted(t *testing.T) {
	tm := newTestMesh(t)
	p := tm.add(Roles{Patient: true})
	tr := tm.add(Roles{Therapist: true})
	tm.link(p, tr)
	now := tm.clk.Now()
	_, _, outs, err := tr.eng.Publish([]fapp.Slot{testSlot(now, 1, 1)}) // starts in a day
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(tr, outs)
	qid, outs, _ := p.eng.StartSearch(fapp.Filter{})
	tm.deliver(p, outs)
	rs, _ := p.eng.EndSearch(qid)
	if len(rs) != 1 {
		t.Fatalf("found %d", len(rs))
	}
	if _, _, err := p.eng.Reserve(rs[0].ID, ""); err != nil { // never delivered
		t.Fatal(err)
	}
	tm.clk.Advance(time.Minute)
	if outs := p.eng.Sweep(); len(outs) != 1 {
		t.Fatalf("%d frames at the first retransmission", len(outs))
	}
	tm.clk.Advance(25 * time.Hour)
	if outs := p.eng.Sweep(); len(outs) != 0 || len(p.eng.retries) != 0 {
		t.Fatalf("retransmitted after the slot started: %d frames", len(outs))
	}
}
