package router

import (
	"fmt"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// The compact sealed envelope (messages.Compact) on the router's side.
//
// Sending: an own message goes out compact when the first hop of its
// route is a neighbour reachable only over constrained links (LoRa:
// capability class constrained or severely constrained, transports.ClassOf),
// and signed otherwise. The choice is made once, when the message is
// sealed; the outbox keeps and retransmits that frame whatever the route
// is later (a compact envelope travels over any link, it is only smaller).
// A message queued without a route is signed.
//
// Relaying: a compact envelope is forwarded, stored and deduplicated like
// an envelope, as it is (ForwardEnvelope raises its hop count), without
// any check of its sender: relays cannot make one.
//
// Receiving: the verify pool (or handleCompact here) opens it with the
// source's announced sealing key; it then goes through the same replay
// window, delivery and signed receipt as a sealed envelope.

// LinkClasses tracks the capability classes and frame limits of the open
// links to each neighbour, from PeerUp and PeerDown. The zero value is
// ready to use.
type LinkClasses struct {
	m map[[16]byte]map[uint64]linkFacts
}

type linkFacts struct {
	class    string
	maxFrame int // 0: not known
}

// Up records an open link to peer with its id and class name
// (transports.Class.String, as messages.LinkInfo carries it).
func (l *LinkClasses) Up(peer [16]byte, id uint64, class string) {
	if l.m == nil {
		l.m = make(map[[16]byte]map[uint64]linkFacts)
	}
	if l.m[peer] == nil {
		l.m[peer] = make(map[uint64]linkFacts)
	}
	f := l.m[peer][id]
	f.class = class
	l.m[peer][id] = f
}

// UpLink records an open link from its PeerUp description: class and
// frame limit.
func (l *LinkClasses) UpLink(li messages.LinkInfo) {
	l.Up(li.Peer, li.ID, li.Class)
	f := l.m[li.Peer][li.ID]
	f.maxFrame = li.MaxFrame
	l.m[li.Peer][li.ID] = f
}

// MaxFrame is the largest frame some open link to peer carries; ok is
// false when peer has no open link or none told its limit.
func (l *LinkClasses) MaxFrame(peer [16]byte) (n int, ok bool) {
	for _, f := range l.m[peer] {
		if f.maxFrame <= 0 {
			return 0, false // one link of unknown limit: do not judge
		}
		n = max(n, f.maxFrame)
	}
	return n, n > 0
}

// Down forgets a link.
func (l *LinkClasses) Down(peer [16]byte, id uint64) {
	delete(l.m[peer], id)
	if len(l.m[peer]) == 0 {
		delete(l.m, peer)
	}
}

// Constrained reports whether peer has open links and all of them are
// constrained or severely constrained: a frame to it goes over a radio.
// A neighbour with any faster link gets the signed envelope (the links
// actor sends over the fastest link that carries the frame).
func (l *LinkClasses) Constrained(peer [16]byte) bool {
	links := l.m[peer]
	for _, f := range links {
		if c := f.class; c != transports.Constrained.String() && c != transports.SeverelyConstrained.String() {
			return false
		}
	}
	return len(links) > 0
}

// CompactTo reports whether an own message to to should go compact now:
// compact envelopes are allowed (not SignedOnly), there is a route, and
// its next hop is reachable only over constrained links.
func (c *Core) CompactTo(to [16]byte) bool {
	if c.SignedOnly {
		return false
	}
	r, ok := c.Table.Lookup(to)
	return ok && !c.Unlinked[r.NextHop] && c.Links.Constrained(r.NextHop)
}

// SealCompact seals text to the destination in HPKE auth mode with this
// node's sealing key and the compact header as AAD, with sequence number
// seq (from Outbox.NextSeq). It returns the frame, its id and its expiry.
func (c *Core) SealCompact(to [16]byte, seq uint64, text []byte, now time.Time) ([]byte, [16]byte, time.Time, error) {
	sealTo, ok := c.SealingKeyOf(to)
	if !ok {
		return nil, [16]byte{}, time.Time{}, fmt.Errorf("%w: %s", ErrUnknownDestination, crypto.Address(to))
	}
	k := messages.NewCompact(c.self(), to, uint8(c.MaxHops), now.Add(c.TTL), seq)
	sealed, err := c.Seal.SealAuth(sealTo[:], text, k.AAD())
	if err != nil {
		return nil, [16]byte{}, time.Time{}, err
	}
	k.Sealed = sealed
	frame, err := messages.EncodeCompact(k)
	if err != nil {
		return nil, [16]byte{}, time.Time{}, err
	}
	return frame, k.ID(), k.ExpiresAt(), nil
}

// openCompact opens a compact envelope for this node with the source's
// announced sealing key. known is false when no key is known for the
// source (the frame is held until its announce arrives).
func (c *Core) openCompact(k messages.Compact) (text []byte, known bool, err error) {
	from, ok := c.SealingKeyOf(k.Source)
	if !ok {
		return nil, false, nil
	}
	text, err = c.Seal.OpenAuth(k.Sealed, k.AAD(), from[:])
	if err == nil && text == nil {
		text = []byte{}
	}
	return text, true, err
}

// handleCompact is HandleEnvelope for a compact envelope frame that the
// edge has not opened: for this node it is opened here, for another node
// it is routed as it is.
//
// A relay cannot authenticate it, but it asks what it can: that the
// source is a node whose announce it accepted (else the frame is held, as
// a signed envelope from an unknown sender is, until the announce comes),
// and that the destination is one too (else it is dropped as no_route,
// never stored: a relay's store holds compact envelopes only for known
// destinations). One that claims this node as its source is a copy of
// our own coming back through a routing loop, or a forgery (nothing
// could tell): dropped as a duplicate, never forwarded.
func (c *Core) handleCompact(frame []byte, from [16]byte, now time.Time) []Action {
	k, err := messages.DecodeCompact(frame)
	if err != nil {
		return []Action{{Kind: Drop, Reason: DropMalformed}}
	}
	if k.Source == c.self() {
		return []Action{{Kind: Drop, Reason: DropDuplicate}}
	}
	if k.Destination != c.self() {
		if _, ok := c.SealingKeyOf(k.Source); !ok {
			return []Action{{Kind: Drop, Reason: DropUnknownSender, Dest: k.Source, Frame: frame}}
		}
		if _, ok := c.SealingKeyOf(k.Destination); !ok {
			return []Action{{Kind: Drop, Reason: DropNoRoute}}
		}
	}
	var text []byte
	var failed bool
	if k.Destination == c.self() {
		var known bool
		text, known, err = c.openCompact(k)
		if !known {
			return []Action{{Kind: Drop, Reason: DropUnknownSender, Dest: k.Source, Frame: frame}}
		}
		failed = err != nil
	}
	return c.handle(k.AsEnvelope(), k.ID(), frame, from, text, failed, now)
}

// compactOf turns the envelope view of a compact envelope
// (messages.Compact.AsEnvelope) back into it.
func compactOf(e messages.Envelope) messages.Compact {
	return messages.Compact{Tag: e.Tag, Hops: e.Hops, HopLimit: e.HopLimit, Source: e.Source, Destination: e.Destination,
		Expiry: e.Expiry, Seq: e.Seq, Sealed: e.Payload}
}
