package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/actors/ratelimit"
	"github.com/quicprochat/qpc/actors/verify"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/mls"
	"github.com/quicprochat/qpc/crypto/pq"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// The engine tests run several Engines side by side (no actors): the rig
// plays the router. A group message (SendText of payload type group)
// becomes a record in the recipient's group inbox, as the router writes
// it; a KeyPackage control becomes a signed envelope handed to the
// recipient's HandleKeyPackage.

type rigNode struct {
	name  string
	id    *crypto.Identity
	addr  crypto.Address
	db    *persist.DB
	inbox *inbox.Store
	m     *metrics.Groups
	cfg   EngineConfig
	eng   *Engine
}

type engRig struct {
	t     *testing.T
	now   time.Time
	dir   *verify.Directory
	nodes []*rigNode
}

// newEngRig starts one engine per name, each with its own identity and
// database, all announced (with their KeyPackage hash) in one directory.
func newEngRig(t *testing.T, names ...string) (*engRig, []*rigNode) {
	t.Helper()
	r := &engRig{t: t, now: time.Now()}
	for _, name := range names {
		r.newNode(name, false)
	}
	r.publish()
	return r, r.nodes
}

// newNode starts one more engine (with groups.pq on when pqOn), with its
// own identity and database.
func (r *engRig) newNode(name string, pqOn bool) *rigNode {
	t := r.t
	t.Helper()
	id, err := crypto.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.dir == nil {
		r.dir = verify.NewDirectory(id.PublicKey())
	}
	db, err := persist.Open(filepath.Join(t.TempDir(), name+".db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n := &rigNode{name: name, id: id, addr: id.Address(), db: db}
	n.cfg = EngineConfig{Identity: id, DB: db, Directory: r.dir}
	if pqOn {
		n.cfg.PQ = pq.KeyFor(id)
	}
	r.start(n)
	if _, err := n.eng.EnsureKeyPackages(r.now); err != nil {
		t.Fatal(err)
	}
	r.nodes = append(r.nodes, n)
	return n
}

// addNode adds a node to a running rig and announces it.
func (r *engRig) addNode(t *testing.T, name string, pqOn bool) *rigNode {
	t.Helper()
	n := r.newNode(name, pqOn)
	r.publish()
	return n
}

// start opens n's inbox and a fresh engine over n's database, as a
// restarted node does.
func (r *engRig) start(n *rigNode) {
	r.t.Helper()
	st, err := inbox.Open(n.db.DB)
	if err != nil {
		r.t.Fatal(err)
	}
	n.inbox = st
	n.m = metrics.New(metrics.Options{}).Groups
	n.cfg.Inbox, n.cfg.Metrics = st, n.m
	eng, err := NewEngine(n.cfg)
	if err != nil {
		r.t.Fatalf("%s: NewEngine: %v", n.name, err)
	}
	n.eng = eng
}

// publish announces every node with its current KeyPackage hash.
func (r *engRig) publish() {
	k := verify.Keys{}
	for _, n := range r.nodes {
		k[n.addr] = verify.Key{Signing: n.id.PublicKey(), Sealing: []byte{1}, KeyPackage: n.eng.KeyPackageHash()}
	}
	r.dir.Publish(k)
}

func (r *engRig) node(a [16]byte) *rigNode {
	for _, n := range r.nodes {
		if n.addr == a {
			return n
		}
	}
	r.t.Fatalf("no node %s in the rig", crypto.Address(a))
	return nil
}

// put writes one group inbox record into to's database, as the router
// does for a group message from from, and returns its seq.
func (r *engRig) put(to *rigNode, from crypto.Address, payload []byte) uint64 {
	r.t.Helper()
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		r.t.Fatal(err)
	}
	k, v, err := to.inbox.EncodeGroup(&messages.InboxMessage{ID: id, From: from, Text: payload, At: r.now, Payload: messages.PayloadGroup})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := to.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(inbox.GroupBucket)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	}); err != nil {
		r.t.Fatal(err)
	}
	en, err := inbox.DecodeGroupEntry(k, v)
	if err != nil {
		r.t.Fatal(err)
	}
	return en.Seq
}

func (r *engRig) process(n *rigNode) Effects {
	r.t.Helper()
	fx, err := n.eng.ProcessInbox(r.now)
	if err != nil {
		r.t.Fatalf("%s: ProcessInbox: %v", n.name, err)
	}
	if fx.Announce != nil {
		r.publish()
	}
	return fx
}

// deliver puts every group message of fx into its recipient's group
// inbox (in order), then lets each recipient process its inbox once.
func (r *engRig) deliver(from *rigNode, fx Effects) map[crypto.Address]Effects {
	r.t.Helper()
	var order []*rigNode
	seen := map[crypto.Address]bool{}
	for _, s := range fx.Sends {
		if s.Payload != messages.PayloadGroup {
			r.t.Fatalf("send to %s of payload type %v, want group", crypto.Address(s.To), s.Payload)
		}
		if s.To == from.addr {
			r.t.Fatalf("%s sends a group message to itself", from.name)
		}
		to := r.node(s.To)
		r.put(to, from.addr, s.Text)
		if !seen[to.addr] {
			seen[to.addr] = true
			order = append(order, to)
		}
	}
	out := map[crypto.Address]Effects{}
	for _, n := range order {
		out[n.addr] = r.process(n)
	}
	return out
}

// envelope is the signed envelope the router would send for ctl.
func (r *engRig) envelope(src *rigNode, ctl messages.SendControl) messages.Envelope {
	r.t.Helper()
	env := messages.NewEnvelope(src.addr, ctl.To, 8, r.now.Add(time.Hour), ctl.Payload, ctl.Data)
	if err := env.Sign(src.id.Sign); err != nil {
		r.t.Fatal(err)
	}
	return env
}

// fetch fetches owner's KeyPackage for a over the mesh: a's request to
// the owner, the owner's answer back to a.
func (r *engRig) fetch(a, owner *rigNode) *mls.KeyPackage {
	r.t.Helper()
	kp, ctl := a.eng.Fetch(owner.addr, r.now)
	if kp != nil || ctl == nil {
		r.t.Fatalf("%s: Fetch(%s) answered from its cache (%v), want a request", a.name, owner.name, kp != nil)
	}
	if ctl.To != owner.addr || ctl.Payload != messages.PayloadKeyPackageRequest {
		r.t.Fatalf("%s: Fetch(%s) = request to %s of %v", a.name, owner.name, crypto.Address(ctl.To), ctl.Payload)
	}
	fx := owner.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: r.envelope(a, *ctl)}, r.now)
	if len(fx.Controls) != 1 || fx.Controls[0].To != a.addr || fx.Controls[0].Payload != messages.PayloadKeyPackage {
		r.t.Fatalf("%s: answer to %s's request = %+v, want one KeyPackage to it", owner.name, a.name, fx.Controls)
	}
	fx = a.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: r.envelope(owner, fx.Controls[0])}, r.now)
	if len(fx.Fetched) != 1 || fx.Fetched[0].Owner != owner.addr {
		r.t.Fatalf("%s: %s's answer fetched %d KeyPackages, want one of %s", a.name, owner.name, len(fx.Fetched), owner.name)
	}
	return fx.Fetched[0]
}

// add fetches who's KeyPackage, adds it to the group, delivers the
// commit and the Welcome, and checks that who joined.
func (r *engRig) add(creator *rigNode, gid [16]byte, who *rigNode) {
	r.t.Helper()
	kp := r.fetch(creator, who)
	_, fx, err := creator.eng.Add(gid, kp, nil)
	if err != nil {
		r.t.Fatalf("%s: Add(%s): %v", creator.name, who.name, err)
	}
	r.deliver(creator, fx)
	r.checkGroup(who, gid, creator)
}

// checkGroup checks that n is in gid at the creator's epoch with its
// members.
func (r *engRig) checkGroup(n *rigNode, gid [16]byte, creator *rigNode) {
	r.t.Helper()
	want, err := creator.eng.Group(gid)
	if err != nil {
		r.t.Fatal(err)
	}
	got, err := n.eng.Group(gid)
	if err != nil {
		r.t.Fatalf("%s: Group: %v", n.name, err)
	}
	if got.Epoch != want.Epoch || !sameAddrs(got.Members, want.Members) || got.Name != want.Name || got.Creator != want.Creator {
		r.t.Fatalf("%s sees the group as epoch %d members %v name %q creator %s; the creator: epoch %d members %v name %q creator %s",
			n.name, got.Epoch, got.Members, got.Name, got.Creator, want.Epoch, want.Members, want.Name, want.Creator)
	}
}

// engSend is Engine.Send for members that all take MLS. Send is gaining
// a per-member mode (MLS-Lite); this is the one place that knows its
// signature, and it takes either.
func engSend(e *Engine, gid [16]byte, text []byte) (Effects, error) {
	type sendModes interface {
		Send([16]byte, []byte, map[crypto.Address]transports.CryptoMode) (GroupInfo, Effects, error)
	}
	type sendMLS interface {
		Send([16]byte, []byte) (GroupInfo, Effects, error)
	}
	var fx Effects
	var err error
	switch s := any(e).(type) {
	case sendModes:
		_, fx, err = s.Send(gid, text, nil)
	case sendMLS:
		_, fx, err = s.Send(gid, text)
	default:
		panic("keys: Engine.Send has a signature engSend does not know")
	}
	return fx, err
}

// send sends text from n to gid and delivers it.
func (r *engRig) send(n *rigNode, gid [16]byte, text string) map[crypto.Address]Effects {
	r.t.Helper()
	fx, err := engSend(n.eng, gid, []byte(text))
	if err != nil {
		r.t.Fatalf("%s: Send: %v", n.name, err)
	}
	return r.deliver(n, fx)
}

func sameAddrs(a, b []crypto.Address) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[crypto.Address]bool{}
	for _, x := range a {
		in[x] = true
	}
	for _, x := range b {
		if !in[x] {
			return false
		}
	}
	return true
}

// inboxTexts is n's inbox.
func inboxTexts(t *testing.T, n *rigNode) []inbox.Entry {
	t.Helper()
	es, _, err := n.inbox.List(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// checkInbox checks that n's inbox holds exactly want, in order, each a
// group message of gid.
func checkInbox(t *testing.T, n *rigNode, gid [16]byte, want ...inboxWant) {
	t.Helper()
	es := inboxTexts(t, n)
	if len(es) != len(want) {
		t.Fatalf("%s's inbox has %d entries %+v, want %d", n.name, len(es), es, len(want))
	}
	for i, w := range want {
		e := es[i]
		if e.Damaged != "" || e.Text != w.text || e.From != w.from.addr.String() || e.Group != hex.EncodeToString(gid[:]) {
			t.Fatalf("%s's inbox #%d = %+v, want text %q from %s (%s) in group %x", n.name, i, e, w.text, w.from.name, w.from.addr, gid)
		}
	}
}

type inboxWant struct {
	from *rigNode
	text string
}

// groupInboxLen is how many entries wait in n's group inbox.
func groupInboxLen(t *testing.T, n *rigNode) int {
	t.Helper()
	c := 0
	if err := n.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(inbox.GroupBucket); b != nil {
			c = b.Stats().KeyN
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func failures(n *rigNode, reason string) float64 {
	return testutil.ToFloat64(n.m.Failures.WithLabelValues(modeMLS, reason))
}

func kpEvents(n *rigNode, event string) float64 {
	return testutil.ToFloat64(n.m.KeyPackages.WithLabelValues(event))
}

// newGroup has creator make a group and add the others.
func (r *engRig) newGroup(creator *rigNode, name string, others ...*rigNode) [16]byte {
	r.t.Helper()
	gi, err := creator.eng.Create(name)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, o := range others {
		r.add(creator, gi.ID, o)
	}
	for _, o := range others {
		r.checkGroup(o, gi.ID, creator)
	}
	return gi.ID
}

// sendsTo is the one group payload of fx for to.
func sendsTo(t *testing.T, fx Effects, to *rigNode) []byte {
	t.Helper()
	var out []byte
	for _, s := range fx.Sends {
		if s.To == to.addr {
			if out != nil {
				t.Fatalf("two sends to %s", to.name)
			}
			out = s.Text
		}
	}
	if out == nil {
		t.Fatalf("no send to %s in %d sends", to.name, len(fx.Sends))
	}
	return out
}

func TestEngineHappyPath(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C")
	a, b, c := n[0], n[1], n[2]

	gi, err := a.eng.Create("team")
	if err != nil {
		t.Fatal(err)
	}
	gid := gi.ID
	if gi.Epoch != 0 || len(gi.Members) != 1 || gi.Members[0] != a.addr || gi.Creator != a.addr || gi.Self != a.addr {
		t.Fatalf("created %+v", gi)
	}

	// B: fetched over the mesh, added; its Welcome is the only send.
	bHash := b.eng.KeyPackageHash()
	kpB := r.fetch(a, b)
	if kpB.Hash16 != bHash {
		t.Fatalf("fetched B's KeyPackage %x, B announces %x", kpB.Hash16, bHash)
	}
	_, fx, err := a.eng.Add(gid, kpB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fx.Sends) != 1 || fx.Sends[0].To != b.addr {
		t.Fatalf("adding B to a group of one sends %d messages, want its Welcome only", len(fx.Sends))
	}
	got := r.deliver(a, fx)
	r.checkGroup(b, gid, a)
	// B's KeyPackage was used once: rotated, and the new hash announced.
	ann := got[b.addr].Announce
	if ann == nil {
		t.Fatal("B joined with its current KeyPackage and announced no new one")
	}
	if *ann == bHash || *ann != b.eng.KeyPackageHash() {
		t.Fatalf("B announces %x after the Welcome (before %x, now %x)", *ann, bHash, b.eng.KeyPackageHash())
	}
	if v := testutil.ToFloat64(b.m.Groups); v != 1 {
		t.Fatalf("B's groups gauge = %v, want 1", v)
	}

	// C: the commit goes to B, the Welcome to C.
	kpC := r.fetch(a, c)
	_, fx, err = a.eng.Add(gid, kpC, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fx.Sends) != 2 {
		t.Fatalf("adding C sends %d messages, want a commit to B and a Welcome to C", len(fx.Sends))
	}
	r.deliver(a, fx)
	r.checkGroup(b, gid, a)
	r.checkGroup(c, gid, a)
	if gi, _ := a.eng.Group(gid); gi.Epoch != 2 || len(gi.Members) != 3 {
		t.Fatalf("after two adds: %+v", gi)
	}
	// Adding a member again is refused.
	if _, _, err := a.eng.Add(gid, kpC, nil); !errors.Is(err, ErrMember) {
		t.Fatalf("adding C twice: %v, want ErrMember", err)
	}

	// Texts both ways.
	r.send(a, gid, "hello from A")
	r.send(b, gid, "hello from B")
	r.send(c, gid, "hello from C")
	checkInbox(t, a, gid, inboxWant{b, "hello from B"}, inboxWant{c, "hello from C"})
	checkInbox(t, b, gid, inboxWant{a, "hello from A"}, inboxWant{c, "hello from C"})
	checkInbox(t, c, gid, inboxWant{a, "hello from A"}, inboxWant{b, "hello from B"})
	for _, x := range n {
		if k := groupInboxLen(t, x); k != 0 {
			t.Fatalf("%s's group inbox keeps %d entries", x.name, k)
		}
		if x.eng.Pending() != 0 {
			t.Fatalf("%s: Pending = %d", x.name, x.eng.Pending())
		}
	}

	// A second Welcome made with B's used KeyPackage does not open.
	g2, err := a.eng.Create("second")
	if err != nil {
		t.Fatal(err)
	}
	_, fx, err = a.eng.Add(g2.ID, kpB, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := failures(b, "tampered")
	got = r.deliver(a, fx)
	if _, err := b.eng.Group(g2.ID); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("B joined a second group with its used KeyPackage (Group: %v)", err)
	}
	if got[b.addr].Announce != nil {
		t.Fatal("a refused Welcome rotated B's KeyPackage")
	}
	if failures(b, "tampered") != before+1 || groupInboxLen(t, b) != 0 {
		t.Fatalf("the stale Welcome: tampered %v (was %v), group inbox %d", failures(b, "tampered"), before, groupInboxLen(t, b))
	}
	if len(b.eng.Groups()) != 1 {
		t.Fatalf("B is in %d groups, want 1", len(b.eng.Groups()))
	}

	// The new KeyPackage works: a fresh fetch gets it, and B joins.
	g3, err := a.eng.Create("third")
	if err != nil {
		t.Fatal(err)
	}
	kpB2 := r.fetch(a, b)
	if kpB2.Hash16 != *ann {
		t.Fatalf("fetched %x after the rotation, B announces %x", kpB2.Hash16, *ann)
	}
	_, fx, err = a.eng.Add(g3.ID, kpB2, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(a, fx)
	r.checkGroup(b, g3.ID, a)
}

func TestEngineOrder(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C")
	a, b, c := n[0], n[1], n[2]
	gid := r.newGroup(a, "order", b)
	e0, _ := b.eng.Group(gid)

	// Commit 1 adds C, commit 2 removes C, then a text: B gets them in
	// reverse order.
	kpC := r.fetch(a, c)
	_, fx1, err := a.eng.Add(gid, kpC, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, fx2, err := a.eng.Remove(gid, c.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	fx3, err := engSend(a.eng, gid, []byte("after two commits"))
	if err != nil {
		t.Fatal(err)
	}
	c1, c2, app := sendsTo(t, fx1, b), sendsTo(t, fx2, b), sendsTo(t, fx3, b)
	if len(fx3.Sends) != 1 {
		t.Fatalf("the text goes to %d members, want B only", len(fx3.Sends))
	}
	decBefore := testutil.ToFloat64(b.m.Decryptions.WithLabelValues(modeMLS, "commit"))

	r.put(b, a.addr, app)
	r.process(b)
	if b.eng.Pending() != 1 || testutil.ToFloat64(b.m.Pending) != 1 {
		t.Fatalf("after the text: Pending %d, gauge %v, want 1", b.eng.Pending(), testutil.ToFloat64(b.m.Pending))
	}
	r.put(b, a.addr, c2)
	r.process(b)
	if b.eng.Pending() != 2 || testutil.ToFloat64(b.m.Pending) != 2 {
		t.Fatalf("after commit 2: Pending %d, gauge %v, want 2", b.eng.Pending(), testutil.ToFloat64(b.m.Pending))
	}
	if gi, _ := b.eng.Group(gid); gi.Epoch != e0.Epoch || !sameAddrs(gi.Members, e0.Members) {
		t.Fatalf("B applied something early: %+v", gi)
	}
	if len(inboxTexts(t, b)) != 0 || groupInboxLen(t, b) != 2 {
		t.Fatalf("before commit 1: inbox %d, group inbox %d", len(inboxTexts(t, b)), groupInboxLen(t, b))
	}
	if testutil.ToFloat64(b.m.Decryptions.WithLabelValues(modeMLS, "commit")) != decBefore {
		t.Fatal("a commit was applied before commit 1")
	}

	r.put(b, a.addr, c1)
	fx := r.process(b)
	if !fx.Inbox {
		t.Fatal("the text was applied and Effects.Inbox is not set")
	}
	if b.eng.Pending() != 0 || testutil.ToFloat64(b.m.Pending) != 0 || groupInboxLen(t, b) != 0 {
		t.Fatalf("after commit 1: Pending %d, gauge %v, group inbox %d", b.eng.Pending(), testutil.ToFloat64(b.m.Pending), groupInboxLen(t, b))
	}
	r.checkGroup(b, gid, a)
	if gi, _ := b.eng.Group(gid); gi.Epoch != e0.Epoch+2 || len(gi.Members) != 2 {
		t.Fatalf("B after both commits: %+v", gi)
	}
	if d := testutil.ToFloat64(b.m.Decryptions.WithLabelValues(modeMLS, "commit")); d != decBefore+2 {
		t.Fatalf("commits applied: %v, want 2", d-decBefore)
	}
	checkInbox(t, b, gid, inboxWant{a, "after two commits"})
	for _, reason := range []string{"wrong_epoch", "tampered", "replay", "malformed", "pending_dropped"} {
		if v := failures(b, reason); v != 0 {
			t.Fatalf("failures %s = %v", reason, v)
		}
	}
}

func TestEngineRefusesMLS(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C")
	a, b, c := n[0], n[1], n[2]
	gid := r.newGroup(a, "acceptance", b)
	before, _ := b.eng.Group(gid)

	// Tampered: one byte of the MLS message flipped (the last, in the
	// AEAD tag), the payload re-encoded.
	fx, err := engSend(a.eng, gid, []byte("genuine"))
	if err != nil {
		t.Fatal(err)
	}
	good := sendsTo(t, fx, b)
	p, err := DecodeGroupPayload(good)
	if err != nil {
		t.Fatal(err)
	}
	p.MLS = append([]byte(nil), p.MLS...)
	p.MLS[len(p.MLS)-1] ^= 0x01
	bad, err := EncodeGroupPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	r.put(b, a.addr, bad)
	r.process(b)
	if failures(b, "tampered") != 1 {
		t.Fatalf("tampered = %v, want 1", failures(b, "tampered"))
	}
	if len(inboxTexts(t, b)) != 0 || groupInboxLen(t, b) != 0 {
		t.Fatalf("tampered message: inbox %d, group inbox %d", len(inboxTexts(t, b)), groupInboxLen(t, b))
	}
	// The genuine one still opens: the tampered copy did not use its
	// generation.
	r.put(b, a.addr, good)
	r.process(b)
	checkInbox(t, b, gid, inboxWant{a, "genuine"})

	// Replayed: the same record delivered again.
	r.put(b, a.addr, good)
	r.process(b)
	if failures(b, "replay") != 1 {
		t.Fatalf("replay = %v, want 1", failures(b, "replay"))
	}
	checkInbox(t, b, gid, inboxWant{a, "genuine"})

	// A commit for an old epoch: adding C (B applies it), then the same
	// commit again.
	kpC := r.fetch(a, c)
	_, fx, err = a.eng.Add(gid, kpC, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit := sendsTo(t, fx, b)
	r.deliver(a, fx)
	r.checkGroup(b, gid, a)
	after, _ := b.eng.Group(gid)
	if after.Epoch != before.Epoch+1 {
		t.Fatalf("B at epoch %d after the commit, want %d", after.Epoch, before.Epoch+1)
	}
	r.put(b, a.addr, commit)
	r.process(b)
	if failures(b, "wrong_epoch") != 1 {
		t.Fatalf("wrong_epoch = %v, want 1", failures(b, "wrong_epoch"))
	}
	if gi, _ := b.eng.Group(gid); gi.Epoch != after.Epoch || !sameAddrs(gi.Members, after.Members) {
		t.Fatalf("the old commit changed B's group: %+v", gi)
	}
	if groupInboxLen(t, b) != 0 || b.eng.Pending() != 0 {
		t.Fatalf("refused messages left in the group inbox: %d (pending %d)", groupInboxLen(t, b), b.eng.Pending())
	}
	checkInbox(t, b, gid, inboxWant{a, "genuine"})
	if v := testutil.ToFloat64(b.m.Decryptions.WithLabelValues(modeMLS, "application")); v != 1 {
		t.Fatalf("applications opened = %v, want 1", v)
	}

	// The group still works, both ways.
	r.send(a, gid, "later")
	r.send(b, gid, "answer")
	checkInbox(t, b, gid, inboxWant{a, "genuine"}, inboxWant{a, "later"})
	checkInbox(t, a, gid, inboxWant{b, "answer"})
	checkInbox(t, c, gid, inboxWant{a, "later"}, inboxWant{b, "answer"})
}

func TestEngineRestart(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C")
	a, b, c := n[0], n[1], n[2]
	gid := r.newGroup(a, "restart", b, c)
	r.send(a, gid, "one")
	was, _ := b.eng.Group(gid)
	hash := b.eng.KeyPackageHash()

	// A text written into B's group inbox, not processed: B stops.
	fx, err := engSend(a.eng, gid, []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	r.put(b, a.addr, sendsTo(t, fx, b))
	r.deliver(a, Effects{Sends: []messages.SendText{{To: c.addr, Text: sendsTo(t, fx, c), Payload: messages.PayloadGroup}}})

	r.start(b) // a new engine (and inbox) over the same database
	got, err := b.eng.Group(gid)
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if got.Epoch != was.Epoch || got.Name != "restart" || got.Creator != a.addr || got.Self != b.addr || !sameAddrs(got.Members, was.Members) {
		t.Fatalf("loaded %+v, was %+v", got, was)
	}
	if v := testutil.ToFloat64(b.m.Groups); v != 1 {
		t.Fatalf("groups gauge after the restart = %v", v)
	}
	if b.eng.KeyPackageHash() != hash {
		t.Fatalf("KeyPackage hash %x after the restart, was %x", b.eng.KeyPackageHash(), hash)
	}
	if h, err := b.eng.EnsureKeyPackages(r.now); err != nil || h != nil {
		t.Fatalf("EnsureKeyPackages after the restart: %v, %v (want no rotation)", h, err)
	}
	checkInbox(t, b, gid, inboxWant{a, "one"})
	if groupInboxLen(t, b) != 1 {
		t.Fatalf("group inbox %d, want the one entry left", groupInboxLen(t, b))
	}
	fx = r.process(b)
	if !fx.Inbox {
		t.Fatal("Effects.Inbox not set")
	}
	checkInbox(t, b, gid, inboxWant{a, "one"}, inboxWant{a, "two"})

	// Messages continue, both ways, and membership changes too.
	r.send(b, gid, "three")
	r.send(a, gid, "four")
	checkInbox(t, a, gid, inboxWant{b, "three"})
	checkInbox(t, b, gid, inboxWant{a, "one"}, inboxWant{a, "two"}, inboxWant{a, "four"})
	checkInbox(t, c, gid, inboxWant{a, "one"}, inboxWant{a, "two"}, inboxWant{b, "three"}, inboxWant{a, "four"})
	_, fx, err = a.eng.Remove(gid, c.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(a, fx)
	r.checkGroup(b, gid, a)
	if _, err := c.eng.Group(gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("C after its removal: %v", err)
	}
	r.start(c)
	if _, err := c.eng.Group(gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("C after its removal and a restart: %v", err)
	}

	// The creator sends, restarts and sends again: the generation its
	// first text used was on disk before it left, so the second is not
	// taken for a replay.
	r.send(a, gid, "five")
	r.start(a)
	r.send(a, gid, "six")
	checkInbox(t, b, gid, inboxWant{a, "one"}, inboxWant{a, "two"}, inboxWant{a, "four"}, inboxWant{a, "five"}, inboxWant{a, "six"})
	if failures(b, "replay") != 0 {
		t.Fatalf("B took a text after A's restart for a replay")
	}
	// And it still commits.
	_, fx, err = a.eng.Remove(gid, b.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(a, fx)
	if _, err := b.eng.Group(gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("B after its removal: %v", err)
	}
}

func TestEngineCommitsOnlyFromCreator(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C")
	a, b, c := n[0], n[1], n[2]
	gid := r.newGroup(a, "creator", b, c)

	if _, _, err := b.eng.Remove(gid, c.addr, nil); !errors.Is(err, ErrNotCreator) {
		t.Fatalf("B.Remove: %v, want ErrNotCreator", err)
	}
	kp := r.fetch(b, a) // any valid KeyPackage will do
	if _, _, err := b.eng.Add(gid, kp, nil); !errors.Is(err, ErrNotCreator) {
		t.Fatalf("B.Add: %v, want ErrNotCreator", err)
	}
	var unknown [16]byte
	if _, _, err := a.eng.Remove(unknown, c.addr, nil); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("Remove in an unknown group: %v", err)
	}
	if _, _, err := a.eng.Remove(gid, a.addr, nil); !errors.Is(err, ErrMember) {
		t.Fatalf("the creator removing itself: %v, want ErrMember", err)
	}

	// B crafts a commit anyway, from its own state as the vault keeps it.
	v, err := OpenVault(b.db, b.id.PrivateKey().Seed())
	if err != nil {
		t.Fatal(err)
	}
	plain, err := v.Get(BucketGroups, gid[:])
	if err != nil {
		t.Fatal(err)
	}
	var rec groupRec
	if err := json.Unmarshal(plain, &rec); err != nil {
		t.Fatal(err)
	}
	g, err := mls.Load(b.id.PrivateKey(), rec.State)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := g.Remove(c.addr)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := EncodeGroupPayload(GroupPayload{Kind: KindCommit, Group: gid[:], MLS: forged})
	if err != nil {
		t.Fatal(err)
	}
	was, _ := c.eng.Group(gid)
	wasA, _ := a.eng.Group(gid)
	for _, x := range []*rigNode{c, a} {
		r.put(x, b.addr, payload)
		r.process(x)
		if failures(x, "not_member") != 1 || groupInboxLen(t, x) != 0 {
			t.Fatalf("%s: B's commit: not_member %v, group inbox %d", x.name, failures(x, "not_member"), groupInboxLen(t, x))
		}
	}
	if got, err := c.eng.Group(gid); err != nil || got.Epoch != was.Epoch || !sameAddrs(got.Members, was.Members) {
		t.Fatalf("C took B's commit: %+v, %v (was %+v)", got, err, was)
	}
	if got, _ := a.eng.Group(gid); got.Epoch != wasA.Epoch || len(got.Members) != 3 {
		t.Fatalf("A took B's commit: %+v", got)
	}

	// C's state is the creator's: its texts and its next commit apply.
	r.send(a, gid, "still three")
	checkInbox(t, c, gid, inboxWant{a, "still three"})
	_, fx, err := a.eng.Remove(gid, b.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(a, fx)
	r.checkGroup(c, gid, a)
	if _, err := b.eng.Group(gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("B after its removal: %v", err)
	}
	r.send(a, gid, "two of us")
	checkInbox(t, c, gid, inboxWant{a, "still three"}, inboxWant{a, "two of us"})
	// And after a restart C still has the creator's state.
	r.start(c)
	r.checkGroup(c, gid, a)
	r.send(a, gid, "after restart")
	checkInbox(t, c, gid, inboxWant{a, "still three"}, inboxWant{a, "two of us"}, inboxWant{a, "after restart"})
}

// request is the envelope of src's KeyPackage request for owner.
func (r *engRig) request(src *rigNode, owner crypto.Address) messages.Envelope {
	_, ctl := src.eng.Fetch(owner, r.now)
	if ctl == nil {
		r.t.Fatalf("%s holds %s's KeyPackage already", src.name, owner)
	}
	return r.envelope(src, *ctl)
}

func TestEngineKeyPackageLimiter(t *testing.T) {
	r, n := newEngRig(t, "A", "B")
	a, b := n[0], n[1]
	b.cfg.Limiter = LimiterConfig{PerRequester: ratelimit.Limit{Rate: 1e-6, Burst: 2}, Global: ratelimit.Limit{Rate: 1e-6, Burst: 100}}
	r.start(b)

	env := r.request(a, b.addr)
	for i := range 2 {
		if fx := b.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: env}, r.now); len(fx.Controls) != 1 {
			t.Fatalf("request %d: %d answers, want 1", i, len(fx.Controls))
		}
	}
	fx := b.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: env}, r.now)
	if len(fx.Controls) != 0 || len(fx.Forwards) != 0 {
		t.Fatalf("request over the limit answered: %+v", fx)
	}
	if kpEvents(b, "requests_limited") != 1 || kpEvents(b, "requests_answered") != 2 || kpEvents(b, "requests_received") != 3 {
		t.Fatalf("limited %v answered %v received %v", kpEvents(b, "requests_limited"), kpEvents(b, "requests_answered"), kpEvents(b, "requests_received"))
	}
}

func TestEngineKeyPackageRelay(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C", "R")
	a, b, c, relay := n[0], n[1], n[2], n[3]

	// R sees B's answer to A pass.
	env := r.request(a, b.addr)
	fx := b.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: env}, r.now)
	if len(fx.Controls) != 1 {
		t.Fatalf("B answered %d", len(fx.Controls))
	}
	resp := r.envelope(b, fx.Controls[0])
	fx = relay.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: resp, Transit: true}, r.now)
	if len(fx.Fetched) != 0 || len(fx.Controls) != 0 || len(fx.Forwards) != 0 {
		t.Fatalf("a response in transit: %+v", fx)
	}
	if v := testutil.ToFloat64(relay.m.CacheEntries); v != 1 {
		t.Fatalf("R caches %v entries", v)
	}

	// C's request for B's KeyPackage passes R: R answers from its cache.
	req := r.request(c, b.addr)
	frame := []byte("the request's frame")
	in := &messages.KeyPackageIn{Env: req, ID: req.ID(), Frame: frame, From: a.addr, Transit: true}
	fx = relay.eng.HandleKeyPackage(in, r.now)
	if len(fx.Forwards) != 0 {
		t.Fatalf("R forwards a request it answered: %+v", fx.Forwards)
	}
	if len(fx.Controls) != 1 || fx.Controls[0].To != c.addr || fx.Controls[0].Payload != messages.PayloadKeyPackage {
		t.Fatalf("R's answer: %+v", fx.Controls)
	}
	if kpEvents(relay, "answered_from_cache") != 1 || kpEvents(relay, "forwarded") != 0 {
		t.Fatalf("answered_from_cache %v forwarded %v", kpEvents(relay, "answered_from_cache"), kpEvents(relay, "forwarded"))
	}
	// C takes R's answer: it is B's KeyPackage, the one B announces.
	fx = c.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: r.envelope(relay, fx.Controls[0])}, r.now)
	if len(fx.Fetched) != 1 || fx.Fetched[0].Owner != b.addr || fx.Fetched[0].Hash16 != b.eng.KeyPackageHash() {
		t.Fatalf("C from R's answer: %+v", fx.Fetched)
	}
	// And it works: C adds B with it.
	g, err := c.eng.Create("via relay")
	if err != nil {
		t.Fatal(err)
	}
	_, afx, err := c.eng.Add(g.ID, fx.Fetched[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(c, afx)
	r.checkGroup(b, g.ID, c)

	// A request for C's, which R never saw: forwarded as it came.
	req = r.request(a, c.addr)
	in = &messages.KeyPackageIn{Env: req, ID: req.ID(), Frame: frame, From: b.addr, Transit: true}
	fx = relay.eng.HandleKeyPackage(in, r.now)
	if len(fx.Controls) != 0 || len(fx.Forwards) != 1 {
		t.Fatalf("a request R cannot answer: %+v", fx)
	}
	f := fx.Forwards[0]
	if f.Dest != c.addr || f.ID != in.ID || f.From != b.addr || !bytes.Equal(f.Frame, frame) || !f.Expiry.Equal(req.ExpiresAt()) {
		t.Fatalf("forward %+v", f)
	}
	if kpEvents(relay, "forwarded") != 1 {
		t.Fatalf("forwarded = %v", kpEvents(relay, "forwarded"))
	}
	// At the hop limit (no frame) it is dropped.
	in.Frame = nil
	if fx = relay.eng.HandleKeyPackage(in, r.now); len(fx.Controls)+len(fx.Forwards) != 0 {
		t.Fatalf("a request at its hop limit: %+v", fx)
	}
}

func TestEngineKeyPackageRefused(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C", "R")
	a, b, c, relay := n[0], n[1], n[2], n[3]

	// A response that says it is C's but carries B's KeyPackage.
	bKP := r.fetch(a, b)
	lie, err := messages.EncodeKeyPackagePayload(c.addr, bKP.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	env := r.envelope(relay, messages.SendControl{To: a.addr, Payload: messages.PayloadKeyPackage, Data: lie})
	fx := a.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: env}, r.now)
	if len(fx.Fetched) != 0 || kpEvents(a, "responses_refused") != 1 {
		t.Fatalf("A took B's KeyPackage as C's: fetched %d, refused %v", len(fx.Fetched), kpEvents(a, "responses_refused"))
	}
	if kp, _ := a.eng.Fetch(c.addr, r.now); kp != nil {
		t.Fatal("A cached B's KeyPackage as C's")
	}
	// The same lie in transit: not cached by R.
	fx = relay.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: r.envelope(b, messages.SendControl{To: a.addr, Payload: messages.PayloadKeyPackage, Data: lie}), Transit: true}, r.now)
	if kpEvents(relay, "responses_refused") != 1 || testutil.ToFloat64(relay.m.CacheEntries) != 0 {
		t.Fatalf("R: refused %v, cache %v", kpEvents(relay, "responses_refused"), testutil.ToFloat64(relay.m.CacheEntries))
	}
	req := r.request(a, c.addr)
	fx = relay.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: req, ID: req.ID(), Frame: []byte{1}, Transit: true}, r.now)
	if len(fx.Controls) != 0 || len(fx.Forwards) != 1 {
		t.Fatalf("R answers for C after a lie: %+v", fx)
	}

	// Unavailable: only the owner can say it.
	ref := messages.KeyPackageRef{Owner: b.addr}
	ctl := messages.SendControl{To: a.addr, Payload: messages.PayloadKeyPackageUnavailable, Data: ref.Encode()}
	fx = a.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: r.envelope(relay, ctl)}, r.now)
	if len(fx.Unavailable) != 0 || kpEvents(a, "unavailable_received") != 0 {
		t.Fatalf("A believes R that B has none: %+v", fx.Unavailable)
	}
	fx = a.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: r.envelope(b, ctl)}, r.now)
	if len(fx.Unavailable) != 1 || fx.Unavailable[0] != b.addr || kpEvents(a, "unavailable_received") != 1 {
		t.Fatalf("B's own unavailable: %+v", fx.Unavailable)
	}
	// In transit it is nobody's business.
	fx = relay.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: r.envelope(b, ctl), Transit: true}, r.now)
	if len(fx.Unavailable)+len(fx.Controls)+len(fx.Forwards) != 0 {
		t.Fatalf("an unavailable in transit: %+v", fx)
	}

	// A KeyPackage of an owner whose announce nobody heard.
	stranger, err := crypto.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	skp, err := mls.NewKeyPackage(stranger.PrivateKey(), r.now.Add(time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := messages.EncodeKeyPackagePayload(stranger.Address(), skp.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	fx = a.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: r.envelope(relay, messages.SendControl{To: a.addr, Payload: messages.PayloadKeyPackage, Data: sp})}, r.now)
	if len(fx.Fetched) != 0 {
		t.Fatal("A took the KeyPackage of a node it never heard")
	}
}

// TestEngineKeyPackageNotAnnounced: messages/keypackage.go says the
// requester takes a response only if the KeyPackage's hash is the one
// the owner's announce carries, "whoever answered, it cannot hand out
// another KeyPackage". A relay here hands out a KeyPackage of B's that B
// never announced (made with B's key, e.g. one B used and deleted long
// ago).
func TestEngineKeyPackageNotAnnounced(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "R")
	a, b, relay := n[0], n[1], n[2]
	other, err := mls.NewKeyPackage(b.id.PrivateKey(), r.now.Add(time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	if other.Hash16() == b.eng.KeyPackageHash() {
		t.Fatal("the same hash twice")
	}
	p, err := messages.EncodeKeyPackagePayload(b.addr, other.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	env := r.envelope(relay, messages.SendControl{To: a.addr, Payload: messages.PayloadKeyPackage, Data: p})
	fx := a.eng.HandleKeyPackage(&messages.KeyPackageIn{Env: env}, r.now)
	if len(fx.Fetched) != 0 {
		t.Errorf("A took a KeyPackage of B's with hash %x from a relay; B announces %x", fx.Fetched[0].Hash16, b.eng.KeyPackageHash())
	}
	if kpEvents(a, "responses_refused") != 1 {
		t.Errorf("responses_refused = %v, want 1", kpEvents(a, "responses_refused"))
	}
}

// flip flips one byte of the stored value under key in a vault bucket.
func flip(t *testing.T, db *persist.DB, bucket string, key []byte) []byte {
	t.Helper()
	var out []byte
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("keys/" + bucket))
		v := b.Get(key)
		if v == nil {
			t.Fatalf("no record %s/%x", bucket, key)
		}
		out = append([]byte(nil), v...)
		out[len(out)/2] ^= 0x40
		return b.Put(key, out)
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEngineDamagedVault(t *testing.T) {
	r, n := newEngRig(t, "A", "B")
	a, b := n[0], n[1]
	g1 := r.newGroup(b, "damaged", a)
	g2 := r.newGroup(b, "intact", a)
	r.send(b, g2, "before")
	hash := a.eng.KeyPackageHash()
	if hash == ([16]byte{}) {
		t.Fatal("A has no KeyPackage")
	}

	badGroup := flip(t, a.db, BucketGroups, g1[:])
	badKP := flip(t, a.db, BucketKeyPackages, hash[:])

	r.start(a)
	gs := a.eng.Groups()
	if len(gs) != 1 || gs[0].ID != g2 || gs[0].Name != "intact" {
		t.Fatalf("after the damage A loads %+v, want the intact group only", gs)
	}
	if _, err := a.eng.Group(g1); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("the damaged group: %v", err)
	}
	if v := testutil.ToFloat64(a.m.Groups); v != 1 {
		t.Fatalf("groups gauge = %v", v)
	}
	// The damaged KeyPackage is not loaded; a new one is made.
	if a.eng.KeyPackageHash() == hash {
		t.Fatal("the damaged KeyPackage loaded")
	}
	h, err := a.eng.EnsureKeyPackages(r.now)
	if err != nil || h == nil || *h == hash {
		t.Fatalf("EnsureKeyPackages after the damage: %v, %v", h, err)
	}
	r.publish()

	// The intact group works.
	r.send(b, g2, "after")
	r.send(a, g2, "from A")
	checkInbox(t, a, g2, inboxWant{b, "before"}, inboxWant{b, "after"})
	checkInbox(t, b, g2, inboxWant{a, "from A"})

	// The damaged records are still there, as they were.
	if got := raw(t, a.db, BucketGroups, g1[:]); !bytes.Equal(got, badGroup) {
		t.Fatalf("damaged group record now %x", got)
	}
	if got := raw(t, a.db, BucketKeyPackages, hash[:]); !bytes.Equal(got, badKP) {
		t.Fatalf("damaged KeyPackage record now %x", got)
	}
	// And a second start reads the same.
	r.start(a)
	if gs := a.eng.Groups(); len(gs) != 1 || gs[0].ID != g2 {
		t.Fatalf("second start: %+v", gs)
	}
	if a.eng.KeyPackageHash() != *h {
		t.Fatalf("second start: KeyPackage %x, want %x", a.eng.KeyPackageHash(), *h)
	}
}

func TestEngineWelcomeOnlyFromCreator(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C")
	a, b, c := n[0], n[1], n[2]
	gi, err := a.eng.Create("welcome")
	if err != nil {
		t.Fatal(err)
	}
	hash := b.eng.KeyPackageHash()
	_, fx, err := a.eng.Add(gi.ID, r.fetch(a, b), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := sendsTo(t, fx, b)
	// The Welcome names A as the creator; it comes from C.
	r.put(b, c.addr, w)
	if fx := r.process(b); fx.Announce != nil {
		t.Fatal("a refused Welcome rotated B's KeyPackage")
	}
	if _, err := b.eng.Group(gi.ID); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("B joined from a Welcome C sent in A's name: %v", err)
	}
	if failures(b, "not_member") != 1 || groupInboxLen(t, b) != 0 || b.eng.KeyPackageHash() != hash {
		t.Fatalf("not_member %v, group inbox %d, KeyPackage %x (was %x)", failures(b, "not_member"), groupInboxLen(t, b), b.eng.KeyPackageHash(), hash)
	}
	// From A it opens (the KeyPackage was not spent by the refused one).
	r.put(b, a.addr, w)
	if fx := r.process(b); fx.Announce == nil {
		t.Fatal("B joined and did not rotate its KeyPackage")
	}
	r.checkGroup(b, gi.ID, a)
}

// forgeCommit is a commit n makes in gid with crypto/mls directly, from
// its state as its vault keeps it (its engine would refuse: only the
// creator commits), removing who.
func forgeCommit(t *testing.T, n *rigNode, gid [16]byte, who crypto.Address) []byte {
	t.Helper()
	v, err := OpenVault(n.db, n.id.PrivateKey().Seed())
	if err != nil {
		t.Fatal(err)
	}
	plain, err := v.Get(BucketGroups, gid[:])
	if err != nil {
		t.Fatal(err)
	}
	var rec groupRec
	if err := json.Unmarshal(plain, &rec); err != nil {
		t.Fatal(err)
	}
	g, err := mls.Load(n.id.PrivateKey(), rec.State)
	if err != nil {
		t.Fatal(err)
	}
	commit, err := g.Remove(who)
	if err != nil {
		t.Fatal(err)
	}
	return commit
}

// TestEngineCommitLabelledApplication: the creator-only rule must hold
// whatever the group payload's kind says: a member's commit sent in a
// payload of kind application is still a commit.
func TestEngineCommitLabelledApplication(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C")
	a, b, c := n[0], n[1], n[2]
	gid := r.newGroup(a, "label", b, c)
	forged := forgeCommit(t, b, gid, a.addr)
	payload, err := EncodeGroupPayload(GroupPayload{Kind: KindApplication, Group: gid[:], MLS: forged})
	if err != nil {
		t.Fatal(err)
	}
	was, _ := c.eng.Group(gid)
	r.put(c, b.addr, payload)
	r.process(c)
	got, err := c.eng.Group(gid)
	if err != nil || got.Epoch != was.Epoch || !sameAddrs(got.Members, was.Members) {
		t.Errorf("C applied B's commit (removing the creator A) sent as an application message: now %+v (%v), was %+v", got, err, was)
	}
	// The creator's texts still reach C.
	r.send(a, gid, "still here")
	if es := inboxTexts(t, c); len(es) != 1 || es[0].Text != "still here" {
		t.Errorf("C's inbox after A's text: %+v", es)
	}
}

// TestEngineWelcomeForJoinedGroup: a Welcome for the id of a group this
// node is in, from someone who names itself that group's creator, must
// not replace the group: M, no member, would take over B's group (B's
// texts to it would go to M's group, and B would leave A's).
func TestEngineWelcomeForJoinedGroup(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C", "M")
	a, b, c, m := n[0], n[1], n[2], n[3]
	gid := r.newGroup(a, "team", b, c)
	was, _ := b.eng.Group(gid)

	g, err := mls.Create(m.id.PrivateKey(), gid)
	if err != nil {
		t.Fatal(err)
	}
	_, welcome, err := g.Add(r.fetch(m, b))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := EncodeGroupPayload(GroupPayload{Kind: KindWelcome, Group: gid[:], MLS: welcome, Name: "team", Creator: m.addr[:]})
	if err != nil {
		t.Fatal(err)
	}
	r.put(b, m.addr, payload)
	r.process(b)
	got, err := b.eng.Group(gid)
	if err != nil || got.Creator != a.addr || got.Epoch != was.Epoch || !sameAddrs(got.Members, was.Members) {
		t.Errorf("M's Welcome replaced B's group: now %+v (%v), was %+v", got, err, was)
	}
	if fx, err := engSend(b.eng, gid, []byte("for A and C")); err == nil {
		for _, s := range fx.Sends {
			if s.To == m.addr {
				t.Errorf("B's text to its group goes to M")
			}
		}
	}
	r.send(a, gid, "from the creator")
	if es := inboxTexts(t, b); len(es) != 1 || es[0].Text != "from the creator" {
		t.Errorf("B's inbox after A's text: %+v", es)
	}
}

func TestEnginePendingBounds(t *testing.T) {
	r, n := newEngRig(t, "A", "B", "C")
	a, b, c := n[0], n[1], n[2]
	b.cfg.PendingMax, b.cfg.PendingMaxAge = 2, time.Hour
	r.start(b)
	gid := r.newGroup(a, "bounds", b)

	// A commit B misses, then three texts of the next epoch: they wait,
	// and the oldest goes when more than PendingMax wait.
	_, fx, err := a.eng.Add(gid, r.fetch(a, c), nil)
	if err != nil {
		t.Fatal(err)
	}
	missed := sendsTo(t, fx, b)
	for _, text := range []string{"t1", "t2", "t3"} {
		fx, err := engSend(a.eng, gid, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		r.put(b, a.addr, sendsTo(t, fx, b))
	}
	r.process(b)
	if b.eng.Pending() != 2 || testutil.ToFloat64(b.m.Pending) != 2 || failures(b, "pending_dropped") != 1 || groupInboxLen(t, b) != 2 {
		t.Fatalf("Pending %d gauge %v dropped %v group inbox %d, want 2, 2, 1, 2",
			b.eng.Pending(), testutil.ToFloat64(b.m.Pending), failures(b, "pending_dropped"), groupInboxLen(t, b))
	}
	r.put(b, a.addr, missed)
	r.process(b)
	checkInbox(t, b, gid, inboxWant{a, "t2"}, inboxWant{a, "t3"})

	// One that waits longer than PendingMaxAge is dropped.
	_, fx, err = a.eng.Remove(gid, c.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	missed = sendsTo(t, fx, b)
	fx, err = engSend(a.eng, gid, []byte("late"))
	if err != nil {
		t.Fatal(err)
	}
	r.put(b, a.addr, sendsTo(t, fx, b))
	r.process(b)
	if b.eng.Pending() != 1 {
		t.Fatalf("Pending %d, want 1", b.eng.Pending())
	}
	r.now = r.now.Add(2 * time.Hour)
	r.process(b)
	if b.eng.Pending() != 0 || failures(b, "pending_dropped") != 2 || groupInboxLen(t, b) != 0 {
		t.Fatalf("after PendingMaxAge: Pending %d, dropped %v, group inbox %d", b.eng.Pending(), failures(b, "pending_dropped"), groupInboxLen(t, b))
	}
	r.put(b, a.addr, missed)
	r.process(b)
	r.checkGroup(b, gid, a)
	checkInbox(t, b, gid, inboxWant{a, "t2"}, inboxWant{a, "t3"})
}
