package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// qpcBin is the qpc binary built for this test run.
var qpcBin string

func TestMain(m *testing.M) {
	// The qpc processes these tests start inherit this environment, and a
	// node refuses QPC_ variables it does not know (and obeys those it
	// does): whatever the shell or CI set must not change what a test runs.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "QPC_") {
			fmt.Fprintf(os.Stderr, "test: %s unset for the qpc processes of these tests\n", k)
			os.Unsetenv(k)
		}
	}
	dir, err := os.MkdirTemp("", "qpc-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qpcBin = filepath.Join(dir, "qpc")
	args := []string{"build", "-o", qpcBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/qpc")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building qpc:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback TCP port that was free a moment ago.
// pollEvery is how often a test asks another process again (a probe
// that starts a qpc process each time).
const pollEvery = 50 * time.Millisecond

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lineLog collects a process's output and lets a test wait for a line.
type lineLog struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

func newLineLog(r io.Reader) *lineLog {
	l := &lineLog{added: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitFor blocks until a line contains s, or the deadline passes.
func (l *lineLog) waitFor(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		if strings.Contains(l.String(), s) {
			return
		}
		select {
		case <-l.added:
		case <-deadline:
			t.Fatalf("no log line with %q within %v:\n%s", s, d, l)
		}
	}
}

// proc is a running `qpc node`.
type proc struct {
	cmd  *exec.Cmd
	log  *lineLog
	exit chan struct{} // closed when the process has exited
	err  error         // its exit error, valid after exit is closed
}

// wait returns the exit error, or fails the test after d.
func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.exit:
		return p.err
	case <-time.After(d):
		t.Fatalf("process still running after %v:\n%s", d, p.log)
		return nil
	}
}

func startNode(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	return startCmd(t, dir, append([]string{qpcBin, "node"}, args...)...)
}

// startCmd runs a command in dir, collecting its output.
func startCmd(t *testing.T, dir string, argv ...string) *proc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: newLineLog(pr), exit: make(chan struct{})}
	go func() { p.err = cmd.Wait(); pw.Close(); close(p.exit) }()
	t.Cleanup(func() {
		select {
		case <-p.exit:
		default:
			cmd.Process.Kill()
			<-p.exit
		}
	})
	return p
}

// waitHealthy probes /readyz until it answers 200: the node has started
// every actor (Start returned), so a signal now means a clean shutdown.
func waitHealthy(t *testing.T, api string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.exit:
			t.Fatalf("node exited: %v\n%s", p.err, p.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("node at %s never became healthy:\n%s", api, p.log)
}

// qpc runs a qpc client command and returns stdout, stderr and exit code.
func qpc(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qpcBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}
