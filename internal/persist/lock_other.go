//go:build !unix

package persist

import (
	"os"
	"time"
)

// lockShared: bbolt's own lock guards the file on this platform.
func lockShared(*os.File, time.Duration) error { return nil }
