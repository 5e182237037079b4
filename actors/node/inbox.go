package node

import (
	"encoding/binary"
	"encoding/json"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
)

// inbox keeps delivered messages in the database, numbered in arrival
// order, and wakes readers waiting for new ones (qpc inbox --follow).
type inbox struct {
	db *persist.DB

	mu      sync.Mutex
	last    uint64
	changed chan struct{} // closed and replaced on every add
}

var inboxBucket = []byte("inbox")

// InboxEntry is one stored message (the admin API's JSON type).
type InboxEntry = api.InboxEntry

func openInbox(db *persist.DB) (*inbox, error) {
	b := &inbox{db: db, changed: make(chan struct{})}
	err := db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(inboxBucket)
		if err != nil {
			return err
		}
		if k, _ := bk.Cursor().Last(); len(k) == 8 {
			b.last = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return b, err
}

func (b *inbox) add(m *messages.InboxMessage) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := InboxEntry{
		Seq: b.last + 1, ID: crypto.Address(m.ID).String(), From: crypto.Address(m.From).String(),
		Text: string(m.Text), At: m.At.UTC(), Hops: m.Hops,
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], e.Seq)
	if err := b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(inboxBucket).Put(k[:], v) }); err != nil {
		return err
	}
	b.last = e.Seq
	close(b.changed)
	b.changed = make(chan struct{})
	return nil
}

// list returns up to max entries after seq, and a channel closed when a
// newer one arrives.
func (b *inbox) list(after uint64, max int) ([]InboxEntry, <-chan struct{}, error) {
	b.mu.Lock()
	wait := b.changed
	b.mu.Unlock()
	var out []InboxEntry
	err := b.db.View(func(tx *bolt.Tx) error {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], after+1)
		c := tx.Bucket(inboxBucket).Cursor()
		for key, v := c.Seek(k[:]); key != nil && len(out) < max; key, v = c.Next() {
			var e InboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, wait, err
}
