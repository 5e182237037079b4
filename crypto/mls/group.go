package mls

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/quicprochat/qpc/crypto"
	"github.com/thomas-vilte/mls-go/ciphersuite"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/group"
	"github.com/thomas-vilte/mls-go/keypackages"
	"github.com/thomas-vilte/mls-go/schedule"
	"github.com/thomas-vilte/mls-go/treesync"
)

// rosterEpochs is how many past epochs' rosters Group keeps to name the
// sender of a late application message; it matches the number of past epochs
// whose keys mls-go keeps (maxCachedEpochs = 5 in v1.6.0).
const rosterEpochs = 5

// maxExport is the longest MLS-Exporter output (HKDF-Expand: 255 * Nh).
const maxExport = 255 * 32

// Group is this node's view of one MLS group. It is not safe for concurrent
// use: one owner (the groups actor) calls it.
type Group struct {
	g       *group.Group
	id      ed25519.PrivateKey
	sig     *ciphersuite.SignaturePrivateKey
	pub     ed25519.PublicKey
	self    crypto.Address
	removed bool
	// pq: the commit that began this epoch injected a PSK; staged is the
	// PSK this node's next commit injects (psk.go).
	pq     bool
	staged *PSK
	// rosters maps recent epochs to the member address of each leaf
	// (zero for a blank leaf), for naming senders of late messages.
	rosters map[uint64][]crypto.Address
}

// Kind is what an MLSMessage carries.
type Kind uint8

// Kinds of message.
const (
	KindApplication Kind = iota + 1 // application PrivateMessage
	KindCommit                      // commit (PrivateMessage from us, or PublicMessage)
	KindWelcome                     // Welcome for joiners
	KindProposal                    // standalone proposal (we never send one)
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindApplication:
		return "application"
	case KindCommit:
		return "commit"
	case KindWelcome:
		return "welcome"
	case KindProposal:
		return "proposal"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Received is what Handle learned from a message.
type Received struct {
	Kind      Kind
	Sender    crypto.Address
	Plaintext []byte // KindApplication only
	Epoch     uint64 // the group's epoch after handling
	Removed   bool   // this node was removed by the commit
	PQ        bool   // the commit injected a PSK (psk.go)
	Added     []crypto.Address
	Gone      []crypto.Address
}

func newGroup(g *group.Group, id ed25519.PrivateKey) *Group {
	pub := id.Public().(ed25519.PublicKey)
	gr := &Group{
		g: g, id: id, sig: ciphersuite.NewEd25519SignaturePrivateKey(id), pub: pub,
		self: crypto.AddressOf(pub), rosters: map[uint64][]crypto.Address{},
	}
	gr.noteRoster()
	return gr
}

// Create makes a one-member group with id groupID whose creator is id.
func Create(id ed25519.PrivateKey, groupID [16]byte) (*Group, error) {
	cwk, err := credentialFor(id)
	if err != nil {
		return nil, err
	}
	kp, priv, err := keypackages.Generate(cwk, Suite, keypackages.InfiniteLifetime())
	if err != nil {
		return nil, fmt.Errorf("crypto/mls: creator key package: %w", err)
	}
	g, err := group.NewGroup(group.NewGroupID(append([]byte(nil), groupID[:]...)), Suite, kp, priv,
		group.WithCredentialValidator(addressValidator{sigKey: cwk.SignatureKeyBytes}))
	if err != nil {
		return nil, fmt.Errorf("crypto/mls: create group: %w", err)
	}
	return newGroup(g, id), nil
}

// Join joins a group from a Welcome (an MLSMessage), using whichever of kps
// it was made for, and returns the index in kps of the KeyPackage used (the
// caller deletes it unless it is a last-resort one). It checks that every
// member's credential is bound to its key (ErrCredential) and that the group
// id has 16 bytes. ErrNotMember: the Welcome is for none of kps. A Welcome
// whose commit injected a PSK needs it in psks (ErrNoPSK).
func Join(id ed25519.PrivateKey, welcome []byte, kps []*OwnKeyPackage, psks ...PSK) (*Group, int, error) {
	if len(welcome) > MaxMessageSize {
		return nil, -1, errorf(ErrTooLarge, "welcome %d bytes, limit %d", len(welcome), MaxMessageSize)
	}
	if _, err := credentialFor(id); err != nil {
		return nil, -1, err
	}
	w, err := parseWelcome(welcome)
	if err != nil {
		return nil, -1, err
	}
	pub := id.Public().(ed25519.PublicKey)
	for i, k := range kps {
		if k == nil {
			continue
		}
		ref := k.Ref()
		found := false
		for _, s := range w.Secrets {
			if bytes.Equal(s.NewMember, ref[:]) {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		if !bytes.Equal(k.kp.LeafNode.SignatureKeyBytes, pub) {
			return nil, -1, fmt.Errorf("crypto/mls: key package %d belongs to another identity", i)
		}
		withPSK, err := preflightWelcome(w, k, ref, psks)
		if err != nil {
			return nil, -1, err
		}
		var ext map[string][]byte
		if withPSK {
			ext = make(map[string][]byte, len(psks))
			for _, p := range psks {
				ext[string(p.ID)] = bytes.Clone(p.Secret)
			}
		}
		priv := &keypackages.KeyPackagePrivateKeys{InitKey: k.initPriv, EncryptionKey: k.encPriv, Ed25519SignatureKey: id}
		g, err := joinFromWelcome(w, k.kp, priv, ext)
		if err != nil {
			return nil, -1, err
		}
		gr := newGroup(g, id)
		gr.pq = withPSK
		if err := gr.checkState(); err != nil {
			return nil, -1, err
		}
		return gr, i, nil
	}
	return nil, -1, errorf(ErrNotMember, "welcome is for none of %d key packages", len(kps))
}

func parseWelcome(b []byte) (w *group.Welcome, err error) {
	if len(b) > MaxMessageSize {
		return nil, errorf(ErrTooLarge, "welcome %d bytes, limit %d", len(b), MaxMessageSize)
	}
	defer func() {
		if r := recover(); r != nil {
			w, err = nil, errorf(ErrMalformed, "welcome decoder panicked: %v", r)
		}
	}()
	m, err := framing.UnmarshalMLSMessage(b)
	if err != nil {
		return nil, errorf(ErrMalformed, "%v", err)
	}
	if m.Welcome == nil {
		return nil, errorf(ErrMalformed, "not a welcome")
	}
	w, err = group.UnmarshalWelcome(m.Welcome)
	if err != nil {
		return nil, errorf(ErrMalformed, "welcome: %v", err)
	}
	if w.CipherSuite != Suite {
		return nil, errorf(ErrMalformed, "welcome cipher suite %d, want %d", w.CipherSuite, Suite)
	}
	return w, nil
}

func joinFromWelcome(w *group.Welcome, kp *keypackages.KeyPackage, priv *keypackages.KeyPackagePrivateKeys, psks map[string][]byte) (g *group.Group, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, errorf(ErrMalformed, "join panicked: %v", r)
		}
	}()
	g, err = group.JoinFromWelcome(w, kp, priv, psks)
	if err != nil {
		var de *group.ErrDecryptionFailed
		var se *group.ErrInvalidSignature
		switch {
		case errors.As(err, &de):
			return nil, errorf(ErrDecrypt, "welcome: %v", err)
		case errors.As(err, &se), strings.Contains(err.Error(), "signature"):
			return nil, errorf(ErrBadSignature, "welcome: %v", err)
		}
		return nil, errorf(ErrMalformed, "welcome: %v", err)
	}
	return g, nil
}

const stateVersion = 1

// Marshal encodes everything Load needs: version(1) flags(1) and the
// library's state (JSON; it carries the secret tree with its nonce-safe
// counters, the leaf and path private keys, the epoch secrets). It holds
// secrets: the caller stores it encrypted, and must store it after every
// call that changed the group (Add, Remove, SelfUpdate, Encrypt, Handle)
// before sending or acknowledging anything, or a restart reuses nonces.
// Keys of past epochs are not kept: after Load, late application messages of
// earlier epochs give ErrWrongEpoch.
func (g *Group) Marshal() ([]byte, error) {
	st, err := g.g.MarshalState()
	if err != nil {
		return nil, fmt.Errorf("crypto/mls: marshal state: %w", err)
	}
	if st, err = prunePSKs(st); err != nil {
		return nil, err
	}
	var flags byte
	if g.removed {
		flags |= 1
	}
	if g.pq {
		flags |= 2
	}
	out := make([]byte, 0, 2+len(st))
	out = append(out, stateVersion, flags)
	out = append(out, st...)
	if len(out) > MaxStateSize {
		return nil, errorf(ErrTooLarge, "state %d bytes, limit %d", len(out), MaxStateSize)
	}
	return out, nil
}

// Load restores a group from Marshal's output. id must be the identity that
// is the group's own leaf.
func Load(id ed25519.PrivateKey, state []byte) (*Group, error) {
	if len(state) > MaxStateSize {
		return nil, errorf(ErrTooLarge, "state %d bytes, limit %d", len(state), MaxStateSize)
	}
	if _, err := credentialFor(id); err != nil {
		return nil, err
	}
	if len(state) < 2 || state[0] != stateVersion || state[1]&^3 != 0 {
		return nil, errorf(ErrMalformed, "state header")
	}
	if err := precheckState(state[2:]); err != nil {
		return nil, err
	}
	g, err := unmarshalState(state[2:])
	if err != nil {
		return nil, err
	}
	gr := newGroup(g, id)
	gr.removed = state[1]&1 != 0
	gr.pq = state[1]&2 != 0
	if err := gr.checkState(); err != nil {
		return nil, err
	}
	return gr, nil
}

func unmarshalState(b []byte) (g *group.Group, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, errorf(ErrMalformed, "state decoder panicked: %v", r)
		}
	}()
	g, err = group.UnmarshalGroupState(b)
	if err != nil {
		return nil, errorf(ErrMalformed, "state: %v", err)
	}
	return g, nil
}

// checkState checks what Join and Load must: suite, group id length, our own
// leaf holds our key, every member's credential is bound to its key.
func (g *Group) checkState() error {
	if g.g.CipherSuite() != Suite {
		return errorf(ErrMalformed, "cipher suite %d, want %d", g.g.CipherSuite(), Suite)
	}
	if len(g.g.ID().AsSlice()) != GroupIDSize {
		return errorf(ErrMalformed, "group id has %d bytes, want %d", len(g.g.ID().AsSlice()), GroupIDSize)
	}
	own := g.g.GetTreeLeaf(g.g.OwnLeafIndex())
	if own == nil || own.State != treesync.NodeStatePresent || own.LeafData == nil ||
		!bytes.Equal(own.LeafData.SigKeyBytes(), g.pub) {
		return errorf(ErrNotMember, "own leaf does not hold this identity's key")
	}
	if g.g.SecretTree() == nil || g.g.EpochSecrets() == nil {
		return errorf(ErrMalformed, "state without secrets")
	}
	_, err := g.roster()
	return err
}

// roster returns the address of each leaf (zero for a blank one), checking
// every present leaf's credential binding.
func (g *Group) roster() ([]crypto.Address, error) {
	var out []crypto.Address
	for i := uint32(0); ; i++ {
		leaf := g.g.GetTreeLeaf(group.LeafNodeIndex(i))
		if leaf == nil {
			break
		}
		if leaf.State != treesync.NodeStatePresent || leaf.LeafData == nil {
			out = append(out, crypto.Address{})
			continue
		}
		a, err := checkCredential(leaf.LeafData.Credential, leaf.LeafData.SigKeyBytes())
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %w", i, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func (g *Group) noteRoster() {
	r, err := g.roster()
	if err != nil {
		return
	}
	e := g.Epoch()
	g.rosters[e] = r
	for k := range g.rosters {
		if k+rosterEpochs < e {
			delete(g.rosters, k)
		}
	}
}

// ID is the 16-byte group id.
func (g *Group) ID() [16]byte {
	var id [16]byte
	copy(id[:], g.g.ID().AsSlice())
	return id
}

// Epoch is the current epoch.
func (g *Group) Epoch() uint64 { return g.g.Epoch().AsUint64() }

// Self is this node's address.
func (g *Group) Self() crypto.Address { return g.self }

// Members lists the members' addresses in leaf order.
func (g *Group) Members() []crypto.Address {
	r, _ := g.roster()
	out := make([]crypto.Address, 0, len(r))
	for _, a := range r {
		if !a.IsZero() {
			out = append(out, a)
		}
	}
	return out
}

func (g *Group) leafOf(a crypto.Address) (group.LeafNodeIndex, bool) {
	r, _ := g.roster()
	for i, m := range r {
		if m == a && !a.IsZero() {
			return group.LeafNodeIndex(i), true
		}
	}
	return 0, false
}

// snapshot returns the library state, to restore when an operation fails
// half-way.
func (g *Group) snapshot() ([]byte, error) {
	st, err := g.g.MarshalState()
	if err != nil {
		return nil, fmt.Errorf("crypto/mls: snapshot: %w", err)
	}
	return st, nil
}

func (g *Group) restore(st []byte) {
	if ng, err := group.UnmarshalGroupState(st); err == nil {
		g.g = ng
	}
}

// Add commits the addition of kps (checked by ParseKeyPackage) and merges it.
// commit (an MLSMessage holding a PrivateMessage) goes to the current
// members, welcome (an MLSMessage holding a Welcome) to the joiners; the
// Welcome carries the ratchet tree, so joiners need nothing else. Only the
// group's creator should call it (see the package doc). mls-go checks the
// joiners' KeyPackage lifetimes against the wall clock here.
func (g *Group) Add(kps ...*KeyPackage) (commit, welcome []byte, err error) {
	if g.removed {
		return nil, nil, errorf(ErrNotMember, "removed from the group")
	}
	if len(kps) == 0 {
		return nil, nil, fmt.Errorf("crypto/mls: add: no key packages")
	}
	snap, err := g.snapshot()
	if err != nil {
		return nil, nil, err
	}
	var added []*keypackages.KeyPackage
	seen := map[crypto.Address]bool{}
	for _, kp := range kps {
		if kp == nil || kp.kp == nil {
			g.restore(snap)
			return nil, nil, fmt.Errorf("crypto/mls: add: key package not from ParseKeyPackage")
		}
		if _, in := g.leafOf(kp.Owner); in || seen[kp.Owner] {
			g.restore(snap)
			return nil, nil, fmt.Errorf("crypto/mls: add: %s is already a member", kp.Owner)
		}
		seen[kp.Owner] = true
		if _, err := g.g.AddMember(kp.kp); err != nil {
			g.restore(snap)
			return nil, nil, fmt.Errorf("crypto/mls: add %s: %w", kp.Owner, err)
		}
		added = append(added, kp.kp)
	}
	commit, welcome, err = g.commit(snap, added)
	return commit, welcome, err
}

// Remove commits the removal of the members addrs and merges it; the commit
// is a PrivateMessage the removed members can still read (Received.Removed).
// ErrNotMember for an address not in the group (or this node's own).
func (g *Group) Remove(addrs ...crypto.Address) (commit []byte, err error) {
	if g.removed {
		return nil, errorf(ErrNotMember, "removed from the group")
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("crypto/mls: remove: no addresses")
	}
	var leaves []group.LeafNodeIndex
	seen := map[crypto.Address]bool{}
	for _, a := range addrs {
		if seen[a] {
			continue
		}
		seen[a] = true
		if a == g.self {
			return nil, errorf(ErrNotMember, "cannot remove self (%s)", a)
		}
		l, ok := g.leafOf(a)
		if !ok {
			return nil, errorf(ErrNotMember, "%s", a)
		}
		leaves = append(leaves, l)
	}
	snap, err := g.snapshot()
	if err != nil {
		return nil, err
	}
	for _, l := range leaves {
		if _, err := g.g.RemoveMember(l); err != nil {
			g.restore(snap)
			return nil, fmt.Errorf("crypto/mls: remove leaf %d: %w", l, err)
		}
	}
	commit, _, err = g.commit(snap, nil)
	return commit, err
}

// SelfUpdate commits an empty commit with an UpdatePath, which replaces this
// member's leaf HPKE key and the path secrets (post-compromise security),
// and merges it. The commit is a PrivateMessage.
func (g *Group) SelfUpdate() (commit []byte, err error) {
	if g.removed {
		return nil, errorf(ErrNotMember, "removed from the group")
	}
	snap, err := g.snapshot()
	if err != nil {
		return nil, err
	}
	commit, _, err = g.commit(snap, nil)
	return commit, err
}

// commit commits the pending proposals as a PrivateMessage (encrypted under
// the current epoch's handshake keys, so a member being removed can still
// read it), merges it, and makes the Welcome for added.
func (g *Group) commit(snap []byte, added []*keypackages.KeyPackage) (commit, welcome []byte, err error) {
	fail := func(format string, err error) ([]byte, []byte, error) {
		g.restore(snap)
		return nil, nil, fmt.Errorf("crypto/mls: "+format+": %w", err)
	}
	withPSK := g.staged != nil
	if err := g.stagePSKProposal(); err != nil {
		return fail("PSK", err)
	}
	sc, err := g.g.CommitWithFormat(g.sig, g.sig.PublicKey(), nil, framing.WireFormatPrivateMessage)
	if err != nil {
		return fail("commit", err)
	}
	pm, err := framing.Encrypt(framing.EncryptParams{
		AuthContent:      sc.AuthenticatedContent(),
		SenderLeafIndex:  uint32(g.g.OwnLeafIndex()),
		CipherSuite:      Suite,
		SenderDataSecret: g.g.EpochSecrets().SenderDataSecret,
		SecretTree:       g.g.SecretTree(),
	})
	if err != nil {
		return fail("encrypt commit", err)
	}
	joiner := sc.JoinerSecret()
	if err := g.g.MergeCommit(sc); err != nil {
		return fail("merge commit", err)
	}
	commit = framing.NewMLSMessagePrivate(pm).Marshal()
	if len(added) > 0 {
		w, err := g.g.CreateWelcomeWithOpts(added, g.sig,
			group.WithJoinerSecret(joiner),
			group.WithPSKIDs(sc.PskIDs()),
			group.WithPSKSecret(sc.RawPskSecret()),
			group.WithStagedCommit(sc),
			group.WithGroupInfoOptions(group.WithRatchetTree(true), group.WithExternalPub(false)))
		if err != nil {
			return fail("welcome", err)
		}
		m := framing.MLSMessage{Welcome: w.Marshal()}
		welcome = m.Marshal()
	}
	g.pq = withPSK
	g.noteRoster()
	return commit, welcome, nil
}

// maxPlaintext keeps an application message under MaxMessageSize.
const maxPlaintext = MaxMessageSize - 1024

// Encrypt makes an application PrivateMessage (signed with the identity key,
// then encrypted), as an MLSMessage.
func (g *Group) Encrypt(plaintext []byte) ([]byte, error) {
	if g.removed {
		return nil, errorf(ErrNotMember, "removed from the group")
	}
	if len(plaintext) > maxPlaintext {
		return nil, errorf(ErrTooLarge, "plaintext %d bytes, limit %d", len(plaintext), maxPlaintext)
	}
	pm, err := g.g.SendMessage(plaintext, g.sig)
	if err != nil {
		return nil, fmt.Errorf("crypto/mls: encrypt: %w", err)
	}
	return framing.NewMLSMessagePrivate(pm).Marshal(), nil
}

// Handle decrypts an application message, or applies a commit from another
// member (a PrivateMessage, as this package sends them). Errors:
// ErrTooLarge, ErrMalformed (also for PublicMessages, proposals, Welcomes),
// ErrWrongGroup, ErrWrongEpoch (commit for another epoch, which includes our
// own commits echoed back; application message of an epoch whose keys are
// gone), ErrReplay (an application generation seen before, or our own
// application message echoed back), ErrDecrypt and ErrBadSignature (tampered), ErrCredential (a commit
// admitting an unbound credential or changing a member's address),
// ErrNotMember (this node was removed earlier, or the sender is not a member),
// ErrNoPSK (a commit that injects a PSK not given by LoadPSK).
// On error the group is unchanged (save that a decrypted generation is used:
// a commit refused after decryption, for ErrNoPSK say, is taken only by the
// state stored before it, through Load).
//
// A commit that removes this node is decrypted and its signature checked,
// but not applied: Received.Removed is set and the Group refuses further use
// except Marshal, Members and Epoch (which keep the last epoch it was in).
func (g *Group) Handle(msg []byte) (Received, error) {
	pm, err := g.parsePrivate(msg)
	if err != nil {
		return Received{}, err
	}
	switch pm.ContentType {
	case framing.ContentTypeApplication:
		return g.handleApplication(pm)
	case framing.ContentTypeCommit:
		return g.handleCommit(pm)
	}
	return Received{}, errorf(ErrMalformed, "private message of content type %d", pm.ContentType)
}

func (g *Group) parsePrivate(msg []byte) (*framing.PrivateMessage, error) {
	m, err := parseMessage(msg)
	if err != nil {
		return nil, err
	}
	if g.removed {
		return nil, errorf(ErrNotMember, "removed from the group")
	}
	pm, ok := m.AsPrivate()
	if !ok {
		if m.Welcome != nil {
			return nil, errorf(ErrMalformed, "a welcome goes to Join")
		}
		return nil, errorf(ErrMalformed, "only PrivateMessages are handled")
	}
	if !bytes.Equal(pm.GroupID, g.g.ID().AsSlice()) {
		return nil, errorf(ErrWrongGroup, "group %x, this is %x", pm.GroupID, g.g.ID().AsSlice())
	}
	return pm, nil
}

func (g *Group) handleApplication(pm *framing.PrivateMessage) (rcv Received, err error) {
	defer func() {
		if r := recover(); r != nil {
			rcv, err = Received{}, errorf(ErrMalformed, "decrypt panicked: %v", r)
		}
	}()
	pt, _, leaf, err := g.g.ReceiveApplicationMessage(pm)
	if err != nil {
		return Received{}, mapReceiveError(err)
	}
	if uint32(leaf) == uint32(g.g.OwnLeafIndex()) {
		return Received{}, errorf(ErrReplay, "our own message, echoed back")
	}
	r := Received{Kind: KindApplication, Plaintext: pt, Epoch: g.Epoch()}
	if ros, ok := g.rosters[pm.Epoch]; ok && int(leaf) < len(ros) {
		r.Sender = ros[leaf]
	}
	if r.Sender.IsZero() {
		return Received{}, errorf(ErrNotMember, "sender leaf %d of epoch %d unknown", leaf, pm.Epoch)
	}
	return r, nil
}

// mapReceiveError maps mls-go's errors from decrypting a PrivateMessage.
func mapReceiveError(err error) error {
	var de *group.ErrDecryptionFailed
	var se *group.ErrInvalidSignature
	var um *group.ErrUnknownMember
	switch {
	case errors.Is(err, group.ErrUnknownEpoch):
		return errorf(ErrWrongEpoch, "%v", err)
	case isReplay(err):
		return errorf(ErrReplay, "%v", err)
	case errors.As(err, &de), errors.Is(err, framing.ErrDecryptionFailed):
		return errorf(ErrDecrypt, "%v", err)
	case errors.As(err, &se), errors.Is(err, framing.ErrVerificationFailed):
		return errorf(ErrBadSignature, "%v", err)
	case errors.As(err, &um), errors.Is(err, group.ErrSenderNotActive):
		return errorf(ErrNotMember, "%v", err)
	}
	return errorf(ErrMalformed, "%v", err)
}

// isReplay: mls-go reports a replayed generation as framing.ErrDecryptionFailed
// wrapping the secret tree's "replay detected" text (formatted with %v, so
// only the text survives). TestReplay pins this.
func isReplay(err error) bool { return strings.Contains(err.Error(), "replay detected") }

func (g *Group) handleCommit(pm *framing.PrivateMessage) (rcv Received, err error) {
	defer func() {
		if r := recover(); r != nil {
			rcv, err = Received{}, errorf(ErrMalformed, "commit panicked: %v", r)
		}
	}()
	if cur := g.Epoch(); pm.Epoch != cur {
		return Received{}, errorf(ErrWrongEpoch, "commit for epoch %d, group is at %d", pm.Epoch, cur)
	}
	before, err := g.roster()
	if err != nil {
		return Received{}, err
	}
	ac, err := framing.Decrypt(pm, framing.DecryptParams{
		CipherSuite:      Suite,
		SenderDataSecret: g.g.EpochSecrets().SenderDataSecret,
		SecretTree:       g.g.SecretTree(),
		GroupContext:     g.g.GroupContext().Marshal(),
	})
	if err != nil {
		return Received{}, mapReceiveError(err)
	}
	body, ok := ac.Content.Body.(framing.CommitBody)
	if !ok {
		return Received{}, errorf(ErrMalformed, "commit without commit body")
	}
	senderLeaf := ac.Content.Sender.LeafIndex
	if int(senderLeaf) >= len(before) || before[senderLeaf].IsZero() {
		return Received{}, errorf(ErrNotMember, "commit from blank leaf %d", senderLeaf)
	}
	if senderLeaf == uint32(g.g.OwnLeafIndex()) {
		return Received{}, errorf(ErrMalformed, "commit from our own leaf")
	}
	sender := before[senderLeaf]
	pub := ciphersuite.NewMLSSignaturePublicKey(g.g.MemberSigningKey(group.LeafNodeIndex(senderLeaf)), Suite.SignatureScheme())
	if err := ciphersuite.VerifyWithLabel(pub, "FramedContentTBS", ac.MarshalTBS(), ac.Auth.Signature); err != nil {
		return Received{}, errorf(ErrBadSignature, "commit: %v", err)
	}
	c, err := group.UnmarshalCommit(body.Data)
	if err != nil {
		return Received{}, errorf(ErrMalformed, "commit: %v", err)
	}
	removedLeaves := map[uint32]bool{}
	var added []crypto.Address
	for _, p := range c.Proposals {
		if p.Proposal == nil {
			if len(p.ProposalRef) > 0 {
				return Received{}, errorf(ErrMalformed, "commit includes a proposal by reference")
			}
			continue
		}
		switch {
		case p.Proposal.Type == group.ProposalTypeRemove && p.Proposal.Remove != nil:
			removedLeaves[uint32(p.Proposal.Remove.Removed)] = true
		case p.Proposal.Type == group.ProposalTypeAdd && p.Proposal.Add != nil &&
			p.Proposal.Add.KeyPackage != nil && p.Proposal.Add.KeyPackage.LeafNode != nil:
			ln := p.Proposal.Add.KeyPackage.LeafNode
			a, err := checkCredential(ln.Credential, ln.SignatureKeyBytes)
			if err != nil {
				return Received{}, fmt.Errorf("commit adds: %w", err)
			}
			added = append(added, a)
		}
	}
	var gone []crypto.Address
	for l := range removedLeaves {
		if int(l) < len(before) && !before[l].IsZero() {
			gone = append(gone, before[l])
		}
	}
	if removedLeaves[uint32(g.g.OwnLeafIndex())] {
		g.removed = true
		return Received{Kind: KindCommit, Sender: sender, Epoch: pm.Epoch + 1, Removed: true,
			Added: added, Gone: sortedByLeaf(gone, before)}, nil
	}
	// A removed member does not need the PSK: it takes no further epoch.
	withPSK, err := g.commitPSKs(c)
	if err != nil {
		return Received{}, err
	}

	snap, err := g.snapshot()
	if err != nil {
		return Received{}, err
	}
	if err := g.g.ProcessReceivedCommit(ac, treesync.LeafIndex(senderLeaf), g.g.MyLeafEncryptionKey()); err != nil {
		g.restore(snap)
		var em *group.ErrEpochMismatch
		var gm *group.ErrGroupIDMismatch
		switch {
		case errors.As(err, &em):
			return Received{}, errorf(ErrWrongEpoch, "%v", err)
		case errors.As(err, &gm):
			return Received{}, errorf(ErrWrongGroup, "%v", err)
		}
		return Received{}, errorf(ErrMalformed, "commit: %v", err)
	}
	after, err := g.roster()
	if err != nil {
		g.restore(snap)
		return Received{}, err
	}
	// A leaf that stays must keep its address: an UpdatePath may replace a
	// member's LeafNode but not move it to another identity.
	for i := range min(len(before), len(after)) {
		if removedLeaves[uint32(i)] || before[i].IsZero() || after[i].IsZero() {
			continue
		}
		if before[i] != after[i] {
			g.restore(snap)
			return Received{}, errorf(ErrCredential, "leaf %d changed from %s to %s", i, before[i], after[i])
		}
	}
	g.pq = withPSK
	g.noteRoster()
	return Received{Kind: KindCommit, Sender: sender, Epoch: g.Epoch(), PQ: withPSK, Added: added, Gone: sortedByLeaf(gone, before)}, nil
}

// sortedByLeaf orders addrs by their leaf in roster.
func sortedByLeaf(addrs []crypto.Address, roster []crypto.Address) []crypto.Address {
	if len(addrs) == 0 {
		return nil
	}
	in := map[crypto.Address]bool{}
	for _, a := range addrs {
		in[a] = true
	}
	out := make([]crypto.Address, 0, len(addrs))
	for _, a := range roster {
		if in[a] {
			out = append(out, a)
		}
	}
	return out
}

// Export is the MLS-Exporter (RFC 9420 §8.5) of the current epoch:
// n bytes (1..8160) for label and context.
func (g *Group) Export(label string, context []byte, n int) ([]byte, error) {
	if g.removed {
		return nil, errorf(ErrNotMember, "removed from the group")
	}
	return export(g.g.EpochSecrets().ExporterSecret.AsSlice(), label, context, n)
}

func export(exporterSecret []byte, label string, context []byte, n int) ([]byte, error) {
	if n <= 0 || n > maxExport {
		return nil, fmt.Errorf("crypto/mls: export length %d, want 1..%d", n, maxExport)
	}
	out, err := schedule.Exporter(ciphersuite.NewSecret(append([]byte(nil), exporterSecret...)), Suite, schedule.ExporterLabel(label), context, n)
	if err != nil {
		return nil, fmt.Errorf("crypto/mls: export: %w", err)
	}
	return out, nil
}

// parseMessage decodes an MLSMessage within MaxMessageSize.
func parseMessage(msg []byte) (m *framing.MLSMessage, err error) {
	if len(msg) > MaxMessageSize {
		return nil, errorf(ErrTooLarge, "message %d bytes, limit %d", len(msg), MaxMessageSize)
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, errorf(ErrMalformed, "message decoder panicked: %v", r)
		}
	}()
	m, err = framing.UnmarshalMLSMessage(msg)
	if err != nil {
		return nil, errorf(ErrMalformed, "%v", err)
	}
	return m, nil
}

// Peek reads, without keys, what the caller needs to order messages before
// Handle: the group id, the epoch and the kind. For a Welcome it returns
// KindWelcome and a zero id and epoch. A group id that is not 16 bytes long
// is ErrWrongGroup (no qpc group has it).
func Peek(msg []byte) (groupID [16]byte, epoch uint64, kind Kind, err error) {
	gid, epoch, kind, err := peek(msg)
	if err != nil {
		return groupID, 0, 0, err
	}
	if kind == KindWelcome {
		return groupID, 0, kind, nil
	}
	if len(gid) != GroupIDSize {
		return groupID, 0, 0, errorf(ErrWrongGroup, "group id has %d bytes, want %d", len(gid), GroupIDSize)
	}
	copy(groupID[:], gid)
	return groupID, epoch, kind, nil
}

// peek is Peek for any group id length.
func peek(msg []byte) (gid []byte, epoch uint64, kind Kind, err error) {
	m, err := parseMessage(msg)
	if err != nil {
		return nil, 0, 0, err
	}
	var ct framing.ContentType
	switch {
	case m.PrivateMessage != nil:
		gid, epoch, ct = m.PrivateMessage.GroupID, m.PrivateMessage.Epoch, m.PrivateMessage.ContentType
	case m.PublicMessage != nil:
		gid, epoch, ct = m.PublicMessage.Content.GroupID, m.PublicMessage.Content.Epoch, m.PublicMessage.Content.ContentType()
	case m.Welcome != nil:
		return nil, 0, KindWelcome, nil
	default:
		return nil, 0, 0, errorf(ErrMalformed, "not a group message")
	}
	switch ct {
	case framing.ContentTypeApplication:
		kind = KindApplication
	case framing.ContentTypeCommit:
		kind = KindCommit
	case framing.ContentTypeProposal:
		kind = KindProposal
	default:
		return nil, 0, 0, errorf(ErrMalformed, "content type %d", ct)
	}
	return gid, epoch, kind, nil
}
