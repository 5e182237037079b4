package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/actors/verify"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/mls"
	"github.com/quicprochat/qpc/crypto/mlslite"
	"github.com/quicprochat/qpc/crypto/pq"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// Engine is the keys actor's logic, plain code: this node's KeyPackages,
// the groups it is in, the KeyPackages it holds for others, and the group
// inbox. Each call returns the Effects the actor carries out. Not safe
// for concurrent use (the actor owns it).
//
// What is on disk, encrypted at rest in the Vault: every group's state
// with its name and creator (BucketGroups), and this node's KeyPackages
// with their private keys (BucketKeyPackages). A group's state is written
// before any message made with it leaves (persist, then send), so a
// restart never reuses an MLS generation or forgets a commit it sent.
type Engine struct {
	cfg     EngineConfig
	vault   *Vault
	cache   *KeyPackageCache
	limiter *RequestLimiter
	m       *metrics.Groups
	log     *slog.Logger

	current    *mls.OwnKeyPackage // the one announced (used once, then rotated)
	lastResort *mls.OwnKeyPackage // answered when the current one is gone; never deleted by a join
	groups     map[[16]byte]*groupRec
	pending    int // group inbox entries that wait for an earlier message
}

// EngineConfig wires an Engine.
type EngineConfig struct {
	Identity *crypto.Identity
	DB       *persist.DB
	Inbox    *inbox.Store
	// Directory holds the announced keys and KeyPackage hashes (the
	// router publishes it): a KeyPackage is taken only for a node whose
	// announce was heard (its credential is bound to that node's key).
	Directory *verify.Directory
	// KeyPackageLifetime is how long a KeyPackage of ours is valid
	// (default 28 days); it is rotated when less than a quarter is left.
	KeyPackageLifetime time.Duration
	// PendingMax bounds the group messages kept waiting for an earlier
	// commit, in all (default 1024); PendingMaxAge is how long one waits
	// (default 24 h, an envelope's longest life).
	PendingMax    int
	PendingMaxAge time.Duration
	Cache         CacheConfig
	Limiter       LimiterConfig
	// PQ is this node's X-Wing key when groups.pq is on (nil: off): the
	// commits of groups it creates inject a post-quantum PSK when every
	// member can be given it (pq.go), and PSKs sealed to it open with it.
	PQ      *pq.PrivateKey
	Metrics *metrics.Groups
	Log     *slog.Logger
}

// groupRec is one group as the vault keeps it.
type groupRec struct {
	g       *mls.Group
	Name    string `json:"name"`
	Creator []byte `json:"creator"`
	State   []byte `json:"state"`
	// LiteHigh is this node's MLS-Lite counter's high water; LiteWindows
	// the replay windows of the group's MLS-Lite senders.
	LiteHigh    uint32 `json:"lite_high,omitempty"`
	LiteWindows []byte `json:"lite_windows,omitempty"`

	lite *mlslite.Epoch
	win  *mlslite.Windows
	ctr  *mlslite.Counter
}

// Effects is what the actor does after an Engine call.
type Effects struct {
	// Sends are group messages for members, each a 1:1 message of
	// payload type group: retransmitted until that member's receipt.
	Sends []messages.SendText
	// Controls are KeyPackage requests and answers (signed, no seq).
	Controls []messages.SendControl
	// Forwards are KeyPackage requests no cache here could answer.
	Forwards []messages.ForwardFrame
	// Announce is a new KeyPackage hash to announce.
	Announce *[16]byte
	// Inbox: entries were added to the inbox (wake its readers).
	Inbox bool
	// Fetched are KeyPackages of others that arrived (for waiters).
	Fetched []*mls.KeyPackage
	// Unavailable are owners that said they have no KeyPackage to give.
	Unavailable [][16]byte
	// Receipts acknowledge MLS-Lite frames delivered (or seen again).
	Receipts []messages.SendReceipts
}

// Errors of the engine's calls.
var (
	ErrUnknownGroup = errors.New("keys: not a member of that group")
	ErrMember       = errors.New("keys: membership does not allow that")
	ErrNotCreator   = errors.New("keys: only the group's creator commits membership changes")
)

// Mode names of the metrics: MLS, and MLS whose commit injected a
// post-quantum PSK.
const (
	modeMLS = "mls"
	modePQ  = "mls-pq"
)

// NewEngine opens the vault and loads this node's KeyPackages (making
// them on first start) and groups. A record that does not open is
// logged and left where it is (`qpc db check` reports the file); the
// others load.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.KeyPackageLifetime <= 0 {
		cfg.KeyPackageLifetime = 28 * 24 * time.Hour
	}
	if cfg.PendingMax <= 0 {
		cfg.PendingMax = 1024
	}
	if cfg.PendingMaxAge <= 0 {
		cfg.PendingMaxAge = 24 * time.Hour
	}
	if cfg.Cache == (CacheConfig{}) {
		cfg.Cache = DefaultCacheConfig
	}
	if cfg.Limiter == (LimiterConfig{}) {
		cfg.Limiter = DefaultLimiterConfig
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	v, err := OpenVault(cfg.DB, cfg.Identity.PrivateKey().Seed())
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, vault: v, cache: NewCache(cfg.Cache), limiter: NewRequestLimiter(cfg.Limiter), m: cfg.Metrics, log: cfg.Log, groups: map[[16]byte]*groupRec{}}
	damaged, err := v.ForEach(BucketKeyPackages, func(_, plain []byte) error {
		kp, err := mls.UnmarshalOwnKeyPackage(plain)
		if err != nil {
			cfg.Log.Warn("KeyPackage record not loaded", "err", err)
			return nil
		}
		if kp.LastResort() {
			e.lastResort = kp
		} else if e.current == nil || kp.NotAfter().After(e.current.NotAfter()) {
			e.current = kp
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keys: KeyPackages: %w", err)
	}
	for _, d := range damaged {
		cfg.Log.Warn("KeyPackage record does not open; left in place", "err", d.Err)
	}
	damaged, err = v.ForEach(BucketGroups, func(k, plain []byte) error {
		var rec groupRec
		if err := json.Unmarshal(plain, &rec); err != nil {
			cfg.Log.Warn("group record not loaded", "group", hex.EncodeToString(k), "err", err)
			return nil
		}
		g, err := mls.Load(cfg.Identity.PrivateKey(), rec.State)
		if err != nil {
			cfg.Log.Warn("group state not loaded", "group", hex.EncodeToString(k), "err", err)
			return nil
		}
		rec.g = g
		e.groups[g.ID()] = &rec
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keys: groups: %w", err)
	}
	for _, d := range damaged {
		cfg.Log.Warn("group record does not open; left in place", "group", hex.EncodeToString(d.Key), "err", d.Err)
	}
	e.m.Groups.Set(float64(len(e.groups)))
	return e, nil
}

// KeyPackageHash is the hash to announce: the current KeyPackage's.
func (e *Engine) KeyPackageHash() [16]byte {
	if e.current != nil {
		return e.current.Hash16()
	}
	return [16]byte{}
}

// EnsureKeyPackages makes the current and the last-resort KeyPackage
// when they are missing or near the end of their lifetime, and returns
// the hash to announce when it changed.
func (e *Engine) EnsureKeyPackages(now time.Time) (*[16]byte, error) {
	changed := false
	if e.lastResort == nil || e.lastResort.NotAfter().Sub(now) < e.cfg.KeyPackageLifetime/4 {
		kp, err := e.newKeyPackage(now, true)
		if err != nil {
			return nil, err
		}
		if old := e.lastResort; old != nil {
			e.forgetKeyPackage(old)
		}
		e.lastResort = kp
	}
	if e.current == nil || e.current.NotAfter().Sub(now) < e.cfg.KeyPackageLifetime/4 {
		kp, err := e.newKeyPackage(now, false)
		if err != nil {
			return nil, err
		}
		if old := e.current; old != nil {
			e.forgetKeyPackage(old)
		}
		e.current = kp
		changed = true
		e.m.KeyPackages.WithLabelValues("rotated").Inc()
	}
	if !changed {
		return nil, nil
	}
	h := e.current.Hash16()
	return &h, nil
}

func (e *Engine) newKeyPackage(now time.Time, lastResort bool) (*mls.OwnKeyPackage, error) {
	kp, err := mls.NewKeyPackage(e.cfg.Identity.PrivateKey(), now.Add(e.cfg.KeyPackageLifetime), lastResort)
	if err != nil {
		return nil, fmt.Errorf("keys: new KeyPackage: %w", err)
	}
	b, err := kp.MarshalBinary()
	if err != nil {
		return nil, err
	}
	h := kp.Hash16()
	if err := e.vault.Put(BucketKeyPackages, h[:], b); err != nil {
		return nil, fmt.Errorf("keys: store KeyPackage: %w", err)
	}
	return kp, nil
}

func (e *Engine) forgetKeyPackage(kp *mls.OwnKeyPackage) {
	h := kp.Hash16()
	if err := e.vault.Delete(BucketKeyPackages, h[:]); err != nil {
		e.log.Warn("used KeyPackage not deleted", "err", err)
	}
}

// GroupInfo describes one group.
type GroupInfo struct {
	ID      [16]byte
	Name    string
	Epoch   uint64
	Creator crypto.Address
	Self    crypto.Address
	Members []crypto.Address
	// PQ: the commit that began the epoch injected a post-quantum PSK.
	PQ bool
}

func (e *Engine) info(r *groupRec) GroupInfo {
	gi := GroupInfo{ID: r.g.ID(), Name: r.Name, Epoch: r.g.Epoch(), Self: r.g.Self(), Members: r.g.Members(), PQ: r.g.PQ()}
	copy(gi.Creator[:], r.Creator)
	return gi
}

// Groups lists the groups, by name then id.
func (e *Engine) Groups() []GroupInfo {
	out := make([]GroupInfo, 0, len(e.groups))
	for _, r := range e.groups {
		out = append(out, e.info(r))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return bytes.Compare(out[i].ID[:], out[j].ID[:]) < 0
	})
	return out
}

// Group describes one group.
func (e *Engine) Group(id [16]byte) (GroupInfo, error) {
	r, ok := e.groups[id]
	if !ok {
		return GroupInfo{}, ErrUnknownGroup
	}
	return e.info(r), nil
}

// Create makes a group with this node as its one member and creator.
func (e *Engine) Create(name string) (GroupInfo, error) {
	if len(name) == 0 || len(name) > MaxGroupName {
		return GroupInfo{}, fmt.Errorf("keys: a group name has 1 to %d bytes", MaxGroupName)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return GroupInfo{}, err
	}
	g, err := mls.Create(e.cfg.Identity.PrivateKey(), id)
	if err != nil {
		return GroupInfo{}, err
	}
	self := e.cfg.Identity.Address()
	r := &groupRec{g: g, Name: name, Creator: self[:]}
	if err := e.save(nil, r); err != nil {
		return GroupInfo{}, err
	}
	e.groups[id] = r
	e.m.Groups.Set(float64(len(e.groups)))
	return e.info(r), nil
}

// save writes a group's state (in tx, or in a transaction of its own).
func (e *Engine) save(tx *bolt.Tx, r *groupRec) error {
	st, err := r.g.Marshal()
	if err != nil {
		return fmt.Errorf("keys: group state: %w", err)
	}
	r.State = st
	if r.ctr != nil {
		r.LiteHigh = r.ctr.HighWater()
	}
	if r.win != nil {
		if r.LiteWindows, err = r.win.MarshalBinary(); err != nil {
			return fmt.Errorf("keys: MLS-Lite windows: %w", err)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	id := r.g.ID()
	if tx != nil {
		return e.vault.PutTx(tx, BucketGroups, id[:], b)
	}
	return e.vault.Put(BucketGroups, id[:], b)
}

// creatorOnly refuses a membership change by anyone but the creator.
func (e *Engine) creatorOnly(id [16]byte) (*groupRec, error) {
	r, ok := e.groups[id]
	if !ok {
		return nil, ErrUnknownGroup
	}
	self := e.cfg.Identity.Address()
	if !bytes.Equal(r.Creator, self[:]) {
		return nil, ErrNotCreator
	}
	return r, nil
}

// Add commits the addition of kp's owner, writes the new state, and
// returns the Welcome for the new member and the commit for the others.
// keys: the X-Wing keys of the members (the joiner too) the PQ option
// may reach (pq.go; nil: a classical commit).
func (e *Engine) Add(id [16]byte, kp *mls.KeyPackage, keys PQKeys) (GroupInfo, Effects, error) {
	r, err := e.creatorOnly(id)
	if err != nil {
		return GroupInfo{}, Effects{}, err
	}
	for _, m := range r.g.Members() {
		if m == kp.Owner {
			return GroupInfo{}, Effects{}, fmt.Errorf("%w: %s is a member already", ErrMember, kp.Owner)
		}
	}
	before := r.g.Members()
	psks, err := e.stagePQ(r, append(before[:len(before):len(before)], kp.Owner), keys)
	if err != nil {
		return GroupInfo{}, Effects{}, err
	}
	commit, welcome, err := r.g.Add(kp)
	if err != nil {
		return GroupInfo{}, Effects{}, fmt.Errorf("keys: add %s: %w", kp.Owner, err)
	}
	if err := e.save(nil, r); err != nil {
		return GroupInfo{}, Effects{}, err
	}
	var fx Effects
	e.fanOut(&fx, r, KindCommit, commit, before, psks)
	w, err := EncodeGroupPayload(GroupPayload{Kind: KindWelcome, Group: id[:], MLS: welcome, Name: r.Name, Creator: r.Creator, PSK: psks[kp.Owner]})
	if err != nil {
		return GroupInfo{}, Effects{}, err
	}
	fx.Sends = append(fx.Sends, messages.SendText{To: kp.Owner, Text: w, Payload: messages.PayloadGroup})
	e.m.Encryptions.WithLabelValues(modeOf(psks != nil), KindWelcome.String()).Inc()
	return e.info(r), fx, nil
}

// Remove commits addr's removal. The commit goes to the remaining members
// and to addr, so that it learns it is out; keys as for Add (the PSK is
// sealed to the remaining members only: addr cannot follow anyway).
func (e *Engine) Remove(id [16]byte, addr crypto.Address, keys PQKeys) (GroupInfo, Effects, error) {
	r, err := e.creatorOnly(id)
	if err != nil {
		return GroupInfo{}, Effects{}, err
	}
	if addr == e.cfg.Identity.Address() {
		return GroupInfo{}, Effects{}, fmt.Errorf("%w: the creator cannot remove itself", ErrMember)
	}
	before := r.g.Members()
	var stay []crypto.Address
	for _, m := range before {
		if m != addr {
			stay = append(stay, m)
		}
	}
	var psks map[crypto.Address][]byte
	if len(stay) < len(before) {
		if psks, err = e.stagePQ(r, stay, keys); err != nil {
			return GroupInfo{}, Effects{}, err
		}
	}
	commit, err := r.g.Remove(addr)
	if errors.Is(err, mls.ErrNotMember) {
		return GroupInfo{}, Effects{}, fmt.Errorf("%w: %s is not a member", ErrMember, addr)
	}
	if err != nil {
		return GroupInfo{}, Effects{}, fmt.Errorf("keys: remove %s: %w", addr, err)
	}
	if err := e.save(nil, r); err != nil {
		return GroupInfo{}, Effects{}, err
	}
	var fx Effects
	e.fanOut(&fx, r, KindCommit, commit, before, psks)
	return e.info(r), fx, nil
}

// Send encrypts text for the group and returns one copy per other
// member: an MLS application message, or for a member whose mode (modes,
// by address; absent: MLS) is MLS-Lite an MLS-Lite frame.
func (e *Engine) Send(id [16]byte, text []byte, modes map[crypto.Address]Mode) (GroupInfo, Effects, error) {
	r, ok := e.groups[id]
	if !ok {
		return GroupInfo{}, Effects{}, ErrUnknownGroup
	}
	self := e.cfg.Identity.Address()
	var full []crypto.Address
	lite := map[crypto.Address]Mode{}
	for _, m := range r.g.Members() {
		switch md := modes[m]; {
		case m == self:
		case md == transports.CryptoMLSLite || md == transports.CryptoMLSLiteCompact:
			lite[m] = md
		default:
			full = append(full, m)
		}
	}
	var fx Effects
	if len(full) > 0 {
		msg, err := r.g.Encrypt(text)
		if err != nil {
			return GroupInfo{}, Effects{}, fmt.Errorf("keys: encrypt: %w", err)
		}
		e.fanOut(&fx, r, KindApplication, msg, full, nil)
	}
	if len(lite) > 0 {
		if err := e.sealLite(&fx, r, text, lite); err != nil {
			return GroupInfo{}, Effects{}, err
		}
	}
	// The generation and the counters this used are on disk before the
	// message leaves.
	if err := e.save(nil, r); err != nil {
		return GroupInfo{}, Effects{}, err
	}
	return e.info(r), fx, nil
}

// fanOut adds one copy of an MLS message to each of to but this node;
// psks (nil: none) holds the PSK sealed to each member, for its copy.
func (e *Engine) fanOut(fx *Effects, r *groupRec, kind PayloadKind, msg []byte, to []crypto.Address, psks map[crypto.Address][]byte) {
	id := r.g.ID()
	p, err := EncodeGroupPayload(GroupPayload{Kind: kind, Group: id[:], MLS: msg})
	if err != nil {
		e.log.Error("group payload not encoded", "err", err) // our own fields: a bug
		return
	}
	self := e.cfg.Identity.Address()
	for _, m := range to {
		if m == self {
			continue
		}
		text := p
		if psk, ok := psks[m]; ok {
			if text, err = EncodeGroupPayload(GroupPayload{Kind: kind, Group: id[:], MLS: msg, PSK: psk}); err != nil {
				e.log.Error("group payload not encoded", "err", err)
				return
			}
		}
		fx.Sends = append(fx.Sends, messages.SendText{To: m, Text: text, Payload: messages.PayloadGroup})
	}
	e.m.Encryptions.WithLabelValues(modeOf(psks != nil), kind.String()).Inc()
}

// modeOf names the metrics' mode of an MLS message.
func modeOf(pq bool) string {
	if pq {
		return modePQ
	}
	return modeMLS
}

// ProcessInbox applies what waits in the group inbox, in arrival order,
// until nothing more can be applied: each message is applied and removed
// in one transaction with the group's new state and, for a member's
// text, its inbox entry. A message for an epoch this node has not reached
// waits for the commit before it (PendingMax, PendingMaxAge).
func (e *Engine) ProcessInbox(now time.Time) (Effects, error) {
	var fx Effects
	for {
		entries, err := e.groupInbox()
		if err != nil {
			return fx, err
		}
		progress, waiting := false, 0
		for _, en := range entries {
			done, err := e.apply(en, now, &fx)
			if err != nil {
				return fx, err
			}
			if done {
				progress = true
			} else {
				waiting++
			}
		}
		e.pending = waiting
		e.m.Pending.Set(float64(waiting))
		if !progress {
			break
		}
	}
	if e.pending > e.cfg.PendingMax {
		if err := e.dropOldestPending(e.pending - e.cfg.PendingMax); err != nil {
			return fx, err
		}
	}
	return fx, nil
}

// groupInbox reads the group inbox; a record that does not decode is
// removed and counted (it was written by this node's router from an
// authenticated message, so only a damaged page makes one).
func (e *Engine) groupInbox() ([]inbox.GroupEntry, error) {
	var out []inbox.GroupEntry
	var bad [][]byte
	err := e.cfg.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(inbox.GroupBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			en, err := inbox.DecodeGroupEntry(k, v)
			if err != nil {
				bad = append(bad, append([]byte(nil), k...))
				return nil
			}
			out = append(out, en)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for _, k := range bad {
		e.m.Failures.WithLabelValues(modeMLS, "malformed").Inc()
		e.log.Warn("group inbox record does not decode; removed", "key", hex.EncodeToString(k))
		if err := e.dropEntry(k); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (e *Engine) dropEntry(k []byte) error {
	return e.cfg.DB.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(inbox.GroupBucket); b != nil {
			return b.Delete(k)
		}
		return nil
	})
}

func (e *Engine) dropOldestPending(n int) error {
	entries, err := e.groupInbox()
	if err != nil {
		return err
	}
	for i := 0; i < n && i < len(entries); i++ {
		if err := e.dropEntry(inbox.GroupKey(entries[i].Seq)); err != nil {
			return err
		}
		e.m.Failures.WithLabelValues(modeMLS, "pending_dropped").Inc()
	}
	e.pending -= min(n, len(entries))
	e.m.Pending.Set(float64(e.pending))
	return nil
}

// apply handles one group inbox entry. done: it is gone from the group
// inbox (applied or refused); false: it waits.
func (e *Engine) apply(en inbox.GroupEntry, now time.Time, fx *Effects) (bool, error) {
	key := inbox.GroupKey(en.Seq)
	refuse := func(reason string, err error) (bool, error) {
		e.m.Failures.WithLabelValues(modeMLS, reason).Inc()
		e.log.Debug("group message refused", "reason", reason, "from", crypto.Address(en.From), "err", err)
		return true, e.dropEntry(key)
	}
	p, err := DecodeGroupPayload(en.Data)
	if err != nil {
		return refuse("malformed", err)
	}
	var gid [16]byte
	copy(gid[:], p.Group)
	if p.Kind == KindWelcome {
		return e.applyWelcome(en, p, gid, now, fx, refuse)
	}
	r, ok := e.groups[gid]
	if !ok {
		// Its Welcome may still be on its way.
		return e.wait(en, now, refuse)
	}
	_, epoch, kind, err := mls.Peek(p.MLS)
	if err != nil {
		return refuse("malformed", err)
	}
	// What the MLS message is, not what the payload says it is, decides
	// (a member's commit labelled as a text would skip the creator check).
	if (p.Kind == KindCommit) != (kind == mls.KindCommit) || (p.Kind == KindApplication) != (kind == mls.KindApplication) {
		return refuse("malformed", fmt.Errorf("a %s labelled %s", kind, p.Kind))
	}
	switch cur := r.g.Epoch(); {
	case epoch > cur:
		return e.wait(en, now, refuse)
	case epoch < cur && p.Kind == KindCommit:
		return refuse("wrong_epoch", nil)
	}
	if len(p.PSK) > 0 {
		psk, reason, err := e.openPSK(gid, p.PSK)
		if err != nil {
			return refuse(reason, err)
		}
		if err := r.g.LoadPSK(psk); err != nil {
			return refuse("malformed", err)
		}
	}
	rcv, err := r.g.Handle(p.MLS)
	switch {
	case errors.Is(err, mls.ErrReplay):
		return refuse("replay", err)
	case errors.Is(err, mls.ErrWrongEpoch):
		return refuse("wrong_epoch", err)
	case errors.Is(err, mls.ErrDecrypt), errors.Is(err, mls.ErrBadSignature):
		return refuse("tampered", err)
	case errors.Is(err, mls.ErrNotMember), errors.Is(err, mls.ErrCredential):
		return refuse("not_member", err)
	case errors.Is(err, mls.ErrNoPSK):
		return refuse("no_psk", err)
	case errors.Is(err, mls.ErrMalformed), errors.Is(err, mls.ErrWrongGroup), errors.Is(err, mls.ErrTooLarge):
		return refuse("malformed", err)
	case err != nil:
		return refuse("error", err)
	}
	if rcv.Kind == mls.KindCommit && !bytes.Equal(rcv.Sender[:], r.Creator) {
		// Only the creator commits; a member's commit would fork the
		// group for those who took it. (Handle applied it to r.g; the
		// state on disk is the one before, reload it.)
		if g, lerr := mls.Load(e.cfg.Identity.PrivateKey(), r.State); lerr == nil {
			r.g = g
		}
		return refuse("not_member", fmt.Errorf("commit from %s, not the creator", rcv.Sender))
	}
	e.m.Decryptions.WithLabelValues(modeOf(rcv.PQ), p.Kind.String()).Inc()
	err = e.cfg.DB.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(inbox.GroupBucket); b != nil {
			if err := b.Delete(key); err != nil {
				return err
			}
		}
		if rcv.Removed {
			return e.vault.DeleteTx(tx, BucketGroups, gid[:])
		}
		if err := e.save(tx, r); err != nil {
			return err
		}
		if rcv.Kind == mls.KindApplication {
			return e.cfg.Inbox.AddTx(tx, &messages.InboxMessage{ID: en.ID, From: rcv.Sender, Text: rcv.Plaintext, At: en.At, Hops: en.Hops, Group: gid[:]})
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("keys: apply group message: %w", err)
	}
	if rcv.Removed {
		delete(e.groups, gid)
		e.m.Groups.Set(float64(len(e.groups)))
	}
	if rcv.Kind == mls.KindApplication {
		fx.Inbox = true
	}
	return true, nil
}

func (e *Engine) applyWelcome(en inbox.GroupEntry, p GroupPayload, gid [16]byte, now time.Time, fx *Effects, refuse func(string, error) (bool, error)) (bool, error) {
	var kps []*mls.OwnKeyPackage
	if e.current != nil {
		kps = append(kps, e.current)
	}
	if e.lastResort != nil {
		kps = append(kps, e.lastResort)
	}
	var psks []mls.PSK
	if len(p.PSK) > 0 {
		psk, reason, err := e.openPSK(gid, p.PSK)
		if err != nil {
			return refuse(reason, err)
		}
		psks = append(psks, psk)
	}
	g, used, err := mls.Join(e.cfg.Identity.PrivateKey(), p.MLS, kps, psks...)
	if errors.Is(err, mls.ErrNoPSK) {
		return refuse("no_psk", err)
	}
	if err != nil {
		return refuse("tampered", err)
	}
	if g.ID() != gid {
		return refuse("malformed", fmt.Errorf("Welcome for group %x in a payload for %x", g.ID(), gid))
	}
	if !bytes.Equal(en.From[:], p.Creator) {
		return refuse("not_member", fmt.Errorf("Welcome from %s, not from the creator it names", crypto.Address(en.From)))
	}
	if old, had := e.groups[gid]; had && !bytes.Equal(old.Creator, p.Creator) {
		// Only the group's own creator may add this node again (after it
		// missed too much); anyone can make an MLS group with any id.
		return refuse("not_member", fmt.Errorf("Welcome for group %x from %s, whose creator is %s", gid, crypto.Address(en.From), crypto.Address(old.Creator)))
	}
	r := &groupRec{g: g, Name: p.Name, Creator: p.Creator}
	err = e.cfg.DB.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(inbox.GroupBucket); b != nil {
			if err := b.Delete(inbox.GroupKey(en.Seq)); err != nil {
				return err
			}
		}
		return e.save(tx, r)
	})
	if err != nil {
		return false, fmt.Errorf("keys: join: %w", err)
	}
	if _, had := e.groups[gid]; had {
		e.log.Info("group joined again", "group", hex.EncodeToString(gid[:]))
	}
	e.groups[gid] = r
	e.m.Groups.Set(float64(len(e.groups)))
	e.m.Decryptions.WithLabelValues(modeOf(g.PQ()), KindWelcome.String()).Inc()
	if kps[used] == e.current {
		// One use only: the next adder gets a fresh one.
		e.forgetKeyPackage(e.current)
		e.current = nil
		h, err := e.EnsureKeyPackages(now)
		if err != nil {
			return true, err
		}
		fx.Announce = h
	}
	return true, nil
}

// wait keeps an entry for later, unless it waited too long.
func (e *Engine) wait(en inbox.GroupEntry, now time.Time, refuse func(string, error) (bool, error)) (bool, error) {
	if now.Sub(en.At) > e.cfg.PendingMaxAge {
		return refuse("pending_dropped", nil)
	}
	return false, nil
}

// Pending is how many group inbox entries wait.
func (e *Engine) Pending() int { return e.pending }
