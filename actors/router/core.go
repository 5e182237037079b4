package router

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/quicprochat/qpc/actors/verify"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/mlslite"
	"github.com/quicprochat/qpc/crypto/pq"
	"github.com/quicprochat/qpc/messages"
)

// Drop reasons, as counted in qpc_mesh_envelopes_dropped_total.
const (
	DropMalformed     = "malformed"
	DropUnknownSender = "unknown_sender"
	DropBadSignature  = "bad_signature"
	DropExpired       = "expired"
	DropDuplicate     = "duplicate"
	DropReplay        = "replay"
	DropHopLimit      = "hop_limit"
	DropOpenFailed    = "open_failed"
	DropNoRoute       = "no_route"
	// DropStoreRelayOff: no route to another node's destination, and this
	// node holds no messages for others (store.relay = false). The
	// sender's outbox retransmits it; once a route exists here it passes.
	DropStoreRelayOff = "store_relay_off"
	DropExpiryTooFar  = "expiry_too_far"
	DropReplayStore   = "replay_store"
	// DropReplayForgotten: a seq at or below the floor of a sender window
	// that was evicted; whether it was delivered is not known, so it is
	// refused without a receipt and its sender's outbox reports it failed.
	DropReplayForgotten = "replay_forgotten"
)

// Kind is what the router does with an envelope.
type Kind uint8

// Action kinds.
const (
	Drop          Kind = iota
	Deliver            // a message for us: Inbox is set
	Forward            // send Frame to NextHop
	Store              // hold Frame for Dest until a route appears
	Broadcast          // send Frame to every neighbour but Except
	Receipt            // a receipt for one of our messages: ID acknowledged
	TraceHop           // a trace reply came back: Hop, From
	ReceiptDue         // a message from Dest to acknowledge (ID); the actor batches them into receipts
	NotifyRouteUp      // the actor's own: tell the store Dest is reachable, after the batch
	Ack                // a receipt signed by Dest passed through: the store may drop ID if held for Dest
	KeyPackage         // a KeyPackage message for the keys actor: KP
)

// Action is one thing the actor must do; HandleEnvelope returns a list.
type Action struct {
	Kind    Kind
	Reason  string // Drop
	Frame   []byte
	NextHop [16]byte
	Except  [16]byte
	Dest    [16]byte
	ID      [16]byte
	Expiry  time.Time
	Inbox   *messages.InboxMessage
	From    [16]byte
	Hops    int
	KP      *messages.KeyPackageIn // KeyPackage
}

// Core is the router's logic: the routing table, the dedup cache, the
// replay window and the node's keys. It is plain code; the actor calls it
// and carries out the actions it returns.
type Core struct {
	ID    *crypto.Identity
	Seal  *crypto.SealingKey
	Table *Table
	Dedup *Dedup // broadcast copies
	// Loops catches copies of a unicast envelope from a routing loop: it
	// remembers ids for a short time only (LoopWindow), so the sender's
	// retransmissions, seconds later, are forwarded again.
	Loops   *Dedup
	Replay  *crypto.ReplayWindow
	MaxHops int
	TTL     time.Duration // lifetime of envelopes we originate
	StoreOn bool          // hold envelopes without a route
	// PQ is this node's X-Wing key when the post-quantum mode is on
	// (groups.pq): it announces CapPQ, opens PQ-sealed messages and seals
	// to nodes that announce it over unconstrained links (pq.go).
	PQ *pq.PrivateKey
	pq *pqState
	// KeyPackagesIn: a keys actor takes KeyPackage messages (KeyPackage
	// actions); without one they are forwarded as any other and, for
	// this node, dropped as malformed.
	KeyPackagesIn bool
	announce      map[[16]byte][]byte
	// Keys remembers the keys of nodes whose announces were accepted, also
	// after their routes went (a relay restarted, a link dropped): an
	// envelope from them can still be verified, and a message to them
	// sealed and stored. Bounded by MaxKeys.
	Keys    map[[16]byte]KnownKeys
	MaxKeys int
	// KeysChanged is set when Keys changed; whoever publishes a snapshot
	// of them for the edge (Directory) clears it.
	KeysChanged bool
	// RelayStore: with StoreOn, hold other nodes' envelopes too, not only
	// the receipts and replies this node sends (store.relay).
	RelayStore bool
	// Unlinked are neighbours that routes restored at start go through
	// and that have not linked again since. A best path through one does
	// not forward (the frame would find no link and be lost until its
	// sender retransmits): the envelope is held as if there were no route,
	// and the store drains it when the neighbour's link comes up.
	Unlinked map[[16]byte]bool
	// Links are the capability classes of the open links per neighbour:
	// own messages whose first hop is only over constrained links go out
	// as compact envelopes (compact.go), unless SignedOnly.
	Links      LinkClasses
	SignedOnly bool
}

// KeySnapshot is a new snapshot of the known keys and this node's, for
// the edge's directory.
func (c *Core) KeySnapshot() verify.Keys {
	out := make(verify.Keys, len(c.Keys)+1)
	for a, k := range c.Keys {
		out[a] = verify.Key{Signing: ed25519.PublicKey(bytes.Clone(k.Signing[:])), Sealing: bytes.Clone(k.Sealing[:]), KeyPackage: k.KeyPackage}
	}
	out[c.self()] = verify.Key{Signing: c.ID.PublicKey()}
	return out
}

// KnownKeys are a node's announced keys.
type KnownKeys struct {
	Signing [ed25519.PublicKeySize]byte
	Sealing [crypto.SealingKeySize]byte
	// KeyPackage: the announced KeyPackage hash (16 bytes; zero: none).
	KeyPackage [16]byte `json:",omitempty"`
}

func (c *Core) remember(r Route) {
	if c.Keys == nil {
		c.Keys = make(map[[16]byte]KnownKeys)
	}
	if _, ok := c.Keys[r.Address]; !ok && c.MaxKeys > 0 && len(c.Keys) >= c.MaxKeys {
		for a := range c.Keys { // drop one at random: map order
			delete(c.Keys, a)
			c.KeysChanged = true
			break
		}
	}
	k := KnownKeys{Signing: r.SigningKey, Sealing: r.SealingKey, KeyPackage: r.KeyPackage}
	if old, ok := c.Keys[r.Address]; !ok || old != k {
		c.Keys[r.Address] = k
		c.KeysChanged = true
	}
}

// AnnounceFrames returns a copy of the cached announce frames, to persist.
func (c *Core) AnnounceFrames() map[[16]byte][]byte {
	out := make(map[[16]byte][]byte, len(c.announce))
	for a, f := range c.announce {
		out[a] = f
	}
	return out
}

// RestoreAnnounceFrames replaces the cached announce frames (at start).
func (c *Core) RestoreAnnounceFrames(f map[[16]byte][]byte) { c.announce = f }

// Announces returns the last accepted announce frame of every known
// destination, for a neighbour that just came up.
func (c *Core) Announces() [][]byte {
	out := make([][]byte, 0, len(c.announce))
	for addr, f := range c.announce {
		if _, ok := c.Table.Lookup(addr); ok {
			out = append(out, f)
		}
	}
	return out
}

// Relinked restores the route to a neighbour whose link came up while
// the table has none to it, from the neighbour's own announce kept from
// before (hop count 0: it signed it and sent it itself), when that
// announce is younger than maxAge. The neighbour sends that announce
// again on a new link, but it can arrive while the old link's route is
// still there (a copy that changes nothing) and the old link's PeerDown
// then takes the route away: without this the neighbour had no route
// until its next periodic announce (10 minutes by default) and messages
// for it were held although its link was up.
func (c *Core) Relinked(l messages.LinkInfo, now time.Time, maxAge time.Duration) (Change, bool) {
	if _, ok := c.Table.Lookup(l.Peer); ok {
		return ChangeNone, false
	}
	f, ok := c.announce[l.Peer]
	if !ok {
		return ChangeNone, false
	}
	a, err := messages.DecodeAnnounce(f)
	if err != nil || a.Hops != 0 || a.Address() != l.Peer {
		return ChangeNone, false
	}
	if age := now.Sub(time.UnixMilli(int64(a.UnixMilli))); maxAge > 0 && age > maxAge {
		return ChangeNone, false
	}
	_, change, err := c.HandleAnnounce(&messages.AnnounceHeard{Announce: a, Frame: f, From: l.Peer, Link: l.Transport + ":" + l.Remote}, now)
	if err != nil || (change != ChangeAdded && change != ChangeBest) {
		return change, false
	}
	return change, true
}

// HandleAnnounce applies a checked announce to the table. It returns the
// frame to re-broadcast (nil when the announce was not new or may go no
// further) and the table's verdict.
func (c *Core) HandleAnnounce(h *messages.AnnounceHeard, now time.Time) (rebroadcast []byte, change Change, err error) {
	a := h.Announce
	r := Route{
		Address: a.Address(), Capabilities: a.Capabilities, NextHop: h.From, Link: h.Link,
		Hops: a.Hops + 1, Seq: a.UnixMilli,
	}
	copy(r.SigningKey[:], a.PublicKey)
	copy(r.SealingKey[:], a.SealKey)
	copy(r.KeyPackage[:], a.KeyPackageHash)
	if int(a.Hops) >= c.MaxHops {
		return nil, ChangeNone, ErrHopsExceeded
	}
	change, err = c.Table.Update(r, now)
	if err != nil {
		return nil, change, err
	}
	c.remember(r)
	if c.announce == nil {
		c.announce = make(map[[16]byte][]byte)
	}
	if change == ChangeNone || change == ChangeAlternate {
		// A flood copy that is no better than what we have: it stops here.
		// Keep it for the dump to neighbours if we had none (a table
		// restored without its frames).
		if _, ok := c.announce[r.Address]; !ok {
			if seq, known := c.Table.Seq(r.Address); known && seq == r.Seq {
				c.announce[r.Address] = h.Frame
			}
		}
		return nil, change, nil
	}
	// A newer announce, or the same one over a shorter path: keep it for
	// neighbours that come up later, and pass it on. Re-broadcasting the
	// shorter copy matters: with random re-broadcast delays a longer path
	// can arrive first, and its hop count could stop it short of the edge
	// of the mesh.
	c.announce[r.Address] = h.Frame
	if int(a.Hops)+1 >= c.MaxHops {
		return nil, change, nil
	}
	fwd, err := messages.ForwardAnnounce(h.Frame)
	if err != nil {
		return nil, change, nil
	}
	return fwd, change, nil
}

func (c *Core) self() [16]byte { return c.ID.Address() }

// keyOf finds a sender's Ed25519 key.
func (c *Core) keyOf(addr [16]byte) (ed25519.PublicKey, bool) {
	if k, ok := c.Keys[addr]; ok {
		return ed25519.PublicKey(k.Signing[:]), true
	}
	if r, ok := c.Table.Lookup(addr); ok {
		return ed25519.PublicKey(r.SigningKey[:]), true
	}
	return nil, false
}

// HandleEnvelope decides what to do with an envelope frame that arrived
// from the neighbour from.
func (c *Core) HandleEnvelope(frame []byte, from [16]byte, now time.Time) []Action {
	if messages.IsCompact(frame) {
		return c.handleCompact(frame, from, now)
	}
	if mlslite.IsMLSLite(frame) {
		return c.handleLite(frame, from, now)
	}
	drop := func(reason string) []Action { return []Action{{Kind: Drop, Reason: reason}} }
	env, err := messages.DecodeEnvelope(frame)
	if err != nil {
		return drop(DropMalformed)
	}
	pub, ok := c.keyOf(env.Source)
	if !ok {
		if env.Source == c.self() {
			pub = c.ID.PublicKey()
		} else {
			// Dest carries the unknown source, so the actor can hold the
			// frame until the sender's announce arrives.
			return []Action{{Kind: Drop, Reason: DropUnknownSender, Dest: env.Source, Frame: frame}}
		}
	}
	id, err := env.VerifyID(pub)
	if err != nil {
		return drop(DropBadSignature)
	}
	return c.handle(env, id, frame, from, nil, false, now)
}

// HandleVerified decides what to do with an envelope the edge verified
// (and opened, when it is sealed to this node).
func (c *Core) HandleVerified(v *messages.VerifiedEnvelope, now time.Time) []Action {
	return c.handle(v.Env, v.ID, v.In.Data, v.In.From, v.Opened, v.OpenFailed, now)
}

// handle is the decision for a verified envelope; opened is its
// plaintext when the edge opened it already.
func (c *Core) handle(env messages.Envelope, id [16]byte, frame []byte, from [16]byte, opened []byte, openFailed bool, now time.Time) []Action {
	drop := func(reason string) []Action { return []Action{{Kind: Drop, Reason: reason}} }
	if env.Expired(now) {
		return drop(DropExpired)
	}
	if env.Destination == c.self() {
		// Sealed messages need no dedup: the replay window tells a
		// retransmission from a new message and answers it with its
		// receipt again. Receipts, probes and trace replies carry no seq:
		// dedup keeps a replayed copy from costing a signature each.
		if !env.PayloadType.Sealed() && c.Dedup.Seen(id, now) {
			return drop(DropDuplicate)
		}
		return c.local(env, id, opened, openFailed, now)
	}
	// Recorded only after the signature checked out: a forged copy carries
	// the real id and must not block the real one. Broadcasts are flooded,
	// so every copy after the first is dropped for as long as the cache
	// remembers; a unicast envelope seen again within the loop window is a
	// copy from a routing loop, but later it is the sender's
	// retransmission, which must get through.
	if env.IsBroadcast() {
		if c.Dedup.Seen(id, now) {
			return drop(DropDuplicate)
		}
		acts := c.local(env, id, nil, false, now)
		if fwd, err := messages.ForwardEnvelope(frame); err == nil {
			acts = append(acts, Action{Kind: Broadcast, Frame: fwd, Except: from})
		}
		return acts
	}
	if c.Loops != nil && c.Loops.Seen(id, now) {
		return drop(DropDuplicate)
	}
	var acts []Action
	if env.PayloadType == messages.PayloadReceipt {
		// Receipts on their way back: a store holding those messages may
		// let go.
		ids, _ := messages.ReceiptIDs(env.Payload)
		for _, id := range ids {
			acts = append(acts, Action{Kind: Ack, ID: id, Dest: env.Source})
		}
	}
	fwd, err := messages.ForwardEnvelope(frame)
	if env.PayloadType == messages.PayloadKeyPackageRequest && c.KeyPackagesIn && (err == nil || errors.Is(err, messages.ErrHopLimit)) {
		// A KeyPackage request on its way: the keys actor answers it from
		// its cache, or hands it back to be forwarded (ForwardFrame).
		return append(acts, Action{Kind: KeyPackage, KP: &messages.KeyPackageIn{Env: env, ID: id, Frame: fwd, From: from, Transit: true}})
	}
	if env.PayloadType == messages.PayloadKeyPackage && c.KeyPackagesIn && err == nil {
		// A KeyPackage on its way back to whoever asked: worth a copy in
		// the cache here.
		acts = append(acts, Action{Kind: KeyPackage, KP: &messages.KeyPackageIn{Env: env, ID: id, From: from, Transit: true}})
	}
	if errors.Is(err, messages.ErrHopLimit) {
		if env.PayloadType == messages.PayloadTrace {
			// Traceroute: the node where the probe's hops ran out answers.
			return append(acts, c.reply(env, messages.PayloadTraceReply, env.Payload, now)...)
		}
		return append(acts, Action{Kind: Drop, Reason: DropHopLimit})
	}
	if err != nil {
		return append(acts, Action{Kind: Drop, Reason: DropMalformed})
	}
	return append(acts, c.routeFrom(env.Destination, id, fwd, env.ExpiresAt(), env.Source != c.self(), from)...)
}

// route forwards a frame towards dest or stores it; relayed says the
// frame is another node's, not one this node originated.
func (c *Core) route(dest, id [16]byte, frame []byte, expiry time.Time, relayed bool) []Action {
	return c.routeFrom(dest, id, frame, expiry, relayed, [16]byte{})
}

// routeFrom is route for a frame that arrived from the neighbour from:
// it never goes back to from (split horizon; a path through another
// neighbour is taken, or the frame is stored as if there were no
// route), so two neighbours that route through each other for a moment
// cannot bounce it between them until its hop limit.
func (c *Core) routeFrom(dest, id [16]byte, frame []byte, expiry time.Time, relayed bool, from [16]byte) []Action {
	if r, ok := c.Table.LookupExcept(dest, from); ok && !c.Unlinked[r.NextHop] {
		return []Action{{Kind: Forward, Frame: frame, NextHop: r.NextHop, Dest: dest, ID: id}}
	}
	switch {
	case !c.StoreOn:
		return []Action{{Kind: Drop, Reason: DropNoRoute}}
	case relayed && !c.RelayStore:
		return []Action{{Kind: Drop, Reason: DropStoreRelayOff}}
	}
	return []Action{{Kind: Store, Frame: frame, Dest: dest, ID: id, Expiry: expiry}}
}

// local handles an envelope for this node.
func (c *Core) local(env messages.Envelope, id [16]byte, opened []byte, openFailed bool, now time.Time) []Action {
	switch env.PayloadType {
	case messages.PayloadSealed, messages.PayloadGroup, messages.PayloadSealedPQ:
		if env.IsBroadcast() {
			// Sealed to one key, so no broadcast can be opened by everyone.
			return []Action{{Kind: Drop, Reason: DropMalformed}}
		}
		if env.Tag == messages.TagCompact {
			// No signature: opening is the authentication, so it comes
			// before the replay window, and a forged copy of a delivered
			// seq draws no receipt.
			if opened == nil && !openFailed {
				var err error
				if opened, _, err = c.openCompact(compactOf(env)); err != nil || opened == nil {
					openFailed = true
				}
			}
			if openFailed {
				return []Action{{Kind: Drop, Reason: DropOpenFailed}}
			}
		}
		src := crypto.Address(env.Source)
		// Order: look the sequence number up, open, and only then record
		// it, so nothing that fails to authenticate or open changes state.
		switch err := c.Replay.Check(now, src, env.Seq, env.ExpiresAt()); {
		case err == nil:
		case errors.Is(err, crypto.ErrReplay), errors.Is(err, crypto.ErrTooOld):
			// Delivered before (or given up by its sender): the receipt
			// may have been lost, so answer again; never deliver twice.
			return []Action{{Kind: Drop, Reason: DropDuplicate}, {Kind: ReceiptDue, Dest: env.Source, ID: id}}
		default:
			return []Action{{Kind: Drop, Reason: replayReason(err)}}
		}
		text := opened
		if text == nil {
			if openFailed {
				return []Action{{Kind: Drop, Reason: DropOpenFailed}}
			}
			var err error
			if env.PayloadType == messages.PayloadSealedPQ {
				if c.PQ == nil {
					return []Action{{Kind: Drop, Reason: DropOpenFailed}}
				}
				text, err = c.PQ.Open(env.Payload, crypto.SealAAD(env.Source, env.Destination))
			} else {
				text, err = c.Seal.Open(env.Payload, crypto.SealAAD(env.Source, env.Destination))
			}
			if err != nil {
				return []Action{{Kind: Drop, Reason: DropOpenFailed}}
			}
		}
		if err := c.Replay.Accept(now, src, env.Seq, env.ExpiresAt()); err != nil {
			return []Action{{Kind: Drop, Reason: replayReason(err)}}
		}
		msg := &messages.InboxMessage{ID: id, From: env.Source, Text: text, At: now, Hops: int(env.Hops) + 1}
		if env.PayloadType == messages.PayloadGroup {
			msg.Payload = messages.PayloadGroup
		}
		return []Action{{Kind: Deliver, Inbox: msg, From: env.Source}, {Kind: ReceiptDue, Dest: env.Source, ID: id}}
	case messages.PayloadReceipt:
		ids, err := messages.ReceiptIDs(env.Payload)
		if err != nil {
			return []Action{{Kind: Drop, Reason: DropMalformed}}
		}
		acts := make([]Action, len(ids))
		for i, id := range ids {
			acts[i] = Action{Kind: Receipt, ID: id, From: env.Source}
		}
		return acts
	case messages.PayloadTrace:
		return c.reply(env, messages.PayloadTraceReply, env.Payload, now)
	case messages.PayloadTraceReply:
		var probe [16]byte
		copy(probe[:], env.Payload)
		return []Action{{Kind: TraceHop, ID: probe, From: env.Source, Hops: int(env.Hops) + 1}}
	case messages.PayloadPQKeyRequest, messages.PayloadPQKey:
		if env.IsBroadcast() {
			break
		}
		return c.pqLocal(env, now)
	case messages.PayloadKeyPackageRequest, messages.PayloadKeyPackage, messages.PayloadKeyPackageUnavailable:
		if !c.KeyPackagesIn || env.IsBroadcast() {
			break
		}
		return []Action{{Kind: KeyPackage, KP: &messages.KeyPackageIn{Env: env, ID: id}}}
	}
	return []Action{{Kind: Drop, Reason: DropMalformed}}
}

// replayReason maps a replay window refusal to its drop reason.
func replayReason(err error) string {
	switch {
	case errors.Is(err, crypto.ErrExpired):
		return DropExpired
	case errors.Is(err, crypto.ErrExpiryTooFar):
		return DropExpiryTooFar
	case errors.Is(err, crypto.ErrForgotten):
		return DropReplayForgotten
	case errors.Is(err, crypto.ErrNoSequence):
		return DropMalformed
	case errors.Is(err, crypto.ErrReplay), errors.Is(err, crypto.ErrTooOld):
		return DropDuplicate
	}
	return DropReplayStore // the database failed: not the sender's fault
}

// Receipts builds the signed receipts for messages from dest (at most
// MaxReceiptIDs ids each) and routes them back.
func (c *Core) Receipts(dest [16]byte, ids [][16]byte, now time.Time) []Action {
	var acts []Action
	for len(ids) > 0 {
		k := min(len(ids), messages.MaxReceiptIDs)
		payload := make([]byte, 0, 16*k)
		for _, id := range ids[:k] {
			payload = append(payload, id[:]...)
		}
		ids = ids[k:]
		frame, id, err := c.originate(dest, uint8(c.MaxHops), messages.PayloadReceipt, payload, now)
		if err != nil {
			acts = append(acts, Action{Kind: Drop, Reason: DropMalformed})
			continue
		}
		acts = append(acts, c.route(dest, id, frame, now.Add(c.TTL), false)...)
	}
	return acts
}

// Control signs an unsealed envelope without a seq (a KeyPackage request
// or answer) and routes it to to: no outbox, no retransmission.
func (c *Core) Control(to [16]byte, pt messages.PayloadType, payload []byte, now time.Time) []Action {
	if pt.Sealed() || pt == messages.PayloadReceipt {
		return []Action{{Kind: Drop, Reason: DropMalformed}}
	}
	frame, id, err := c.originate(to, uint8(c.MaxHops), pt, payload, now)
	if err != nil {
		return []Action{{Kind: Drop, Reason: DropMalformed}}
	}
	c.Dedup.Seen(id, now)
	return c.route(to, id, frame, now.Add(c.TTL), false)
}

// reply sends a small signed envelope back to env's source.
func (c *Core) reply(env messages.Envelope, pt messages.PayloadType, payload []byte, now time.Time) []Action {
	frame, id, err := c.originate(env.Source, uint8(c.MaxHops), pt, payload, now)
	if err != nil {
		return []Action{{Kind: Drop, Reason: DropMalformed}}
	}
	return c.route(env.Source, id, frame, now.Add(c.TTL), false)
}

// originate builds and signs an envelope from this node.
func (c *Core) originate(to [16]byte, hopLimit uint8, pt messages.PayloadType, payload []byte, now time.Time) ([]byte, [16]byte, error) {
	env := messages.NewEnvelope(c.self(), to, hopLimit, now.Add(c.TTL), pt, payload)
	if err := env.Sign(c.ID.Sign); err != nil {
		return nil, [16]byte{}, err
	}
	frame, err := messages.EncodeEnvelope(env)
	if err != nil {
		return nil, [16]byte{}, err
	}
	return frame, env.ID(), nil
}

// ErrDraining: the node is shutting down and takes no new messages.
var ErrDraining = errors.New("router: the node is shutting down; no new messages")

// ErrHopsExceeded: an announce that travelled further than MaxHops.
var ErrHopsExceeded = errors.New("router: announce hop count over the limit")

// ErrUnknownDestination: no announce of the destination was heard, so its
// sealing key is not known.
var ErrUnknownDestination = errors.New("router: unknown destination (no announce heard from it)")

// ErrTooLargeForLink: the message's envelope is larger than any open link
// to the first hop of its route carries, so it could never leave; it is
// refused at send rather than accepted and failed at its expiry.
var ErrTooLargeForLink = errors.New("router: message too large for the link to the next hop")

// LoopWindow is how long a relay drops further copies of a unicast
// envelope it forwarded: longer than a routing loop takes to bring one
// back, shorter than the outbox's first retransmission.
const LoopWindow = 2 * time.Second

// SealText seals text to the destination and signs it as the envelope
// with sequence number seq (from Outbox.NextSeq). It returns the frame, its
// id and its expiry.
func (c *Core) SealText(to [16]byte, seq uint64, text []byte, now time.Time) ([]byte, [16]byte, time.Time, error) {
	return c.SealAs(messages.PayloadSealed, to, seq, text, now)
}

// SealAs is SealText for a sealed payload type (PayloadSealed,
// PayloadGroup).
func (c *Core) SealAs(pt messages.PayloadType, to [16]byte, seq uint64, text []byte, now time.Time) ([]byte, [16]byte, time.Time, error) {
	sealTo, ok := c.SealingKeyOf(to)
	if !ok {
		return nil, [16]byte{}, time.Time{}, fmt.Errorf("%w: %s", ErrUnknownDestination, crypto.Address(to))
	}
	sealed, err := crypto.Seal(sealTo[:], text, crypto.SealAAD(c.self(), to))
	if err != nil {
		return nil, [16]byte{}, time.Time{}, err
	}
	return c.SignSealedAs(pt, to, seq, sealed, now)
}

// SignSealed builds and signs the envelope for a payload already sealed
// to to (with crypto.SealAAD(self, to)).
func (c *Core) SignSealed(to [16]byte, seq uint64, sealed []byte, now time.Time) ([]byte, [16]byte, time.Time, error) {
	return c.SignSealedAs(messages.PayloadSealed, to, seq, sealed, now)
}

// SignSealedAs is SignSealed for a sealed payload type (PayloadSealed,
// PayloadGroup).
func (c *Core) SignSealedAs(pt messages.PayloadType, to [16]byte, seq uint64, sealed []byte, now time.Time) ([]byte, [16]byte, time.Time, error) {
	if !pt.Sealed() {
		return nil, [16]byte{}, time.Time{}, fmt.Errorf("router: payload type %s is not a sealed one", pt)
	}
	env := messages.NewEnvelope(c.self(), to, uint8(c.MaxHops), now.Add(c.TTL), pt, sealed)
	env.Seq = seq
	if err := env.Sign(c.ID.Sign); err != nil {
		return nil, [16]byte{}, time.Time{}, err
	}
	frame, err := messages.EncodeEnvelope(env)
	if err != nil {
		return nil, [16]byte{}, time.Time{}, err
	}
	return frame, env.ID(), env.ExpiresAt(), nil
}

// SealingKeyOf is the announced sealing key of a node, if one was heard.
func (c *Core) SealingKeyOf(to [16]byte) ([crypto.SealingKeySize]byte, bool) {
	if k, ok := c.Keys[to]; ok {
		return k.Sealing, true
	}
	if r, ok := c.Table.Lookup(to); ok {
		return r.SealingKey, true
	}
	return [crypto.SealingKeySize]byte{}, false
}

// NextHop is the neighbour a frame for dest goes to, if there is a route.
func (c *Core) NextHop(dest [16]byte) ([16]byte, bool) {
	r, ok := c.Table.Lookup(dest)
	return r.NextHop, ok
}

// NextHopFor is the neighbour the transmission after sent earlier ones of
// an own message to dest goes to: the best path for the first two, then
// the paths in turn (all of them as short as the best: Table's
// feasibility), so a message whose receipt does not come back over one
// neighbour (a lossy first link, a relay that lost its way) tries the
// others.
func (c *Core) NextHopFor(dest [16]byte, sent int) ([16]byte, bool) {
	ps := c.Table.Paths(dest)
	if len(ps) == 0 {
		return [16]byte{}, false
	}
	if sent < 2 {
		return ps[0].NextHop, true
	}
	return ps[(sent-1)%len(ps)].NextHop, true
}

// TraceProbe builds a probe that the node hop hops away answers.
func (c *Core) TraceProbe(to [16]byte, hop int, probe [16]byte, now time.Time) ([]Action, error) {
	frame, id, err := c.originate(to, uint8(hop-1), messages.PayloadTrace, probe[:], now)
	if err != nil {
		return nil, err
	}
	c.Dedup.Seen(id, now)
	r, ok := c.Table.Lookup(to)
	if !ok {
		if _, known := c.SealingKeyOf(to); known {
			// Heard of, but no path now: say so, as qpc send says the
			// message is queued.
			return nil, fmt.Errorf("%w: %s (its announce was heard; messages to it wait in the outbox until a route appears)", ErrNoRoute, crypto.Address(to))
		}
		return nil, fmt.Errorf("%w: %s", ErrUnknownDestination, crypto.Address(to))
	}
	return []Action{{Kind: Forward, Frame: frame, NextHop: r.NextHop, Dest: to, ID: id}}, nil
}

// ErrNoRoute: the destination is known (its announce was heard) but there
// is no path to it now.
var ErrNoRoute = errors.New("router: no route to the destination now")

// HandleStored routes a frame the store held for dest: forward it if a
// route exists now; otherwise leave it with the store (no action).
func (c *Core) HandleStored(frame []byte, dest [16]byte) []Action {
	if r, ok := c.Table.Lookup(dest); ok && !c.Unlinked[r.NextHop] {
		return []Action{{Kind: Forward, Frame: frame, NextHop: r.NextHop, Dest: dest}}
	}
	return nil
}
