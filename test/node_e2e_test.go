package test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNodeProcessLifecycle is acceptance 1–3 of the foundation: a node
// process serves its API, reports its address, shuts down through every
// phase on SIGTERM within 5 s with exit 0, and keeps its identity.
func TestNodeProcessLifecycle(t *testing.T) {
	dir := t.TempDir()
	api := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	listen := []string{
		"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)),
		"--listen", fmt.Sprintf("quic://127.0.0.1:%d", freePort(t)),
	}
	p := startNode(t, dir, append([]string{"--api", api}, listen...)...)
	waitHealthy(t, api, p)

	out, errOut, code := qpc(t, "status", "--json", "--api", api)
	if code != 0 {
		t.Fatalf("status: %d %s", code, errOut)
	}
	var st struct {
		Address string `json:"address"`
		Ready   bool   `json:"ready"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Address) != 32 {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "qpc-data", "identity.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi, err)
	}
	if out, _, code := qpc(t, "stats", "--api", api); code != 0 || !strings.Contains(out, "qpc_actors_running") {
		t.Fatalf("stats: %d\n%s", code, out)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, 5*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log)
	}
	logs := p.log.String()
	last := -1
	for _, phase := range []string{"Draining", "Persisting", "Cleanup", "Complete"} {
		i := strings.Index(logs, "phase="+phase)
		if i <= last {
			t.Fatalf("phase %s missing or out of order:\n%s", phase, logs)
		}
		last = i
	}
	if !strings.Contains(logs, "database closed") {
		t.Fatalf("database not closed:\n%s", logs)
	}

	p2 := startNode(t, dir, append([]string{"--api", api}, listen...)...)
	waitHealthy(t, api, p2)
	out, _, _ = qpc(t, "status", "--json", "--api", api)
	var st2 struct {
		Address string `json:"address"`
	}
	json.Unmarshal([]byte(out), &st2)
	if st2.Address != st.Address {
		t.Fatalf("second start address %s, want %s", st2.Address, st.Address)
	}
	p2.cmd.Process.Signal(syscall.SIGINT)
	if err := p2.wait(t, 5*time.Second); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
}

// TestNodeEmbeddedDefaults runs `qpc node` with no flags at all, as
// `make run` does: identity in ./qpc-data, admin API on 127.0.0.1:7780.
func TestNodeEmbeddedDefaults(t *testing.T) {
	// Every port the embedded defaults bind: the admin API and TCP on
	// 7780 and 7701, QUIC on 7702/udp.
	for _, addr := range []string{"127.0.0.1:7780", "127.0.0.1:7701"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("SKIP: %s/tcp is in use on this machine; cannot run the node on embedded defaults", addr)
		}
		l.Close()
	}
	if u, err := net.ListenPacket("udp", "127.0.0.1:7702"); err != nil {
		t.Skipf("SKIP: 127.0.0.1:7702/udp is in use on this machine; cannot run the node on embedded defaults")
	} else {
		u.Close()
	}
	dir := t.TempDir()
	p := startNode(t, dir)
	waitHealthy(t, "127.0.0.1:7780", p)
	resp, err := http.Get("http://127.0.0.1:7780/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("curl 127.0.0.1:7780/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	out, errOut, code := qpc(t, "status", "--json")
	if code != 0 || !strings.Contains(out, `"address"`) {
		t.Fatalf("qpc status --json against the default API: %d %s %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "qpc-data", "identity.pem")); err != nil {
		t.Fatalf("identity not in ./qpc-data: %v", err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 5*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.log)
	}
}

// TestNodeBadConfigExits2 is acceptance 3: bad values exit 2 naming the field.
func TestNodeBadConfigExits2(t *testing.T) {
	dir := t.TempDir()
	out, _, code := qpc(t, "genconf")
	if code != 0 {
		t.Fatal("genconf failed")
	}
	good := filepath.Join(dir, "good.toml")
	api := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := strings.Replace(out, "addr = '127.0.0.1:7780'", "addr = '"+api+"'", 1)
	cfg = strings.Replace(cfg, "data_dir = './qpc-data'", "data_dir = '"+filepath.Join(dir, "data")+"'", 1)
	cfg = strings.Replace(cfg, "tcp://127.0.0.1:7701", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), 1)
	cfg = strings.Replace(cfg, "quic://127.0.0.1:7702", fmt.Sprintf("quic://127.0.0.1:%d", freePort(t)), 1)
	os.WriteFile(good, []byte(cfg), 0o600)
	p := startNode(t, dir, "--config", good)
	waitHealthy(t, api, p)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 5*time.Second); err != nil {
		t.Fatalf("node from genconf: %v\n%s", err, p.log)
	}

	for name, c := range map[string]struct{ body, field string }{
		"negative interval": {strings.Replace(cfg, "interval = '10m0s'", "interval = '-10m'", 1), "announce.interval"},
		"unknown scheme":    {strings.Replace(cfg, "peers = []", "peers = ['carrier-pigeon://coop:1']", 1), "transports.peers[0]"},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".toml")
		os.WriteFile(f, []byte(c.body), 0o600)
		_, errOut, code := qpc(t, "node", "--config", f)
		if code != 2 || !strings.Contains(errOut, c.field) {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming %s", name, code, errOut, c.field)
		}
	}
}
