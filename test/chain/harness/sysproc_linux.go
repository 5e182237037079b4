package harness

import "syscall"

// sysProcAttr puts a node in its own process group (a Ctrl-C at the
// terminal reaches the harness, which then stops the nodes itself) and has
// the kernel kill it if the harness dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
