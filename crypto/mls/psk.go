package mls

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/thomas-vilte/mls-go/group"
	"github.com/thomas-vilte/mls-go/schedule"
)

// External PSKs (RFC 9420 §8.4): a commit may inject a pre-shared key into
// the key schedule, so the next epoch's secrets depend on it and whoever
// does not hold it cannot follow the group. qpc uses one for the
// post-quantum option of groups: the committer draws a fresh PSK for the
// commit and carries it to each member (and joiner) sealed with X-Wing
// (crypto/pq), so an attacker who records the traffic and later breaks
// X25519 still lacks the epoch's secrets (docs/crypto.md).
//
// A PSK serves one commit: it is staged before the commit (StagePSK), given
// to receivers before they handle it (LoadPSK, or Join's psks), and dropped
// from the stored state afterwards (Marshal).

// PSKSize is the size of a PSK's secret (KDF.Nh of the suite).
const PSKSize = 32

// pskIDPrefix starts the id of every PSK this package makes; ids are ASCII
// (mls-go keeps its PSK cache as a JSON object whose keys must be text).
const pskIDPrefix = "qpq"

// PSKIDSize is the length of a PSK id: "qpq" and 16 hex digits.
const PSKIDSize = len(pskIDPrefix) + 16

// PSK is an external pre-shared key for one commit.
type PSK struct {
	ID     []byte // PSKIDSize ASCII bytes, made by NewPSK
	Secret []byte // PSKSize bytes
}

// NewPSK draws a fresh PSK.
func NewPSK() (PSK, error) {
	var r [8]byte
	p := PSK{Secret: make([]byte, PSKSize)}
	if _, err := rand.Read(r[:]); err != nil {
		return PSK{}, err
	}
	if _, err := rand.Read(p.Secret); err != nil {
		return PSK{}, err
	}
	p.ID = append([]byte(pskIDPrefix), hex.EncodeToString(r[:])...)
	return p, nil
}

// Check reports whether p has the shape NewPSK gives (ErrMalformed).
func (p PSK) Check() error {
	if len(p.ID) != PSKIDSize || !bytes.HasPrefix(p.ID, []byte(pskIDPrefix)) {
		return errorf(ErrMalformed, "PSK id of %d bytes", len(p.ID))
	}
	if _, err := hex.DecodeString(string(p.ID[len(pskIDPrefix):])); err != nil {
		return errorf(ErrMalformed, "PSK id not hex")
	}
	if len(p.Secret) != PSKSize {
		return errorf(ErrMalformed, "PSK secret of %d bytes, want %d", len(p.Secret), PSKSize)
	}
	return nil
}

// StagePSK makes the next commit of this node (Add, Remove or SelfUpdate)
// inject p; the Welcome of an Add then needs it too. A failed commit
// forgets it.
func (g *Group) StagePSK(p PSK) error {
	if err := p.Check(); err != nil {
		return err
	}
	g.staged = &PSK{ID: bytes.Clone(p.ID), Secret: bytes.Clone(p.Secret)}
	return nil
}

// LoadPSK gives the group a PSK that a commit it receives may inject.
func (g *Group) LoadPSK(p PSK) error {
	if err := p.Check(); err != nil {
		return err
	}
	g.g.LoadPsk(bytes.Clone(p.ID), bytes.Clone(p.Secret))
	return nil
}

// PQ reports whether the commit that began the current epoch injected a
// PSK (this node's own commit, or one it received or joined by).
func (g *Group) PQ() bool { return g.pq }

// stagePSKProposal adds the staged PSK's proposal to the pending ones.
func (g *Group) stagePSKProposal() error {
	p := g.staged
	g.staged = nil
	if p == nil {
		return nil
	}
	nonce := make([]byte, Suite.HashLength())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	g.g.LoadPsk(p.ID, p.Secret)
	g.g.Proposals().AddProposal(&group.Proposal{
		Type: group.ProposalTypePreSharedKey,
		PreSharedKey: &group.PreSharedKeyProposal{
			PskType: uint8(schedule.PskTypeExternal),
			PskID:   group.PskID{PskType: uint8(schedule.PskTypeExternal), ID: p.ID, Nonce: nonce},
		},
	}, g.g.OwnLeafIndex())
	return nil
}

// commitPSKs checks the PSK proposals of a received commit: at most one,
// external, with an id of ours, and held (ErrNoPSK otherwise). It reports
// whether there is one.
func (g *Group) commitPSKs(c *group.Commit) (bool, error) {
	n := 0
	for _, p := range c.Proposals {
		if p.Proposal == nil || p.Proposal.Type != group.ProposalTypePreSharedKey {
			continue
		}
		n++
		psk := p.Proposal.PreSharedKey
		if psk == nil || n > 1 || psk.PskID.PskType != uint8(schedule.PskTypeExternal) {
			return false, errorf(ErrMalformed, "commit PSKs: want at most one external PSK")
		}
		if (PSK{ID: psk.PskID.ID, Secret: make([]byte, PSKSize)}).Check() != nil {
			return false, errorf(ErrMalformed, "commit PSK id")
		}
		if _, ok := g.g.CachedPsks()[string(psk.PskID.ID)]; !ok {
			return false, errorf(ErrNoPSK, "commit needs PSK %s", psk.PskID.ID)
		}
	}
	return n == 1, nil
}

// welcomePSKSecret is the psk_secret of a Welcome's GroupSecrets: zero
// without PSKs, else that of its one external PSK, which psks must hold.
func welcomePSKSecret(gs *group.Secrets, psks []PSK) ([]byte, error) {
	switch {
	case len(gs.Psks) == 0:
		return nil, nil
	case len(gs.Psks) > 1 || gs.Psks[0].PskType != uint8(schedule.PskTypeExternal):
		return nil, errorf(ErrMalformed, "welcome PSKs: want at most one external PSK")
	}
	ref := gs.Psks[0]
	for _, p := range psks {
		if bytes.Equal(p.ID, ref.ID) {
			in, err := schedule.ComputePskInput([]schedule.Psk{{
				Psk: p.Secret, PskID: ref.ID, PskNonce: ref.Nonce, PskType: schedule.PskTypeExternal,
			}}, Suite)
			if err != nil {
				return nil, errorf(ErrMalformed, "welcome PSK: %v", err)
			}
			return in, nil
		}
	}
	return nil, errorf(ErrNoPSK, "welcome needs PSK %q", ref.ID)
}

// prunePSKs drops this package's PSKs from a marshalled mls-go state: each
// served one commit, and a secret kept is a secret that can leak.
func prunePSKs(st []byte) ([]byte, error) {
	if !bytes.Contains(st, []byte(`"`+pskIDPrefix)) {
		return st, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(st, &top); err != nil {
		return nil, fmt.Errorf("crypto/mls: prune PSKs: %w", err)
	}
	var cached map[string]json.RawMessage
	if raw, ok := top["cached_psks"]; ok && len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &cached); err != nil {
			return nil, fmt.Errorf("crypto/mls: prune PSKs: %w", err)
		}
	}
	n := len(cached)
	for k := range cached {
		if len(k) == PSKIDSize && k[:len(pskIDPrefix)] == pskIDPrefix {
			delete(cached, k)
		}
	}
	if len(cached) == n {
		return st, nil
	}
	raw, err := json.Marshal(cached)
	if err != nil {
		return nil, err
	}
	top["cached_psks"] = raw
	return json.Marshal(top)
}
