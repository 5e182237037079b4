package router

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/actors/verify"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// The fuzz targets of the router's envelope path. Both build a Core as a
// node does (routing table learned from signed announces, dedup caches,
// a replay window over bbolt) and hold it to what a peer must never be
// able to do to it:
//
//   - panic it, or make it answer with anything but the known actions and
//     drop reasons;
//   - leave any state behind with an envelope that is not verified or is
//     expired: not a dedup entry, not a replay record, not a route or key;
//   - touch the replay window without delivering a message, or get a
//     message (source, seq) delivered twice;
//   - make it send a frame that is not a valid envelope: every frame it
//     forwards, stores or broadcasts is the input with one more hop (the
//     same signed bytes, so the same ID), or an envelope it signed itself
//     back to the source;
//   - grow its caches past their bounds;
//   - make the edge path (verify.Check on a key snapshot, then
//     HandleVerified) decide differently from HandleEnvelope.

// Small bounds, so that a short script reaches them.
const (
	fuzzDedupCap = 16
	fuzzHeldMax  = 4
	fuzzMaxKeys  = 8
)

// fuzzWorld is the mesh around the node under test: its own identity, two
// neighbours (src, via), dst behind via, and a stranger whose announce is
// not known at the start. Everything in it is derived from fixed seeds.
type fuzzWorld struct {
	now                          time.Time
	self, src, via, dst, strange *crypto.Identity
	seal                         *crypto.SealingKey
	known                        []*messages.AnnounceHeard // src, via, dst
	stranger                     *messages.AnnounceHeard   // heard through src
	db                           *bolt.DB
}

func fuzzIdentity(tb testing.TB, seed byte) *crypto.Identity {
	id, err := crypto.IdentityFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func newFuzzWorld(f *testing.F) *fuzzWorld {
	w := &fuzzWorld{now: time.Unix(1_800_000_000, 0)}
	w.self, w.src, w.via, w.dst, w.strange = fuzzIdentity(f, 1), fuzzIdentity(f, 2), fuzzIdentity(f, 3), fuzzIdentity(f, 4), fuzzIdentity(f, 5)
	w.seal, _ = crypto.SealingKeyFor(w.self)
	w.known = []*messages.AnnounceHeard{
		w.heard(f, w.src, w.src, 0),
		w.heard(f, w.via, w.via, 0),
		w.heard(f, w.dst, w.via, 1),
	}
	w.stranger = w.heard(f, w.strange, w.src, 1)
	// One database per fuzz process; each Core gets a fresh window over its
	// empty bucket. Nothing is ever committed (the tests only pretend to,
	// with Prepare and Committed), so the bucket stays empty.
	db, err := bolt.Open(filepath.Join(f.TempDir(), "replay.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	w.db = db
	return w
}

// heard is id's announce with hops hops, as heard from neighbour next.
func (w *fuzzWorld) heard(tb testing.TB, id, next *crypto.Identity, hops uint8) *messages.AnnounceHeard {
	seal, _ := crypto.SealingKeyFor(id)
	a := messages.NewAnnounce(id.PublicKey(), seal.Public(), messages.CapRelay, nil, w.now.Add(-time.Second))
	a.Hops = hops
	if err := a.Sign(id.Sign); err != nil {
		tb.Fatal(err)
	}
	frame, err := messages.EncodeAnnounce(a)
	if err != nil {
		tb.Fatal(err)
	}
	return &messages.AnnounceHeard{Announce: a, Frame: frame, From: next.Address(), Link: "tcp:fuzz"}
}

// core is a fresh Core that has learned src, via and dst.
func (w *fuzzWorld) core(tb testing.TB, storeOn, relayStore bool) *Core {
	rw, err := crypto.NewReplayWindow(w.db, "replay", crypto.ReplayLimits{Window: 64, MaxSenders: 2})
	if err != nil {
		tb.Fatal(err)
	}
	c := &Core{ID: w.self, Seal: w.seal, Table: NewTable(TableConfig{MaxRoutes: 8}),
		Dedup: NewDedup(fuzzDedupCap, 0), Loops: NewDedup(fuzzDedupCap, LoopWindow),
		Replay: rw, MaxHops: 8, TTL: time.Hour, StoreOn: storeOn, RelayStore: relayStore, MaxKeys: fuzzMaxKeys}
	for _, h := range w.known {
		if _, _, err := c.HandleAnnounce(h, w.now); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

// coreState is everything HandleEnvelope may change, for before/after
// comparisons.
type coreState struct {
	dedup, loops map[[16]byte]struct{}
	table        Snapshot
	keys         map[[16]byte]KnownKeys
	announces    map[[16]byte][]byte
	replayWins   int
	replayFloors int
	replayDirty  bool
}

func stateOf(c *Core) coreState {
	return coreState{
		dedup: maps.Clone(c.Dedup.ids), loops: maps.Clone(c.Loops.ids),
		table: c.Table.Snapshot(), keys: maps.Clone(c.Keys), announces: c.AnnounceFrames(),
		replayWins: c.Replay.Len(), replayFloors: c.Replay.Floors(), replayDirty: c.Replay.Dirty(),
	}
}

func (s coreState) equal(o coreState) bool {
	return maps.Equal(s.dedup, o.dedup) && maps.Equal(s.loops, o.loops) && reflect.DeepEqual(s.table, o.table) &&
		maps.Equal(s.keys, o.keys) && maps.EqualFunc(s.announces, o.announces, bytes.Equal) &&
		s.replayWins == o.replayWins && s.replayFloors == o.replayFloors && s.replayDirty == o.replayDirty
}

// pretendCommit clears the replay window's dirty marks as a committed
// batch would, without writing anything.
func pretendCommit(c *Core) {
	c.Replay.Prepare()
	c.Replay.Committed()
}

var knownDropReasons = []string{
	DropMalformed, DropUnknownSender, DropBadSignature, DropExpired, DropDuplicate, DropReplay,
	DropHopLimit, DropOpenFailed, DropNoRoute, DropStoreRelayOff, DropExpiryTooFar, DropReplayStore, DropReplayForgotten,
}

// edgeDecide is what a node does with a frame when its verifier pool is
// on: verify.Check against the published key snapshot, then HandleVerified,
// or HandleEnvelope when the snapshot lacks the key (the router checks
// itself).
func edgeDecide(c *Core, dir *verify.Directory, frame []byte, from [16]byte, now time.Time) []Action {
	in := &messages.InboundFrame{Link: "tcp:fuzz", From: from, Data: frame}
	v, reason := verify.Check(in, dir, c.ID.Address(), c.Seal)
	switch {
	case reason != "":
		return []Action{{Kind: Drop, Reason: reason}}
	case v == nil:
		return c.HandleEnvelope(frame, from, now)
	}
	return c.HandleVerified(v, now)
}

// delivered remembers what a Core delivered, to catch a second delivery.
type delivered map[[16]byte]map[uint64]bool

// checkEnvelope runs frame from neighbour from through c and checks every
// invariant that needs only the frame and the Core. It returns the actions.
func checkEnvelope(t *testing.T, c *Core, frame []byte, from [16]byte, now time.Time, seen delivered) []Action {
	t.Helper()
	before := stateOf(c)
	acts := c.HandleEnvelope(frame, from, now)
	after := stateOf(c)
	self := c.ID.Address()

	if len(acts) == 0 {
		t.Fatal("no action: every envelope must be decided")
	}
	drops := 0
	for _, a := range acts {
		if a.Kind > Ack || a.Kind == NotifyRouteUp {
			t.Fatalf("action kind %d", a.Kind)
		}
		if a.Kind == Drop {
			drops++
			if !slices.Contains(knownDropReasons, a.Reason) {
				t.Fatalf("drop reason %q", a.Reason)
			}
		}
	}
	if drops > 1 {
		t.Fatalf("%d drops in one decision: %+v", drops, acts)
	}

	// The reference for what happens before verification: the decision,
	// and that nothing at all changed.
	early := func(want Action) {
		t.Helper()
		if len(acts) != 1 || !reflect.DeepEqual(acts[0], want) {
			t.Fatalf("got %+v, want only %+v", acts, want)
		}
		if !before.equal(after) {
			t.Fatalf("a refused envelope (%s) changed the router's state", want.Reason)
		}
	}
	if messages.IsCompact(frame) {
		checkCompactDecision(t, c, frame, from, acts, before, after, now, seen, early)
		return acts
	}
	env, err := messages.DecodeEnvelope(frame)
	if err != nil {
		early(Action{Kind: Drop, Reason: DropMalformed})
		return acts
	}
	pub, known := c.keyOf(env.Source)
	if !known && env.Source == self {
		pub, known = c.ID.PublicKey(), true
	}
	if !known {
		early(Action{Kind: Drop, Reason: DropUnknownSender, Dest: env.Source, Frame: frame})
		return acts
	}
	id, err := env.VerifyID(pub)
	if err != nil {
		early(Action{Kind: Drop, Reason: DropBadSignature})
		return acts
	}
	if env.Expired(now) {
		early(Action{Kind: Drop, Reason: DropExpired})
		return acts
	}

	// Verified and live: routes and keys never change, the caches stay
	// bounded, and the replay window changes exactly when a message is
	// delivered.
	if !reflect.DeepEqual(before.table, after.table) || !maps.Equal(before.keys, after.keys) || !maps.EqualFunc(before.announces, after.announces, bytes.Equal) {
		t.Fatal("an envelope changed the routing table or the known keys")
	}
	if len(after.dedup) > fuzzDedupCap || len(after.loops) > fuzzDedupCap || c.Dedup.Len() != len(after.dedup) || c.Loops.Len() != len(after.loops) {
		t.Fatalf("dedup caches hold %d and %d ids, limit %d", len(after.dedup), len(after.loops), fuzzDedupCap)
	}
	if c.Replay.Len() > 2 {
		t.Fatalf("replay window holds %d senders, limit 2", c.Replay.Len())
	}
	delivers := 0
	for i, a := range acts {
		switch a.Kind {
		case Deliver:
			delivers++
			m := a.Inbox
			if env.Destination != self || env.PayloadType != messages.PayloadSealed {
				t.Fatalf("delivered a %v envelope for %x", env.PayloadType, env.Destination[:4])
			}
			if m == nil || m.ID != id || m.From != env.Source || a.From != env.Source || m.Hops != int(env.Hops)+1 || !m.At.Equal(now) {
				t.Fatalf("delivery %+v of envelope %x from %x", m, id[:4], env.Source[:4])
			}
			text, err := c.Seal.Open(env.Payload, crypto.SealAAD(env.Source, env.Destination))
			if err != nil || !bytes.Equal(text, m.Text) {
				t.Fatalf("delivered text %q, the payload opens to %q, %v", m.Text, text, err)
			}
			if i+1 >= len(acts) || acts[i+1].Kind != ReceiptDue || acts[i+1].Dest != env.Source || acts[i+1].ID != id {
				t.Fatalf("a delivery without its receipt: %+v", acts)
			}
			if seen[env.Source] == nil {
				seen[env.Source] = map[uint64]bool{}
			}
			if seen[env.Source][env.Seq] {
				t.Fatalf("message seq %d from %x delivered twice", env.Seq, env.Source[:4])
			}
			seen[env.Source][env.Seq] = true
		case ReceiptDue:
			if a.Dest != env.Source || a.ID != id || env.Destination != self {
				t.Fatalf("receipt due %+v for envelope %x", a, id[:4])
			}
		case Receipt:
			if env.PayloadType != messages.PayloadReceipt || a.From != env.Source || !bytes.Contains(env.Payload, a.ID[:]) {
				t.Fatalf("receipt %+v from a %v envelope", a, env.PayloadType)
			}
		case Ack:
			if env.PayloadType != messages.PayloadReceipt || env.Destination == self || !bytes.Contains(env.Payload, a.ID[:]) {
				t.Fatalf("ack %+v from a %v envelope", a, env.PayloadType)
			}
		case TraceHop:
			if env.PayloadType != messages.PayloadTraceReply || a.From != env.Source || a.Hops != int(env.Hops)+1 {
				t.Fatalf("trace hop %+v from a %v envelope", a, env.PayloadType)
			}
		case Forward, Store, Broadcast:
			checkSent(t, c, a, env, id, from)
		}
	}
	if delivers > 1 {
		t.Fatalf("%d deliveries of one envelope", delivers)
	}
	if (delivers == 1) != (after.replayDirty && !before.replayDirty) {
		t.Fatalf("replay window changed %v, delivered %d (%+v)", after.replayDirty && !before.replayDirty, delivers, acts)
	}
	// Dedup entries come only from a verified envelope, one at most.
	added := 0
	for k := range after.dedup {
		if _, ok := before.dedup[k]; !ok {
			added++
			if k != id {
				t.Fatalf("dedup recorded %x for envelope %x", k[:4], id[:4])
			}
		}
	}
	for k := range after.loops {
		if _, ok := before.loops[k]; !ok {
			added++
			if k != id {
				t.Fatalf("loop cache recorded %x for envelope %x", k[:4], id[:4])
			}
		}
	}
	if added > 1 {
		t.Fatalf("one envelope recorded %d times", added)
	}
	return acts
}

// checkSent checks a frame the router sends on for envelope env (id).
func checkSent(t *testing.T, c *Core, a Action, env messages.Envelope, id, from [16]byte) {
	t.Helper()
	out, err := messages.DecodeEnvelope(a.Frame)
	if err != nil {
		t.Fatalf("%v of a frame that does not decode: %v", a.Kind, err)
	}
	if len(a.Frame) > messages.MaxEnvelopeSize {
		t.Fatalf("a frame of %d bytes", len(a.Frame))
	}
	self := c.ID.Address()
	relayed := out.Source != self // another node's envelope, not one of ours
	// The input goes on, never back to the neighbour it came from (split
	// horizon: a route only through it is as none); our own answers take
	// the best path.
	var except [16]byte
	if out.ID() == id {
		except = from
	}
	switch oid := out.ID(); {
	case oid == id:
		// The input, one hop further: the same signed bytes.
		want, _ := env.SigningBytes()
		got, _ := out.SigningBytes()
		if !bytes.Equal(got, want) || !bytes.Equal(out.Signature, env.Signature) || out.Hops != env.Hops+1 {
			t.Fatalf("%v changed the envelope beyond its hop count", a.Kind)
		}
	case out.Source == self:
		// Our own answer (receipt, trace reply) to the source.
		if err := out.Verify(c.ID.PublicKey()); err != nil || out.Destination != env.Source {
			t.Fatalf("%v of our own envelope to %x (source %x): %v", a.Kind, out.Destination[:4], env.Source[:4], err)
		}
	default:
		t.Fatalf("%v of a frame that is neither the input nor ours", a.Kind)
	}
	switch a.Kind {
	case Forward:
		r, ok := c.Table.LookupExcept(a.Dest, except)
		if !ok || r.NextHop != a.NextHop || a.Dest != out.Destination {
			t.Fatalf("forward to %x via %x; route %v %x", a.Dest[:4], a.NextHop[:4], ok, r.NextHop[:4])
		}
	case Store:
		if _, ok := c.Table.LookupExcept(a.Dest, except); ok || !c.StoreOn || (relayed && !c.RelayStore) || a.Dest != out.Destination {
			t.Fatalf("stored for %x though a route exists (or storing is off for it)", a.Dest[:4])
		}
	case Broadcast:
		if !env.IsBroadcast() || a.Except != from || out.ID() != id {
			t.Fatalf("broadcast of a unicast envelope, or back to its neighbour")
		}
	}
}

// FuzzCoreHandleEnvelope feeds arbitrary frames to a Core, each twice (the
// second is a retransmission or a replay), from one of its neighbours, and
// checks the invariants above (checkEnvelope). It also requires the edge
// path to decide exactly as HandleEnvelope does, on a second Core in the
// same state. Seeds: valid envelopes of every payload type to this node,
// through it and to everyone, built here, and the corpus under
// testdata/fuzz/FuzzCoreHandleEnvelope (truncated, declared lengths of
// 2^32 and 2^63, another version, a frame over the size limit).
func FuzzCoreHandleEnvelope(f *testing.F) {
	w := newFuzzWorld(f)
	seeds := w.seedEnvelopes(f)
	for _, s := range seeds {
		f.Add(s)
	}
	for _, s := range w.seedCompacts(f) {
		f.Add(s)
	}
	f.Add(append(bytes.Clone(seeds[1]), make([]byte, messages.MaxEnvelopeSize)...)) // over the size limit
	f.Fuzz(func(t *testing.T, frame []byte) {
		c, twin := w.core(t, true, true), w.core(t, true, true)
		dir := verify.NewDirectory(w.self.PublicKey())
		dir.Publish(twin.KeySnapshot())
		seen := delivered{}
		for range 2 {
			acts := checkEnvelope(t, c, frame, w.src.Address(), w.now, seen)
			if edge := edgeDecide(twin, dir, frame, w.src.Address(), w.now); !reflect.DeepEqual(acts, edge) {
				t.Fatalf("HandleEnvelope decided %+v, the edge path %+v", acts, edge)
			}
			pretendCommit(c)
			pretendCommit(twin)
		}
	})
}

// seedEnvelopes are valid envelopes from the world's nodes: sealed to this
// node (and one sealed with the wrong AAD), a receipt, a trace probe and
// reply, one for dst and one for nobody known, a broadcast, and one whose
// hops ran out.
func (w *fuzzWorld) seedEnvelopes(tb testing.TB) [][]byte {
	self := w.self.Address()
	sealed := func(text string, aad []byte) []byte {
		s, err := crypto.Seal(w.seal.Public(), []byte(text), aad)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	ok := crypto.SealAAD(w.src.Address(), self)
	expiry := w.now.Add(time.Minute)
	env := func(from *crypto.Identity, to [16]byte, hops, limit uint8, pt messages.PayloadType, seq uint64, payload []byte) []byte {
		e := messages.NewEnvelope(from.Address(), to, limit, expiry, pt, payload)
		e.Hops, e.Seq = hops, seq
		if err := e.Sign(from.Sign); err != nil {
			tb.Fatal(err)
		}
		b, err := messages.EncodeEnvelope(e)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	probe := bytes.Repeat([]byte{0xAB}, 16)
	expiry = w.now
	expired := env(w.src, self, 0, 8, messages.PayloadSealed, 3, sealed("late", ok))
	expiry = w.now.Add(time.Minute)
	return [][]byte{
		expired,
		env(w.src, self, 0, 8, messages.PayloadSealed, 1, sealed("hello", ok)),
		env(w.src, self, 0, 8, messages.PayloadSealed, 2, sealed("moved", crypto.SealAAD(self, w.src.Address()))),
		env(w.src, self, 0, 8, messages.PayloadSealed, 0, sealed("no seq", ok)),
		env(w.dst, self, 1, 8, messages.PayloadReceipt, 0, bytes.Repeat([]byte{7}, 32)),
		env(w.src, self, 0, 8, messages.PayloadTrace, 0, probe),
		env(w.dst, self, 1, 8, messages.PayloadTraceReply, 0, probe),
		env(w.src, w.dst.Address(), 0, 8, messages.PayloadSealed, 1, make([]byte, 60)),
		env(w.src, w.dst.Address(), 0, 8, messages.PayloadReceipt, 0, bytes.Repeat([]byte{9}, 16)),
		env(w.src, [16]byte{0xEE}, 0, 8, messages.PayloadSealed, 1, make([]byte, 60)),
		env(w.src, w.dst.Address(), 3, 3, messages.PayloadTrace, 0, probe),
		env(w.src, messages.BroadcastAddress, 0, 4, messages.PayloadTrace, 0, probe),
		env(w.strange, self, 0, 8, messages.PayloadSealed, 1, make([]byte, 60)),
		env(w.self, w.dst.Address(), 0, 8, messages.PayloadSealed, 1, make([]byte, 60)),
		env(w.src, self, 0, 8, messages.PayloadType(9), 0, []byte("?")),
	}
}

// FuzzCoreEnvelopes drives one Core (and its twin on the edge path)
// through a script of envelopes the fuzzer describes field by field, which
// the test then signs: so it explores the decisions after the signature
// check, which random frames never reach. Four bytes per step:
//
//	b0: bits 0-2 the source (src, via, dst, self, the stranger, src…),
//	    bits 3-5 the destination (self, dst, via, everyone, nobody known,
//	    src, the stranger, self), bits 6-7 the step: build an envelope, build
//	    one and flip byte b3 of it, learn the stranger's announce (then the
//	    frames held for it are released; b1 bit 0 publishes the new keys to
//	    the edge), or send the previous frame again;
//	b1: bits 0-2 the payload (sealed to self, sealed, a receipt of
//	    b1>>3 ids, a trace probe, a trace reply, type 9, type 0, sealed with
//	    the wrong AAD), bits 3-7 its size;
//	b2: bits 0-3 the hop limit, bits 4-6 the hop count, bit 7 an expiry 9
//	    days ahead instead of 1 minute;
//	b3: bits 0-1 how far the clock moves first (0, 1 s, 3 s, 11 min), bits
//	    2-7 the seq (times 3, so that the 64-wide replay window slides).
//
// The first byte of the script turns store-and-forward on (bit 0) and the
// holding of other nodes' envelopes with it (bit 1, store.relay), and
// makes the sealed payloads compact envelopes (bit 2, scriptCompact). Frames
// from unknown senders are held (at most fuzzHeldMax) as the actor holds
// them, and released through HandleEnvelope when the stranger's announce
// arrives. Every step is checked with checkEnvelope and against the edge.
func FuzzCoreEnvelopes(f *testing.F) {
	w := newFuzzWorld(f)
	f.Add([]byte{0x01, 0x00, 0x00, 0x08, 0x04})                                                 // a sealed message to us
	f.Add([]byte{0x05, 0x00, 0x00, 0x08, 0x04, 0xC0, 0x00, 0x08, 0x04, 0x00, 0x07, 0x08, 0x08}) // compact to us, again, from a wrong sender
	f.Add([]byte{0x07, 0x08, 0x01, 0x08, 0x04, 0x20, 0x01, 0x08, 0x04, 0x04, 0x00, 0x08, 0x04}) // compact relayed, for nobody known, from the stranger
	f.Add([]byte{0x05, 0x04, 0x00, 0x08, 0x04, 0x80, 0x01, 0x00, 0x00, 0x40, 0x00, 0x08, 0x0C}) // compact from the stranger, held, released; tampered
	f.Add([]byte{0x01, 0x00, 0x00, 0x08, 0x04, 0xC0, 0x00, 0x08, 0x04})                         // and again (a retransmission)
	f.Add([]byte{0x01, 0x00, 0x00, 0x08, 0x04, 0xC0, 0x00, 0x08, 0x03})                         // and again 11 minutes later (expired)
	f.Add([]byte{0x01, 0x04, 0x00, 0x08, 0x04, 0x80, 0x01, 0x00, 0x00})                         // from the stranger, held, released
	f.Add([]byte{0x00, 0x08, 0x03, 0x08, 0x00, 0x20, 0x03, 0x03, 0x00})                         // trace probes through and to nobody
	f.Add([]byte{0x03, 0x20, 0x00, 0x08, 0x00, 0x20, 0x01, 0x08, 0x04})                         // for nobody known: held (store.relay on)
	f.Add([]byte{0x01, 0x20, 0x00, 0x08, 0x00, 0x25, 0x03, 0x08, 0x00})                         // for nobody known: refused (store.relay off), a probe too
	f.Add([]byte{0x01, 0x18, 0x02, 0x08, 0x00, 0x18, 0x0A, 0x08, 0x01})                         // broadcasts
	f.Add([]byte{0x01, 0x00, 0x00, 0x08, 0x04, 0x00, 0x00, 0x08, 0xFC, 0x00, 0x00, 0x08, 0x08}) // the window slides
	f.Add([]byte{0x01, 0x40, 0x00, 0x08, 0x27, 0x00, 0x07, 0x08, 0x04, 0x00, 0x00, 0x88, 0x04}) // tampered, wrong AAD, too far
	f.Add([]byte{0x01, 0x0A, 0x12, 0x08, 0x00, 0x08, 0x15, 0x08, 0x00})                         // receipts through and to us
	f.Add([]byte{0x00, 0x00, 0x06, 0x08, 0x00, 0x00, 0x05, 0x48, 0x00, 0x00, 0x00, 0x08, 0x03}) // type 0, type 9, sealed without seq
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) == 0 {
			return
		}
		storeOn, relayStore, compact := script[0]&1 != 0, script[0]&2 != 0, script[0]&4 != 0
		script = script[1:]
		c, twin := w.core(t, storeOn, relayStore), w.core(t, storeOn, relayStore)
		dir := verify.NewDirectory(w.self.PublicKey())
		dir.Publish(twin.KeySnapshot())
		held := Held{Max: fuzzHeldMax}
		seen := delivered{}
		now := w.now
		var last []byte
		sources := []*crypto.Identity{w.src, w.via, w.dst, w.self, w.strange, w.src, w.src, w.src}
		dests := [][16]byte{w.self.Address(), w.dst.Address(), w.via.Address(), messages.BroadcastAddress, {0xEE}, w.src.Address(), w.strange.Address(), w.self.Address()}
		steps := []time.Duration{0, time.Second, 3 * time.Second, 11 * time.Minute}

		run := func(frame []byte, from [16]byte) {
			acts := checkEnvelope(t, c, frame, from, now, seen)
			edge := edgeDecide(twin, dir, frame, from, now)
			if !reflect.DeepEqual(acts, edge) {
				t.Fatalf("HandleEnvelope decided %+v, the edge path %+v", acts, edge)
			}
			if len(acts) == 1 && acts[0].Reason == DropUnknownSender {
				held.Add(acts[0].Dest, frame, from, now)
				if held.Len() > fuzzHeldMax {
					t.Fatalf("%d frames held, limit %d", held.Len(), fuzzHeldMax)
				}
			}
			pretendCommit(c)
			pretendCommit(twin)
		}

		for n := 0; len(script) >= 4 && n < 32; n++ {
			b0, b1, b2, b3 := script[0], script[1], script[2], script[3]
			script = script[4:]
			now = now.Add(steps[b3&3])
			src := sources[b0&7]
			from := w.src.Address()
			switch b0 >> 6 {
			case 2: // the stranger's announce arrives
				before := stateOf(c)
				if _, _, err := c.HandleAnnounce(w.stranger, now); err != nil && !errors.Is(err, ErrStale) {
					t.Fatalf("stranger's announce: %v", err)
				}
				if _, _, err := twin.HandleAnnounce(w.stranger, now); err != nil && !errors.Is(err, ErrStale) {
					t.Fatalf("stranger's announce (twin): %v", err)
				}
				if len(c.Keys) > fuzzMaxKeys || !maps.Equal(before.dedup, c.Dedup.ids) || c.Replay.Dirty() != before.replayDirty {
					t.Fatal("an announce touched the envelope state, or the keys grew past their bound")
				}
				if b1&1 != 0 {
					dir.Publish(twin.KeySnapshot())
				}
				// The frames held for it, released as the actor does
				// (both cores: run drives the twin too).
				for _, h := range held.Take(w.strange.Address()) {
					run(h.Frame, h.From)
				}
				continue
			case 3: // the previous frame again
				if last != nil {
					run(last, from)
				}
				continue
			}
			frame := w.scriptEnvelope(t, src, dests[(b0>>3)&7], b1, b2, b3, now)
			if k := b1 & 7; compact && (k == 0 || k == 1 || k == 7) {
				frame = w.scriptCompact(t, src, dests[(b0>>3)&7], b1, b2, b3, now)
			}
			if b0>>6 == 1 && len(frame) > 0 {
				frame = bytes.Clone(frame)
				frame[int(b3)%len(frame)] ^= 0x01 << (b1 & 7)
			}
			last = frame
			run(frame, from)
		}
	})
}

// scriptEnvelope builds the envelope one script step describes (see
// FuzzCoreEnvelopes), signed by from. Fields the encoder refuses (a hop
// count over the limit, payload type 0) are encoded anyway, with a zero
// signature, for the decoder to refuse.
func (w *fuzzWorld) scriptEnvelope(t *testing.T, from *crypto.Identity, to [16]byte, b1, b2, b3 byte, now time.Time) []byte {
	size := int(b1 >> 3)
	var pt messages.PayloadType
	var payload []byte
	seal := func(pub []byte, aad []byte) []byte {
		s, err := crypto.Seal(pub, bytes.Repeat([]byte{'m'}, size), aad)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	switch b1 & 7 {
	case 0:
		pt, payload = messages.PayloadSealed, seal(w.seal.Public(), crypto.SealAAD(from.Address(), to))
	case 1:
		dstSeal, _ := crypto.SealingKeyFor(w.dst)
		pt, payload = messages.PayloadSealed, seal(dstSeal.Public(), crypto.SealAAD(from.Address(), to))
	case 2:
		pt = messages.PayloadReceipt
		for i := range size {
			payload = append(payload, bytes.Repeat([]byte{byte(i)}, 16)...)
		}
	case 3:
		pt, payload = messages.PayloadTrace, bytes.Repeat([]byte{byte(size)}, 16)
	case 4:
		pt, payload = messages.PayloadTraceReply, bytes.Repeat([]byte{byte(size)}, 16)
	case 5:
		pt, payload = messages.PayloadType(9), make([]byte, size)
	case 6:
		pt, payload = 0, make([]byte, size)
	case 7:
		pt, payload = messages.PayloadSealed, seal(w.seal.Public(), crypto.SealAAD(to, from.Address()))
	}
	expiry := now.Add(time.Minute)
	if b2&0x80 != 0 {
		expiry = now.Add(9 * 24 * time.Hour)
	}
	e := messages.NewEnvelope(from.Address(), to, b2&0x0F, expiry, pt, payload)
	e.Hops = (b2 >> 4) & 7
	e.Seq = uint64(b3>>2) * 3
	if err := e.Sign(from.Sign); err != nil {
		e.Signature = make([]byte, ed25519.SignatureSize)
		b, err := messages.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := messages.EncodeEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
