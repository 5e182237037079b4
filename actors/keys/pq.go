package keys

import (
	"fmt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/mls"
	"github.com/quicprochat/qpc/crypto/pq"
)

// The post-quantum option of groups (docs/crypto.md): with groups.pq on,
// a commit of a group this node created injects a fresh PSK (RFC 9420
// §8.4) when every other member, joiners included, can be given it over a
// PQ-capable route: the router knows the member's X-Wing key (from its
// signed PQ key record) and the route's first link is unconstrained. The
// PSK travels in each member's copy of the commit (or Welcome), sealed to
// that member with X-Wing; the next epoch's secrets then depend on both
// X25519 (the MLS suite) and ML-KEM-768. One member out of PQ reach (a
// LoRa link, PQ off) and the commit is classical, as every member must
// derive the same epoch.

// PQKeys are members' X-Wing public keys, for the members whose route the
// PQ mode may take (the router's answer to a ClassesRequest).
type PQKeys map[crypto.Address][]byte

// SealedPSKSize is a PSK sealed to one member: its id and secret and the
// X-Wing sealing's overhead (1,136 bytes).
const SealedPSKSize = pskPlainSize + pq.Overhead

// pskPlainSize: the id (19 bytes) and the secret (32).
const pskPlainSize = mls.PSKIDSize + mls.PSKSize

// pskAAD binds a sealed PSK to its group and its member.
func pskAAD(group [16]byte, member crypto.Address) []byte {
	aad := make([]byte, 0, 16+16+16)
	aad = append(aad, "qpc/group-psk v1"...)
	aad = append(aad, group[:]...)
	return append(aad, member[:]...)
}

// stagePQ stages a fresh PSK on r's next commit when the PQ option is on
// and every member but this node is in keys, and returns it sealed to
// each of them (nil: the commit is classical).
func (e *Engine) stagePQ(r *groupRec, members []crypto.Address, keys PQKeys) (map[crypto.Address][]byte, error) {
	if e.cfg.PQ == nil {
		return nil, nil
	}
	self := e.cfg.Identity.Address()
	for _, m := range members {
		if k, ok := keys[m]; m != self && (!ok || len(k) != pq.PublicKeySize) {
			return nil, nil // classical: GroupInfo.PQ says so
		}
	}
	psk, err := mls.NewPSK()
	if err != nil {
		return nil, err
	}
	plain := append(append([]byte(nil), psk.ID...), psk.Secret...)
	out := make(map[crypto.Address][]byte, len(members))
	id := r.g.ID()
	for _, m := range members {
		if m == self {
			continue
		}
		sealed, err := pq.Seal(keys[m], plain, pskAAD(id, m))
		if err != nil {
			return nil, fmt.Errorf("keys: seal the PSK to %s: %w", m, err)
		}
		out[m] = sealed
	}
	if err := r.g.StagePSK(psk); err != nil {
		return nil, err
	}
	return out, nil
}

// openPSK opens the PSK sealed to this node in a commit or Welcome of
// group.
func (e *Engine) openPSK(group [16]byte, sealed []byte) (mls.PSK, string, error) {
	if e.cfg.PQ == nil {
		return mls.PSK{}, "no_pq_key", fmt.Errorf("a PQ PSK, and groups.pq is off")
	}
	plain, err := e.cfg.PQ.Open(sealed, pskAAD(group, e.cfg.Identity.Address()))
	if err != nil {
		return mls.PSK{}, "tampered", err
	}
	n := len(plain) - mls.PSKSize
	if n < 0 {
		return mls.PSK{}, "malformed", fmt.Errorf("sealed PSK of %d bytes", len(plain))
	}
	p := mls.PSK{ID: plain[:n], Secret: plain[n:]}
	if err := p.Check(); err != nil {
		return mls.PSK{}, "malformed", err
	}
	return p, "", nil
}
