//go:build !linux

package harness

import "syscall"

// sysProcAttr: nothing special off Linux. (CPU accounting reads /proc, so
// there a node's CPU time reads as 0.)
func sysProcAttr() *syscall.SysProcAttr { return nil }
