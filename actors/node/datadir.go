package node

import (
	"errors"
	"fmt"
	"os"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
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
		errors.Is(err, ErrOtherIdentity) || errors.Is(err, crypto.ErrKeyFileCorrupt) ||
		errors.Is(err, crypto.ErrReplayStoreCorrupt) || errors.Is(err, fapp.ErrDamagedRecord)
}

// WithNewIdentity lets the node start with an identity other than the one
// that wrote its database: it creates the key file when it is missing
// even though the database exists, and makes the identity the database's
// owner (its inbox, outbox and routes are kept). Without it such a start
// is refused (ErrIdentityMissing, ErrOtherIdentity). `qpc node
// --new-identity`.
func WithNewIdentity() Option { return func(o *options) { o.newIdentity = true } }

// loadIdentity loads the key file (loaded reports that), or creates it
// when the data dir holds no database yet (a first start).
func (n *Node) loadIdentity() (id *crypto.Identity, loaded bool, err error) {
	keyPath, dbPath := n.cfg.KeyPath(), n.cfg.DBPath()
	id, err = crypto.LoadIdentity(keyPath)
	if errors.Is(err, crypto.ErrKeyFileCorrupt) {
		return nil, false, fmt.Errorf("%w: restore it from a backup; a new key would be another node (move it away and start with --new-identity to keep the database under a new identity)", err)
	}
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, crypto.ErrKeyFileNotExists) {
		return nil, false, err
	}
	// Any database counts, an empty one too (it is refused on its own):
	// a new identity is never made beside another node's data.
	_, serr := os.Stat(dbPath)
	hasDB := serr == nil
	if hasDB && !n.opts.newIdentity {
		return nil, false, fmt.Errorf("%w: %s is missing, but %s holds the data of the node it belonged to (inbox, outbox, routes): restore the key file from a backup, or start once with --new-identity to create a new identity that keeps this data",
			ErrIdentityMissing, keyPath, dbPath)
	}
	if id, err = crypto.NewIdentity(nil); err != nil {
		return nil, false, err
	}
	if err := crypto.SaveIdentity(keyPath, id); err != nil {
		return nil, false, err
	}
	if hasDB {
		n.log.Warn("identity created for an existing database, as asked (--new-identity)", "address", id.Address().String(), "file", keyPath, "database", dbPath)
	} else {
		n.log.Info("identity created", "address", id.Address().String(), "file", keyPath)
	}
	return id, false, nil
}

// openDB opens and checks the database and binds it to the identity.
// keyFileKept: the identity's key file was there before this start, so
// a missing database is news (lost, or a key from `qpc keygen`).
func (n *Node) openDB(keyFileKept bool) error {
	path := n.cfg.DBPath()
	_, statErr := os.Stat(path)
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
	} else if keyFileKept && errors.Is(statErr, os.ErrNotExist) {
		n.log.Warn("no database beside the identity's key file; created a new, empty one (right after 'qpc keygen'; otherwise the database was lost: stop the node and restore it)",
			"file", path, "key_file", n.cfg.KeyPath())
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
