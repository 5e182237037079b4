package router

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/pq"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// The post-quantum hybrid for 1:1 messages (docs/crypto.md, crypto/pq):
// an own text to a node that announces CapPQ, whose route's first link is
// unconstrained, is sealed with X-Wing (X25519 + ML-KEM-768) instead of
// the classic HPKE seal, once this node holds the destination's signed PQ
// key record; until then it is sealed classically and the record is asked
// for (a signed PQ key request, answered by its owner). Never over a
// constrained first link: 1,136 bytes more per message.
//
// The record is signed by its owner's identity key, so it is trusted
// whoever delivered it; records are kept in memory (asked for again after
// a restart).

// pqState is the router's part of the PQ mode; nil PQ in Core: off.
type pqState struct {
	record   []byte              // this node's signed PQ key record
	keys     map[[16]byte][]byte // others' X-Wing public keys, from verified records
	asked    map[[16]byte]time.Time
	answered map[[16]byte]time.Time
}

// pqAskEvery and pqAnswerEvery bound the PQ key requests this node sends
// to one destination and answers from one requester.
const (
	pqAskEvery    = 30 * time.Second
	pqAnswerEvery = 10 * time.Second
	maxPQKeys     = 4096
)

func (c *Core) pqInit() {
	if c.PQ != nil && c.pq == nil {
		c.pq = &pqState{record: pq.SignRecord(c.ID), keys: map[[16]byte][]byte{}, asked: map[[16]byte]time.Time{}, answered: map[[16]byte]time.Time{}}
	}
}

// pqRoute reports whether an own message to to may go PQ: the mode is on,
// to announces it, and the first link of the route is unconstrained.
func (c *Core) pqRoute(to [16]byte) bool {
	if c.PQ == nil {
		return false
	}
	r, ok := c.Table.Lookup(to)
	return ok && r.Capabilities.Has(messages.CapPQ) && !c.Unlinked[r.NextHop] && c.Links.Fastest(r.NextHop) == transports.Unconstrained
}

// PQTo is the X-Wing key to seal an own message to to with, when the PQ
// mode applies and the key is held.
func (c *Core) PQTo(to [16]byte) ([]byte, bool) {
	if !c.pqRoute(to) {
		return nil, false
	}
	c.pqInit()
	k, ok := c.pq.keys[to]
	return k, ok
}

// PQAsk asks to for its PQ key record when the PQ mode would apply to it
// and the key is not held (at most every pqAskEvery).
func (c *Core) PQAsk(to [16]byte, now time.Time) []Action {
	if !c.pqRoute(to) {
		return nil
	}
	c.pqInit()
	if _, ok := c.pq.keys[to]; ok {
		return nil
	}
	if t, ok := c.pq.asked[to]; ok && now.Sub(t) < pqAskEvery {
		return nil
	}
	if len(c.pq.asked) >= maxPQKeys {
		clear(c.pq.asked)
	}
	c.pq.asked[to] = now
	return c.Control(to, messages.PayloadPQKeyRequest, to[:], now)
}

// SealPQ seals text to to with X-Wing and signs it as the envelope with
// sequence number seq.
func (c *Core) SealPQ(to [16]byte, pub []byte, seq uint64, text []byte, now time.Time) ([]byte, [16]byte, time.Time, error) {
	sealed, err := pq.Seal(pub, text, crypto.SealAAD(c.self(), to))
	if err != nil {
		return nil, [16]byte{}, time.Time{}, fmt.Errorf("router: PQ seal: %w", err)
	}
	return c.SignSealedAs(messages.PayloadSealedPQ, to, seq, sealed, now)
}

// pqLocal handles the PQ key messages for this node.
func (c *Core) pqLocal(env messages.Envelope, now time.Time) []Action {
	if c.PQ == nil {
		return []Action{{Kind: Drop, Reason: DropMalformed}}
	}
	c.pqInit()
	switch env.PayloadType {
	case messages.PayloadPQKeyRequest:
		if t, ok := c.pq.answered[env.Source]; ok && now.Sub(t) < pqAnswerEvery {
			return []Action{{Kind: Drop, Reason: DropDuplicate}}
		}
		if len(c.pq.answered) >= maxPQKeys {
			clear(c.pq.answered)
		}
		c.pq.answered[env.Source] = now
		return c.Control(env.Source, messages.PayloadPQKey, c.pq.record, now)
	case messages.PayloadPQKey:
		rec, err := pq.VerifyRecord(env.Payload, func(a crypto.Address) (ed25519.PublicKey, bool) { return c.keyOf(a) })
		if err != nil {
			return []Action{{Kind: Drop, Reason: DropBadSignature}}
		}
		if _, ok := c.pq.keys[rec.Owner]; !ok && len(c.pq.keys) >= maxPQKeys {
			for a := range c.pq.keys { // one at random: map order
				delete(c.pq.keys, a)
				break
			}
		}
		c.pq.keys[rec.Owner] = rec.Public
		return nil
	}
	return []Action{{Kind: Drop, Reason: DropMalformed}}
}

// pqSeal seals an own text with the PQ hybrid when that applies (the key
// is held); it reports whether it did.
func (r *routerActor) pqSeal(m *messages.SendText, seq uint64, sg *signed, now time.Time) bool {
	pub, ok := r.core.PQTo(m.To)
	if !ok {
		return false
	}
	sg.frame, sg.id, sg.expiry, sg.err = r.core.SealPQ(m.To, pub, seq, m.Text, now)
	return true
}
