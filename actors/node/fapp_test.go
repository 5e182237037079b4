package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
	"github.com/quicprochat/qpc/transports/mem"
)

// fappMesh is the five-node mesh of issue 13 acceptance 1: therapists T1
// and T2, relay R, patients P1 and P2; every other node is linked to R
// only, so P1 and P2 reach T1 and T2 only through R.
type fappMesh struct {
	R, T1, T2, P1, P2 *Node
	tap               *frameTap            // what R admitted
	taps              map[string]*frameTap // what the others admitted (from R: what R sent)
}

// frameTap records the FAPP frames R admitted, with the neighbour each
// came from (acceptance 3: what R saw).
type frameTap struct {
	mu     sync.Mutex
	frames []tapped
}

type tapped struct {
	from crypto.Address
	data []byte
}

func (t *frameTap) take(f *messages.InboundFrame) bool {
	if tag, err := messages.FrameTag(f.Data); err == nil && tag.Type() == messages.FrameFAPP {
		t.mu.Lock()
		t.frames = append(t.frames, tapped{from: f.From, data: bytes.Clone(f.Data)})
		t.mu.Unlock()
	}
	return false
}

func (t *frameTap) of(from crypto.Address, kind fapp.Kind) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out [][]byte
	for _, f := range t.frames {
		if k, _, _, err := fapp.Peek(f.data); err == nil && k == kind && (from == crypto.Address{} || f.from == from) {
			out = append(out, f.data)
		}
	}
	return out
}

func fappConfig(t *testing.T, roles ...string) config.Config {
	c := testConfig(t)
	c.Transports.Listen = nil
	c.FAPP.Role = roles
	return c
}

func therapistConfig(t *testing.T, name, plz string) config.Config {
	c := fappConfig(t, config.FAPPTherapist)
	c.FAPP.Name, c.FAPP.PLZ, c.FAPP.Approbation = name, plz, "LANR-"+plz
	c.FAPP.Fachrichtung = []string{"verhaltenstherapie", "tiefenpsychologisch"}
	c.FAPP.Kostentraeger = []string{"gkv", "selbstzahler"}
	return c
}

// startFAPPMesh starts the five nodes over net (mem when peers is
// "mem://r"); extra adjusts each config (a LoRa link for the patients).
func startFAPPMesh(t *testing.T, extra func(role string, c *config.Config), opts ...Option) *fappMesh {
	t.Helper()
	net := mem.NewNetwork()
	m := &fappMesh{tap: &frameTap{}, taps: map[string]*frameTap{}}
	cr := fappConfig(t, config.FAPPRelay)
	cr.Transports.Listen = []string{"mem://r"}
	if extra != nil {
		extra("R", &cr)
	}
	m.R, _ = startNode(t, cr, append([]Option{WithMemNetwork(net), WithInboundTap(m.tap.take)}, opts...)...)
	start := func(role string, c config.Config) *Node {
		c.Transports.Peers = []string{"mem://r"}
		if extra != nil {
			extra(role, &c)
		}
		tap := &frameTap{}
		m.taps[role] = tap
		n, _ := startNode(t, c, append([]Option{WithMemNetwork(net), WithInboundTap(tap.take)}, opts...)...)
		return n
	}
	m.T1 = start("T1", therapistConfig(t, "Praxis Eins", "80331"))
	m.T2 = start("T2", therapistConfig(t, "Praxis Zwei", "80335"))
	m.P1 = start("P1", fappConfig(t, config.FAPPPatient))
	m.P2 = start("P2", fappConfig(t, config.FAPPPatient))
	caps := map[*Node]messages.Capabilities{m.T1: messages.CapFAPPTherapist, m.T2: messages.CapFAPPTherapist, m.P1: messages.CapFAPPPatient, m.P2: messages.CapFAPPPatient}
	for _, n := range []*Node{m.T1, m.T2, m.P1, m.P2} {
		if r := waitRoute(t, m.R, n.Address()); r.Capabilities&caps[n] == 0 {
			t.Fatalf("R's route to %s announces %v, want the FAPP role's bit %v", n.Address().Short(), r.Capabilities, caps[n])
		}
		if r := waitRoute(t, n, m.R.Address()); r.Capabilities&messages.CapFAPPRelay == 0 {
			t.Fatalf("the route to R announces %v, want fapp-relay", r.Capabilities)
		}
	}
	return m
}

// fappSlot is a slot starting days after base.
func fappSlot(base time.Time, days int, fr fapp.Fachrichtung, mod fapp.Modalitaet, kt fapp.Kostentraeger) fapp.Slot {
	return fapp.Slot{
		Start: uint32(base.Add(time.Duration(days) * 24 * time.Hour).Unix()), Minutes: 50, Type: fapp.Therapieplatz,
		Fachrichtung: fr, Modalitaet: mod, Kostentraeger: kt,
	}
}

func fappCount(n *Node, outcome string) float64 {
	return testutil.ToFloat64(n.Metrics().FAPP.Announces.WithLabelValues(outcome))
}

// fappSearchFilter is acceptance 1's search: Verhaltenstherapie, GKV,
// PLZ 803, video or Praxis, the next 14 days.
func fappSearchFilter(now time.Time) fapp.Filter {
	return fapp.Filter{
		Fachrichtung: fapp.Verhaltenstherapie, Kostentraeger: fapp.GKV, PLZPrefix: "803",
		Modalitaet: fapp.Praxis | fapp.Video, From: now, To: now.Add(14 * 24 * time.Hour),
	}
}

func slotNames(t *testing.T, n *Node, f fapp.Filter, wait time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+10*time.Second)
	defer cancel()
	res, err := n.FAPPSearch(ctx, f, wait)
	if err != nil {
		t.Fatalf("search on %s: %v", n.Address().Short(), err)
	}
	var out []string
	for _, s := range res.Slots {
		out = append(out, s.Slot)
	}
	sort.Strings(out)
	return out
}

func sid(n *Node, id uint32) string { return fapp.SlotID{Therapist: n.Address(), Slot: id}.String() }

// otherTherapistAnnounce is a signed announce of a therapist outside PLZ
// 803 (a third practice, injected at R) whose slot matches everything
// else of the search.
func otherTherapistAnnounce(t *testing.T, base time.Time, seq uint64) ([]byte, *crypto.Identity) {
	t.Helper()
	id := newIdentity(t)
	appr, err := fapp.NewApprobation("LANR-10115", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := fapp.NewPractice(id, "10115", appr, seq-1)
	if err != nil {
		t.Fatal(err)
	}
	s := fappSlot(base, 1, fapp.Verhaltenstherapie, fapp.Praxis, fapp.GKV)
	s.ID = 7
	frame, err := p.Publish([]fapp.Slot{s}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return frame, id
}

// TestFAPPFiveNodeMesh is issue 13 acceptance 1 to 3 over mem links:
// T1 and T2 publish, P1 searches and gets exactly the matching slots, P1
// reserves, T1 confirms, P1 sees "confirmed"; P2 reserving the same slot
// afterwards gets "taken" and a search no longer returns it; R holds no
// plaintext of the reservation or the confirmation (its database and
// the frames it admitted), and two queries of P1 share no identifier.
func TestFAPPFiveNodeMesh(t *testing.T) {
	m := startFAPPMesh(t, nil)
	runFAPPDemo(t, m, 2*time.Second)
}

func runFAPPDemo(t *testing.T, m *fappMesh, wait time.Duration) {
	ctx := context.Background()
	now := time.Now()
	base := now.Truncate(time.Hour).Add(2 * time.Hour)
	vt, tp := fapp.Verhaltenstherapie, fapp.Tiefenpsychologisch
	gkv, pkv := fapp.GKV, fapp.PKV
	t1 := []fapp.Slot{
		fappSlot(base, 1, vt, fapp.Praxis, gkv),             // matches
		fappSlot(base, 2, vt, fapp.Video|fapp.Telefon, gkv), // matches (video)
		fappSlot(base, 3, vt, fapp.Praxis, pkv),             // Kostentraeger
		fappSlot(base, 4, tp, fapp.Praxis, gkv),             // Fachrichtung
		fappSlot(base, 5, vt, fapp.Telefon, gkv),            // Modalitaet
		fappSlot(base, 20, vt, fapp.Praxis, gkv),            // after 14 days
	}
	t1[5].Type = fapp.Sprechstunde
	// T2: a slot without Fachrichtung and Kostentraeger takes the
	// config's (verhaltenstherapie; gkv, selbstzahler).
	t2 := []fapp.Slot{
		{Start: uint32(base.Add(36 * time.Hour).Unix()), Minutes: 25, Type: fapp.Sprechstunde, Modalitaet: fapp.Video}, // matches
		fappSlot(base, 6, vt, fapp.Praxis, fapp.Selbstzahler),                                                          // Kostentraeger
	}
	pub1, err := m.T1.FAPPPublish(ctx, t1)
	if err != nil {
		t.Fatal(err)
	}
	pub2, err := m.T2.FAPPPublish(ctx, t2)
	if err != nil {
		t.Fatal(err)
	}
	if len(pub1.Slots) != 6 || len(pub2.Slots) != 2 || pub1.Seq != 1 {
		t.Fatalf("published %d and %d slots, seq %d", len(pub1.Slots), len(pub2.Slots), pub1.Seq)
	}
	for _, s := range pub2.Slots {
		if s.Minutes == 25 && (s.Fachrichtung != "verhaltenstherapie" || !slices.Equal(s.Kostentraeger, []string{"gkv", "selbstzahler"})) {
			t.Fatalf("T2's slot did not take the config's defaults: %+v", s)
		}
	}
	// The same slots again keep their ids (derived from their content).
	again, err := m.T1.FAPPPublish(ctx, t1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again.Slots {
		if again.Slots[i].Slot != pub1.Slots[i].Slot {
			t.Fatalf("slot %d changed its id on the second publish: %s, then %s", i, pub1.Slots[i].Slot, again.Slots[i].Slot)
		}
	}
	other, _ := otherTherapistAnnounce(t, base, 1)
	if err := m.R.Inject("test", newIdentity(t).Address(), other); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool { return fappCount(m.R, "added") >= 3 && fappCount(m.R, "replaced") >= 1 },
		"R to hold the three announces (T1's second set)")

	slotID := func(n *Node, s fapp.Slot) string {
		s = n.fappDefaults(s)
		return sid(n, s.ID)
	}
	want := []string{slotID(m.T1, t1[0]), slotID(m.T1, t1[1]), slotID(m.T2, t2[0])}
	sort.Strings(want)
	got := slotNames(t, m.P1, fappSearchFilter(now), wait)
	if !slices.Equal(got, want) {
		t.Fatalf("P1's search found %v, want exactly %v", got, want)
	}
	// P2 searches too and keeps the result (it reserves later).
	if got := slotNames(t, m.P2, fappSearchFilter(now), wait); !slices.Equal(got, want) {
		t.Fatalf("P2's search found %v, want exactly %v", got, want)
	}

	// P1 reserves T1's video slot; T1 confirms; P1 sees "confirmed".
	note := "Erstgespraech bitte, Notiz-4711"
	target, _ := fapp.ParseSlotID(slotID(m.T1, t1[1]))
	res, err := m.P1.FAPPReserve(ctx, target, note)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "pending" || len(res.Reservation) != 32 {
		t.Fatalf("reserve = %+v", res)
	}
	var reqID string
	probe.Until(t, 10*time.Second, func() bool {
		rq, err := m.T1.FAPPRequests(ctx)
		if err != nil || len(rq.Requests) == 0 {
			return false
		}
		if r := rq.Requests[0]; r.Note != note || r.Slot != target.String() || r.Status != "pending" {
			t.Fatalf("T1 received %+v", r)
		}
		reqID = rq.Requests[0].Reservation
		return true
	}, "T1 to receive the reservation")
	if reqID != res.Reservation {
		t.Fatalf("T1 sees reservation %s, P1 made %s", reqID, res.Reservation)
	}
	confirmText := "Bitte klingeln bei Praxis Eins, 3. OG"
	if c, err := m.T1.FAPPConfirm(ctx, reqID, confirmText); err != nil || c.Status != "confirmed" {
		t.Fatalf("confirm = %+v, %v", c, err)
	}
	st, err := m.P1.FAPPStatus(ctx, res.Reservation, 10*time.Second)
	if err != nil || st.Status != "confirmed" || st.Text != confirmText {
		t.Fatalf("P1's reservation = %+v, %v; want confirmed with the text", st, err)
	}

	// Acceptance 2: P2 reserving the same slot now gets "taken", and the
	// slot is gone from searches once R holds T1's new set.
	res2, err := m.P2.FAPPReserve(ctx, target, "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := m.P2.FAPPStatus(ctx, res2.Reservation, 10*time.Second); err != nil || st.Status != "taken" {
		t.Fatalf("P2's reservation of the confirmed slot = %+v, %v; want taken", st, err)
	}
	probe.Until(t, 10*time.Second, func() bool { return fappCount(m.R, "replaced") >= 2 }, "R to hold T1's set without the confirmed slot")
	want2 := []string{slotID(m.T1, t1[0]), slotID(m.T2, t2[0])}
	sort.Strings(want2)
	if got := slotNames(t, m.P2, fappSearchFilter(now), wait); !slices.Equal(got, want2) {
		t.Fatalf("after the confirmation P2's search found %v, want %v", got, want2)
	}
	if got := slotNames(t, m.P1, fappSearchFilter(now), wait); !slices.Equal(got, want2) {
		t.Fatalf("after the confirmation P1's search found %v, want %v", got, want2)
	}

	// Acceptance 3: what R held and saw.
	checkRelayLearnsNothing(t, m, []string{note, confirmText})
}

// checkRelayLearnsNothing: R's database and every FAPP frame R admitted
// hold none of the secrets in plaintext; the reservation and the answer
// crossed R (ciphertext); two queries of P1 share no identifier.
func checkRelayLearnsNothing(t *testing.T, m *fappMesh, secrets []string) {
	t.Helper()
	if got := len(m.tap.of(m.P1.Address(), fapp.KindReserve)); got == 0 {
		t.Fatal("R's tap saw no reservation from P1: the test would prove nothing")
	}
	if got := len(m.tap.of(m.T1.Address(), fapp.KindAnswer)); got == 0 {
		t.Fatal("R's tap saw no answer from T1")
	}
	db, err := os.ReadFile(m.R.cfg.DBPath())
	if err != nil {
		t.Fatal(err)
	}
	// What R admitted, and what R sent (as its neighbours admitted it).
	var all [][]byte
	for k := fapp.KindAnnounce; k <= fapp.KindAnswer; k++ {
		all = append(all, m.tap.of(crypto.Address{}, k)...)
		for _, tap := range m.taps {
			all = append(all, tap.of(m.R.Address(), k)...)
		}
	}
	if n := len(m.taps["P1"].of(m.R.Address(), fapp.KindAnswer)); n == 0 {
		t.Fatal("P1's tap saw no answer sent by R")
	}
	for _, s := range secrets {
		if bytes.Contains(db, []byte(s)) {
			t.Errorf("R's database holds %q in plaintext", s)
		}
		for _, f := range all {
			if bytes.Contains(f, []byte(s)) {
				t.Errorf("a frame R admitted holds %q in plaintext", s)
			}
		}
	}
	qs := m.tap.of(m.P1.Address(), fapp.KindQuery)
	if len(qs) < 2 {
		t.Fatalf("R saw %d queries of P1, want at least 2", len(qs))
	}
	a, err := fapp.DecodeSlotQuery(qs[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := fapp.DecodeSlotQuery(qs[1])
	if err != nil {
		t.Fatal(err)
	}
	if a.Filter() != b.Filter() {
		t.Fatalf("P1's two queries have different filters: the comparison is not of like with like")
	}
	// Everything but the filter differs: no 4-byte run of one query's id
	// or reply key is in the other query.
	for _, secret := range [][]byte{a.QueryID[:], a.ReplyKey[:]} {
		for i := 0; i+4 <= len(secret); i++ {
			if bytes.Contains(qs[1], secret[i:i+4]) {
				t.Fatalf("P1's second query shares the bytes %x with the first's id or key", secret[i:i+4])
			}
		}
	}
	a.QueryID, a.ReplyKey, b.QueryID, b.ReplyKey = [16]byte{}, [32]byte{}, [16]byte{}, [32]byte{}
	a.Hops, b.Hops = 0, 0
	if a != b {
		t.Fatalf("P1's queries differ beyond id, key and filter: %+v vs %+v", a, b)
	}
}

// testPractice is a therapist outside the mesh whose announces a test
// injects.
func testPractice(t *testing.T, plz fapp.PLZ) (*fapp.Practice, *crypto.Identity) {
	t.Helper()
	id := newIdentity(t)
	appr, err := fapp.ApprobationWithSalt("LANR-"+string(plz), bytes.Repeat([]byte{7}, 16))
	if err != nil {
		t.Fatal(err)
	}
	p, err := fapp.NewPractice(id, plz, appr, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p, id
}

func publishAt(t *testing.T, p *fapp.Practice, base time.Time, expires time.Time) []byte {
	t.Helper()
	s := fappSlot(base, 1, fapp.Verhaltenstherapie, fapp.Praxis, fapp.GKV)
	s.ID = 1
	frame, err := p.Publish([]fapp.Slot{s}, expires)
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// TestFAPPRelayRefusesBadAnnounces is issue 13 acceptance 4 at R: forged,
// expired, replayed (an older sequence after a newer one) and unbound
// announces are refused and counted; a therapist flooding new sets is
// held to its rate, and another therapist's announce, sent right after
// the flood over the same neighbour, is taken at once and reaches a
// patient's search.
func TestFAPPRelayRefusesBadAnnounces(t *testing.T) {
	net := mem.NewNetwork()
	cr := fappConfig(t, config.FAPPRelay)
	cr.Transports.Listen = []string{"mem://r"}
	r, _ := startNode(t, cr, WithMemNetwork(net))
	cp := fappConfig(t, config.FAPPPatient)
	cp.Transports.Peers = []string{"mem://r"}
	p, _ := startNode(t, cp, WithMemNetwork(net))
	waitRoute(t, p, r.Address())
	base := time.Now().Truncate(time.Hour).Add(2 * time.Hour)
	exp := time.Now().Add(time.Hour)
	neighbour := newIdentity(t).Address()
	inject := func(frame []byte) {
		t.Helper()
		if err := r.Inject("test", neighbour, frame); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(outcome string, n float64) {
		t.Helper()
		probe.Until(t, 10*time.Second, func() bool { return fappCount(r, outcome) >= n }, "R to count %v announces %s", n, outcome)
	}

	// Forged: a valid announce with one byte of its signature changed.
	honest, _ := testPractice(t, "80331")
	good := publishAt(t, honest, base, exp)
	forged := bytes.Clone(good)
	forged[len(forged)-1] ^= 1
	inject(forged)
	expect("bad_signature", 1)
	// Expired: signed, but its expiry has passed.
	old, _ := testPractice(t, "80332")
	inject(publishAt(t, old, base, time.Now().Add(-time.Minute)))
	expect("expired", 1)
	// Replayed: seq 1 after seq 2 of the same therapist.
	inject(good)
	expect("added", 1)
	newer := publishAt(t, honest, base, exp)
	inject(newer)
	expect("replaced", 1)
	inject(good)
	expect("stale", 1)
	inject(newer)
	expect("duplicate", 1)
	// Unbound: a signed announce whose Approbation hash is cut short.
	uid := newIdentity(t)
	useal, err := crypto.SealingKeyFor(uid)
	if err != nil {
		t.Fatal(err)
	}
	s := fappSlot(base, 1, fapp.Verhaltenstherapie, fapp.Praxis, fapp.GKV)
	s.ID = 1
	ua := fapp.NewSlotAnnounce(uid.PublicKey(), useal.Public(), 1, exp, "80333", fapp.Approbation{Salt: make([]byte, 16), Hash: make([]byte, 8)}, []fapp.Slot{s})
	tbs, err := ua.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	ua.Signature = uid.Sign(tbs)
	unbound, err := messages.Marshal(ua)
	if err != nil {
		t.Fatal(err)
	}
	inject(unbound)
	expect("unbound", 1)
	if got := fappCount(r, "added") + fappCount(r, "replaced"); got != 2 {
		t.Fatalf("R took %v announces, want only the honest therapist's two", got)
	}

	// A flooding therapist: 40 new sets in a row over one neighbour; then
	// another therapist's set over the same neighbour.
	flooder, _ := testPractice(t, "80334")
	for range 40 {
		inject(publishAt(t, flooder, base, exp))
	}
	other, otherID := testPractice(t, "80335")
	inject(publishAt(t, other, base, exp))
	expect("added", 3) // the honest, the flooder's first, the other's
	probe.Until(t, 10*time.Second, func() bool {
		return fappCount(r, "therapist_rate")+fappCount(r, "added")+fappCount(r, "replaced") >= 2+41
	},
		"R to handle the flood and the other's set")
	limited := fappCount(r, "therapist_rate")
	taken := fappCount(r, "added") + fappCount(r, "replaced") - 2 - 1 // minus the honest two and the other's
	if taken > 6 || limited < 34 {
		t.Fatalf("the flooder got %v of 40 sets in (%v limited); want at most its burst of %d", taken, limited, 5)
	}
	// The other therapist's set is served at once.
	got := slotNames(t, p, fapp.Filter{PLZPrefix: "80335"}, time.Second)
	if want := []string{fapp.SlotID{Therapist: otherID.Address(), Slot: 1}.String()}; !slices.Equal(got, want) {
		t.Fatalf("a search right after the flood found %v, want the other therapist's slot %v", got, want)
	}
}

// TestFAPPFiveNodeMeshOverLoRa is issue 13 acceptance 5: the five-node
// demo with the R — P1 and R — P2 hops on LoRa mock links (one channel
// each, SF7), T1 and T2 on mem links to R. Every FAPP message crosses a
// radio hop; responses above a LoRa frame are fragmented by the link.
func TestFAPPFiveNodeMeshOverLoRa(t *testing.T) {
	radio := link.NewMockNetwork(lora.MediumOptions{})
	m := startFAPPMesh(t, func(role string, c *config.Config) {
		c.Transports.LoRa.AnnounceShare = 1
		switch role {
		case "R":
			c.Transports.Listen = append(c.Transports.Listen, "lora+mock://p1?sf=7", "lora+mock://p2?sf=7")
		case "P1":
			c.Transports.Peers, c.Transports.Listen = nil, []string{"lora+mock://p1?sf=7"}
		case "P2":
			c.Transports.Peers, c.Transports.Listen = nil, []string{"lora+mock://p2?sf=7"}
		}
	}, WithLoRaMock(radio))
	waitLink(t, m.P1, m.R.Address(), "lora")
	waitLink(t, m.P2, m.R.Address(), "lora")
	runFAPPDemo(t, m, 8*time.Second)
	// The responses R sent over the radio were above a LoRa frame: the
	// link fragmented them.
	biggest := 0
	for _, f := range m.taps["P1"].of(m.R.Address(), fapp.KindResponse) {
		biggest = max(biggest, len(f))
	}
	if biggest <= 255 {
		t.Fatalf("the largest response P1 got over LoRa is %d bytes: no fragmentation was exercised", biggest)
	}
	t.Logf("largest response over LoRa: %d bytes", biggest)
	for _, n := range []*Node{m.P1, m.P2} {
		ls, err := n.Links(context.Background())
		if err != nil || len(ls) != 1 || ls[0].Transport != "lora" {
			t.Fatalf("%s's links: %+v %v; want only its LoRa link to R", n.Address().Short(), ls, err)
		}
	}
}

// TestFAPPStateSurvivesRestart: the therapist's practice (its requests
// and sequence), the patient's reservation (its reply key) and the
// relay's store are in bbolt: T and P restart between the reservation
// and the confirmation, R restarts and still answers a search from its
// store with T offline, and P still opens T's confirmation.
func TestFAPPStateSurvivesRestart(t *testing.T) {
	net := mem.NewNetwork()
	cr := fappConfig(t, config.FAPPRelay)
	cr.Transports.Listen = []string{"mem://r"}
	r, _ := startNode(t, cr, WithMemNetwork(net))
	ct := therapistConfig(t, "Praxis Eins", "80331")
	ct.Transports.Peers = []string{"mem://r"}
	tn, _ := startNode(t, ct, WithMemNetwork(net))
	cp := fappConfig(t, config.FAPPPatient)
	cp.Transports.Peers = []string{"mem://r"}
	p, _ := startNode(t, cp, WithMemNetwork(net))
	waitRoute(t, r, tn.Address())
	waitRoute(t, r, p.Address())
	ctx := context.Background()
	now := time.Now()
	base := now.Truncate(time.Hour).Add(2 * time.Hour)
	if _, err := tn.FAPPPublish(ctx, []fapp.Slot{fappSlot(base, 1, fapp.Verhaltenstherapie, fapp.Praxis, fapp.GKV)}); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool { return fappCount(r, "added") >= 1 }, "R to hold T's set")

	// R restarts; T goes offline; R answers from what it stored.
	if err := tn.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ = startNode(t, cr, WithMemNetwork(net))
	waitRoute(t, p, r.Address())
	got := slotNames(t, p, fapp.Filter{}, time.Second)
	if len(got) != 1 {
		t.Fatalf("the restarted relay answered %v with the therapist offline, want its one slot", got)
	}
	target, _ := fapp.ParseSlotID(got[0])
	res, err := p.FAPPReserve(ctx, target, "nach dem Neustart")
	if err != nil {
		t.Fatal(err)
	}

	// T comes back: R holds the reservation's path, not T; the
	// reservation was sent while T was away, so P reserves again after T
	// is back (a new reservation id) and then restarts itself.
	tn, _ = startNode(t, ct, WithMemNetwork(net))
	waitRoute(t, r, tn.Address())
	probe.Until(t, 10*time.Second, func() bool { return fappCount(r, "replaced") >= 1 }, "T's re-announce after its restart at R")
	if res2, err := p.FAPPStatus(ctx, res.Reservation, 0); err != nil || res2.Status != "pending" {
		t.Fatalf("P's first reservation: %+v %v", res2, err)
	}
	got = slotNames(t, p, fapp.Filter{}, time.Second)
	if len(got) != 1 || got[0] != target.String() {
		t.Fatalf("search after T's restart found %v", got)
	}
	res, err = p.FAPPReserve(ctx, target, "nach dem Neustart")
	if err != nil {
		t.Fatal(err)
	}
	var reqID string
	probe.Until(t, 10*time.Second, func() bool {
		rq, err := tn.FAPPRequests(ctx)
		if err == nil && len(rq.Requests) == 1 {
			reqID = rq.Requests[0].Reservation
		}
		return reqID != ""
	}, "T to receive the reservation")
	// Both restart before T answers.
	for _, n := range []*Node{tn, p} {
		if err := n.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tn, _ = startNode(t, ct, WithMemNetwork(net))
	p, _ = startNode(t, cp, WithMemNetwork(net))
	waitRoute(t, r, tn.Address())
	waitRoute(t, r, p.Address())
	rq, err := tn.FAPPRequests(ctx)
	if err != nil || len(rq.Requests) != 1 || rq.Requests[0].Reservation != reqID || rq.Requests[0].Note != "nach dem Neustart" {
		t.Fatalf("T's requests after its restart: %+v %v", rq, err)
	}
	if st, err := p.FAPPStatus(ctx, res.Reservation, 0); err != nil || st.Status != "pending" {
		t.Fatalf("P's reservation after its restart: %+v %v", st, err)
	}
	if _, err := tn.FAPPConfirm(ctx, reqID, "bis bald"); err != nil {
		t.Fatal(err)
	}
	if st, err := p.FAPPStatus(ctx, res.Reservation, 10*time.Second); err != nil || st.Status != "confirmed" {
		t.Fatalf("P's reservation after both restarts: %+v %v; want confirmed", st, err)
	}
}

// TestFAPPTherapistReannouncesOnTheClock: a therapist renews its set at
// three quarters of fapp.announce_ttl on the node's (manual) clock, so a
// relay never lets it expire, and a relay that comes up later gets the
// set from the therapist when their link comes up.
func TestFAPPTherapistReannouncesOnTheClock(t *testing.T) {
	clk := manualClock()
	net := mem.NewNetwork()
	ct := therapistConfig(t, "Praxis Eins", "80331")
	ct.FAPP.AnnounceTTL = config.Duration(time.Hour)
	ct.Transports.Listen = []string{"mem://t"}
	tn, _ := startNode(t, ct, WithClock(clk), WithMemNetwork(net))
	cr := fappConfig(t, config.FAPPRelay)
	cr.Transports.Peers = []string{"mem://t"}
	tap := &frameTap{}
	r, _ := startNode(t, cr, WithClock(clk), WithMemNetwork(net), WithInboundTap(tap.take))
	waitRoute(t, r, tn.Address())
	base := clk.Now().Add(48 * time.Hour)
	pub, err := tn.FAPPPublish(context.Background(), []fapp.Slot{fappSlot(base, 1, fapp.Verhaltenstherapie, fapp.Praxis, fapp.GKV)})
	if err != nil {
		t.Fatal(err)
	}
	if d := pub.Expires.Sub(clk.Now()); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("announce expires in %v, want the configured hour", d)
	}
	probe.Until(t, 10*time.Second, func() bool { return fappCount(r, "added") == 1 }, "R to hold T's set")
	t0 := clk.Now()
	probe.AdvanceUntil(t, clk, time.Minute, 30*time.Second, func() bool { return fappCount(r, "replaced") >= 1 }, "T to re-announce")
	// When T signed its renewal shows in the renewal's expiry (its
	// signing time plus the TTL).
	published := pub.Expires.Add(-time.Hour)
	var renewed time.Time
	for _, f := range tap.of(tn.Address(), fapp.KindAnnounce) {
		if a, err := fapp.DecodeSlotAnnounce(f); err == nil && a.Seq == 2 {
			renewed = a.ExpiresAt().Add(-time.Hour)
		}
	}
	if d := renewed.Sub(published); d < 44*time.Minute || d > 46*time.Minute {
		t.Fatalf("T re-announced %v after publishing, want at three quarters of the hour's TTL", d)
	}
	// Three hours on: renewed every 45 minutes, never expired at R.
	probe.AdvanceUntil(t, clk, time.Minute, 60*time.Second, func() bool { return !clk.Now().Before(t0.Add(3 * time.Hour)) }, "three hours")
	if got := fappCount(r, "replaced"); got < 3 {
		t.Fatalf("R took %v renewals in three hours, want at least 3", got)
	}
	// A relay that comes up now learns the set from T on PeerUp.
	cr2 := fappConfig(t, config.FAPPRelay)
	cr2.Transports.Peers = []string{"mem://t"}
	r2, _ := startNode(t, cr2, WithClock(clk), WithMemNetwork(net))
	probe.Until(t, 10*time.Second, func() bool { return fappCount(r2, "added") == 1 }, "the late relay to get T's set on PeerUp")
}

// TestFAPPOverTheAdminAPI: the node serves /v1/fapp/ through its
// FAPPBackend: a node that is therapist, relay and patient publishes over
// HTTP and finds its own slot in its relay store; a node without FAPP
// answers 404 fapp_off, a patient asked for requests 409 fapp_role.
func TestFAPPOverTheAdminAPI(t *testing.T) {
	c := therapistConfig(t, "Praxis Eins", "80331")
	c.FAPP.Role = []string{config.FAPPTherapist, config.FAPPRelay, config.FAPPPatient}
	n, _ := startNode(t, c)
	cl := &api.Client{Addr: n.APIAddr()}
	ctx := context.Background()
	start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
	var pub api.FAPPPublishResponse
	err := cl.Post(ctx, "/v1/fapp/publish", api.FAPPPublishRequest{Slots: []api.FAPPSlotInput{
		{Start: start, Minutes: 50, Type: "therapieplatz", Modalitaet: []string{"praxis"}},
	}}, &pub)
	if err != nil || pub.Seq != 1 || len(pub.Slots) != 1 || pub.Slots[0].PLZ != "80331" {
		t.Fatalf("publish: %+v %v", pub, err)
	}
	var found api.FAPPSearchResponse
	if err := cl.Get(ctx, "/v1/fapp/search?plz=803&fachrichtung=verhaltenstherapie&kostentraeger=gkv&wait=200ms", &found); err != nil {
		t.Fatal(err)
	}
	if len(found.Slots) != 1 || found.Slots[0].Slot != pub.Slots[0].Slot {
		t.Fatalf("search: %+v, want the published slot %s", found, pub.Slots[0].Slot)
	}
	var rq api.FAPPRequestsResponse
	if err := cl.Get(ctx, "/v1/fapp/requests", &rq); err != nil || len(rq.Requests) != 0 {
		t.Fatalf("requests: %+v %v", rq, err)
	}

	off, _ := startNode(t, testConfig(t))
	code, body := get(t, "http://"+off.APIAddr()+"/v1/fapp/requests")
	if code != 404 || !strings.Contains(body, "fapp_off") {
		t.Fatalf("a node without FAPP: %d %s", code, body)
	}
	pc := fappConfig(t, config.FAPPPatient)
	p, _ := startNode(t, pc)
	code, body = get(t, "http://"+p.APIAddr()+"/v1/fapp/requests")
	if code != 409 || !strings.Contains(body, "fapp_role") {
		t.Fatalf("a patient asked for requests: %d %s", code, body)
	}
}

// TestFAPPPerNeighbourRate: FAPP frames have their own bucket per
// neighbour in ratelimit (class fapp): a neighbour sending 200 at once is
// cut at its burst, and another neighbour's announce right after is
// taken.
func TestFAPPPerNeighbourRate(t *testing.T) {
	cr := fappConfig(t, config.FAPPRelay)
	r, _ := startNode(t, cr)
	base := time.Now().Truncate(time.Hour).Add(2 * time.Hour)
	p, _ := testPractice(t, "80331")
	frame := publishAt(t, p, base, time.Now().Add(time.Hour))
	noisy := newIdentity(t).Address()
	for range 200 {
		if err := r.Inject("test", noisy, frame); err != nil {
			t.Fatal(err)
		}
	}
	limited := r.Metrics().Mesh.RateLimited.WithLabelValues("fapp")
	probe.Until(t, 10*time.Second, func() bool { return testutil.ToFloat64(limited) >= 100 }, "ratelimit to cut the noisy neighbour")
	other, _ := testPractice(t, "80332")
	if err := r.Inject("test", newIdentity(t).Address(), publishAt(t, other, base, time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool { return fappCount(r, "added") == 2 }, "the other neighbour's announce to be taken")
	if got := fappCount(r, "duplicate"); got > 80 {
		t.Fatalf("%v copies of the noisy neighbour's announce reached the fapp actor, want at most about its burst of 60", got)
	}
}

// TestFAPPDamagedPracticeStateFailsStart: a therapist's practice record
// that does not restore (here one over fapp.MaxPracticeState, what an
// unbounded request list once made) stops the fapp actor at its start:
// the node's Start fails with an error that wraps fapp.ErrDamagedRecord
// and names the record, the actor is not restarted, and the record is
// left byte for byte as it was.
func TestFAPPDamagedPracticeStateFailsStart(t *testing.T) {
	c := therapistConfig(t, "Praxis Eins", "80331")
	n, _ := startNode(t, c)
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Repeat([]byte{0x9f}, fapp.MaxPracticeState+1)
	db, err := bolt.Open(c.DBPath(), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("fapp/node")).Put([]byte("practice"), bad)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	n2, err := New(WithConfig(c), WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = n2.Start(ctx)
	if err == nil {
		n2.Stop(context.Background())
		t.Fatal("started with a damaged practice record")
	}
	if !errors.Is(err, fapp.ErrDamagedRecord) || errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), `"practice"`) || !strings.Contains(err.Error(), "fapp/node") {
		t.Fatalf("Start: %v; want fapp.ErrDamagedRecord naming the record\n%s", err, logs)
	}
	if !IsDataDirError(err) {
		t.Fatalf("Start: %v is not a data dir error: qpc node would not exit 3 for it", err)
	}
	if r := strings.Count(logs.String(), "actor failed; restarting"); r != 0 {
		t.Fatalf("the fapp actor was restarted %d times\n%s", r, logs)
	}
	select {
	case <-n2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the node is not done after its failed Start")
	}
	db, err = bolt.Open(c.DBPath(), 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket([]byte("fapp/node")).Get([]byte("practice")); !bytes.Equal(got, bad) {
			t.Errorf("the record was changed: %d bytes", len(got))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestFAPPPublishBurstReachesTheRelay: a therapist publishes ten sets in
// a row (more than the relays' per-therapist rate takes at once); its
// actor paces them on the node's clock and the relay applies what it held
// at its sweeps, so the relay ends with the newest set.
func TestFAPPPublishBurstReachesTheRelay(t *testing.T) {
	clk := manualClock()
	net := mem.NewNetwork()
	ct := therapistConfig(t, "Praxis Eins", "80331")
	ct.Transports.Listen = []string{"mem://t"}
	tn, _ := startNode(t, ct, WithClock(clk), WithMemNetwork(net))
	cr := fappConfig(t, config.FAPPRelay, config.FAPPPatient)
	cr.Transports.Peers = []string{"mem://t"}
	r, _ := startNode(t, cr, WithClock(clk), WithMemNetwork(net))
	waitRoute(t, r, tn.Address())
	base := clk.Now().Add(48 * time.Hour)
	for i := range 10 {
		if _, err := tn.FAPPPublish(context.Background(), []fapp.Slot{fappSlot(base, i+1, fapp.Verhaltenstherapie, fapp.Praxis, fapp.GKV)}); err != nil {
			t.Fatal(err)
		}
	}
	want := time.Unix(int64(fappSlot(base, 10, 0, 0, 0).Start), 0)
	newest := func() bool {
		res, err := r.FAPPSearch(context.Background(), fapp.Filter{}, 0)
		return err == nil && len(res.Slots) == 1 && res.Slots[0].Start.Equal(want)
	}
	if newest() {
		t.Fatal("the relay took all ten at once: the test shows nothing")
	}
	probe.AdvanceUntil(t, clk, 5*time.Second, 30*time.Second, newest, "R to hold T's newest set")
}
