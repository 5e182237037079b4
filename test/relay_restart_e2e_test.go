package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/probe"
)

// TestRelayRestartRoutesComeBack is issue 9 item 1 with real processes:
// X ← Y ← Z over TCP (Y dials X, Z dials Y). Y stops — SIGTERM, then
// SIGKILL — and X loses its route to Z; meanwhile `qpc trace Z` and `qpc
// send Z` on X agree (no route now, the message waits in the outbox:
// "queued"). Y starts again on the same data dir and ports, and X has a
// route to Z again within seconds — not after the next periodic announce
// (10 minutes) — and the queued message reaches Z's inbox, from its first
// transmission: X retransmits only after an hour here, so a copy lost on
// the way (Y forwarding to Z before Z has linked again) fails the test.
// (actors/node TestRoutesComeBackAfterRelayRestart and
// TestRestartedRelayHoldsForNeighbourNotBackYet are the in-process twins.)
func TestRelayRestartRoutesComeBack(t *testing.T) {
	api := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	apiX, apiY, apiZ := api(), api(), api()
	tcpX := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	tcpY := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	tcpZ := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	// Z re-dials Y within half a second of Y's return, so what is measured
	// is how fast routes come back over the links, not Z's dial back-off
	// (30 s at most by default, whatever happens to routes).
	conf := filepath.Join(t.TempDir(), "fast-redial.toml")
	confX := filepath.Join(t.TempDir(), "no-retransmit.toml")
	const fast = "[transports]\ndial_backoff_max = '500ms'\n"
	for f, body := range map[string]string{conf: fast, confX: fast + "[outbox]\nretry_base = '1h'\nretry_max = '1h'\n"} {
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dirY := t.TempDir()
	argsY := []string{"--config", conf, "--api", apiY, "--listen", tcpY, "--peer", tcpX}
	x := startNode(t, t.TempDir(), "--config", confX, "--api", apiX, "--listen", tcpX)
	y := startNode(t, dirY, argsY...)
	z := startNode(t, t.TempDir(), "--config", conf, "--api", apiZ, "--listen", tcpZ, "--peer", tcpY)
	for api, p := range map[string]*proc{apiX: x, apiY: y, apiZ: z} {
		waitHealthy(t, api, p)
	}
	addrZ := nodeAddress(t, apiZ)
	waitRouteTo(t, apiX, addrZ)

	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := y.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if err := y.wait(t, 6*time.Second); sig == syscall.SIGTERM && err != nil {
			t.Fatalf("Y after SIGTERM: %v\n%s", err, y.log)
		}
		waitNoRouteTo(t, apiX, addrZ, 15*time.Second)

		// No route now: trace says so, and send queues, both naming the
		// same situation (before issue 9, trace said "unknown destination").
		_, errOut, code := qpc(t, "trace", addrZ, "--timeout", "2s", "--api", apiX)
		if code == 0 || !strings.Contains(errOut, "no route") || !strings.Contains(errOut, "wait in the outbox") || strings.Contains(errOut, "unknown destination") {
			t.Fatalf("%v: trace Z without a route: exit %d, %q", sig, code, errOut)
		}
		text := fmt.Sprintf("while Y was down (%d)", i)
		out, errOut, code := qpc(t, "send", addrZ, text, "--api", apiX)
		if code != 0 || !strings.HasPrefix(out, "queued ") {
			t.Fatalf("%v: send Z without a route: exit %d, %q %q", sig, code, out, errOut)
		}

		start := time.Now()
		y = startNode(t, dirY, argsY...)
		waitHealthy(t, apiY, y)
		// Seconds, not the re-announce interval: Y hands each neighbour
		// the other's announce as the links come up.
		waitRouteToWithin(t, apiX, addrZ, 10*time.Second)
		t.Logf("%v: X has its route to Z %s after Y was started again", sig, time.Since(start).Round(time.Millisecond))
		waitInbox(t, apiZ, text, 20*time.Second)
	}
	for _, p := range []*proc{x, y, z} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(t, 6*time.Second); err != nil {
			t.Fatalf("exit: %v\n%s", err, p.log)
		}
	}
}

// nodeAddress asks a node for its address.
func nodeAddress(t *testing.T, api string) string {
	t.Helper()
	out, errOut, code := qpc(t, "status", "--json", "--api", api)
	var st struct{ Address string }
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Address) != 32 {
		t.Fatalf("status %s: %d %s %s", api, code, out, errOut)
	}
	return st.Address
}

// routesTo reports whether the node at api has a route to addr.
func routesTo(t *testing.T, api, addr string) (bool, string) {
	t.Helper()
	out, _, code := qpc(t, "routes", "--json", "--api", api)
	return code == 0 && strings.Contains(out, addr), out
}

// waitRouteToWithin polls a node's routes until it has one to addr, or
// fails after within.
func waitRouteToWithin(t *testing.T, api, addr string, within time.Duration) {
	t.Helper()
	var out string
	if !probe.WaitEvery(within, pollEvery, func() bool {
		var ok bool
		ok, out = routesTo(t, api, addr)
		return ok
	}) {
		t.Fatalf("no route to %s at %s within %v:\n%s", addr, api, within, out)
	}
}

// waitNoRouteTo polls a node's routes until the one to addr is gone.
func waitNoRouteTo(t *testing.T, api, addr string, within time.Duration) {
	t.Helper()
	var out string
	if !probe.WaitEvery(within, pollEvery, func() bool {
		var ok bool
		ok, out = routesTo(t, api, addr)
		return !ok
	}) {
		t.Fatalf("route to %s at %s still there after %v:\n%s", addr, api, within, out)
	}
}

// waitInbox polls a node's inbox until a message with text is in it.
func waitInbox(t *testing.T, api, text string, within time.Duration) {
	t.Helper()
	want, _ := json.Marshal(text)
	var out string
	if !probe.WaitEvery(within, pollEvery, func() bool {
		var code int
		out, _, code = qpc(t, "inbox", "--json", "--api", api)
		return code == 0 && strings.Contains(out, `"text":`+string(want))
	}) {
		t.Fatalf("%q not in the inbox at %s within %v:\n%s", text, api, within, out)
	}
}
