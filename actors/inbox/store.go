package inbox

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/messages"
)

// Entry is one stored message (the admin API's JSON type).
type Entry = api.InboxEntry

var (
	bucket     = []byte("inbox")
	lastBucket = []byte("inbox/last") // "last" → the highest number handed out, kept when entries are deleted
	lastKey    = []byte("last")
)

// keepLast records the highest number handed out, so deleting entries
// never lets a number be handed out again (after a restart either).
func (s *Store) keepLast(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(lastBucket)
	if err != nil {
		return err
	}
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], last)
	return b.Put(lastKey, v[:])
}

// Store keeps delivered messages in the database, numbered in arrival
// order. It is safe for concurrent use: AddTx and Notify from the router
// and the actor, List from API handlers.
type Store struct {
	db *bolt.DB

	mu      sync.Mutex
	last    uint64        // the highest number handed out
	changed chan struct{} // closed and replaced by Notify
}

// Open opens (creating its bucket) the inbox in db.
func Open(db *bolt.DB) (*Store, error) {
	s := &Store{db: db, changed: make(chan struct{})}
	err := db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		if k, _ := bk.Cursor().Last(); len(k) == 8 {
			s.last = binary.BigEndian.Uint64(k)
		}
		gb, err := tx.CreateBucketIfNotExists(GroupBucket)
		if err != nil {
			return err
		}
		if k, _ := gb.Cursor().Last(); len(k) == 8 {
			s.last = max(s.last, binary.BigEndian.Uint64(k))
		}
		if lb := tx.Bucket(lastBucket); lb != nil {
			if v := lb.Get(lastKey); len(v) == 8 {
				s.last = max(s.last, binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: open: %w", err)
	}
	return s, nil
}

// Bucket is the inbox's bucket in the node's database.
var Bucket = bucket

// Encode numbers m as the next entry and returns its key and value, for a
// transaction that may run later (the router's group commit). A number
// handed out for a transaction that then fails is not reused: readers see
// a gap, never a number that changes meaning.
func (s *Store) Encode(m *messages.InboxMessage) (key, val []byte, err error) {
	s.mu.Lock()
	s.last++
	seq := s.last
	s.mu.Unlock()
	e := Entry{
		Seq: seq, ID: crypto.Address(m.ID).String(), From: crypto.Address(m.From).String(),
		Text: string(m.Text), Encoding: api.EncodingUTF8, At: m.At.UTC(), Hops: m.Hops,
	}
	if m.Group != nil {
		e.Group = hex.EncodeToString(m.Group)
	}
	if !utf8.Valid(m.Text) {
		// JSON would replace what is not UTF-8: keep the bytes.
		e.Text, e.Encoding = base64.StdEncoding.EncodeToString(m.Text), api.EncodingBase64
	}
	if val, err = json.Marshal(e); err != nil {
		return nil, nil, err
	}
	key = make([]byte, 8)
	binary.BigEndian.PutUint64(key, seq)
	return key, val, nil
}

// AddTx writes m as the next entry inside tx.
func (s *Store) AddTx(tx *bolt.Tx, m *messages.InboxMessage) error {
	k, v, err := s.Encode(m)
	if err != nil {
		return err
	}
	bk := tx.Bucket(bucket)
	if bk == nil {
		return fmt.Errorf("inbox: bucket %s missing", bucket)
	}
	return bk.Put(k, v)
}

// Notify wakes the readers waiting in List's channel; call it after the
// transaction that added entries committed.
func (s *Store) Notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// List returns up to max entries after seq, and a channel closed when a
// newer one arrives. An entry that does not decode is returned with only
// its Seq and Damaged (why) set, and left in the database: one damaged
// record neither hides the others nor stops a reader that moves on by Seq.
func (s *Store) List(after uint64, max int) ([]Entry, <-chan struct{}, error) {
	s.mu.Lock()
	wait := s.changed
	s.mu.Unlock()
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], after+1)
		c := tx.Bucket(bucket).Cursor()
		for key, v := c.Seek(k[:]); key != nil && len(out) < max; key, v = c.Next() {
			out = append(out, decodeEntry(key, v))
		}
		return nil
	})
	return out, wait, err
}

// decodeEntry decodes the record stored under key; a record that does not
// decode, or whose number is not its key's, comes back as a damaged entry.
func decodeEntry(key, v []byte) Entry {
	seq := uint64(0)
	if len(key) == 8 {
		seq = binary.BigEndian.Uint64(key)
	}
	var e Entry
	err := json.Unmarshal(v, &e)
	switch {
	case len(key) != 8:
		return Entry{Seq: seq, Damaged: fmt.Sprintf("key %x is not an 8-byte number", key)}
	case err != nil:
		return Entry{Seq: seq, Damaged: fmt.Sprintf("record does not decode: %v", err)}
	case e.Seq != seq:
		return Entry{Seq: seq, Damaged: fmt.Sprintf("record says #%d", e.Seq)}
	}
	return e
}

// Prune deletes the oldest entries while more than maxN are kept or they
// arrived before now-maxAge, and reports how many went. Numbers are never
// reused: the next message still gets the next one.
func (s *Store) Prune(now time.Time, maxN int, maxAge time.Duration) (int, error) {
	cutoff := now.Add(-maxAge)
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return fmt.Errorf("inbox: bucket %s missing", bucket)
		}
		keep := b.Stats().KeyN
		var doomed [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if keep <= maxN {
				var e Entry
				if err := json.Unmarshal(v, &e); err == nil && !e.At.Before(cutoff) {
					break // entries are in arrival order: the rest are younger
				}
			}
			doomed = append(doomed, append([]byte(nil), k...))
			keep--
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		if n == 0 {
			return nil
		}
		return s.keepLast(tx)
	})
	if err != nil {
		return 0, fmt.Errorf("inbox: prune: %w", err)
	}
	return n, nil
}

// Delete removes the entry numbered seq; it reports whether there was one.
func (s *Store) Delete(seq uint64) (bool, error) {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	found := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return fmt.Errorf("inbox: bucket %s missing", bucket)
		}
		if b.Get(k[:]) == nil {
			return nil
		}
		found = true
		if err := b.Delete(k[:]); err != nil {
			return err
		}
		return s.keepLast(tx)
	})
	return found, err
}

// Clear removes every entry and reports how many went.
func (s *Store) Clear() (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return fmt.Errorf("inbox: bucket %s missing", bucket)
		}
		var doomed [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return s.keepLast(tx)
	})
	return n, err
}
