package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports/lora/rnode"
)

// radioOf is the one radio `qpc status --json` shows for the node at api.
func radioOf(t *testing.T, addr string) api.Radio {
	t.Helper()
	out, errOut, code := qpc(t, "status", "--json", "--api", addr)
	var st api.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Radios) != 1 {
		t.Fatalf("status %s: %d %s %s", addr, code, out, errOut)
	}
	return st.Radios[0]
}

// Two qpc processes on two emulated RNodes (ptys reached through fixed
// paths) sharing the air (issue 12 items 4 and 5 with the real binary):
// the default transmit power is the sub-band's limit; A's modem is
// unplugged and status and /readyz say so while the process runs on; it
// is plugged in again at the same path and a message from A is
// delivered to B over it, without a restart.
func TestLoRaModemUnpluggedProcess(t *testing.T) {
	dir := t.TempDir()
	pa, err := rnode.NewEmulatorPort(filepath.Join(dir, "rnode-a"), rnode.EmulatorConfig{})
	if err != nil {
		t.Skipf("SKIP: no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { pa.Close() })
	pb, err := rnode.NewEmulatorPort(filepath.Join(dir, "rnode-b"), rnode.EmulatorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })
	stop := make(chan struct{})
	defer close(stop)
	rnode.ShareAir(pa, pb, stop)

	apiA, apiB := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	a := startNode(t, t.TempDir(), "--api", apiA, "--listen", "lora+serial://"+pa.Path()+"?sf=7&freq=869525000")
	b := startNode(t, t.TempDir(), "--api", apiB, "--listen", "lora+serial://"+pb.Path()+"?sf=7&freq=869525000")
	waitHealthy(t, apiA, a)
	waitHealthy(t, apiB, b)
	addrB := nodeAddress(t, apiB)
	waitRouteToWithin(t, apiA, addrB, 30*time.Second)
	if r := radioOf(t, apiA); r.State != "up" || r.TxPower != 27 || r.TxPowerLimit != 27 || r.SubBand != "869.4-869.65" {
		t.Fatalf("A's radio: %+v, want up at the sub-band's 27 dBm", r)
	}
	if emu, _ := pa.Emulator(); emu.State().TxPower != 27 {
		t.Fatalf("A's modem was set to %d dBm, want 27", emu.State().TxPower)
	}

	if err := pa.Vanish(); err != nil {
		t.Fatal(err)
	}
	if !probe.WaitEvery(15*time.Second, pollEvery, func() bool { return radioOf(t, apiA).State == "down" }) {
		t.Fatalf("A's radio not shown down:\n%s", a.log)
	}
	resp, err := http.Get("http://" + apiA + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "lora radio "+pa.Path()+" down") {
		t.Errorf("/readyz with the modem away: %d %q", resp.StatusCode, body)
	}
	if out, _, _ := qpc(t, "status", "--api", apiA); !strings.Contains(out, pa.Path()+" down since") {
		t.Errorf("qpc status with the modem away:\n%s", out)
	}

	if _, err := pa.Return(); err != nil {
		t.Fatal(err)
	}
	if !probe.WaitEvery(30*time.Second, pollEvery, func() bool { r := radioOf(t, apiA); return r.State == "up" && r.Reopens == 1 }) {
		t.Fatalf("A's modem not re-opened:\n%s", a.log)
	}
	out, errOut, code := qpc(t, "send", addrB, "the modem is back", "--wait", "--api", apiA)
	if code != 0 || !strings.HasPrefix(out, "delivered ") {
		t.Fatalf("send --wait after the re-open: %d %q %q\nA:\n%s\nB:\n%s", code, out, errOut, a.log, b.log)
	}
}
