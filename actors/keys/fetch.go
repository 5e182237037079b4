package keys

import (
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/mls"
	"github.com/quicprochat/qpc/messages"
)

// KeyPackages over the mesh: this node answers requests for its own,
// relays answer from their cache those they saw pass, and a node that
// adds a member fetches the member's (messages/keypackage.go).

// HandleKeyPackage handles a KeyPackage message the router handed over.
func (e *Engine) HandleKeyPackage(in *messages.KeyPackageIn, now time.Time) Effects {
	var fx Effects
	self := e.cfg.Identity.Address()
	src := in.Env.Source
	switch in.Env.PayloadType {
	case messages.PayloadKeyPackageRequest:
		ref, err := messages.DecodeKeyPackageRef(in.Env.Payload)
		if err != nil {
			e.m.KeyPackages.WithLabelValues("requests_malformed").Inc()
			return fx
		}
		if in.Transit {
			if ent, ok := e.cached(ref, now); ok {
				if ok, _ := e.limiter.Allow(src, now); ok {
					p, err := messages.EncodeKeyPackagePayload(ref.Owner, ent.Bytes)
					if err == nil {
						fx.Controls = append(fx.Controls, messages.SendControl{To: src, Payload: messages.PayloadKeyPackage, Data: p})
						e.m.KeyPackages.WithLabelValues("answered_from_cache").Inc()
						return fx
					}
				}
			}
			if in.Frame != nil {
				fx.Forwards = append(fx.Forwards, messages.ForwardFrame{Dest: in.Env.Destination, ID: in.ID, From: in.From, Frame: in.Frame, Expiry: in.Env.ExpiresAt()})
				e.m.KeyPackages.WithLabelValues("forwarded").Inc()
			}
			return fx
		}
		e.m.KeyPackages.WithLabelValues("requests_received").Inc()
		if crypto.Address(ref.Owner) != self {
			return fx
		}
		if ok, _ := e.limiter.Allow(src, now); !ok {
			e.m.KeyPackages.WithLabelValues("requests_limited").Inc()
			return fx
		}
		kp := e.answer(ref.Hash)
		if kp == nil {
			fx.Controls = append(fx.Controls, messages.SendControl{To: src, Payload: messages.PayloadKeyPackageUnavailable, Data: ref.Encode()})
			e.m.KeyPackages.WithLabelValues("unavailable_sent").Inc()
			return fx
		}
		p, err := messages.EncodeKeyPackagePayload(self, kp.Bytes())
		if err != nil {
			return fx
		}
		fx.Controls = append(fx.Controls, messages.SendControl{To: src, Payload: messages.PayloadKeyPackage, Data: p})
		e.m.KeyPackages.WithLabelValues("requests_answered").Inc()
	case messages.PayloadKeyPackage:
		owner, raw, err := messages.DecodeKeyPackagePayload(in.Env.Payload)
		if err != nil {
			e.m.KeyPackages.WithLabelValues("responses_refused").Inc()
			return fx
		}
		kp, ok := e.check(owner, raw, now)
		if !ok {
			return fx
		}
		if err := e.cache.Put(Entry{Owner: owner, Hash16: kp.Hash16, Bytes: kp.Bytes, NotAfter: kp.NotAfter}, now); err != nil {
			e.log.Debug("KeyPackage not cached", "err", err)
		}
		e.m.CacheEntries.Set(float64(e.cache.Len()))
		if !in.Transit {
			e.m.KeyPackages.WithLabelValues("responses_received").Inc()
			fx.Fetched = append(fx.Fetched, kp)
		}
	case messages.PayloadKeyPackageUnavailable:
		if in.Transit {
			return fx
		}
		ref, err := messages.DecodeKeyPackageRef(in.Env.Payload)
		if err != nil || ref.Owner != src {
			// Only the owner can say it has none.
			return fx
		}
		e.m.KeyPackages.WithLabelValues("unavailable_received").Inc()
		fx.Unavailable = append(fx.Unavailable, ref.Owner)
	}
	return fx
}

// answer picks which of this node's KeyPackages to hand out for a
// request naming hash (zero: any): the one named if it is still here,
// else the current one, else the last-resort one.
func (e *Engine) answer(hash [16]byte) *mls.OwnKeyPackage {
	if e.lastResort != nil && hash == e.lastResort.Hash16() {
		return e.lastResort
	}
	if e.current != nil {
		return e.current
	}
	return e.lastResort
}

// check parses a KeyPackage said to be owner's: the owner's announce was
// heard, and the KeyPackage's credential is the owner's (bound to the
// key of its address) and within its lifetime.
func (e *Engine) check(owner [16]byte, raw []byte, now time.Time) (*mls.KeyPackage, bool) {
	if e.cfg.Directory != nil {
		if _, known := e.cfg.Directory.Lookup(owner); !known {
			e.m.KeyPackages.WithLabelValues("responses_refused").Inc()
			return nil, false
		}
	}
	kp, err := mls.ParseKeyPackage(raw, now)
	if err != nil || kp.Owner != crypto.Address(owner) {
		e.m.KeyPackages.WithLabelValues("responses_refused").Inc()
		return nil, false
	}
	if e.cfg.Directory != nil {
		// Whoever answered, it is the one the owner announces or nothing.
		if h, ok := e.cfg.Directory.KeyPackageHash(owner); ok && h != kp.Hash16 {
			e.m.KeyPackages.WithLabelValues("responses_refused").Inc()
			return nil, false
		}
	}
	return kp, true
}

// cached finds a cached KeyPackage for a request: the one it names, or
// for an unnamed one the newest.
func (e *Engine) cached(ref messages.KeyPackageRef, now time.Time) (Entry, bool) {
	if ref.Hash != ([16]byte{}) {
		return e.cache.Get(ref.Owner, ref.Hash, now)
	}
	return e.cache.Latest(ref.Owner, now)
}

// Fetch returns owner's KeyPackage when this node holds the one owner
// announces (or, when owner announced none that this node heard, any it
// holds); otherwise the request to send for it.
func (e *Engine) Fetch(owner crypto.Address, now time.Time) (*mls.KeyPackage, *messages.SendControl) {
	ref := messages.KeyPackageRef{Owner: owner}
	if e.cfg.Directory != nil {
		if h, ok := e.cfg.Directory.KeyPackageHash(owner); ok {
			ref.Hash = h
		}
	}
	if ent, ok := e.cached(ref, now); ok {
		if kp, ok := e.check(owner, ent.Bytes, now); ok {
			return kp, nil
		}
	}
	return nil, &messages.SendControl{To: owner, Payload: messages.PayloadKeyPackageRequest, Data: ref.Encode()}
}

// Prune drops expired cache entries and idle requesters.
func (e *Engine) Prune(now time.Time) {
	e.cache.Prune(now)
	e.limiter.Prune(now)
	e.m.CacheEntries.Set(float64(e.cache.Len()))
}
