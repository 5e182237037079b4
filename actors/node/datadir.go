package node

import (
	"errors"
	"fmt"
	"os"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/persist"
)

// Errors of a data dir the node will not serve. A damaged database is
// persist.ErrDamaged (a *persist.DamagedError).
var (
	// ErrIdentityMissing: the key file is gone but the data dir holds a
	// database: a new identity would serve another node's inbox.
	ErrIdentityMissing = errors.New("node: identity missing for an existing database")
	// ErrOtherIdentity: the database was written by a node with another
	// identity than the key file's.
	ErrOtherIdentity = errors.New("node: the database belongs to another identity")
)

// IsDataDirError reports whether err means the data dir is damaged or
// holds parts that do not belong together: what `qpc node` exits 3 for.
func IsDataDirError(err error) bool {
	return errors.Is(err, persist.ErrDamaged) || errors.Is(err, ErrIdentityMissing) ||
		errors.Is(err, ErrOtherIdentity) || errors.Is(err, crypto.ErrKeyFileCorrupt)
}

// WithNewIdentity lets the node start with an identity other than the one
// that wrote its database: it creates the key file when it is missing
// even though the database exists, and makes the identity the database's
// owner (its inbox, outbox and routes are kept). Without it such a start
// is refused (ErrIdentityMissing, ErrOtherIdentity). `qpc node
// --new-identity`.
func WithNewIdentity() Option { return func(o *options) { o.newIdentity = true } }

// loadIdentity loads the key file, or creates it when the data dir holds
// no database yet (a first start, or a key made by `qpc keygen`).
func (n *Node) loadIdentity() (*crypto.Identity, error) {
	keyPath, dbPath := n.cfg.KeyPath(), n.cfg.DBPath()
	id, err := crypto.LoadIdentity(keyPath)
	if err == nil || !errors.Is(err, crypto.ErrKeyFileNotExists) {
		return id, err
	}
	st, serr := os.Stat(dbPath)
	hasDB := serr == nil && st.Size() > 0
	if hasDB && !n.opts.newIdentity {
		return nil, fmt.Errorf("%w: %s is missing, but %s holds the data of the node it belonged to (inbox, outbox, routes): restore the key file from a backup, or start once with --new-identity to create a new identity that keeps this data",
			ErrIdentityMissing, keyPath, dbPath)
	}
	if id, err = crypto.NewIdentity(nil); err != nil {
		return nil, err
	}
	if err := crypto.SaveIdentity(keyPath, id); err != nil {
		return nil, err
	}
	if hasDB {
		n.log.Warn("identity created for an existing database, as asked (--new-identity)", "address", id.Address().String(), "file", keyPath, "database", dbPath)
	} else {
		n.log.Info("identity created", "address", id.Address().String(), "file", keyPath)
	}
	return id, nil
}

// openDB opens and checks the database and binds it to the identity.
func (n *Node) openDB() error {
	path := n.cfg.DBPath()
	db, err := persist.Open(path, n.opts.lockTimeout, n.opts.dbOpts...)
	if err != nil {
		return err
	}
	n.db = db
	if rep := db.CheckReport(); rep != nil {
		for _, note := range rep.Notes {
			n.log.Warn("database check", "file", path, "note", note)
		}
		n.log.Info("database checked", "file", path, "pages", rep.Pages, "keys", rep.Keys,
			"complete", rep.Complete, "bbolt_check", rep.BboltCheck, "took", rep.Elapsed.Round(1000))
	} else {
		n.log.Info("database created", "file", path)
	}
	err = db.BindOwner(n.id.Address().Bytes(), n.opts.newIdentity)
	if errors.Is(err, persist.ErrOtherNode) {
		return fmt.Errorf("%w: %v: start with the key file that wrote it, or once with --new-identity to make %s its owner",
			ErrOtherIdentity, err, n.id.Address())
	}
	return err
}
