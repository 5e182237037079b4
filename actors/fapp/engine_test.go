package fapp

import (
	"bytes"
	"crypto/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/messages"
)

// A little mesh of engines joined by direct links; deliver runs every
// frame to its destination until nothing is left to send.
type testNode struct {
	id    *crypto.Identity
	eng   *Engine
	m     *metrics.FAPP
	links map[crypto.Address]bool
}

type testMesh struct {
	t     *testing.T
	clk   *clock.Manual
	nodes map[crypto.Address]*testNode
	sent  map[fapp.Kind]int // frames that crossed a link, by kind
	dir   string            // for relay stores; t.TempDir() when empty
	// admit, when set, decides whether a frame crossing a link arrives
	// (a receiver's rate limit, a lost frame).
	admit func(from, to crypto.Address, data []byte) bool
}

var (
	apprOnce sync.Once
	appr     fapp.Approbation
	apprErr  error
)

// testApprobation is one binding for every test therapist (Argon2id is
// slow on purpose).
func testApprobation() (fapp.Approbation, error) {
	apprOnce.Do(func() { appr, apprErr = fapp.ApprobationWithSalt("LANR-1", bytes.Repeat([]byte{7}, 16)) })
	return appr, apprErr
}

func newTestMesh(t *testing.T) *testMesh {
	return &testMesh{t: t, clk: clock.NewManual(time.Now().Truncate(time.Second)), nodes: map[crypto.Address]*testNode{}, sent: map[fapp.Kind]int{}}
}

func (tm *testMesh) add(roles Roles) *testNode {
	t := tm.t
	id, err := crypto.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{}).FAPP
	cfg := EngineConfig{Self: id.Address(), Roles: roles, Clock: tm.clk, Metrics: m, Rand: rand.Reader, AnnounceTTL: time.Hour}
	if roles.Relay {
		dir := tm.dir
		if dir == "" {
			dir = t.TempDir()
		}
		db, err := bolt.Open(filepath.Join(dir, id.Address().String()+".db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tm.dir == "" {
			t.Cleanup(func() { db.Close() })
		}
		if cfg.Store, err = fapp.Open(db, tm.clk, fapp.DefaultLimits); err != nil {
			t.Fatal(err)
		}
	}
	if roles.Therapist {
		appr, err := testApprobation()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Practice, err = fapp.NewPractice(id, "80331", appr, 0); err != nil {
			t.Fatal(err)
		}
	}
	n := &testNode{id: id, eng: NewEngine(cfg), m: m, links: map[crypto.Address]bool{}}
	tm.nodes[id.Address()] = n
	return n
}

func (tm *testMesh) link(a, b *testNode) {
	a.links[b.id.Address()], b.links[a.id.Address()] = true, true
}

type hop struct {
	from, to crypto.Address
	data     []byte
}

// deliver sends outs from node from, and everything that follows.
func (tm *testMesh) deliver(from *testNode, outs []Out) {
	var q []hop
	push := func(src *testNode, outs []Out) {
		for _, o := range outs {
			if o.All {
				for p := range src.links {
					if p != o.Except {
						q = append(q, hop{src.id.Address(), p, o.Data})
					}
				}
			} else if src.links[o.Peer] {
				q = append(q, hop{src.id.Address(), o.Peer, o.Data})
			}
		}
	}
	push(from, outs)
	for len(q) > 0 {
		h := q[0]
		q = q[1:]
		k, _, _, _ := fapp.Peek(h.data)
		tm.sent[k]++
		if tm.admit != nil && !tm.admit(h.from, h.to, h.data) {
			continue
		}
		dst := tm.nodes[h.to]
		push(dst, dst.eng.Handle(h.from, h.data))
	}
}

func testSlot(now time.Time, id uint32, days int) fapp.Slot {
	return fapp.Slot{ID: id, Start: uint32(now.Add(time.Duration(days) * 24 * time.Hour).Unix()), Minutes: 50, Type: fapp.Therapieplatz,
		Fachrichtung: fapp.Verhaltenstherapie, Modalitaet: fapp.Praxis, Kostentraeger: fapp.GKV}
}

func val(c *prometheus.CounterVec, l ...string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(l...))
}

// P – R – T: the therapist's announce is cached and flooded by R only;
// P's query is answered by R from its cache and by T from its own set;
// the responses come back along R's reverse path; the reservation goes to
// T along the announce's path, and the answer back along the
// reservation's.
func TestEngineSearchReserveConfirmThroughARelay(t *testing.T) {
	tm := newTestMesh(t)
	p := tm.add(Roles{Patient: true})
	r := tm.add(Roles{Relay: true})
	tr := tm.add(Roles{Therapist: true})
	p2 := tm.add(Roles{Patient: true})
	tm.link(p, r)
	tm.link(r, tr)
	tm.link(r, p2)
	now := tm.clk.Now()

	_, _, outs, err := tr.eng.Publish([]fapp.Slot{testSlot(now, 1, 1), testSlot(now, 2, 2)})
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(tr, outs)
	if got := val(r.m.Announces, "added"); got != 1 {
		t.Fatalf("R added %v announces", got)
	}
	if val(p.m.Announces, "not_relay") != 1 || val(p2.m.Announces, "not_relay") != 1 {
		t.Fatal("R did not flood the announce to both patients")
	}
	if got := val(r.m.Forwarded, "announce"); got != 1 {
		t.Fatalf("R forwarded the announce %v times, want once (one broadcast)", got)
	}
	// The same announce again (a re-send on PeerUp) is a duplicate, not
	// flooded.
	tm.deliver(tr, tr.eng.PeerUp(r.id.Address()))
	if val(r.m.Announces, "duplicate") != 1 || val(r.m.Forwarded, "announce") != 1 {
		t.Fatal("a duplicate announce was flooded again")
	}

	qid, outs, err := p.eng.StartSearch(fapp.Filter{PLZPrefix: "803"})
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(p, outs)
	if got := val(r.m.Dropped, "query", "duplicate"); got != 0 {
		t.Fatalf("R dropped %v queries as duplicates", got)
	}
	if val(p2.m.Dropped, "query", "role") != 1 {
		t.Fatal("the query did not reach P2, or P2 did not drop it")
	}
	if val(r.m.Forwarded, "response") != 1 || val(p.m.Own, "responses") != 2 {
		t.Fatalf("responses: R forwarded %v, P opened %v; want T's through R and R's own", val(r.m.Forwarded, "response"), val(p.m.Own, "responses"))
	}
	rs, err := p.eng.EndSearch(qid)
	if err != nil || len(rs) != 2 {
		t.Fatalf("search found %d, %v; want the two slots", len(rs), err)
	}
	if _, err := p.eng.EndSearch(qid); err == nil {
		t.Fatal("a search ended twice")
	}

	res, outs, err := p.eng.Reserve(rs[1].ID, "hallo")
	if err != nil {
		t.Fatal(err)
	}
	tm.deliver(p, outs)
	reqs, _ := tr.eng.Requests()
	if len(reqs) != 1 || reqs[0].Note != "hallo" {
		t.Fatalf("T has requests %+v", reqs)
	}
	st, outs, err := tr.eng.Answer(reqs[0].ID, true, "willkommen")
	if err != nil || st != fapp.Confirmed {
		t.Fatal(st, err)
	}
	tm.deliver(tr, outs)
	if got, _ := p.eng.Reservation(res.ID); got.Status != fapp.Confirmed || got.Text != "willkommen" {
		t.Fatalf("P's reservation is %s %q", got.Status, got.Text)
	}
	if val(r.m.Announces, "replaced") != 1 {
		t.Fatal("R did not take T's set without the confirmed slot")
	}
	// A second reservation id through R: R's reserve path is per id.
	if got := val(r.m.Forwarded, "answer"); got != 1 {
		t.Fatalf("R forwarded %v answers", got)
	}
}

// Reverse paths expire on the clock: a response to a query R forwarded
// longer ago than QueryPathTTL is dropped (no_path), as is one for a query
// R never saw.
func TestEngineReversePathsExpire(t *testing.T) {
	tm := newTestMesh(t)
	p := tm.add(Roles{Patient: true})
	r := tm.add(Roles{Relay: true})
	q, err := fapp.NewQuery(fapp.Filter{}, 4, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	frame, _ := fapp.EncodeSlotQuery(q.Query)
	if outs := r.eng.Handle(p.id.Address(), frame); len(outs) != 1 || !outs[0].All {
		t.Fatalf("R's outs for a query with an empty store: %+v; want the forward only", outs)
	}
	if outs := r.eng.Handle(p.id.Address(), frame); len(outs) != 0 || val(r.m.Dropped, "query", "duplicate") != 1 {
		t.Fatal("a query seen before was not dropped as a duplicate")
	}
	fq, _ := fapp.Forward(frame)
	dq, _ := fapp.DecodeSlotQuery(fq)
	resp, err := fapp.NewSlotResponse(&dq, nil, dq.Hops)
	if err != nil {
		t.Fatal(err)
	}
	other := crypto.Address{9}
	// hops 1, limit 1: a response from two hops away.
	if outs := r.eng.Handle(other, resp); len(outs) != 1 || outs[0].Peer != p.id.Address() {
		t.Fatalf("R's outs for a response: %+v; want it sent back to P", outs)
	}
	tm.clk.Advance(DefaultQueryPathTTL)
	if outs := r.eng.Handle(other, resp); len(outs) != 0 || val(r.m.Dropped, "response", "no_path") != 1 {
		t.Fatal("a response after the path's TTL was not dropped as no_path")
	}
}

// The per-therapist limit: a therapist's new sequences beyond its burst
// are refused while another therapist's are taken.
func TestEngineTherapistRateIsPerTherapist(t *testing.T) {
	tm := newTestMesh(t)
	r := tm.add(Roles{Relay: true})
	a := tm.add(Roles{Therapist: true})
	b := tm.add(Roles{Therapist: true})
	now := tm.clk.Now()
	from := crypto.Address{1}
	exp := now.Add(time.Hour)
	for i := range 20 {
		// The practice's own frames: the engine would pace them.
		f, err := a.eng.cfg.Practice.Publish([]fapp.Slot{testSlot(now, uint32(i+1), 1)}, exp)
		if err != nil {
			t.Fatal(err)
		}
		r.eng.Handle(from, f)
	}
	if got := val(r.m.Announces, "therapist_rate"); got != 20-DefaultTherapistBurst {
		t.Fatalf("limited %v of 20, want %d", got, 20-DefaultTherapistBurst)
	}
	_, _, outs, _ := b.eng.Publish([]fapp.Slot{testSlot(now, 1, 1)})
	if o := r.eng.Handle(from, outs[0].Data); len(o) != 1 {
		t.Fatal("another therapist's announce was not taken and flooded")
	}
	// A minute later the flooder has DefaultTherapistPerMin tokens again.
	tm.clk.Advance(time.Minute)
	f, _ := a.eng.cfg.Practice.Publish([]fapp.Slot{testSlot(now, 99, 1)}, exp)
	if o := r.eng.Handle(from, f); len(o) != 1 {
		t.Fatal("the therapist's next set a minute later was refused")
	}
}

// A therapist re-announces before its announce expires, and hands its
// set to a neighbour that comes up.
func TestEngineReannounceAndPeerUp(t *testing.T) {
	tm := newTestMesh(t)
	tr := tm.add(Roles{Therapist: true})
	if tr.eng.ReannounceIn() != 0 || tr.eng.PeerUp(crypto.Address{1}) != nil || tr.eng.Reannounce() != nil {
		t.Fatal("a therapist that never published announces something")
	}
	_, exp, _, err := tr.eng.Publish([]fapp.Slot{testSlot(tm.clk.Now(), 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if d := tr.eng.ReannounceIn(); d <= 0 || tm.clk.Now().Add(d).After(exp) {
		t.Fatalf("re-announce in %v, the announce expires at %v", d, exp)
	}
	if outs := tr.eng.PeerUp(crypto.Address{1}); len(outs) != 1 || outs[0].Peer != (crypto.Address{1}) {
		t.Fatalf("PeerUp: %+v", outs)
	}
	tm.clk.Advance(tr.eng.ReannounceIn())
	outs := tr.eng.Reannounce()
	a, err := fapp.DecodeSlotAnnounce(outs[0].Data)
	if err != nil || a.Seq != 2 || !a.ExpiresAt().After(exp) {
		t.Fatalf("re-announce: seq %d expires %v (%v)", a.Seq, a.ExpiresAt(), err)
	}
	tm.clk.Advance(2 * time.Hour)
	if tr.eng.PeerUp(crypto.Address{1}) != nil {
		t.Fatal("an expired announce was handed to a new neighbour")
	}
}

// A relay's response to a neighbour reached only over constrained links
// carries at most ConstrainedAnnounces announces (the first matching
// slots'); over any other link, up to fapp.MaxResponseAnnounces.
func TestEngineShortResponsesOverConstrainedLinks(t *testing.T) {
	tm := newTestMesh(t)
	r := tm.add(Roles{Relay: true})
	now := tm.clk.Now()
	for i := range 5 {
		th := tm.add(Roles{Therapist: true})
		_, _, outs, err := th.eng.Publish([]fapp.Slot{testSlot(now, 1, i+1)})
		if err != nil {
			t.Fatal(err)
		}
		r.eng.Handle(crypto.Address{0xEE}, outs[0].Data)
	}
	lora, ip := crypto.Address{1}, crypto.Address{2}
	r.eng.LinkUp(lora, 1, true)
	r.eng.LinkUp(ip, 2, true)
	r.eng.LinkUp(ip, 3, false) // a LoRa and an IP link: not constrained
	ask := func(from crypto.Address) int {
		t.Helper()
		q, err := fapp.NewQuery(fapp.Filter{}, 1, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		frame, _ := fapp.EncodeSlotQuery(q.Query)
		for _, o := range r.eng.Handle(from, frame) {
			if o.Kind == fapp.KindResponse {
				rs, _, err := q.Open(o.Data, now)
				if err != nil {
					t.Fatal(err)
				}
				return len(rs)
			}
		}
		return 0
	}
	if got := ask(lora); got != ConstrainedAnnounces {
		t.Fatalf("over LoRa only: %d slots, want %d", got, ConstrainedAnnounces)
	}
	if got := ask(ip); got != 5 {
		t.Fatalf("with an IP link too: %d slots, want all 5", got)
	}
	r.eng.LinkDown(ip, 3)
	if got := ask(ip); got != ConstrainedAnnounces {
		t.Fatalf("after the IP link went: %d slots, want %d", got, ConstrainedAnnounces)
	}
}

// A relay hands a neighbour that comes up the announces of its store
// (one hop further), once per neighbour, and not over constrained links;
// a relay receiving them takes and floods them like any announce.
func TestEngineRelayHandsItsStoreToANewNeighbour(t *testing.T) {
	tm := newTestMesh(t)
	r := tm.add(Roles{Relay: true})
	now := tm.clk.Now()
	for i := range 3 {
		th := tm.add(Roles{Therapist: true})
		_, _, outs, err := th.eng.Publish([]fapp.Slot{testSlot(now, 1, i+1)})
		if err != nil {
			t.Fatal(err)
		}
		r.eng.Handle(crypto.Address{0xEE}, outs[0].Data)
	}
	r2 := tm.add(Roles{Relay: true})
	tm.link(r, r2)
	if !r.eng.LinkUp(r2.id.Address(), 1, false) {
		t.Fatal("the first link to a neighbour is not its first")
	}
	outs := r.eng.PeerUp(r2.id.Address())
	if len(outs) != 3 {
		t.Fatalf("handed %d announces, want the 3 held", len(outs))
	}
	for _, o := range outs {
		if _, hops, _, _ := fapp.Peek(o.Data); hops != 1 || o.Peer != r2.id.Address() {
			t.Fatalf("handoff %+v with hops %d", o, hops)
		}
	}
	tm.deliver(r, outs)
	if got := val(r2.m.Announces, "added"); got != 3 {
		t.Fatalf("the new relay added %v of the 3", got)
	}
	if r.eng.LinkUp(r2.id.Address(), 2, false) {
		t.Fatal("a second link to the neighbour counted as its first")
	}
	lora := crypto.Address{5}
	r.eng.LinkUp(lora, 3, true)
	if outs := r.eng.PeerUp(lora); len(outs) != 0 {
		t.Fatalf("handed %d announces over a constrained link", len(outs))
	}
}

// A reservation for a therapist whose announce path a relay does not
// know goes to the router's next hop towards it (a node announcing the
// therapist capability), else to every neighbour but the sender.
func TestEngineReserveFollowsTheRouterWithoutAnAnnouncePath(t *testing.T) {
	tm := newTestMesh(t)
	r := tm.add(Roles{Relay: true})
	tr := tm.add(Roles{Therapist: true})
	_, _, outs, err := tr.eng.Publish([]fapp.Slot{testSlot(tm.clk.Now(), 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := fapp.DecodeSlotAnnounce(outs[0].Data)
	reserve := func() []byte {
		_, frame, err := fapp.NewReservation(&a, 1, "", 4, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return frame
	}
	patient, next := crypto.Address{1}, crypto.Address{2}
	if o := r.eng.Handle(patient, reserve()); len(o) != 1 || !o[0].All || o[0].Except != patient {
		t.Fatalf("without any path: %+v, want a flood but to the sender", o)
	}
	r.eng.SetRoutes([]messages.RouteInfo{
		{Address: tr.id.Address(), NextHop: next, Capabilities: messages.CapFAPPTherapist},
		{Address: crypto.Address{3}, NextHop: crypto.Address{4}},
	})
	if o := r.eng.Handle(patient, reserve()); len(o) != 1 || o[0].All || o[0].Peer != next {
		t.Fatalf("with a route: %+v, want it sent to the next hop %x", o, next)
	}
}
