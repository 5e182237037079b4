//go:build !linux

package rnode

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// OpenPTY is implemented on Linux only; elsewhere it fails and the tests
// that need it skip.
func OpenPTY() (master *os.File, slavePath string, err error) {
	return nil, "", fmt.Errorf("%s: open pty: %w", prefix, errors.New("not implemented on "+runtime.GOOS))
}
