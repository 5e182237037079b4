package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK)
// would need cgo to ask).
const clockTicks = 100

// node is one `qpc node` process of the chain, over its restarts: the
// same arguments, data directory and ports every time.
type node struct {
	name string // A, B or C
	bin  string
	dir  string // working directory; holds data/ and NAME.log
	args []string
	env  []string // added to the harness's environment
	api  *client

	mu       sync.Mutex
	cur      *incarnation
	counting bool    // between startCPU and stopCPU
	cpu      float64 // CPU seconds of incarnations that ended while counting
	starts   int
}

// incarnation is one process of a node.
type incarnation struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been reaped
	err    error         // its exit error, valid once exited is closed
	base   float64       // CPU seconds already used when counting started
}

func (n *node) logPath() string { return filepath.Join(n.dir, n.name+".log") }

// start launches a new process of the node and waits for /readyz.
func (n *node) start(ctx context.Context, within time.Duration) error {
	logf, err := os.OpenFile(n.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== %s start %d at %s: %s %s\n", n.name, n.starts+1, time.Now().Format(time.RFC3339Nano), n.bin, strings.Join(n.args, " "))
	cmd := exec.Command(n.bin, n.args...)
	cmd.Dir = n.dir
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting node %s: %w", n.name, err)
	}
	// A process started while counting counts from zero (base 0).
	inc := &incarnation{cmd: cmd, exited: make(chan struct{})}
	go func() {
		inc.err = cmd.Wait()
		logf.Close()
		n.mu.Lock()
		if n.counting {
			n.cpu += rusageCPU(cmd.ProcessState) - inc.base
		}
		n.mu.Unlock()
		close(inc.exited)
	}()
	n.mu.Lock()
	n.cur = inc
	n.starts++
	n.mu.Unlock()
	return n.waitReady(ctx, inc, within)
}

// waitReady polls /readyz until it answers 200, the process exits, or the
// deadline passes.
func (n *node) waitReady(ctx context.Context, inc *incarnation, within time.Duration) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		if n.api.ready(ctx) {
			return nil
		}
		select {
		case <-inc.exited:
			return fmt.Errorf("node %s exited before it was ready: %v\n%s", n.name, inc.err, n.logTail(30))
		case <-deadline.C:
			return fmt.Errorf("node %s not ready within %v\n%s", n.name, within, n.logTail(30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // polling another process
		}
	}
}

func (n *node) current() *incarnation {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cur
}

// signal sends sig to the current process and waits until it has exited.
// It returns the process's exit error (nil for exit 0).
func (n *node) signal(sig syscall.Signal, within time.Duration) error {
	inc := n.current()
	if inc == nil {
		return nil
	}
	select {
	case <-inc.exited:
		return inc.err
	default:
	}
	if err := inc.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-inc.exited:
		return inc.err
	case <-time.After(within):
		inc.cmd.Process.Kill()
		<-inc.exited
		return fmt.Errorf("node %s still running %v after %v; killed", n.name, within, sig)
	}
}

// kill SIGKILLs the current process (if any) and reaps it.
func (n *node) kill() {
	if inc := n.current(); inc != nil {
		inc.cmd.Process.Kill()
		<-inc.exited
	}
}

// startCPU starts counting the node's CPU time from now.
func (n *node) startCPU() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.counting, n.cpu = true, 0
	if n.cur != nil {
		select {
		case <-n.cur.exited:
		default:
			n.cur.base = procCPU(n.cur.cmd.Process.Pid)
		}
	}
}

// stopCPU ends counting and returns the CPU seconds the node's processes
// used since startCPU: the whole of every process that ran in between,
// less what the first one had used before.
func (n *node) stopCPU() float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.counting = false
	total := n.cpu
	if n.cur != nil {
		select {
		case <-n.cur.exited: // counted by its reaper
		default:
			total += procCPU(n.cur.cmd.Process.Pid) - n.cur.base
		}
	}
	return total
}

// procCPU is utime+stime of a running process from /proc/PID/stat, in
// seconds; 0 if it cannot be read.
func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s, err := parseStatCPU(b)
	if err != nil {
		return 0
	}
	return s
}

// parseStatCPU reads fields 14 (utime) and 15 (stime) of a /proc/PID/stat
// line. The command name (field 2) is in parentheses and may hold spaces
// and parentheses itself, so fields are counted from the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no ')' in /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field k is f[k-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat has %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseUint(f[14-3], 10, 64)
	st, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks, nil
}

// rusageCPU is user+system time of a process that has exited.
func rusageCPU(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

// logTail is the last n lines of the node's log file.
func (n *node) logTail(lines int) string {
	b, _ := os.ReadFile(n.logPath())
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return fmt.Sprintf("--- last lines of %s:\n%s", n.logPath(), strings.Join(all, "\n"))
}

// freePorts returns n distinct loopback ports that were free a moment ago,
// for TCP and (if udp) also for UDP. All are held open until all are
// chosen, so no two are the same.
func freePorts(n int, udp bool) ([]int, error) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { l.Close() })
		port := l.Addr().(*net.TCPAddr).Port
		if udp {
			u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue // taken for UDP: try another
			}
			closers = append(closers, func() { u.Close() })
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// lastLine is the last non-empty line of a file.
func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
