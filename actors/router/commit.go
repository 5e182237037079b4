package router

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
)

// writes is a set of encoded bucket writes, in order: what one group
// commit puts into the database. Its bytes belong to it, so it can be
// written on another goroutine while the router goes on.
type writes struct{ ops []writeOp }

type writeOp struct {
	bucket, key, val []byte // val nil: delete
}

func (w *writes) put(bucket, key, val []byte) { w.ops = append(w.ops, writeOp{bucket, key, val}) }
func (w *writes) del(bucket, key []byte)      { w.ops = append(w.ops, writeOp{bucket, key, nil}) }

func (w *writes) apply(tx *bolt.Tx) error {
	for _, op := range w.ops {
		b, err := tx.CreateBucketIfNotExists(op.bucket)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", op.bucket, err)
		}
		if op.val != nil {
			err = b.Put(op.key, op.val)
		} else {
			err = b.Delete(op.key)
		}
		if err != nil {
			return fmt.Errorf("%s %x: %w", op.bucket, op.key, err)
		}
	}
	return nil
}

// commitJob is one group commit: the encoded writes, and the batch whose
// receipts, forwards and answers wait for them.
type commitJob struct {
	replay crypto.ReplayWrites
	writes writes
	batch  batch

	done    chan struct{} // closed when the transaction ended
	err     error
	handled bool // finish ran (through committed, or waiting on done)
}

func (j *commitJob) write(tx *bolt.Tx) error {
	if err := j.replay.Write(tx); err != nil {
		return fmt.Errorf("replay window: %w", err)
	}
	return j.writes.apply(tx)
}

// committer runs the router's transactions on a goroutine of its own, one
// at a time and in order, so the router decides on the next batch while
// the disk syncs the last: under load a batch is what arrived during one
// fsync. It reports each job through done (a message to the router).
type committer struct {
	jobs chan *commitJob
	wg   sync.WaitGroup
}

func startCommitter(db *bolt.DB, done func(*commitJob)) *committer {
	c := &committer{jobs: make(chan *commitJob, 1)}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for j := range c.jobs {
			j.err = db.Update(j.write)
			close(j.done)
			done(j)
		}
	}()
	return c
}

// submit hands a job over; the router has at most one in flight, so this
// never waits.
func (c *committer) submit(j *commitJob) { c.jobs <- j }

// stop ends the goroutine after the job in flight.
func (c *committer) stop() {
	close(c.jobs)
	c.wg.Wait()
}
