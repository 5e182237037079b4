//go:build linux

package rnode

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenPTY opens a pseudo-terminal pair in raw mode: an Emulator serves
// the master, and the driver opens slavePath with Open like any serial
// port, so the real serial code runs in tests. Closing the master makes
// the slave's reads fail, as an unplugged USB modem does, and removes
// slavePath. It fails where /dev/ptmx is missing or not permitted (some
// containers); tests then skip.
func OpenPTY() (master *os.File, slavePath string, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, "", fmt.Errorf("%s: open pty: %w", prefix, err)
	}
	rc, err := m.SyscallConn()
	if err != nil {
		m.Close()
		return nil, "", fmt.Errorf("%s: open pty: %w", prefix, err)
	}
	var n int
	var ierr error
	cerr := rc.Control(func(fd uintptr) {
		// Unlock the slave, learn its number, and make the pair raw
		// (termios requests on the master act on the slave).
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr != nil {
			return
		}
		if n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN); ierr != nil {
			return
		}
		var t *unix.Termios
		if t, ierr = unix.IoctlGetTermios(int(fd), unix.TCGETS); ierr != nil {
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		ierr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if cerr == nil {
		cerr = ierr
	}
	if cerr != nil {
		m.Close()
		return nil, "", fmt.Errorf("%s: set up pty: %w", prefix, cerr)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n), nil
}
