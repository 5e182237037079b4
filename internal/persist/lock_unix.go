//go:build unix

package persist

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockShared takes a shared lock on f, as a read-only bbolt handle does:
// a running node holds an exclusive one, so a check never reads a file
// that is being written.
func lockShared(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		// The same wait bbolt uses between its lock attempts.
		time.Sleep(50 * time.Millisecond)
	}
}
