// Package e2e runs qpc across real network stacks: nodes in network
// namespaces joined by veth pairs with tc netem on a hop
// (netns_test.go), and the relay image in Docker containers on bridge
// networks (image_test.go, compose_test.go). A machine without root, ip
// netns, tc or Docker skips each suite with a line saying what is missing.
//
// The nodes' admin APIs stay on loopback, as in the image: the tests reach
// each one from inside its network namespace (nsClient), so nothing needs
// a token or a published port.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/probe"
)

// qpcBin is a static qpc (CGO_ENABLED=0, no race detector: the same
// binary goes into the image) built for this run; binDir holds it.
var qpcBin, binDir string

func TestMain(m *testing.M) {
	// A node refuses QPC_ variables it does not know and obeys those it
	// does: whatever the shell or CI set must not change what runs here.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "QPC_") {
			fmt.Fprintf(os.Stderr, "e2e: %s unset for the qpc processes of these tests\n", k)
			os.Unsetenv(k)
		}
	}
	dir, err := os.MkdirTemp("", "qpc-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	qpcBin = filepath.Join(dir, "qpc")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=e2e", "-o", qpcBin, "../../cmd/qpc")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building qpc:", err)
		os.Exit(1)
	}
	code := m.Run()
	removeImage()
	os.RemoveAll(dir)
	os.Exit(code)
}

func suffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sh runs a command and fails the test with its output if it fails.
func sh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// nsClient is an admin API client for a node whose API listens on
// 127.0.0.1:7780 inside the network namespace at nsPath (/run/netns/NAME,
// /proc/PID/ns/net): each connection's socket is made on an OS thread
// moved into that namespace and back, so the test talks to a loopback
// API it could not otherwise reach.
func nsClient(nsPath string) *api.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			c, err, back := dialIn(ctx, nsPath, network, addr)
			if back {
				runtime.UnlockOSThread()
			} // else the thread is still in the other namespace: it ends with this goroutine
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4}
	return &api.Client{Addr: "127.0.0.1:7780", HTTP: &http.Client{Transport: tr}}
}

// dialIn dials from the namespace at nsPath on the calling (locked)
// thread; back says whether the thread is in its own namespace again.
func dialIn(ctx context.Context, nsPath, network, addr string) (net.Conn, error, bool) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err, true
	}
	defer unix.Close(orig)
	target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err, true
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("setns %s: %w", nsPath, err), true
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	return c, err, unix.Setns(orig, unix.CLONE_NEWNET) == nil
}

// node is one qpc node the test talks to through its admin API.
type node struct {
	name string
	c    *api.Client
}

func (n *node) get(t testing.TB, path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.c.Get(ctx, path, v)
}

func (n *node) status(t testing.TB) (api.Status, error) {
	var st api.Status
	err := n.get(t, "/v1/status", &st)
	return st, err
}

// waitReady polls /readyz until it answers 200.
func (n *node) waitReady(t testing.TB, within time.Duration) {
	t.Helper()
	var err error
	if !probe.WaitEvery(within, 50*time.Millisecond, func() bool {
		err = n.get(t, "/readyz", nil)
		return err == nil
	}) {
		t.Fatalf("%s not ready within %v: %v", n.name, within, err)
	}
}

func (n *node) address(t testing.TB) string {
	t.Helper()
	st, err := n.status(t)
	if err != nil {
		t.Fatalf("%s status: %v", n.name, err)
	}
	return st.Address
}

// waitRoute polls the node's routes until it has one to addr.
func (n *node) waitRoute(t testing.TB, addr string, within time.Duration) {
	t.Helper()
	var routes struct{ Routes []api.Route }
	if !probe.WaitEvery(within, 50*time.Millisecond, func() bool {
		routes.Routes = nil
		if n.get(t, "/v1/routes", &routes) != nil {
			return false
		}
		for _, r := range routes.Routes {
			if r.Address == addr {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("%s: no route to %s within %v: %+v", n.name, addr, within, routes)
	}
}

// ledger is what a sender's node accepted: every id it answered with, and
// the text sent under it. The receiver's inbox must hold each text
// exactly once, and the sender's message state of each id must become
// delivered.
type ledger struct {
	mu   sync.Mutex
	ids  map[string]string // id → text
	sent int               // texts offered, accepted or not
}

func newLedger() *ledger { return &ledger{ids: map[string]string{}} }

// send offers texts to the node in one batch (POST /v1/send with
// messages) and records the accepted ones. A refused message (an error
// answer, outbox_full) is not in the ledger; a failed request is an
// error: what the node accepted before it is unknown, so the test cannot
// go on counting.
func (l *ledger) send(t testing.TB, from *node, to, prefix string, n int) error {
	t.Helper()
	req := api.SendRequest{}
	texts := make([]string, n)
	l.mu.Lock()
	for i := range texts {
		texts[i] = fmt.Sprintf("%s-%d", prefix, l.sent)
		l.sent++
		req.Messages = append(req.Messages, api.SendRequest{To: to, Text: texts[i]})
	}
	l.mu.Unlock()
	var res api.SendBatchResponse
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.c.Post(ctx, "/v1/send", req, &res); err != nil {
		return err
	}
	if len(res.Results) != n {
		t.Fatalf("send: %d results for %d messages", len(res.Results), n)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range res.Results {
		if r.Error == nil && r.ID != "" {
			l.ids[r.ID] = texts[i]
		}
	}
	return nil
}

// inbox reads a node's whole inbox.
func inbox(t testing.TB, n *node) ([]api.InboxEntry, error) {
	var all []api.InboxEntry
	var after uint64
	for {
		var res api.InboxResponse
		if err := n.get(t, fmt.Sprintf("/v1/inbox?after=%d", after), &res); err != nil {
			return nil, err
		}
		if len(res.Messages) == 0 {
			return all, nil
		}
		all = append(all, res.Messages...)
		after = res.Last
		if res.Last == 0 {
			return all, nil
		}
	}
}

// checkExactlyOnce waits until every id in the ledger is delivered at the
// sender and its text is in the receiver's inbox, then checks that no
// text is there twice and nothing is there that was not accepted.
func (l *ledger) checkExactlyOnce(t testing.TB, from, to *node, prefix string, within time.Duration) {
	t.Helper()
	l.mu.Lock()
	want := make(map[string]string, len(l.ids))
	for id, text := range l.ids {
		want[id] = text
	}
	l.mu.Unlock()
	if len(want) == 0 {
		t.Fatal("the sender accepted no message")
	}
	pending := map[string]bool{}
	for id := range want {
		pending[id] = true
	}
	var why string
	if !probe.WaitEvery(within, 200*time.Millisecond, func() bool {
		for id := range pending {
			var m api.Message
			if err := from.get(t, "/v1/messages/"+id, &m); err != nil {
				why = fmt.Sprintf("message %s: %v", id, err)
				return false
			}
			switch m.State {
			case "delivered":
				delete(pending, id)
			case "failed":
				t.Fatalf("message %s (%s) failed: %s", id, want[id], m.Reason)
			default:
				why = fmt.Sprintf("%d of %d not delivered yet, e.g. %s %s after %d attempts", len(pending), len(want), id, m.State, m.Attempts)
				return false
			}
		}
		return true
	}) {
		t.Fatalf("not every accepted message was delivered within %v: %s", within, why)
	}
	var entries []api.InboxEntry
	counts := map[string]int{}
	if !probe.WaitEvery(within, 200*time.Millisecond, func() bool {
		var err error
		if entries, err = inbox(t, to); err != nil {
			return false
		}
		clear(counts)
		for _, e := range entries {
			if strings.HasPrefix(e.Text, prefix+"-") {
				counts[e.Text]++
			}
		}
		for _, text := range want {
			if counts[text] == 0 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("delivered at the sender but not all in %s's inbox: %d of %d", to.name, len(counts), len(want))
	}
	texts := map[string]bool{}
	for _, text := range want {
		texts[text] = true
	}
	for text, n := range counts {
		if n != 1 {
			t.Errorf("%q is in %s's inbox %d times", text, to.name, n)
		}
		if !texts[text] {
			t.Errorf("%q is in %s's inbox but the sender did not accept it", text, to.name)
		}
	}
	t.Logf("%s → %s: %d messages accepted (of %d offered), each delivered at the sender and in the inbox exactly once", from.name, to.name, len(want), l.sent)
}
