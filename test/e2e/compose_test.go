package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/probe"
)

// composeCmd is how this machine runs compose files: `docker compose`
// (the v2 plugin) or docker-compose (v1, 1.27 and later read the Compose
// Specification), or nil.
func composeCmd() []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	return nil
}

// containerNode is a node in a container; its API client is made again
// after a restart (a new process, a new namespace path).
func containerNode(t testing.TB, name string) *node {
	t.Helper()
	return &node{name: name, c: nsClient("/proc/" + inspect(t, name, "{{.State.Pid}}") + "/ns/net")}
}

// traffic sends batches from one node to another until stopped, into a
// ledger; a batch the node could not take (its API answered an error, or
// not at all) is not counted as accepted.
type traffic struct {
	l    *ledger
	stop chan struct{}
	done chan struct{}
	errs int
}

func startTraffic(t *testing.T, from *node, to, prefix string, batch int, every time.Duration) *traffic {
	tr := &traffic{l: newLedger(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if err := tr.l.send(t, from, to, prefix, batch); err != nil {
				tr.errs++
			}
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(tr.halt)
	return tr
}

func (tr *traffic) halt() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
}

func (tr *traffic) accepted() int {
	tr.l.mu.Lock()
	defer tr.l.mu.Unlock()
	return len(tr.l.ids)
}

// waitMore waits until the traffic has n more messages accepted: "a while
// of traffic", measured in messages, not in time.
func (tr *traffic) waitMore(t testing.TB, n int, what string) {
	t.Helper()
	want := tr.accepted() + n
	if !probe.WaitEvery(30*time.Second, 20*time.Millisecond, func() bool { return tr.accepted() >= want }) {
		t.Fatalf("%s: fewer than %d more messages accepted within 30 s", what, n)
	}
}

// TestComposeMesh: deploy/compose.yaml (three relays on two networks, two
// edge nodes, each configured by the mounted qpc.toml and its
// environment) comes up healthy; with traffic both ways between the edge
// nodes, relay1 is stopped (docker stop: exit 0) and started, relay2 is
// killed (docker kill) and started, relay3 is disconnected from the south
// network and connected again; afterwards every message either edge node
// accepted is delivered exactly once.
func TestComposeMesh(t *testing.T) {
	tag := image(t)
	compose := composeCmd()
	start := time.Now()
	project := "qpce2e" + suffix()
	vars := map[string]string{"RELAY_IMAGE": tag, "OUTBOX_RETRY_MAX": "3s"}
	if compose == nil || os.Getenv("QPCTEST_COMPOSE_BY_HAND") == "1" {
		t.Log("no 'docker compose' or docker-compose here (or QPCTEST_COMPOSE_BY_HAND=1): deploy/compose.yaml brought up with docker network, volume and run directly")
		composeByHand(t, project, vars)
	} else {
		args := func(more ...string) []string {
			return append(append(compose[1:len(compose):len(compose)], "-p", project, "-f", "../../deploy/compose.yaml"), more...)
		}
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := exec.Command(compose[0], args("logs", "--tail", "15")...).CombinedOutput()
				t.Logf("logs:\n%s", out)
			}
			exec.Command(compose[0], args("down", "-v", "-t", "5")...).Run()
		})
		cmd := exec.Command(compose[0], args("up", "-d")...)
		for k, v := range vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(os.Environ(), cmd.Env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s up -d: %v\n%s", strings.Join(compose, " "), err, out)
		}
	}
	// Compose v1 names containers project_service_1, v2 project-service-1.
	cname := func(service string) string {
		return sh(t, "docker", "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+project, "--filter", "label=com.docker.compose.service="+service)
	}
	names := map[string]string{}
	for _, s := range []string{"relay1", "relay2", "relay3", "edge-a", "edge-b"} {
		names[s] = cname(s)
	}
	for _, id := range names {
		waitHealthy(t, id, 60*time.Second)
	}
	t.Logf("compose mesh up and healthy: %s", time.Since(start).Round(time.Millisecond))
	a, b := containerNode(t, names["edge-a"]), containerNode(t, names["edge-b"])
	a.name, b.name = "edge-a", "edge-b"
	addrA, addrB := a.address(t), b.address(t)
	a.waitRoute(t, addrB, 30*time.Second)
	b.waitRoute(t, addrA, 30*time.Second)

	ab := startTraffic(t, a, addrB, "ab", 5, 50*time.Millisecond)
	ba := startTraffic(t, b, addrA, "ba", 5, 50*time.Millisecond)
	ab.waitMore(t, 50, "before the chaos")

	phase := time.Now()
	sh(t, "docker", "stop", names["relay1"])
	if code := inspect(t, names["relay1"], "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("relay1 after docker stop: exit %s", code)
	}
	t.Logf("docker stop relay1: %s, exit 0", time.Since(phase).Round(time.Millisecond))
	ab.waitMore(t, 50, "relay1 stopped")
	sh(t, "docker", "start", names["relay1"])
	waitHealthy(t, names["relay1"], 30*time.Second)

	sh(t, "docker", "kill", names["relay2"])
	ab.waitMore(t, 50, "relay2 killed")
	sh(t, "docker", "start", names["relay2"])
	waitHealthy(t, names["relay2"], 30*time.Second)

	south := sh(t, "docker", "network", "ls", "-q", "--filter", "label=com.docker.compose.project="+project, "--filter", "label=com.docker.compose.network=south")
	sh(t, "docker", "network", "disconnect", south, names["relay3"])
	ab.waitMore(t, 50, "relay3 disconnected")
	sh(t, "docker", "network", "connect", "--alias", "relay3", south, names["relay3"])
	ab.waitMore(t, 50, "relay3 connected again")
	ab.halt()
	ba.halt()
	t.Logf("chaos done in %s; %d and %d batches refused by the senders' APIs", time.Since(phase).Round(time.Millisecond), ab.errs, ba.errs)

	var wg sync.WaitGroup
	for _, c := range []struct {
		tr       *traffic
		from, to *node
		prefix   string
	}{{ab, a, b, "ab"}, {ba, b, a, "ba"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.tr.l.checkExactlyOnce(t, c.from, c.to, c.prefix, 120*time.Second)
		}()
	}
	wg.Wait()
	t.Logf("compose suite: %s", time.Since(start).Round(time.Millisecond))
}

// TestRelaySIGKILL20 is acceptance 4: sender S and receiver B linked only
// through relay R (one Docker network, one container each). B is down, so
// R holds S's messages for it; traffic keeps coming, and R is killed with
// SIGKILL 20 times, each at a random moment while it holds stored
// messages, and started again. Halfway B comes up for a moment (R hands
// it what it holds) and goes down again. At the end B comes up: every
// message S accepted is delivered exactly once.
func TestRelaySIGKILL20(t *testing.T) {
	tag := image(t)
	start := time.Now()
	net := "qpce2e" + suffix()
	sh(t, "docker", "network", "create", net)
	t.Cleanup(func() { exec.Command("docker", "network", "rm", net).Run() })
	r := container(t, "--network", net, "-e", "QPC_LOGGING_LEVEL=warn", tag)
	edge := []string{"--network", net, "-e", "QPC_TRANSPORTS_PEERS=tcp://" + r + ":7701", "-e", "QPC_TRANSPORTS_DIAL_BACKOFF_MAX=500ms",
		"-e", "QPC_OUTBOX_RETRY_BASE=2s", "-e", "QPC_OUTBOX_RETRY_MAX=3s", "-e", "QPC_LOGGING_LEVEL=warn", tag}
	s := container(t, edge...)
	b := container(t, edge...)
	for _, c := range []string{r, s, b} {
		waitHealthy(t, c, 60*time.Second)
	}
	sn, bn := containerNode(t, s), containerNode(t, b)
	sn.name, bn.name = "S", "B"
	addrB := bn.address(t)
	sn.waitRoute(t, addrB, 30*time.Second)
	sh(t, "docker", "stop", b)

	tr := startTraffic(t, sn, addrB, "k", 5, 100*time.Millisecond)
	held := make([]float64, 0, 20)
	for i := range 20 {
		rn := containerNode(t, r)
		rn.name = "R"
		var stored float64
		if !probe.WaitEvery(30*time.Second, 20*time.Millisecond, func() bool {
			stored = metricOr(rn, "qpc_mesh_stored")
			return stored > 0
		}) {
			t.Fatalf("kill %d: R holds nothing for B within 30 s", i+1)
		}
		// A random moment while it holds them: 0 to 300 ms on.
		<-time.After(time.Duration(rand.IntN(300)) * time.Millisecond)
		held = append(held, metricOr(rn, "qpc_mesh_stored"))
		sh(t, "docker", "kill", r)
		sh(t, "docker", "start", r)
		if i == 9 {
			// B up for a moment: R hands it what it holds; then down again.
			sh(t, "docker", "start", b)
			bn = containerNode(t, b)
			bn.name = "B"
			if !probe.WaitEvery(30*time.Second, 50*time.Millisecond, func() bool {
				in, err := inbox(t, bn)
				return err == nil && len(in) > 0
			}) {
				t.Fatal("B came up halfway and received nothing")
			}
			sh(t, "docker", "stop", b)
		}
	}
	tr.halt()
	t.Logf("20 SIGKILLs of R in %s, R holding %v messages at each; %d messages accepted by S, %d batches refused", time.Since(start).Round(time.Millisecond), held, tr.accepted(), tr.errs)
	sh(t, "docker", "start", b)
	bn = containerNode(t, b)
	bn.name = "B"
	tr.l.checkExactlyOnce(t, sn, bn, "k", 120*time.Second)
	t.Logf("SIGKILL suite: %s", time.Since(start).Round(time.Millisecond))
}

// metricOr is metric without failing: -1 while the node does not answer.
func metricOr(n *node, name string) (v float64) {
	ft := &fakeT{}
	defer func() {
		if recover() != nil || ft.failed {
			v = -1
		}
	}()
	return metric(ft, n, name)
}

// fakeT lets metric's Fatalf end a probe without ending the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Fatalf(string, ...any) { f.failed = true; panic(fmt.Errorf("metric")) }
func (f *fakeT) Logf(string, ...any)   {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
