package router

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/quicprochat/qpc/actors/announcer"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

const fuzzAnnounceNodes = 12 // more than the table's 8 routes and 8 known keys

// FuzzAnnounceCheckHandle is the path of every announce frame a peer
// sends: announcer.Check (decode, signature, age, hops) and then, for what
// passes, Core.HandleAnnounce (freshness, routing table, known keys,
// re-broadcast). The fuzzer gives one frame, heard from the neighbour src,
// and a script of announces it describes and the test signs, three bytes a
// step:
//
//	b0: bits 0-3 the node (12, more than the table and the key cache hold),
//	    bits 4-5 the neighbour it is heard from (src, via, dst, the node
//	    itself), bits 6-7 the step: a signed announce, the fuzzed frame again
//	    from that neighbour, a signed announce with bit b2 flipped, the node's
//	    previous announce again;
//	b1: bits 0-3 the hop count, bit 4 the capabilities, bit 5 a rotated
//	    sealing key instead of the derived one, bits 6-7 the KeyPackage
//	    hash length (0, 16, 32, 17);
//	b2: the announce's time, in steps of 20 s around now (±42 min: the
//	    future beyond a minute and the past beyond MaxAge, 30 min; the clock
//	    moves 1 s a step).
//
// After every step:
//   - Check refuses with a *Refusal whose Reason is the one the frame
//     deserves (malformed, bad_signature, own, too_old, future, hops, in
//     that order), or accepts exactly the canonical, verifying announce
//     within the limits;
//   - HandleAnnounce refuses with ErrStale, ErrHopsExceeded or ErrBadRoute
//     and changes nothing (no route, no key, no cached frame), or the table
//     has a route to the node with its announced keys and sequence, its
//     keys are known (an envelope from it will verify), and what it passes
//     on is the same announce one hop further, only when it is news and
//     below the hop limit;
//   - the same announce heard again from the same neighbour changes
//     nothing and is not passed on (a replay costs nothing);
//   - the table and the key cache stay within their bounds.
func FuzzAnnounceCheckHandle(f *testing.F) {
	w := newFuzzWorld(f)
	var nodes [fuzzAnnounceNodes]*crypto.Identity
	for i := range nodes {
		nodes[i] = fuzzIdentity(f, byte(0x40+i))
	}
	neighbours := []*crypto.Identity{w.src, w.via, w.dst, nil}
	limits := announcer.Limits{Self: w.self.Address(), MaxAge: 30 * time.Minute, MaxHops: 8}
	// A node may announce a new sealing key (b1 bit 5): an older announce
	// replayed must not bring the old one back.
	rotatedKey, _ := crypto.SealingKeyFor(fuzzIdentity(f, 0x3F))
	rotated := rotatedKey.Public()

	sign := func(tb testing.TB, id *crypto.Identity, b1, b2 byte, now time.Time) []byte {
		sealPub := rotated
		if b1&0x20 == 0 {
			seal, _ := crypto.SealingKeyFor(id)
			sealPub = seal.Public()
		}
		kp := [][]byte{nil, bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 17)}[b1>>6]
		a := messages.NewAnnounce(id.PublicKey(), sealPub, messages.Capabilities(b1>>4&1), kp, now.Add(time.Duration(int8(b2))*20*time.Second))
		a.Hops = b1 & 0x0F
		if err := a.Sign(id.Sign); err != nil {
			// A KeyPackage hash of 17 bytes: encode it anyway, unsigned.
			a.Signature = make([]byte, 64)
			b, err := messages.Marshal(a)
			if err != nil {
				tb.Fatal(err)
			}
			return b
		}
		b, err := messages.EncodeAnnounce(a)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	seed := sign(f, nodes[0], 0x10, 0xFA, w.now)
	f.Add(seed, []byte{})
	f.Add(seed, []byte{0x50, 0, 0})                                                      // then the same frame again via via
	f.Add(seed, []byte{0xC0, 0, 0})                                                      // then the same announce again via src
	f.Add(w.known[0].Frame, []byte{0x01, 0x01, 0x01, 0x11, 0x01, 0xFF})                  // a known neighbour; node 1 twice, the second older
	f.Add(sign(f, w.self, 0, 0, w.now), []byte{0x02, 0x08, 0x00, 0x03, 0x07, 0x00})      // our own; hops 8; hops 7
	f.Add(sign(f, nodes[2], 0, 0x7F, w.now), []byte{0x04, 0x00, 0x81, 0x05, 0x00, 0x80}) // from the future, from the past
	f.Add(seed, []byte{0x80, 0x00, 0x05, 0x06, 0xC0, 0x00, 0x07, 0x80, 0x00})            // tampered, KeyPackage hash of 17 bytes
	f.Add(seed, []byte{0x01, 0x01, 0x00, 0x01, 0x21, 0x02, 0x01, 0x01, 0x01})            // node 1 rotates its sealing key, then an older announce with the old one
	full := []byte{}
	for i := range fuzzAnnounceNodes {
		full = append(full, byte(i), 0x01, 0x00)
	}
	f.Add(seed, full) // more nodes than the table holds
	f.Add(seed[:len(seed)-1], []byte{})
	f.Add(append(bytes.Clone(seed), 0), []byte{})
	f.Add(append(bytes.Clone(seed), make([]byte, messages.MaxAnnounceSize)...), []byte{})

	f.Fuzz(func(t *testing.T, frame, script []byte) {
		c := w.core(t, true, true)
		now := w.now
		var last [fuzzAnnounceNodes][]byte
		step := func(frame []byte, next [16]byte) {
			t.Helper()
			a, err := announcer.Check(frame, now, limits)
			if want := refusalFor(frame, now, limits); err == nil && want != "" || err != nil && !refusedAs(err, want) {
				t.Fatalf("Check: %v, want refusal %q", err, want)
			}
			if err != nil {
				return
			}
			if again, err := messages.EncodeAnnounce(a); err != nil || !bytes.Equal(again, frame) {
				t.Fatalf("Check accepted a non-canonical announce (%v)", err)
			}
			h := &messages.AnnounceHeard{Announce: a, Frame: frame, From: next, Link: "tcp:fuzz"}
			addr := a.Address()
			hadRoute := c.Table.Paths(addr) != nil
			prevSeq, prevKnown := c.Table.Seq(addr)
			before := stateOf(c)
			unfeasible := c.Table.Stats().Unfeasible
			fwd, change, err := c.HandleAnnounce(h, now)
			after := stateOf(c)
			if err != nil {
				if !errors.Is(err, ErrStale) && !errors.Is(err, ErrHopsExceeded) && !errors.Is(err, ErrBadRoute) {
					t.Fatalf("HandleAnnounce: untyped error %v", err)
				}
				if fwd != nil || !before.equal(after) {
					t.Fatalf("a refused announce (%v) changed the router's state or was passed on", err)
				}
				if errors.Is(err, ErrStale) && (!prevKnown || a.UnixMilli >= prevSeq) {
					t.Fatalf("refused as stale: seq %d, known %v %d", a.UnixMilli, prevKnown, prevSeq)
				}
				return
			}
			if prevKnown && a.UnixMilli < prevSeq {
				t.Fatalf("accepted seq %d over %d", a.UnixMilli, prevSeq)
			}
			if c.Table.Stats().Unfeasible > unfeasible {
				// A copy of the current announce over a path that may run
				// back through this node (Table, feasibility): not kept,
				// not passed on.
				if change != ChangeNone || fwd != nil || a.UnixMilli != prevSeq {
					t.Fatalf("unfeasible copy: change %v, passed on %v, seq %d (table %d)", change, fwd != nil, a.UnixMilli, prevSeq)
				}
				return
			}
			r, ok := c.Table.Lookup(addr)
			if !ok || !bytes.Equal(r.SigningKey[:], a.PublicKey) || !bytes.Equal(r.SealingKey[:], a.SealKey) || r.Capabilities != a.Capabilities {
				t.Fatalf("accepted (%v), but the route is %v %+v", change, ok, r)
			}
			if seq, _ := c.Table.Seq(addr); seq != a.UnixMilli {
				t.Fatalf("the table's sequence is %d, the announce's %d", seq, a.UnixMilli)
			}
			if pub, ok := c.keyOf(addr); !ok || !bytes.Equal(pub, a.PublicKey) {
				t.Fatal("the announced key is not known to verify envelopes with")
			}
			if sk, ok := c.SealingKeyOf(addr); !ok || !bytes.Equal(sk[:], a.SealKey) {
				t.Fatal("the announced sealing key is not known")
			}
			switch {
			case !hadRoute && change != ChangeAdded:
				t.Fatalf("a new destination, change %v", change)
			case hadRoute && a.UnixMilli > prevSeq && change != ChangeBest:
				t.Fatalf("a newer announce, change %v", change)
			}
			news := change == ChangeAdded || change == ChangeBest
			switch {
			case fwd == nil && news && int(a.Hops)+1 < limits.MaxHops:
				t.Fatalf("news (%v) at %d hops not passed on", change, a.Hops)
			case fwd != nil && (!news || int(a.Hops)+1 >= limits.MaxHops):
				t.Fatalf("passed on: change %v at %d hops", change, a.Hops)
			case fwd != nil:
				out, err := messages.DecodeAnnounce(fwd)
				if err != nil || out.Hops != a.Hops+1 {
					t.Fatalf("passed on %v (%v)", out.Hops, err)
				}
				out.Hops = a.Hops
				if !reflect.DeepEqual(out, a) {
					t.Fatal("passed on a different announce")
				}
			}
			if c.Table.Len() > 8 || len(c.Keys) > fuzzMaxKeys {
				t.Fatalf("%d routes, %d keys; limits 8 and %d", c.Table.Len(), len(c.Keys), fuzzMaxKeys)
			}
			if !maps.Equal(before.dedup, after.dedup) || !maps.Equal(before.loops, after.loops) || after.replayDirty != before.replayDirty {
				t.Fatal("an announce touched the envelope state")
			}
			// Heard again: nothing changes, nothing goes further.
			again := stateOf(c)
			fwd2, change2, err := c.HandleAnnounce(h, now)
			if err != nil || fwd2 != nil || change2 != ChangeNone || !again.equal(stateOf(c)) {
				t.Fatalf("the same announce again: %v %v passed on %v", err, change2, fwd2 != nil)
			}
		}

		step(frame, w.src.Address())
		for n := 0; len(script) >= 3 && n < 32; n++ {
			b0, b1, b2 := script[0], script[1], script[2]
			script = script[3:]
			now = now.Add(time.Second)
			node := nodes[b0&0x0F%fuzzAnnounceNodes]
			next := node.Address()
			if nb := neighbours[b0>>4&3]; nb != nil {
				next = nb.Address()
			}
			switch b0 >> 6 {
			case 0:
				last[b0&0x0F%fuzzAnnounceNodes] = sign(t, node, b1, b2, now)
				step(last[b0&0x0F%fuzzAnnounceNodes], next)
			case 1:
				step(frame, next)
			case 2:
				bad := sign(t, node, b1, b2, now)
				bad[int(b2)%len(bad)] ^= 1 << (b1 & 7)
				step(bad, next)
			case 3:
				if p := last[b0&0x0F%fuzzAnnounceNodes]; p != nil {
					step(p, next)
				}
			}
		}
	})
}

// refusalFor is the reason announcer.Check should give frame, or "": the
// reference the fuzz target holds Check to.
func refusalFor(frame []byte, now time.Time, l announcer.Limits) string {
	a, err := messages.DecodeAnnounce(frame)
	switch {
	case errors.Is(err, messages.ErrBadSignature):
		return announcer.ReasonBadSignature
	case err != nil:
		return announcer.ReasonMalformed
	case a.Address() == l.Self:
		return announcer.ReasonOwn
	case now.Sub(a.SentAt()) > l.MaxAge:
		return announcer.ReasonTooOld
	case a.SentAt().Sub(now) > announcer.MaxClockSkew:
		return announcer.ReasonFuture
	case int(a.Hops) >= l.MaxHops:
		return announcer.ReasonHops
	}
	return ""
}

func refusedAs(err error, reason string) bool {
	var r *announcer.Refusal
	return errors.As(err, &r) && errors.Is(err, announcer.ErrRefused) && r.Reason == reason &&
		slices.Contains([]string{announcer.ReasonMalformed, announcer.ReasonBadSignature, announcer.ReasonTooOld,
			announcer.ReasonFuture, announcer.ReasonHops, announcer.ReasonOwn}, reason)
}
