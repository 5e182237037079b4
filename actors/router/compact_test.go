package router

import (
	"bytes"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

func TestLinkClasses(t *testing.T) {
	var l LinkClasses
	p := [16]byte{1}
	if l.Constrained(p) {
		t.Fatal("no links: constrained")
	}
	l.Up(p, 1, transports.Constrained.String())
	if !l.Constrained(p) {
		t.Fatal("one LoRa link: not constrained")
	}
	l.Up(p, 2, transports.Unconstrained.String())
	if l.Constrained(p) {
		t.Fatal("LoRa and TCP: constrained (the links actor takes TCP)")
	}
	l.Down(p, 2)
	l.Up(p, 3, transports.SeverelyConstrained.String())
	if !l.Constrained(p) {
		t.Fatal("two radios: not constrained")
	}
	l.Down(p, 1)
	l.Down(p, 3)
	l.Down(p, 3)
	if l.Constrained(p) || len(l.m) != 0 {
		t.Fatalf("all down: %v", l.m)
	}
}

// compactSender is a core for w.src that knows w.self directly, over a
// link of the given class.
func (w *coreWorld) compactSender(class transports.Class) *Core {
	seal, _ := crypto.SealingKeyFor(w.src)
	c := &Core{ID: w.src, Seal: seal, Table: NewTable(TableConfig{}), Dedup: NewDedup(0, 0), Loops: NewDedup(0, LoopWindow), MaxHops: 8, TTL: time.Hour}
	self, _ := crypto.SealingKeyFor(w.self)
	a := messages.NewAnnounce(w.self.PublicKey(), self.Public(), messages.CapRelay, nil, w.now)
	if err := a.Sign(w.self.Sign); err != nil {
		w.t.Fatal(err)
	}
	f, _ := messages.EncodeAnnounce(a)
	if _, _, err := c.HandleAnnounce(&messages.AnnounceHeard{Announce: a, Frame: f, From: w.self.Address(), Link: "lora"}, w.now); err != nil {
		w.t.Fatal(err)
	}
	c.Links.Up(w.self.Address(), 1, class.String())
	return c
}

// forgedCompact is a compact envelope claiming to be from w.src, sealed
// to w.self by another key.
func (w *coreWorld) forgedCompact(seq uint64, text string) []byte {
	_, mallory := testSealing(w.t)
	self, _ := crypto.SealingKeyFor(w.self)
	k := messages.NewCompact(w.src.Address(), w.self.Address(), 8, w.now.Add(time.Hour), seq)
	var err error
	if k.Sealed, err = mallory.SealAuth(self.Public(), []byte(text), k.AAD()); err != nil {
		w.t.Fatal(err)
	}
	f, err := messages.EncodeCompact(k)
	if err != nil {
		w.t.Fatal(err)
	}
	return f
}

func testSealing(t *testing.T) (*crypto.Identity, *crypto.SealingKey) {
	id, _ := crypto.NewIdentity(nil)
	k, err := crypto.SealingKeyFor(id)
	if err != nil {
		t.Fatal(err)
	}
	return id, k
}

// TestCompactCore: a sender whose first hop is a radio seals compact; the
// destination delivers it once, answers it with the usual receipt naming
// its id, and refuses a tampered copy, one sealed by another key claiming
// the source, and a forged copy of a delivered seq (no receipt for it);
// nothing refused uses up a seq. A relay forwards a compact envelope as
// it is.
func TestCompactCore(t *testing.T) {
	w := newCoreWorld(t)
	if w.compactSender(transports.Unconstrained).CompactTo(w.self.Address()) {
		t.Fatal("compact over TCP")
	}
	s := w.compactSender(transports.Constrained)
	if !s.CompactTo(w.self.Address()) || s.CompactTo(w.dst.Address()) {
		t.Fatal("CompactTo")
	}
	s.SignedOnly = true // transports.lora.compact = false
	if s.CompactTo(w.self.Address()) {
		t.Fatal("compact although signed only")
	}
	s.SignedOnly = false
	text := bytes.Repeat([]byte{'t'}, 32)
	frame, id, exp, err := s.SealCompact(w.self.Address(), 1, text, w.now)
	if err != nil {
		t.Fatal(err)
	}
	if !messages.IsCompact(frame) || len(frame) != 126 || !exp.Equal(w.now.Add(time.Hour)) {
		t.Fatalf("compact frame of %d bytes, expiry %v", len(frame), exp)
	}
	if _, _, _, err := s.SealCompact(w.dst.Address(), 1, text, w.now); err == nil {
		t.Fatal("sealed to an unknown destination")
	}

	acts := w.core.HandleEnvelope(frame, w.src.Address(), w.now)
	if len(acts) != 2 || acts[0].Kind != Deliver || !bytes.Equal(acts[0].Inbox.Text, text) || acts[0].Inbox.From != w.src.Address() ||
		acts[0].Inbox.ID != id || acts[1].Kind != ReceiptDue || acts[1].ID != id || acts[1].Dest != w.src.Address() {
		t.Fatalf("compact for us: %v %+v", kinds(acts), acts)
	}
	if acts := w.core.HandleEnvelope(frame, w.src.Address(), w.now); len(acts) != 2 || acts[0].Reason != DropDuplicate || acts[1].Kind != ReceiptDue || acts[1].ID != id {
		t.Fatalf("retransmission: %v %+v", kinds(acts), acts)
	}
	// A receipt for it is the usual signed one.
	rc := w.core.Receipts(w.src.Address(), [][16]byte{id}, w.now)
	if len(rc) != 1 || rc[0].Kind != Forward || messages.IsCompact(rc[0].Frame) {
		t.Fatalf("receipt: %+v", rc)
	}

	refused := func(name string, f []byte) {
		t.Helper()
		acts := w.core.HandleEnvelope(f, w.src.Address(), w.now)
		if len(acts) != 1 || acts[0].Kind != Drop || acts[0].Reason != DropOpenFailed {
			t.Fatalf("%s: %v %+v", name, kinds(acts), acts)
		}
	}
	f2, _, _, _ := s.SealCompact(w.self.Address(), 2, text, w.now)
	for _, i := range []int{len(f2) - 1, len(f2) - 40, 6, 25} { // tag, ciphertext, source, destination
		bad := bytes.Clone(f2)
		bad[i] ^= 0x04
		if i == 25 && messages.IsCompact(bad) {
			// The destination changed: not for us any more, so it is
			// routed (or dropped) as someone else's; skip.
			continue
		}
		if i == 6 {
			// Another source: unknown, so held, not delivered.
			if acts := w.core.HandleEnvelope(bad, w.src.Address(), w.now); acts[0].Kind != Drop || acts[0].Reason != DropUnknownSender {
				t.Fatalf("source changed: %+v", acts)
			}
			continue
		}
		refused("tampered", bad)
	}
	seqChanged := bytes.Clone(f2)
	if seqChanged[43] != 0x02 { // array, tag, hops, limit, source 17, destination 17, expiry 5
		t.Fatalf("seq not at byte 43: %x", seqChanged)
	}
	seqChanged[43] = 0x03 // seq 2 → 3, under the same ciphertext
	refused("seq changed", seqChanged)
	refused("wrong sender", w.forgedCompact(2, "forged"))
	// A forged copy of the delivered seq 1: refused before the replay
	// window, so it draws no receipt.
	refused("forged replay", w.forgedCompact(1, "forged"))
	// Nothing refused took seq 2.
	if acts := w.core.HandleEnvelope(f2, w.src.Address(), w.now); acts[0].Kind != Deliver {
		t.Fatalf("seq 2 after the refusals: %v %+v", kinds(acts), acts)
	}

	// From a stranger (no announce): held until its announce arrives.
	stranger, sk := testSealing(t)
	k := messages.NewCompact(stranger.Address(), w.self.Address(), 8, w.now.Add(time.Hour), 1)
	selfSeal, _ := crypto.SealingKeyFor(w.self)
	k.Sealed, _ = sk.SealAuth(selfSeal.Public(), text, k.AAD())
	sf, _ := messages.EncodeCompact(k)
	if acts := w.core.HandleEnvelope(sf, w.src.Address(), w.now); len(acts) != 1 || acts[0].Reason != DropUnknownSender || acts[0].Dest != stranger.Address() || !bytes.Equal(acts[0].Frame, sf) {
		t.Fatalf("stranger: %+v", acts)
	}
	// Expired: dropped.
	if acts := w.core.HandleEnvelope(f2, w.src.Address(), w.now.Add(2*time.Hour)); acts[0].Reason != DropExpired {
		t.Fatalf("expired: %+v", acts)
	}
	if acts := w.core.HandleEnvelope([]byte{0x88, 0x07}, w.src.Address(), w.now); acts[0].Reason != DropMalformed {
		t.Fatalf("malformed: %+v", acts)
	}

	// A relay: w.core forwards src's compact envelope for dst to via, as
	// it is but for the hop count, without being able to check it.
	k = messages.NewCompact(w.src.Address(), w.dst.Address(), 8, w.now.Add(time.Hour), 1)
	k.Sealed = make([]byte, 80) // whatever it is, the relay cannot tell
	rf, _ := messages.EncodeCompact(k)
	acts = w.core.HandleEnvelope(rf, w.src.Address(), w.now)
	if len(acts) != 1 || acts[0].Kind != Forward || acts[0].NextHop != w.via.Address() || acts[0].ID != k.ID() {
		t.Fatalf("relay: %v %+v", kinds(acts), acts)
	}
	if d, err := messages.DecodeCompact(acts[0].Frame); err != nil || d.Hops != 1 || d.ID() != k.ID() {
		t.Fatalf("relayed frame: %+v %v", d, err)
	}
	// Its copy from a routing loop is dropped.
	if acts := w.core.HandleEnvelope(rf, w.via.Address(), w.now); acts[0].Reason != DropDuplicate {
		t.Fatalf("loop copy: %+v", acts)
	}
	// From a source no announce was heard of: held, as a signed
	// envelope from an unknown sender is.
	k = messages.NewCompact(stranger.Address(), w.dst.Address(), 8, w.now.Add(time.Hour), 1)
	k.Sealed = make([]byte, 80)
	rf, _ = messages.EncodeCompact(k)
	if acts := w.core.HandleEnvelope(rf, w.src.Address(), w.now); len(acts) != 1 || acts[0].Reason != DropUnknownSender || acts[0].Dest != stranger.Address() {
		t.Fatalf("relay, unknown source: %+v", acts)
	}
	// Claiming to be from us: our own copy back from a loop, or forged.
	k = messages.NewCompact(w.self.Address(), w.dst.Address(), 8, w.now.Add(time.Hour), 1)
	k.Sealed = make([]byte, 80)
	rf, _ = messages.EncodeCompact(k)
	if acts := w.core.HandleEnvelope(rf, w.via.Address(), w.now); len(acts) != 1 || acts[0].Reason != DropDuplicate {
		t.Fatalf("relay, our own source: %+v", acts)
	}
	// For a destination no announce was heard of: dropped, not stored.
	k = messages.NewCompact(w.src.Address(), stranger.Address(), 8, w.now.Add(time.Hour), 1)
	k.Sealed = make([]byte, 80)
	rf, _ = messages.EncodeCompact(k)
	if acts := w.core.HandleEnvelope(rf, w.src.Address(), w.now); len(acts) != 1 || acts[0].Reason != DropNoRoute {
		t.Fatalf("relay, unknown destination: %+v", acts)
	}
}

// TestCompactVerifiedAtTheEdge: the verify pool's opening is used as it
// is (no second open), and its failure counts as open_failed before the
// replay window.
func TestCompactVerifiedAtTheEdge(t *testing.T) {
	w := newCoreWorld(t)
	s := w.compactSender(transports.Constrained)
	frame, id, _, _ := s.SealCompact(w.self.Address(), 1, []byte("hi"), w.now)
	k, _ := messages.DecodeCompact(frame)
	v := &messages.VerifiedEnvelope{In: &messages.InboundFrame{Data: frame, From: w.src.Address()}, Env: k.AsEnvelope(), ID: id, Opened: []byte("hi")}
	if acts := w.core.HandleVerified(v, w.now); len(acts) != 2 || acts[0].Kind != Deliver || string(acts[0].Inbox.Text) != "hi" {
		t.Fatalf("opened at the edge: %v", kinds(acts))
	}
	v.Opened, v.OpenFailed = nil, true
	if acts := w.core.HandleVerified(v, w.now); len(acts) != 1 || acts[0].Reason != DropOpenFailed {
		t.Fatalf("failed at the edge, seq already delivered: %v %+v", kinds(acts), acts)
	}
	// Not opened at the edge (no sealing key there): the router opens it.
	f2, _, _, _ := s.SealCompact(w.self.Address(), 2, []byte("ho"), w.now)
	k2, _ := messages.DecodeCompact(f2)
	v2 := &messages.VerifiedEnvelope{In: &messages.InboundFrame{Data: f2}, Env: k2.AsEnvelope(), ID: k2.ID()}
	if acts := w.core.HandleVerified(v2, w.now); len(acts) != 2 || string(acts[0].Inbox.Text) != "ho" {
		t.Fatalf("opened by the router: %v", kinds(acts))
	}
}
