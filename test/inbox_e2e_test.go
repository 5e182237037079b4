package test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/probe"
)

// TestInboxFollowAcrossNodeRestart: SIGTERM to a node with `qpc inbox
// --follow` attached exits 0 in the usual time (the long poll ends when
// draining begins), and the follower waits for the node to come back and
// goes on from the last message it showed.
func TestInboxFollowAcrossNodeRestart(t *testing.T) {
	dirA, dirC := t.TempDir(), t.TempDir()
	apiA, apiC := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	listenC := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	argsC := []string{"--api", apiC, "--listen", listenC}
	c := startNode(t, dirC, argsC...)
	waitHealthy(t, apiC, c)
	a := startNode(t, dirA, "--api", apiA, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), "--peer", listenC)
	waitHealthy(t, apiA, a)
	out, _, _ := qpc(t, "status", "--json", "--api", apiC)
	i := strings.Index(out, `"address": "`)
	if i < 0 {
		t.Fatalf("status: %s", out)
	}
	addrC := out[i+12 : i+44]
	waitRouteTo(t, apiA, addrC)

	follow := startCmd(t, t.TempDir(), qpcBin, "inbox", "--follow", "--api", apiC)
	if o, e, code := qpc(t, "send", "--wait", "--timeout", "20s", addrC, "first", "--api", apiA); code != 0 {
		t.Fatalf("send first: %d %s %s", code, o, e)
	}
	follow.log.waitFor(t, ": first", 10*time.Second)

	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 6*time.Second); err != nil {
		t.Fatalf("C with a follower attached: exit %v after %s\n%s", err, time.Since(start), c.log)
	}
	// In its usual time: the long poll ended when draining began, so the
	// API had nothing open to wait for until its deadline and cut.
	if took := time.Since(start); took > 3*time.Second || strings.Contains(c.log.String(), "still open at the shutdown deadline") {
		t.Fatalf("C with a follower attached took %s to exit 0:\n%s", took, c.log)
	}
	follow.log.waitFor(t, "went away", 10*time.Second)

	c2 := startNode(t, dirC, argsC...)
	waitHealthy(t, apiC, c2)
	waitRouteTo(t, apiA, addrC)
	if o, e, code := qpc(t, "send", "--wait", "--timeout", "30s", addrC, "second", "--api", apiA); code != 0 {
		t.Fatalf("send second: %d %s %s", code, o, e)
	}
	follow.log.waitFor(t, ": second", 20*time.Second)
	if n := strings.Count(follow.log.String(), ": first"); n != 1 {
		t.Fatalf("the follower showed the first message %d times:\n%s", n, follow.log)
	}
	// The operator empties the inbox: one message, then the rest.
	if out, e, code := qpc(t, "inbox", "--delete", "1", "--api", apiC); code != 0 || !strings.Contains(out, "deleted 1 message") {
		t.Fatalf("inbox --delete 1: %d %q %q", code, out, e)
	}
	if out, e, code := qpc(t, "inbox", "--clear", "--api", apiC); code != 0 || !strings.Contains(out, "deleted 1 message") {
		t.Fatalf("inbox --clear: %d %q %q", code, out, e)
	}
	if out, _, code := qpc(t, "inbox", "--api", apiC); code != 0 || !strings.Contains(out, "no messages") {
		t.Fatalf("inbox after clear: %d %q", code, out)
	}
}

// waitRouteTo polls a node's routes until it has one to addr.
func waitRouteTo(t *testing.T, api, addr string) {
	t.Helper()
	var out string
	if !probe.WaitEvery(30*time.Second, pollEvery, func() bool {
		out, _, _ = qpc(t, "routes", "--json", "--api", api)
		return strings.Contains(out, addr)
	}) {
		t.Fatalf("no route to %s at %s:\n%s", addr, api, out)
	}
}
