package router

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

type coreWorld struct {
	t        *testing.T
	now      time.Time
	self     *crypto.Identity
	src, dst *crypto.Identity
	via      *crypto.Identity // the neighbour dst is reached through
	core     *Core
	db       *bolt.DB // the replay window's, kept across newCore (a restart)
	seq      uint64   // the last seq src used towards self
}

func newCoreWorld(t *testing.T) *coreWorld {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "replay.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &coreWorld{t: t, now: time.Unix(1_800_000_000, 0), db: db}
	w.self, _ = crypto.NewIdentity(nil)
	w.src, _ = crypto.NewIdentity(nil)
	w.dst, _ = crypto.NewIdentity(nil)
	w.via, _ = crypto.NewIdentity(nil)
	w.core = w.newCore()
	w.learn(w.src, w.src.Address(), 1)
	w.learn(w.via, w.via.Address(), 1)
	w.learn(w.dst, w.via.Address(), 2)
	return w
}

func (w *coreWorld) newCore() *Core {
	seal, _ := crypto.SealingKeyFor(w.self)
	rw, err := crypto.NewReplayWindow(w.db, "replay", crypto.ReplayLimits{})
	if err != nil {
		w.t.Fatal(err)
	}
	return &Core{ID: w.self, Seal: seal, Table: NewTable(TableConfig{}), Dedup: NewDedup(0, 0), Loops: NewDedup(0, LoopWindow),
		Replay: rw, MaxHops: 8, TTL: time.Hour, StoreOn: true, RelayStore: true}
}

// learn feeds the core an announce of id heard through next.
func (w *coreWorld) learn(id *crypto.Identity, next [16]byte, hops uint8) {
	seal, _ := crypto.SealingKeyFor(id)
	a := messages.NewAnnounce(id.PublicKey(), seal.Public(), messages.CapRelay, nil, w.now)
	a.Hops = hops - 1
	if err := a.Sign(id.Sign); err != nil {
		w.t.Fatal(err)
	}
	f, _ := messages.EncodeAnnounce(a)
	if _, _, err := w.core.HandleAnnounce(&messages.AnnounceHeard{Announce: a, Frame: f, From: next, Link: "test"}, w.now); err != nil {
		w.t.Fatal(err)
	}
}

func (w *coreWorld) envelope(from *crypto.Identity, to [16]byte, limit uint8, pt messages.PayloadType, payload []byte) []byte {
	return w.envelopeSeq(from, to, limit, pt, payload, 0)
}

func (w *coreWorld) envelopeSeq(from *crypto.Identity, to [16]byte, limit uint8, pt messages.PayloadType, payload []byte, seq uint64) []byte {
	e := messages.NewEnvelope(from.Address(), to, limit, w.now.Add(time.Minute), pt, payload)
	e.Seq = seq
	if err := e.Sign(from.Sign); err != nil {
		w.t.Fatal(err)
	}
	f, err := messages.EncodeEnvelope(e)
	if err != nil {
		w.t.Fatal(err)
	}
	return f
}

func (w *coreWorld) sealed(text string) []byte {
	seal, _ := crypto.SealingKeyFor(w.self)
	s, err := crypto.Seal(seal.Public(), []byte(text), crypto.SealAAD(w.src.Address(), w.self.Address()))
	if err != nil {
		w.t.Fatal(err)
	}
	w.seq++
	return w.envelopeSeq(w.src, w.self.Address(), 8, messages.PayloadSealed, s, w.seq)
}

func kinds(acts []Action) []Kind {
	out := make([]Kind, len(acts))
	for i, a := range acts {
		out[i] = a.Kind
	}
	return out
}

func TestCoreDecisions(t *testing.T) {
	w := newCoreWorld(t)
	stranger, _ := crypto.NewIdentity(nil)
	nowhere, _ := crypto.NewIdentity(nil)

	msg := w.sealed("hi")
	acts := w.core.HandleEnvelope(msg, w.src.Address(), w.now)
	if len(acts) != 2 || acts[0].Kind != Deliver || string(acts[0].Inbox.Text) != "hi" || acts[1].Kind != ReceiptDue || acts[1].Dest != w.src.Address() {
		t.Fatalf("sealed message for us: %v", kinds(acts))
	}
	// A second copy (the sender's retransmission: its receipt was lost)
	// is not delivered again but answered with the receipt again.
	if acts := w.core.HandleEnvelope(msg, w.src.Address(), w.now); len(acts) != 2 || acts[0].Reason != DropDuplicate || acts[1].Kind != ReceiptDue {
		t.Fatalf("second copy: %v %+v", kinds(acts), acts[0])
	}
	// Nothing is recorded for what fails to open: an envelope whose
	// payload is not sealed to us does not use up its seq.
	junkSeq := w.seq + 1
	junk := w.envelopeSeq(w.src, w.self.Address(), 8, messages.PayloadSealed, make([]byte, 80), junkSeq)
	if acts := w.core.HandleEnvelope(junk, w.src.Address(), w.now); acts[0].Reason != DropOpenFailed {
		t.Fatalf("junk: %+v", acts[0])
	}
	w.seq = junkSeq - 1
	if acts := w.core.HandleEnvelope(w.sealed("after junk"), w.src.Address(), w.now); acts[0].Kind != Deliver {
		t.Fatalf("a good message with the junk's seq: %+v", acts[0])
	}
	// Receipts, probes and broadcasts carry no seq; a sealed one must.
	if acts := w.core.HandleEnvelope(w.envelope(w.src, w.self.Address(), 8, messages.PayloadSealed, make([]byte, 80)), w.src.Address(), w.now); acts[0].Reason != DropMalformed {
		t.Fatalf("sealed without seq: %+v", acts[0])
	}
	tampered := append([]byte(nil), msg...)
	tampered[len(tampered)-70] ^= 1
	if acts := w.core.HandleEnvelope(tampered, w.src.Address(), w.now); acts[0].Reason != DropBadSignature {
		t.Fatalf("tampered: %+v", acts[0])
	}
	if acts := w.core.HandleEnvelope(w.envelope(stranger, w.self.Address(), 8, messages.PayloadSealed, make([]byte, 80)), w.src.Address(), w.now); acts[0].Reason != DropUnknownSender || acts[0].Dest != stranger.Address() {
		t.Fatalf("unknown sender: %+v", acts[0])
	}
	fwd := w.envelope(w.src, w.dst.Address(), 8, messages.PayloadSealed, make([]byte, 80))
	if acts := w.core.HandleEnvelope(fwd, w.src.Address(), w.now); acts[0].Kind != Forward || acts[0].NextHop != w.via.Address() {
		t.Fatalf("for dst via its neighbour: %+v", acts)
	}
	st := w.envelope(w.src, nowhere.Address(), 8, messages.PayloadSealed, make([]byte, 80))
	if acts := w.core.HandleEnvelope(st, w.src.Address(), w.now); acts[0].Kind != Store || acts[0].Dest != nowhere.Address() {
		t.Fatalf("no route: %+v", acts)
	}
	spent := w.envelope(w.src, w.dst.Address(), 0, messages.PayloadSealed, make([]byte, 80))
	if acts := w.core.HandleEnvelope(spent, w.src.Address(), w.now); acts[0].Reason != DropHopLimit {
		t.Fatalf("hop limit: %+v", acts)
	}
	probe := w.envelope(w.src, w.dst.Address(), 0, messages.PayloadTrace, make([]byte, 16))
	if acts := w.core.HandleEnvelope(probe, w.src.Address(), w.now); acts[0].Kind != Forward || acts[0].NextHop != w.src.Address() {
		t.Fatalf("trace probe whose hops ran out here: %+v", acts)
	}
	old := w.envelope(w.src, w.self.Address(), 8, messages.PayloadSealed, make([]byte, 80))
	if acts := w.core.HandleEnvelope(old, w.src.Address(), w.now.Add(2*time.Minute)); acts[0].Reason != DropExpired {
		t.Fatalf("expired: %+v", acts)
	}

	// A unicast envelope seen again within the loop window is a loop's
	// copy; after it, the sender's retransmission, forwarded again.
	if acts := w.core.HandleEnvelope(fwd, w.src.Address(), w.now); acts[0].Reason != DropDuplicate {
		t.Fatalf("loop copy: %+v", acts)
	}
	if acts := w.core.HandleEnvelope(fwd, w.src.Address(), w.now.Add(LoopWindow)); acts[0].Kind != Forward {
		t.Fatalf("retransmission after the loop window: %+v", acts)
	}

	// After a restart (fresh core over the same replay store) the first
	// message is answered with its receipt, not delivered again.
	if err := w.core.Replay.CommitNow(); err != nil {
		t.Fatal(err)
	}
	w.core = w.newCore()
	w.learn(w.src, w.src.Address(), 1)
	if acts := w.core.HandleEnvelope(msg, w.src.Address(), w.now); len(acts) != 2 || acts[0].Reason != DropDuplicate || acts[1].Kind != ReceiptDue {
		t.Fatalf("replay after restart: %+v", acts)
	}
}

func TestCoreAnnounceFreshness(t *testing.T) {
	w := newCoreWorld(t)
	n, _ := crypto.NewIdentity(nil)
	seal, _ := crypto.SealingKeyFor(n)
	mk := func(at time.Time, hops uint8) *messages.AnnounceHeard {
		a := messages.NewAnnounce(n.PublicKey(), seal.Public(), 0, nil, at)
		a.Hops = hops
		a.Sign(n.Sign)
		f, _ := messages.EncodeAnnounce(a)
		return &messages.AnnounceHeard{Announce: a, Frame: f, From: w.via.Address(), Link: "test"}
	}
	fwd, ch, err := w.core.HandleAnnounce(mk(w.now, 2), w.now)
	if err != nil || ch != ChangeAdded || fwd == nil {
		t.Fatalf("first announce: %v %v %v", fwd != nil, ch, err)
	}
	if fwd, ch, _ := w.core.HandleAnnounce(mk(w.now, 2), w.now); fwd != nil || ch != ChangeNone {
		t.Fatal("the same announce again was passed on")
	}
	if fwd, ch, _ := w.core.HandleAnnounce(mk(w.now, 0), w.now); fwd == nil || ch != ChangeBest {
		t.Fatalf("a shorter path to the same announce is passed on: %v", ch)
	}
	if _, _, err := w.core.HandleAnnounce(mk(w.now.Add(-time.Second), 0), w.now); err == nil {
		t.Fatal("an older announce was accepted")
	}
	if fwd, _, err := w.core.HandleAnnounce(mk(w.now, 7), w.now); err != nil || fwd != nil {
		t.Fatalf("an announce at the hop limit is kept but not passed on: %v %v", fwd != nil, err)
	}
	if _, _, err := w.core.HandleAnnounce(mk(w.now.Add(time.Second), 8), w.now); err == nil {
		t.Fatal("an announce over the hop limit was accepted")
	}
}

func TestCoreSealTextSealsToAnnouncedKey(t *testing.T) {
	w := newCoreWorld(t)
	frame, id, expiry, err := w.core.SealText(w.dst.Address(), 7, []byte("secret"), w.now)
	if err != nil {
		t.Fatal(err)
	}
	env, err := messages.DecodeEnvelope(frame)
	if err != nil {
		t.Fatal(err)
	}
	if env.ID() != id || env.Seq != 7 || !env.ExpiresAt().Equal(expiry) || env.Verify(w.self.PublicKey()) != nil {
		t.Fatalf("envelope %+v, id %x", env, id)
	}
	seal, _ := crypto.SealingKeyFor(w.dst)
	text, err := seal.Open(env.Payload, crypto.SealAAD(w.self.Address(), w.dst.Address()))
	if err != nil || string(text) != "secret" {
		t.Fatalf("the destination cannot open it: %v", err)
	}
	stranger, _ := crypto.NewIdentity(nil)
	if _, _, _, err := w.core.SealText(stranger.Address(), 1, []byte("x"), w.now); err == nil {
		t.Fatal("sealed to a node never heard of")
	}
	// A destination whose route went still gets sealed messages (the
	// outbox keeps them until a route is back).
	w.core.Table.RemoveVia(w.via.Address())
	if _, _, _, err := w.core.SealText(w.dst.Address(), 8, []byte("later"), w.now); err != nil {
		t.Fatalf("seal without a route: %v", err)
	}
	if _, ok := w.core.NextHop(w.dst.Address()); ok {
		t.Fatal("a next hop without a route")
	}
}

// One signed receipt acknowledges up to MaxReceiptIDs messages; the
// sender gets a Receipt per id, a relay an Ack per id.
func TestCoreBatchedReceipts(t *testing.T) {
	w := newCoreWorld(t)
	ids := make([][16]byte, messages.MaxReceiptIDs+8)
	for i := range ids {
		ids[i][0], ids[i][1] = byte(i), 0xAA
	}
	acts := w.core.Receipts(w.src.Address(), ids, w.now)
	if len(acts) != 2 || acts[0].Kind != Forward || acts[1].Kind != Forward || acts[0].NextHop != w.src.Address() {
		t.Fatalf("receipts: %v", kinds(acts))
	}
	var got [][16]byte
	for _, a := range acts {
		env, err := messages.DecodeEnvelope(a.Frame)
		if err != nil || env.PayloadType != messages.PayloadReceipt || env.Destination != w.src.Address() {
			t.Fatalf("receipt envelope %+v %v", env, err)
		}
		part, err := messages.ReceiptIDs(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, part...)
	}
	if len(got) != len(ids) || got[0] != ids[0] || got[len(got)-1] != ids[len(ids)-1] {
		t.Fatalf("ids %d", len(got))
	}

	// At the sender: a Receipt per id.
	payload := make([]byte, 0, 3*16)
	for _, id := range ids[:3] {
		payload = append(payload, id[:]...)
	}
	rcpt := w.envelope(w.src, w.self.Address(), 8, messages.PayloadReceipt, payload)
	acts = w.core.HandleEnvelope(rcpt, w.src.Address(), w.now)
	if len(acts) != 3 || acts[0].Kind != Receipt || acts[2].ID != ids[2] || acts[1].From != w.src.Address() {
		t.Fatalf("receipt for us: %+v", acts)
	}
	// At a relay: an Ack per id, then the forward.
	through := w.envelope(w.src, w.dst.Address(), 8, messages.PayloadReceipt, payload)
	acts = w.core.HandleEnvelope(through, w.src.Address(), w.now)
	if got := kinds(acts); len(got) != 4 || got[0] != Ack || got[2] != Ack || got[3] != Forward {
		t.Fatalf("receipt through a relay: %v", got)
	}
	// Each Ack names the receipt's signer: the store lets a frame go only
	// if it is held for that node.
	for _, a := range acts[:3] {
		if a.Dest != w.src.Address() {
			t.Fatalf("Ack %x for %x, want the signer %x", a.ID[:4], a.Dest[:4], w.src.Address().Bytes()[:4])
		}
	}
	// Malformed receipt payloads are dropped.
	for _, p := range [][]byte{nil, make([]byte, 15), make([]byte, 16*(messages.MaxReceiptIDs+1))} {
		bad := w.envelope(w.src, w.self.Address(), 8, messages.PayloadReceipt, p)
		if acts := w.core.HandleEnvelope(bad, w.src.Address(), w.now); acts[0].Reason != DropMalformed {
			t.Fatalf("receipt of %d bytes: %+v", len(p), acts)
		}
	}
}

// A router restored with its routes keeps, or re-learns, the announce
// frames it dumps to neighbours that come up: otherwise the same
// announces, refused as duplicates, would never reach them.
func TestCoreAnnounceFramesSurviveRestore(t *testing.T) {
	w := newCoreWorld(t)
	n := len(w.core.Announces())
	if n != 3 {
		t.Fatalf("%d announces cached, want 3", n)
	}
	frames := w.core.AnnounceFrames()
	snap := w.core.Table.Snapshot()

	// Restored with the frames: the dump is whole at once.
	c2 := w.newCore()
	if err := c2.Table.Restore(snap); err != nil {
		t.Fatal(err)
	}
	c2.RestoreAnnounceFrames(frames)
	if got := len(c2.Announces()); got != 3 {
		t.Fatalf("restored with frames: dump of %d", got)
	}
	// Restored without them (an older snapshot): the same announce heard
	// again changes no route but is kept for the dump.
	c3 := w.newCore()
	if err := c3.Table.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if got := len(c3.Announces()); got != 0 {
		t.Fatalf("restored without frames: dump of %d", got)
	}
	w.core = c3
	w.learn(w.src, w.src.Address(), 1)
	if got := len(c3.Announces()); got != 1 {
		t.Fatalf("after the same announce again: dump of %d", got)
	}
}

// TestCoreNeverForwardsBackToWhereItCameFrom: a relay whose only path to
// the destination goes through the neighbour the frame came from holds
// it (as if there were no route) instead of sending it back (split
// horizon: two neighbours routing through each other for a moment would
// bounce it until its hop limit); with another path it takes that one.
func TestCoreNeverForwardsBackToWhereItCameFrom(t *testing.T) {
	w := newCoreWorld(t)
	back := w.envelope(w.src, w.dst.Address(), 8, messages.PayloadSealed, make([]byte, 80))
	if acts := w.core.HandleEnvelope(back, w.via.Address(), w.now); acts[0].Kind != Store || acts[0].Dest != w.dst.Address() {
		t.Fatalf("from via, the only path via via: %+v", acts)
	}
	w.learn(w.dst, w.src.Address(), 2) // as short: an alternate
	again := w.envelope(w.src, w.dst.Address(), 8, messages.PayloadSealed, make([]byte, 81))
	if acts := w.core.HandleEnvelope(again, w.via.Address(), w.now); acts[0].Kind != Forward || acts[0].NextHop != w.src.Address() {
		t.Fatalf("from via, with a path via src: %+v", acts)
	}
	// Own messages take the alternates in turn after two transmissions.
	var hops [][16]byte
	for sent := range 5 {
		h, _ := w.core.NextHopFor(w.dst.Address(), sent)
		hops = append(hops, h)
	}
	if hops[0] != hops[1] || hops[2] == hops[1] || hops[3] != hops[1] {
		t.Fatalf("next hops by transmission: %x", hops)
	}
}
