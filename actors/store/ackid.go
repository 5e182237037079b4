package store

import bolt "go.etcd.io/bbolt"

// AckID removes the frame with this id, whatever its destination (a
// receipt names only the message), and reports how many it removed.
func (q *Queue) AckID(id [16]byte) (int, error) {
	var dest [16]byte
	found := false
	err := q.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(idsBucket); b != nil {
			if fk := b.Get(id[:]); len(fk) >= 16 {
				copy(dest[:], fk[:16])
				found = true
			}
		}
		return nil
	})
	if err != nil || !found {
		return 0, err
	}
	return q.Ack(dest, id)
}
