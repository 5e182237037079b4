package router

import (
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto/mlslite"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// MLS-Lite frames (crypto/mlslite, frame type 0x8) on the router's side:
// a group's text for one member on a constrained link.
//
// Relaying: like a compact envelope. The frame has no signature a relay
// could check (or, when signed, its group's members are who can), so the
// relay asks what it can — source and destination are nodes whose
// announces it accepted (unknown source: held; unknown destination:
// dropped as no_route), a copy within the loop window is a loop's — and
// forwards it as it is with its hop count raised. A relay's store holds
// it, with an expiry of its own (the frame carries none), TTL from now.
//
// For this node: handed to the keys actor (GroupFrame), which opens it
// with the group's epoch keys, refuses replays with its per-sender
// windows, delivers it and asks for the receipt (messages.SendReceipts).
// Without a keys actor it is dropped.
//
// Sending: the keys actor seals it; the router keeps and retransmits it
// as any own message (messages.SendText.Frame).

// GroupFrame is an Action kind: an MLS-Lite frame for the keys actor
// (Frame, ID, From).
const GroupFrame = KeyPackage + 1

func (c *Core) handleLite(frame []byte, from [16]byte, now time.Time) []Action {
	f, err := mlslite.Decode(frame)
	if err != nil {
		return []Action{{Kind: Drop, Reason: DropMalformed}}
	}
	if f.Source == c.self() {
		return []Action{{Kind: Drop, Reason: DropDuplicate}} // our own, back through a loop, or a forgery
	}
	if _, ok := c.keyOf(f.Source); !ok {
		return []Action{{Kind: Drop, Reason: DropUnknownSender, Dest: f.Source, Frame: frame}}
	}
	id := f.ID()
	if f.Destination == c.self() {
		if !c.KeyPackagesIn {
			return []Action{{Kind: Drop, Reason: DropMalformed}}
		}
		return []Action{{Kind: GroupFrame, Frame: frame, ID: id, From: from}}
	}
	if _, ok := c.SealingKeyOf(f.Destination); !ok {
		return []Action{{Kind: Drop, Reason: DropNoRoute}}
	}
	if c.Loops != nil && c.Loops.Seen(id, now) {
		return []Action{{Kind: Drop, Reason: DropDuplicate}}
	}
	fwd, err := mlslite.Forward(frame)
	if errors.Is(err, mlslite.ErrHopLimit) {
		return []Action{{Kind: Drop, Reason: DropHopLimit}}
	}
	if err != nil {
		return []Action{{Kind: Drop, Reason: DropMalformed}}
	}
	return c.routeFrom(f.Destination, id, fwd, now.Add(c.TTL), true, from)
}

// keepFrame is the signed result for an own frame sealed by another
// actor (an MLS-Lite frame): kept as it is, expiring TTL from now.
func (c *Core) keepFrame(m *messages.SendText, now time.Time) signed {
	return signed{frame: m.Frame, id: m.FrameID, expiry: now.Add(c.TTL)}
}

// Fastest is the class of the fastest open link to peer
// (transports.Class; 0 when peer has no open link).
func (l *LinkClasses) Fastest(peer [16]byte) transports.Class {
	var best transports.Class
	for _, f := range l.m[peer] {
		c := classByName(f.class)
		if c != 0 && (best == 0 || c < best) {
			best = c
		}
	}
	return best
}

func classByName(s string) transports.Class {
	for c := transports.Unconstrained; c <= transports.SeverelyConstrained; c++ {
		if c.String() == s {
			return c
		}
	}
	return 0
}

// classes answers a ClassesRequest: for each destination, the class of
// the fastest link to the next hop of its route (0: no route, or the next
// hop has no open link), and its X-Wing key where the PQ mode applies;
// where the mode would apply but the key is not held, it is asked for
// (pq.go), for the next request.
func (r *routerActor) classes(ctx actor.Context, m *messages.ClassesRequest, now time.Time) *messages.ClassesReply {
	out := &messages.ClassesReply{Classes: make(map[[16]byte]uint8, len(m.Dests))}
	for _, d := range m.Dests {
		if rt, ok := r.core.Table.Lookup(d); ok && !r.core.Unlinked[rt.NextHop] {
			out.Classes[d] = uint8(r.core.Links.Fastest(rt.NextHop))
		} else {
			out.Classes[d] = 0
		}
		if r.core.PQ == nil {
			continue
		}
		if k, ok := r.core.PQTo(d); ok {
			if out.PQ == nil {
				out.PQ = map[[16]byte][]byte{}
			}
			out.PQ[d] = k
		} else {
			r.do(ctx, r.core.PQAsk(d, now))
		}
	}
	return out
}
