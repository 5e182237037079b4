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

type statusLinks struct {
	Address string `json:"address"`
	Links   []struct {
		Peer      string `json:"peer"`
		Transport string `json:"transport"`
		Direction string `json:"direction"`
	} `json:"links"`
}

// waitPeer polls `qpc status --json` on api until it lists a link to peer
// over transport.
func waitPeer(t *testing.T, api, peer, transport string, within time.Duration) statusLinks {
	t.Helper()
	var st statusLinks
	if !probe.WaitEvery(within, pollEvery, func() bool {
		st = statusLinks{}
		out, _, code := qpc(t, "status", "--json", "--api", api)
		if code == 0 && json.Unmarshal([]byte(out), &st) == nil {
			for _, l := range st.Links {
				if (peer == "" || l.Peer == peer) && l.Transport == transport {
					return true
				}
			}
		}
		return false
	}) {
		t.Fatalf("no %s link to %q on %s within %v: %+v", transport, peer, api, within, st)
	}
	return st
}

// TestTwoProcessesConnect is acceptances 1 and 2 of the transports issue:
// two `qpc node` processes on loopback connect over TCP and, separately,
// over QUIC, each listing the other with the transport name; after one is
// killed and restarted the other re-dials on its own.
func TestTwoProcessesConnect(t *testing.T) {
	for _, scheme := range []string{"tcp", "quic"} {
		t.Run(scheme, func(t *testing.T) {
			dirA, dirB := t.TempDir(), t.TempDir()
			apiA := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			apiB := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			listenA := fmt.Sprintf("%s://127.0.0.1:%d", scheme, freePort(t))
			argsA := []string{"--api", apiA, "--listen", listenA}
			a := startNode(t, dirA, argsA...)
			waitHealthy(t, apiA, a)
			b := startNode(t, dirB, "--api", apiB, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)),
				"--peer", listenA, "--log-level", "debug")
			waitHealthy(t, apiB, b)

			stB := waitPeer(t, apiB, "", scheme, 20*time.Second)
			stA := waitPeer(t, apiA, stB.Address, scheme, 20*time.Second)
			if stB.Links[0].Peer != stA.Address || stB.Links[0].Direction != "outbound" {
				t.Fatalf("b's link %+v, want outbound to %s", stB.Links[0], stA.Address)
			}

			// Kill a hard, then bring it back on the same port and data dir.
			a.cmd.Process.Signal(syscall.SIGKILL)
			a.wait(t, 5*time.Second)
			// TCP sees the reset at once; QUIC after its 15 s idle timeout.
			b.log.waitFor(t, "link down", 30*time.Second)
			a2 := startNode(t, dirA, argsA...)
			waitHealthy(t, apiA, a2)
			// The default back-off is at most 30 s; b re-dials within it.
			st := waitPeer(t, apiB, stA.Address, scheme, 35*time.Second)
			if strings.Count(b.log.String(), "link up") < 2 {
				t.Fatalf("b did not log a second link up:\n%s\n%+v", b.log, st)
			}
			for _, p := range []*proc{a2, b} {
				p.cmd.Process.Signal(syscall.SIGTERM)
				if err := p.wait(t, 5*time.Second); err != nil {
					t.Fatalf("exit: %v\n%s", err, p.log)
				}
			}
		})
	}
}
