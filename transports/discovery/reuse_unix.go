//go:build unix

package discovery

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// reuseAddr lets several nodes on one host bind the discovery port; each
// socket gets its own copy of every multicast datagram. The BSDs need
// SO_REUSEPORT for that as well; on Linux SO_REUSEADDR is enough (and
// SO_REUSEPORT would not change multicast delivery).
func reuseAddr(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil && runtime.GOOS != "linux" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
