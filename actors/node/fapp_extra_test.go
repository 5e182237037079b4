package node

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports/mem"
)

// startFAPPPair starts a therapist that is also a relay (T, PLZ 80331)
// and a patient (P) linked to it over mem, and waits for their routes.
func startFAPPPair(t *testing.T, opts ...Option) (tn, pn *Node) {
	t.Helper()
	net := mem.NewNetwork()
	ct := therapistConfig(t, "Praxis Eins", "80331")
	ct.FAPP.Role = []string{config.FAPPTherapist, config.FAPPRelay}
	ct.Transports.Listen = []string{"mem://t"}
	tn, _ = startNode(t, ct, append([]Option{WithMemNetwork(net)}, opts...)...)
	cp := fappConfig(t, config.FAPPPatient)
	cp.Transports.Peers = []string{"mem://t"}
	pn, _ = startNode(t, cp, append([]Option{WithMemNetwork(net)}, opts...)...)
	waitRoute(t, pn, tn.Address())
	waitRoute(t, tn, pn.Address())
	return tn, pn
}

// spyClock is a manual clock that reports every AfterFunc's duration,
// so a test knows when a wait has been armed on it.
type spyClock struct {
	*clock.Manual
	mu    sync.Mutex
	armed []time.Duration
}

func (c *spyClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	c.armed = append(c.armed, d)
	c.mu.Unlock()
	return c.Manual.AfterFunc(d, f)
}

func (c *spyClock) count(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.armed {
		if a == d {
			n++
		}
	}
	return n
}

// TestFAPPWaitsOnTheNodeClock is a regression test for the search and
// status waits running on the real clock (time.NewTimer) instead of the
// node's: on a manual clock a search with wait 30s (and a status wait of
// 30s on a pending reservation) returns once the clock has moved past
// 30s, and not at 29s. Real time bounds the test only.
func TestFAPPWaitsOnTheNodeClock(t *testing.T) {
	const wait = 30 * time.Second
	clk := &spyClock{Manual: manualClock()}
	tn, pn := startFAPPPair(t, WithClock(clk))
	ctx := context.Background()
	base := clk.Now().Add(48 * time.Hour)
	s := fappSlot(base, 1, fapp.Verhaltenstherapie, fapp.Praxis, fapp.GKV)
	pub, err := tn.FAPPPublish(ctx, []fapp.Slot{s})
	if err != nil {
		t.Fatal(err)
	}

	// waitFor runs call on its own goroutine, waits until it has armed a
	// 30s timer on clk and ready holds, checks it is still blocked at 29s
	// and done after 31s.
	waitFor := func(what string, ready func() bool, call func() error) {
		t.Helper()
		before := clk.count(wait)
		done := make(chan error, 1)
		go func() { done <- call() }()
		probe.Until(t, 10*time.Second, func() bool { return clk.count(wait) > before }, "%s to arm its 30s wait on the node's clock", what)
		probe.Until(t, 10*time.Second, ready, "%s to have what it waits for", what)
		clk.Advance(wait - time.Second)
		probe.Parked(t, 10*time.Second, "node.(*Node).FAPP")
		select {
		case err := <-done:
			t.Fatalf("%s returned at 29s of a 30s wait (err %v)", what, err)
		default:
		}
		clk.Advance(2 * time.Second)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not return within 10s (real) after the node's clock passed its 30s wait", what)
		}
	}

	f := fappSearchFilter(clk.Now())
	var found api.FAPPSearchResponse
	// The search's wait ends on the clock, not when T's response is in:
	// the clock moves only once P has opened T's response.
	responses := func() bool {
		return testutil.ToFloat64(pn.Metrics().FAPP.Own.WithLabelValues("responses")) >= 1
	}
	waitFor("the search", responses, func() (err error) {
		found, err = pn.FAPPSearch(ctx, f, wait)
		return err
	})
	if len(found.Slots) != 1 || found.Slots[0].Slot != pub.Slots[0].Slot {
		t.Fatalf("the search found %+v, want T's slot %s", found.Slots, pub.Slots[0].Slot)
	}

	target, _ := fapp.ParseSlotID(pub.Slots[0].Slot)
	res, err := pn.FAPPReserve(ctx, target, "")
	if err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool {
		rq, err := tn.FAPPRequests(ctx)
		return err == nil && len(rq.Requests) == 1
	}, "T to receive the reservation")
	var st api.FAPPReservation
	waitFor("the status wait", func() bool { return true }, func() (err error) {
		st, err = pn.FAPPStatus(ctx, res.Reservation, wait)
		return err
	})
	if st.Status != "pending" {
		t.Fatalf("status after the wait = %+v, want pending (T did not answer)", st)
	}
}

// TestFAPPParallelSlotsGetTheirOwnIDs is a regression test for slot ids
// derived from start, minutes and type only: parallel slots (the same
// start) that differ only in Modalitaet, Fachrichtung or Kostentraeger
// collided and the publish failed with "slot id N twice", an id the user
// never wrote. Now each gets its own id, stable when published again, and
// a slot given twice alike in every field is named by its start.
func TestFAPPParallelSlotsGetTheirOwnIDs(t *testing.T) {
	c := therapistConfig(t, "Praxis Eins", "80331")
	tn, _ := startNode(t, c)
	ctx := context.Background()
	start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
	s := fapp.Slot{Start: uint32(start.Unix()), Minutes: 50, Type: fapp.Therapieplatz,
		Fachrichtung: fapp.Verhaltenstherapie, Modalitaet: fapp.Praxis, Kostentraeger: fapp.GKV}
	video, tiefen, pkv, defaults := s, s, s, s
	video.Modalitaet = fapp.Video
	tiefen.Fachrichtung = fapp.Tiefenpsychologisch
	pkv.Kostentraeger = fapp.PKV
	defaults.Fachrichtung, defaults.Kostentraeger = 0, 0 // the config's: verhaltenstherapie; gkv, selbstzahler
	slots := []fapp.Slot{s, video, tiefen, pkv, defaults}
	pub, err := tn.FAPPPublish(ctx, slots)
	if err != nil {
		t.Fatalf("publishing five parallel slots that differ in one field each: %v", err)
	}
	ids := map[string]bool{}
	for _, j := range pub.Slots {
		ids[j.Slot] = true
	}
	if len(pub.Slots) != len(slots) || len(ids) != len(slots) {
		t.Fatalf("published %d slots with %d ids, want %d and %d: %+v", len(pub.Slots), len(ids), len(slots), len(slots), pub.Slots)
	}
	again, err := tn.FAPPPublish(ctx, slots)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again.Slots {
		if again.Slots[i].Slot != pub.Slots[i].Slot {
			t.Fatalf("slot %d changed its id on the second publish: %s, then %s", i, pub.Slots[i].Slot, again.Slots[i].Slot)
		}
	}

	// Alike in every field once the defaults are filled: the same slot.
	filled := defaults
	filled.Kostentraeger = fapp.GKV | fapp.Selbstzahler
	for _, pair := range [][]fapp.Slot{{s, video, s}, {defaults, filled}} {
		_, err = tn.FAPPPublish(ctx, pair)
		if !errors.Is(err, fapp.ErrBadValue) {
			t.Fatalf("publishing %+v: err %v, want fapp.ErrBadValue", pair, err)
		}
		msg := err.Error()
		if at := start.UTC().Format(time.RFC3339); !strings.Contains(msg, at) || !strings.Contains(msg, "same slot twice") || strings.Contains(msg, "slot id") {
			t.Fatalf("error %q: want it to name the start %s and say the same slot is given twice, without a derived id", msg, at)
		}
	}
	// A parallel slot that only differs in its SlotType is its own.
	sp := s
	sp.Type = fapp.Sprechstunde
	if _, err := tn.FAPPPublish(ctx, []fapp.Slot{s, sp}); err != nil {
		t.Fatalf("two slots differing in type: %v", err)
	}
}

// TestSlotIDForCoversEveryField: changing any one field of a slot's
// content changes its derived id; the id field itself does not.
func TestSlotIDForCoversEveryField(t *testing.T) {
	s := fapp.Slot{Start: 1_800_000_000, Minutes: 50, Type: fapp.Therapieplatz,
		Fachrichtung: fapp.Verhaltenstherapie, Modalitaet: fapp.Praxis, Kostentraeger: fapp.GKV}
	id := SlotIDFor(s)
	if id == 0 {
		t.Fatal("id 0")
	}
	withID := s
	withID.ID = 99
	if SlotIDFor(withID) != id {
		t.Fatal("the slot's own id changed the derived id")
	}
	for name, change := range map[string]func(*fapp.Slot){
		"start":         func(x *fapp.Slot) { x.Start++ },
		"minutes":       func(x *fapp.Slot) { x.Minutes = 25 },
		"minutes>255":   func(x *fapp.Slot) { x.Minutes = 50 + 256 },
		"type":          func(x *fapp.Slot) { x.Type = fapp.Sprechstunde },
		"fachrichtung":  func(x *fapp.Slot) { x.Fachrichtung = fapp.Analytisch },
		"modalitaet":    func(x *fapp.Slot) { x.Modalitaet = fapp.Praxis | fapp.Video },
		"kostentraeger": func(x *fapp.Slot) { x.Kostentraeger = fapp.GKV | fapp.Beihilfe },
	} {
		x := s
		change(&x)
		if SlotIDFor(x) == id {
			t.Errorf("changing %s kept the id %d", name, id)
		}
	}
}

// TestFAPPSearchByType: the type filter over a link (patient → relay
// holding the therapist's set): type=sprechstunde returns exactly the
// Sprechstunde slots, and without a type all of them match (so the
// filter is what removed the others).
func TestFAPPSearchByType(t *testing.T) {
	tn, pn := startFAPPPair(t)
	ctx := context.Background()
	now := time.Now()
	base := now.Truncate(time.Hour).Add(2 * time.Hour)
	vt, gkv := fapp.Verhaltenstherapie, fapp.GKV
	slots := []fapp.Slot{
		fappSlot(base, 1, vt, fapp.Praxis, gkv), // therapieplatz
		fappSlot(base, 2, vt, fapp.Praxis, gkv), // sprechstunde
		fappSlot(base, 3, vt, fapp.Video, gkv),  // sprechstunde
		fappSlot(base, 4, vt, fapp.Praxis, gkv), // probatorik
		fappSlot(base, 5, vt, fapp.Praxis, gkv), // akutbehandlung
		fappSlot(base, 2, vt, fapp.Praxis, gkv), // gruppe, parallel to a sprechstunde
	}
	slots[1].Type, slots[2].Type = fapp.Sprechstunde, fapp.Sprechstunde
	slots[3].Type, slots[4].Type, slots[5].Type = fapp.Probatorik, fapp.Akutbehandlung, fapp.Gruppe
	pub, err := tn.FAPPPublish(ctx, slots)
	if err != nil {
		t.Fatal(err)
	}
	var all, want []string // want: the two Sprechstunden, as published
	for _, j := range pub.Slots {
		all = append(all, j.Slot)
		if j.Type == "sprechstunde" {
			want = append(want, j.Slot)
		}
	}
	sort.Strings(all)
	sort.Strings(want)
	if len(all) != len(slots) || len(want) != 2 {
		t.Fatalf("published %+v, want %d slots, 2 of them sprechstunde", pub.Slots, len(slots))
	}

	f := fappSearchFilter(now)
	if got := slotNames(t, pn, f, time.Second); !slices.Equal(got, all) {
		t.Fatalf("without a type the search found %v, want all %v", got, all)
	}
	f.Type = fapp.Sprechstunde
	ctx2, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	res, err := pn.FAPPSearch(ctx2, f, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range res.Slots {
		if j.Type != "sprechstunde" {
			t.Fatalf("type=sprechstunde returned a %s slot: %+v", j.Type, j)
		}
		got = append(got, j.Slot)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("type=sprechstunde found %v, want exactly %v", got, want)
	}
}
