package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// AckID removes the frame with this id, whatever its destination (a
// receipt names only the message), and reports how many it removed (0 or
// 1). The lookup and the delete are one transaction, rolled back (no
// fsync) when the id is not held.
func (q *Queue) AckID(id [16]byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var d delta
	n := 0
	err := q.update(func(tx *bolt.Tx) error {
		d, n = delta{}, 0
		ok, err := ackIn(tx, id, nil, &d)
		if err != nil {
			return err
		}
		if ok {
			n = 1
		}
		return unchangedIf(!ok)
	})
	if err != nil {
		return 0, fmt.Errorf("store: ack %x: %w", id[:4], err)
	}
	q.apply(d)
	return n, nil
}
