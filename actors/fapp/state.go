package fapp

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/messages"
)

// StateBucket holds the node's own FAPP state: the therapist's practice
// (its MarshalState record and the Approbation salt) and the patient's
// reservations (their reply-key seeds). The relay store has its own
// bucket (fapp.StoreBucket).
var StateBucket = []byte("fapp/node")

var (
	keyPractice = []byte("practice")
	keySalt     = []byte("approbation_salt")
	prefixRes   = []byte("res/")
	prefixRetry = []byte("retry/")
)

// maxRetryRecord bounds a stored retransmission record before it is
// decoded (a SlotReserve frame and a time).
const maxRetryRecord = 4096

// maxReservationRecord bounds a stored reservation record before it is
// decoded.
const maxReservationRecord = 1024

type boltState struct {
	db      *bolt.DB
	damaged int // reservation records that did not decode
}

func (s *boltState) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(StateBucket)
		return err
	})
}

func (s *boltState) put(k, v []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(StateBucket).Put(k, v) })
}

func (s *boltState) get(k []byte) (v []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(StateBucket).Get(k); b != nil {
			v = append([]byte(nil), b...)
		}
		return nil
	})
	return v, err
}

func (s *boltState) SavePractice(state []byte) error { return s.put(keyPractice, state) }

// practice restores the therapist's practice, or starts one (a fresh
// Approbation salt, kept so the binding stays the same across restarts).
func (s *boltState) practice(id *crypto.Identity, plz fapp.PLZ, licence string) (*fapp.Practice, error) {
	salt, err := s.get(keySalt)
	if err != nil {
		return nil, err
	}
	var appr fapp.Approbation
	if salt == nil {
		if appr, err = fapp.NewApprobation(licence, rand.Reader); err != nil {
			return nil, err
		}
		if err := s.put(keySalt, appr.Salt[:]); err != nil {
			return nil, err
		}
	} else if appr, err = fapp.ApprobationWithSalt(licence, salt); err != nil {
		return nil, err
	}
	state, err := s.get(keyPractice)
	if err != nil {
		return nil, err
	}
	if state == nil {
		return fapp.NewPractice(id, plz, appr, 0)
	}
	p, err := fapp.RestorePractice(id, plz, appr, state)
	if err != nil && errors.Is(err, fapp.ErrDamagedRecord) {
		return nil, &DamagedStateError{Bucket: string(StateBucket), Key: string(keyPractice), Size: len(state), Err: err}
	}
	return p, err
}

// DamagedStateError: a record of the node's own FAPP state (the
// therapist's practice) that does not restore. The actor does not start
// (the node's supervision stops it rather than restarting: a restart
// cannot mend a record), and the record is left as it is, never
// overwritten. errors.Is(err, fapp.ErrDamagedRecord).
type DamagedStateError struct {
	Bucket, Key string
	Size        int
	Err         error
}

func (e *DamagedStateError) Error() string {
	return fmt.Sprintf("fapp: the therapist's state (record %q of %d bytes in bucket %q) does not restore and was left as it is: %v", e.Key, e.Size, e.Bucket, e.Err)
}

func (e *DamagedStateError) Unwrap() error { return e.Err }

type reservationRecord struct {
	_         struct{} `cbor:",toarray"`
	ID        [16]byte
	Therapist [16]byte
	Slot      uint32
	SealKey   []byte
	Status    uint8
	Seed      [32]byte
	Text      string
}

func (s *boltState) SaveReservation(r *fapp.Reservation) error {
	b, err := messages.Marshal(reservationRecord{
		ID: r.ID, Therapist: r.Slot.Therapist, Slot: r.Slot.Slot, SealKey: r.TherapistSealKey,
		Status: uint8(r.Status), Seed: r.ReplySeed(), Text: r.Text,
	})
	if err != nil {
		return err
	}
	return s.put(append(bytes.Clone(prefixRes), r.ID[:]...), b)
}

func (s *boltState) reservations() ([]*fapp.Reservation, error) {
	var out []*fapp.Reservation
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(StateBucket).Cursor()
		for k, v := c.Seek(prefixRes); k != nil && bytes.HasPrefix(k, prefixRes); k, v = c.Next() {
			// A damaged record is skipped (and left in place): the other
			// reservations are still served.
			if len(v) > maxReservationRecord {
				s.damaged++
				continue
			}
			var rec reservationRecord
			if err := messages.UnmarshalCanonical(v, &rec); err != nil {
				s.damaged++
				continue
			}
			r, err := fapp.RestoreReservation(rec.ID, fapp.SlotID{Therapist: rec.Therapist, Slot: rec.Slot}, rec.SealKey, fapp.Status(rec.Status), rec.Seed)
			if err != nil {
				s.damaged++
				continue
			}
			r.Text = rec.Text
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

type retryRecord struct {
	_     struct{} `cbor:",toarray"`
	Frame []byte
	Until int64
}

func retryKey(id [16]byte) []byte { return append(bytes.Clone(prefixRetry), id[:]...) }

// SaveRetry keeps a pending reservation's frame for retransmission.
func (s *boltState) SaveRetry(p PendingReserve) error {
	b, err := messages.Marshal(retryRecord{Frame: p.Frame, Until: p.Until.Unix()})
	if err != nil {
		return err
	}
	return s.put(retryKey(p.ID), b)
}

// DeleteRetry forgets it (answered, or its slot started).
func (s *boltState) DeleteRetry(id [16]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(StateBucket).Delete(retryKey(id)) })
}

// retries are the frames of pending reservations; a damaged record is
// skipped, left in place, and counted.
func (s *boltState) retries() ([]PendingReserve, error) {
	var out []PendingReserve
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(StateBucket).Cursor()
		for k, v := c.Seek(prefixRetry); k != nil && bytes.HasPrefix(k, prefixRetry); k, v = c.Next() {
			var rec retryRecord
			if len(k) != len(prefixRetry)+16 || len(v) > maxRetryRecord || messages.UnmarshalCanonical(v, &rec) != nil {
				s.damaged++
				continue
			}
			p := PendingReserve{Frame: rec.Frame, Until: time.Unix(rec.Until, 0)}
			copy(p.ID[:], k[len(prefixRetry):])
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
