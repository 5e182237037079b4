//go:build !unix

package discovery

import "syscall"

// reuseAddr does nothing where SO_REUSEADDR means something else (Windows):
// there, one node per host can listen for beacons.
func reuseAddr(_, _ string, _ syscall.RawConn) error { return nil }
