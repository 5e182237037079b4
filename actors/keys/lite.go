package keys

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/mlslite"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// MLS-Lite for members reached over constrained links (docs/crypto.md).
// The keys of an epoch come from the group's MLS exporter, so they change
// with every commit and a frame of an epoch the group has left is
// refused. This node's counter runs on across epochs (one per group,
// reserved ahead and written with the group's state before a frame using
// it leaves); the replay windows of the group's senders are written with
// the state too, in the transaction that delivers the text.

// Mode is how one member's copy of a group message is protected.
type Mode = transports.CryptoMode

// ModeFor is the mode for a member whose route's first link has class c:
// the link's recommendation, except that an unconstrained link gets MLS
// too (a group's post-quantum option is a PSK in its commits, pq.go, not
// a mode of the copies), and a member without a route (class 0) gets
// MLS, which any link carries.
func ModeFor(c transports.Class) Mode {
	switch c {
	case transports.Constrained:
		return transports.CryptoMLSLite
	case transports.SeverelyConstrained:
		return transports.CryptoMLSLiteCompact
	}
	return transports.CryptoMLS
}

const modeLite = "mls-lite"

// liteEpoch is the group's MLS-Lite keys for its current epoch.
func (e *Engine) liteEpoch(r *groupRec) (*mlslite.Epoch, error) {
	if r.lite != nil && r.lite.Epoch() == r.g.Epoch() {
		return r.lite, nil
	}
	ep, err := mlslite.DeriveEpoch(r.g.Export, r.g.ID(), r.g.Epoch())
	if err != nil {
		return nil, fmt.Errorf("keys: MLS-Lite keys: %w", err)
	}
	r.lite = ep
	return ep, nil
}

func (r *groupRec) windows() (*mlslite.Windows, error) {
	if r.win == nil {
		r.win = mlslite.NewWindows()
		if len(r.LiteWindows) > 0 {
			if err := r.win.UnmarshalBinary(r.LiteWindows); err != nil {
				return nil, fmt.Errorf("keys: MLS-Lite windows: %w", err)
			}
		}
	}
	return r.win, nil
}

func (r *groupRec) counter() *mlslite.Counter {
	if r.ctr == nil {
		c := mlslite.RestoreCounter(r.LiteHigh)
		r.ctr = &c
	}
	return r.ctr
}

// sealLite seals text for each of to as an MLS-Lite frame.
func (e *Engine) sealLite(fx *Effects, r *groupRec, text []byte, to map[crypto.Address]Mode) error {
	ep, err := e.liteEpoch(r)
	if err != nil {
		return err
	}
	self := e.cfg.Identity.Address()
	for m, mode := range to {
		n, _, err := r.counter().Next()
		if err != nil {
			return fmt.Errorf("keys: MLS-Lite counter: %w", err)
		}
		var signer ed25519.PrivateKey
		if mode == transports.CryptoMLSLite {
			signer = e.cfg.Identity.PrivateKey()
		}
		frame, err := ep.Seal(self, m, uint8(messages.DefaultHopLimit), n, text, signer)
		if err != nil {
			return fmt.Errorf("keys: MLS-Lite seal: %w", err)
		}
		f, err := mlslite.Decode(frame)
		if err != nil {
			return err
		}
		fx.Sends = append(fx.Sends, messages.SendText{To: m, Payload: messages.PayloadGroup, Frame: frame, FrameID: f.ID()})
		e.m.Encryptions.WithLabelValues(modeLite, KindApplication.String()).Inc()
	}
	return nil
}

// HandleLite opens an MLS-Lite frame for this node: delivered once into
// the inbox, with the group's replay windows, in one transaction; then
// acknowledged. A replay is acknowledged again (its receipt may have been
// lost) and not delivered; anything that does not open is counted and
// dropped without a receipt, so its sender's retransmission (or expiry)
// follows.
func (e *Engine) HandleLite(in *messages.GroupFrameIn, now time.Time) (Effects, error) {
	var fx Effects
	refuse := func(reason string, err error) (Effects, error) {
		e.m.Failures.WithLabelValues(modeLite, reason).Inc()
		e.log.Debug("MLS-Lite frame refused", "reason", reason, "err", err)
		return fx, nil
	}
	f, err := mlslite.Decode(in.Frame)
	if err != nil {
		return refuse("malformed", err)
	}
	var r *groupRec
	for id, g := range e.groups {
		if mlslite.GroupRefOf(id) == f.GroupRef {
			r = g
			break
		}
	}
	if r == nil {
		return refuse("unknown_group", nil)
	}
	ep, err := e.liteEpoch(r)
	if err != nil {
		return fx, err
	}
	w, err := r.windows()
	if err != nil {
		return fx, err
	}
	pub := func(a crypto.Address) (ed25519.PublicKey, bool) {
		if e.cfg.Directory == nil {
			return nil, false
		}
		return e.cfg.Directory.Lookup(a)
	}
	before, _ := w.MarshalBinary()
	op, err := ep.Open(in.Frame, e.cfg.Identity.Address(), pub, false, w)
	switch {
	case errors.Is(err, mlslite.ErrReplay):
		e.m.Failures.WithLabelValues(modeLite, "replay").Inc()
		fx.Receipts = append(fx.Receipts, messages.SendReceipts{To: f.Source, IDs: [][16]byte{f.ID()}})
		return fx, nil
	case errors.Is(err, mlslite.ErrWrongEpoch):
		return refuse("wrong_epoch", err)
	case errors.Is(err, mlslite.ErrDecrypt), errors.Is(err, mlslite.ErrBadSignature):
		return refuse("tampered", err)
	case errors.Is(err, mlslite.ErrWrongGroup), errors.Is(err, mlslite.ErrWrongDestination):
		return refuse("malformed", err)
	case err != nil:
		return refuse("error", err)
	}
	member := false
	for _, m := range r.g.Members() {
		member = member || m == op.Source
	}
	if !member {
		// Keys of the epoch are the members', but a removed member may
		// still hold an old epoch's; this one is current, so a source
		// outside it is a member's forgery.
		_ = w.UnmarshalBinary(before)
		return refuse("not_member", fmt.Errorf("MLS-Lite frame from %s, not a member", op.Source))
	}
	gid := r.g.ID()
	err = e.cfg.DB.Update(func(tx *bolt.Tx) error {
		if err := e.save(tx, r); err != nil {
			return err
		}
		return e.cfg.Inbox.AddTx(tx, &messages.InboxMessage{ID: op.ID, From: op.Source, Text: op.Plaintext, At: now, Hops: int(f.Hops) + 1, Group: gid[:]})
	})
	if err != nil {
		_ = w.UnmarshalBinary(before)
		return fx, fmt.Errorf("keys: deliver MLS-Lite: %w", err)
	}
	e.m.Decryptions.WithLabelValues(modeLite, KindApplication.String()).Inc()
	fx.Inbox = true
	fx.Receipts = append(fx.Receipts, messages.SendReceipts{To: op.Source, IDs: [][16]byte{op.ID}})
	return fx, nil
}
