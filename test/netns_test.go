package test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netnsAvailable says why network-namespace tests cannot run, or "".
func netnsAvailable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no 'ip' command (Debian package iproute2)"
	}
	name := "qpcprobe" + suffix()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "cannot create a network namespace: " + strings.TrimSpace(string(out))
	}
	exec.Command("ip", "netns", "del", name).Run()
	return ""
}

func suffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// lan is two hosts, a and b, in their own network namespaces, joined by a
// bridge in a third: a LAN that exists only inside this test.
type lan struct {
	t      *testing.T
	ns     [2]string
	addr   [2]string
	bridge string
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	if why := netnsAvailable(); why != "" {
		t.Skipf("SKIP: network namespaces unavailable (%s); actors/node covers discovery on loopback multicast", why)
	}
	s := suffix()
	l := &lan{t: t, ns: [2]string{"qpca-" + s, "qpcb-" + s}, addr: [2]string{"10.213.7.1", "10.213.7.2"}, bridge: "qpcbr-" + s}
	t.Cleanup(func() {
		for _, ns := range append(l.ns[:], l.bridge) {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	run(t, "ip", "netns", "add", l.bridge)
	run(t, "ip", "-n", l.bridge, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", l.bridge, "link", "set", "br0", "up")
	for i, ns := range l.ns {
		host, port := "vh"+s+string(rune('a'+i)), "vp"+s+string(rune('a'+i))
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", port)
		run(t, "ip", "link", "set", host, "netns", ns)
		run(t, "ip", "link", "set", port, "netns", l.bridge)
		run(t, "ip", "-n", l.bridge, "link", "set", port, "master", "br0", "up")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", ns, "addr", "add", l.addr[i]+"/24", "dev", host)
		run(t, "ip", "-n", ns, "link", "set", host, "up")
		run(t, "ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", host)
	}
	return l
}

// TestDiscoveryAcrossNamespaces is acceptance 5 of the transports issue:
// two nodes on one LAN, started with no --peer, find and connect to each
// other through signed multicast beacons.
func TestDiscoveryAcrossNamespaces(t *testing.T) {
	l := newLAN(t)
	var procs [2]*proc
	for i, ns := range l.ns {
		dir := t.TempDir()
		procs[i] = startNodeIn(t, ns, dir,
			"--data-dir", filepath.Join(dir, "data"),
			"--listen", "tcp://"+l.addr[i]+":7701",
			"--listen", "quic://"+l.addr[i]+":7702",
			"--discovery")
	}
	for _, p := range procs {
		p.log.waitFor(t, "node started", 20*time.Second)
	}
	for _, p := range procs {
		p.log.waitFor(t, "link up", 30*time.Second)
	}
	var addrs [2]string
	var links [2][]struct {
		Peer      string `json:"peer"`
		Transport string `json:"transport"`
	}
	for i, ns := range l.ns {
		out, err := exec.Command("ip", "netns", "exec", ns, qpcBin, "status", "--json").Output()
		if err != nil {
			t.Fatalf("status in %s: %v", ns, err)
		}
		var st struct {
			Address string `json:"address"`
			Links   []struct {
				Peer      string `json:"peer"`
				Transport string `json:"transport"`
			} `json:"links"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatal(err)
		}
		addrs[i], links[i] = st.Address, st.Links
	}
	for i := range 2 {
		if len(links[i]) != 1 || links[i][0].Peer != addrs[1-i] {
			t.Fatalf("node %d links = %+v, want one link to %s", i, links[i], addrs[1-i])
		}
	}
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(t, 10*time.Second); err != nil {
			t.Fatalf("exit: %v\n%s", err, p.log)
		}
	}
}

// startNodeIn runs `qpc node` inside a network namespace.
func startNodeIn(t *testing.T, ns, dir string, args ...string) *proc {
	t.Helper()
	return startCmd(t, dir, append([]string{"ip", "netns", "exec", ns, qpcBin, "node"}, args...)...)
}
