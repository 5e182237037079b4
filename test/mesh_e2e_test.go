package test

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/probe"
)

// TestThreeProcessLine is acceptance 1 of the mesh issue with the real
// binary: A – B – C as three processes (A–B over TCP, B–C over QUIC; A and
// C not connected). `qpc send C hello` on A shows up in `qpc inbox` on C,
// and `qpc trace C` on A shows two hops. (That B sees only ciphertext is
// checked in-process, by actors/node TestMessageCrossesRelaySealed.)
func TestThreeProcessLine(t *testing.T) {
	api := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	apiA, apiB, apiC := api(), api(), api()
	tcpA := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	quicB := fmt.Sprintf("quic://127.0.0.1:%d", freePort(t))
	a := startNode(t, t.TempDir(), "--api", apiA, "--listen", tcpA)
	b := startNode(t, t.TempDir(), "--api", apiB, "--listen", quicB, "--peer", tcpA)
	c := startNode(t, t.TempDir(), "--api", apiC, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), "--peer", quicB)
	for api, p := range map[string]*proc{apiA: a, apiB: b, apiC: c} {
		waitHealthy(t, api, p)
	}
	addr := func(api string) string {
		out, _, code := qpc(t, "status", "--json", "--api", api)
		var st struct{ Address string }
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("status %s: %s", api, out)
		}
		return st.Address
	}
	addrB, addrC := addr(apiB), addr(apiC)

	// A learns C's route (through B) from the announces.
	var routes string
	if !probe.WaitEvery(20*time.Second, pollEvery, func() bool {
		routes, _, _ = qpc(t, "routes", "--json", "--api", apiA)
		return strings.Contains(routes, addrC)
	}) {
		t.Fatalf("A has no route to C:\n%s\nA:\n%s", routes, a.log)
	}
	// --wait returns once C's receipt is back: delivered, exit 0.
	out, errOut, code := qpc(t, "send", addrC, "hello", "--wait", "--api", apiA)
	if code != 0 || !strings.HasPrefix(out, "delivered ") {
		t.Fatalf("send --wait: %d %q %q", code, out, errOut)
	}
	if out, _, code := qpc(t, "outbox", "--api", apiA); code != 0 || !strings.Contains(out, "outbox empty") {
		t.Fatalf("outbox after delivery: %d %q", code, out)
	}
	// C's inbox: wait for the message with a long poll.
	probe.WaitEvery(5*time.Second, pollEvery, func() bool {
		out, errOut, code = qpc(t, "inbox", "--json", "--api", apiC)
		return code != 0 || strings.Contains(out, `"hello"`)
	})
	if code != 0 || !strings.Contains(out, `"text":"hello"`) {
		for _, api := range []string{apiA, apiB, apiC} {
			st, _, _ := qpc(t, "stats", "--api", api)
			t.Logf("stats of %s:\n%s", api, st)
		}
		t.Fatalf("C's inbox: %d %q %q", code, out, errOut)
	}

	out, errOut, code = qpc(t, "trace", addrC, "--json", "--api", apiA)
	if code != 0 {
		t.Fatalf("trace: %d %s %s", code, out, errOut)
	}
	var tr struct {
		Reached bool `json:"reached"`
		Hops    []struct {
			Hop     int     `json:"hop"`
			Address string  `json:"address"`
			RTT     float64 `json:"rtt_ms"`
		} `json:"hops"`
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatal(err)
	}
	if !tr.Reached || len(tr.Hops) != 2 || tr.Hops[0].Address != addrB || tr.Hops[1].Address != addrC || tr.Hops[1].RTT <= 0 {
		t.Fatalf("trace: %+v", tr)
	}
	out, _, _ = qpc(t, "trace", addrC, "--api", apiA)
	t.Logf("qpc trace C on A:\n%s", out)

	for _, p := range []*proc{a, b, c} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(t, 5*time.Second); err != nil {
			t.Fatalf("exit: %v\n%s", err, p.log)
		}
	}
}
