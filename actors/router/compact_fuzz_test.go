package router

import (
	"bytes"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// checkCompactDecision is checkEnvelope's reference for a compact sealed
// envelope (acts is what HandleEnvelope decided, before and after the
// Core's state around it): nothing it refuses changes anything; a relay
// forwards or stores it only from and to known nodes, as it is but for
// the hop count; for this node it is delivered only if it opens with the
// source's announced sealing key, with that text, once per (source, seq),
// followed by its receipt, and the replay window changes exactly then.
func checkCompactDecision(t *testing.T, c *Core, frame []byte, from [16]byte, acts []Action, before, after coreState, now time.Time, seen delivered, early func(Action)) {
	t.Helper()
	self := c.ID.Address()
	k, err := messages.DecodeCompact(frame)
	if err != nil {
		early(Action{Kind: Drop, Reason: DropMalformed})
		return
	}
	_, srcKnown := c.SealingKeyOf(k.Source)
	_, dstKnown := c.SealingKeyOf(k.Destination)
	var text []byte
	switch {
	case k.Source == self:
		early(Action{Kind: Drop, Reason: DropDuplicate})
		return
	case k.Destination == self:
		key, ok := c.SealingKeyOf(k.Source)
		if !ok {
			early(Action{Kind: Drop, Reason: DropUnknownSender, Dest: k.Source, Frame: frame})
			return
		}
		if k.ExpiresAt().Compare(now) <= 0 {
			early(Action{Kind: Drop, Reason: DropExpired})
			return
		}
		if text, err = c.Seal.OpenAuth(k.Sealed, k.AAD(), key[:]); err != nil {
			early(Action{Kind: Drop, Reason: DropOpenFailed})
			return
		}
	case !srcKnown:
		early(Action{Kind: Drop, Reason: DropUnknownSender, Dest: k.Source, Frame: frame})
		return
	case !dstKnown:
		early(Action{Kind: Drop, Reason: DropNoRoute})
		return
	}
	if k.ExpiresAt().Compare(now) <= 0 {
		early(Action{Kind: Drop, Reason: DropExpired})
		return
	}
	if !reflect.DeepEqual(before.table, after.table) || !maps.Equal(before.keys, after.keys) || !maps.EqualFunc(before.announces, after.announces, bytes.Equal) {
		t.Fatal("a compact envelope changed the routing table or the known keys")
	}
	if !maps.Equal(before.dedup, after.dedup) {
		t.Fatal("a compact envelope went into the broadcast dedup cache")
	}
	id := k.ID()
	delivers := 0
	for i, a := range acts {
		switch a.Kind {
		case Deliver:
			delivers++
			m := a.Inbox
			if k.Destination != self || m == nil || m.ID != id || m.From != k.Source || !bytes.Equal(m.Text, text) || m.Hops != int(k.Hops)+1 {
				t.Fatalf("delivery %+v of compact %x", m, id[:4])
			}
			if i+1 >= len(acts) || acts[i+1].Kind != ReceiptDue || acts[i+1].Dest != k.Source || acts[i+1].ID != id {
				t.Fatalf("a delivery without its receipt: %+v", acts)
			}
			if seen[k.Source] == nil {
				seen[k.Source] = map[uint64]bool{}
			}
			if seen[k.Source][k.Seq] {
				t.Fatalf("compact seq %d from %x delivered twice", k.Seq, k.Source[:4])
			}
			seen[k.Source][k.Seq] = true
		case ReceiptDue:
			if a.Dest != k.Source || a.ID != id || k.Destination != self { // and it opened: else refused above
				t.Fatalf("receipt due %+v for compact %x", a, id[:4])
			}
		case Forward, Store:
			out, err := messages.DecodeCompact(a.Frame)
			if err != nil || out.ID() != id || out.Hops != k.Hops+1 || !bytes.Equal(out.Sealed, k.Sealed) || a.Dest != k.Destination {
				t.Fatalf("%v of compact %x: %+v %v", a.Kind, id[:4], out, err)
			}
			// Never back to the neighbour it came from (split horizon): a
			// route only through it is as none.
			if a.Kind == Forward {
				if r, ok := c.Table.LookupExcept(a.Dest, from); !ok || r.NextHop != a.NextHop {
					t.Fatalf("forward to %x off the table (or back where it came from)", a.Dest[:4])
				}
			} else if _, ok := c.Table.LookupExcept(a.Dest, from); ok || !c.StoreOn || !c.RelayStore {
				t.Fatalf("stored compact for %x though a route exists or storing is off", a.Dest[:4])
			}
		case Drop:
		default:
			t.Fatalf("%v for a compact envelope", a.Kind)
		}
	}
	if delivers > 1 {
		t.Fatalf("%d deliveries of one compact envelope", delivers)
	}
	if (delivers == 1) != (after.replayDirty && !before.replayDirty) {
		t.Fatalf("replay window changed %v, delivered %d (%+v)", after.replayDirty && !before.replayDirty, delivers, acts)
	}
}

// seedCompacts are compact envelopes from the world's nodes: sealed to
// this node by src (and one by another key claiming src, one expired),
// from the stranger, for dst, and for nobody known.
func (w *fuzzWorld) seedCompacts(tb testing.TB) [][]byte {
	self := w.self.Address()
	compact := func(from *crypto.Identity, by *crypto.Identity, to [16]byte, seq uint64, expiry time.Time, text string) []byte {
		k := messages.NewCompact(from.Address(), to, 8, expiry, seq)
		key, _ := crypto.SealingKeyFor(by)
		var err error
		if to == self {
			k.Sealed, err = key.SealAuth(w.seal.Public(), []byte(text), k.AAD())
		} else {
			k.Sealed = bytes.Repeat([]byte{0x5C}, len(text)+crypto.SealOverhead)
		}
		if err != nil {
			tb.Fatal(err)
		}
		b, err := messages.EncodeCompact(k)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	live := w.now.Add(time.Minute)
	return [][]byte{
		compact(w.src, w.src, self, 1, live, "hello over lora"),
		compact(w.src, w.via, self, 2, live, "forged by via"),
		compact(w.src, w.src, self, 3, w.now, "late"),
		compact(w.strange, w.strange, self, 1, live, "stranger"),
		compact(w.src, w.src, w.dst.Address(), 1, live, "for dst"),
		compact(w.src, w.src, [16]byte{0xEE}, 1, live, "for nobody"),
		compact(w.strange, w.strange, w.dst.Address(), 1, live, "stranger for dst"),
		compact(w.self, w.self, w.dst.Address(), 1, live, "our own, looped"),
	}
}

// scriptCompact is scriptEnvelope for a sealed payload (b1&7 of 0, 1 or
// 7) when the script's compact bit is set: a compact envelope from from,
// sealed in auth mode by from's key to this node (0) or to dst (1), or by
// via's key claiming to be from (7: the wrong sender). Fields the encoder
// refuses (a hop count over the limit, seq 0, the broadcast address) are
// encoded anyway, for the decoder to refuse.
func (w *fuzzWorld) scriptCompact(t *testing.T, from *crypto.Identity, to [16]byte, b1, b2, b3 byte, now time.Time) []byte {
	expiry := now.Add(time.Minute)
	if b2&0x80 != 0 {
		expiry = now.Add(9 * 24 * time.Hour)
	}
	k := messages.NewCompact(from.Address(), to, b2&0x0F, expiry, uint64(b3>>2)*3)
	k.Hops = (b2 >> 4) & 7
	by, recipient := from, w.seal.Public()
	switch b1 & 7 {
	case 1:
		dstSeal, _ := crypto.SealingKeyFor(w.dst)
		recipient = dstSeal.Public()
	case 7:
		by = w.via
	}
	key, _ := crypto.SealingKeyFor(by)
	sealed, err := key.SealAuth(recipient, bytes.Repeat([]byte{'c'}, int(b1>>3)), k.AAD())
	if err != nil {
		t.Fatal(err)
	}
	k.Sealed = sealed
	b, err := messages.EncodeCompact(k)
	if err != nil {
		if b, err = messages.Marshal(k); err != nil {
			t.Fatal(err)
		}
	}
	return b
}
