package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/probe"
)

// dockerAvailable says why the container tests cannot run, or "".
func dockerAvailable() string {
	if _, err := exec.LookPath("docker"); err != nil {
		return "no docker command"
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return "no Docker engine answering: " + strings.TrimSpace(string(out))
	}
	if os.Geteuid() != 0 {
		return "not root: the tests reach each container's loopback API by entering its network namespace (setns)"
	}
	return ""
}

var (
	imageOnce sync.Once
	imageTag  string
	imageErr  error
	imageTook time.Duration
)

// image builds deploy/Dockerfile once per run, as make image does (the
// static binary of TestMain and an empty data/ in a context directory,
// docker build --network none), under a tag of its own; TestMain removes
// it at the end.
func image(t *testing.T) string {
	t.Helper()
	if why := dockerAvailable(); why != "" {
		t.Skipf("SKIP: container tests need Docker (%s)", why)
	}
	imageOnce.Do(func() {
		start := time.Now()
		ctx := filepath.Join(binDir, "image")
		if imageErr = os.MkdirAll(filepath.Join(ctx, "data"), 0o755); imageErr != nil {
			return
		}
		if imageErr = os.Link(qpcBin, filepath.Join(ctx, "qpc")); imageErr != nil {
			return
		}
		tag := "qpc-e2e-" + suffix() + ":test"
		out, err := exec.Command("docker", "build", "--network", "none", "-q", "-t", tag, "-f", "../../deploy/Dockerfile", ctx).CombinedOutput()
		if err != nil {
			imageErr = fmt.Errorf("docker build: %v\n%s", err, out)
			return
		}
		imageTag, imageTook = tag, time.Since(start)
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageTag
}

func removeImage() {
	if imageTag != "" {
		exec.Command("docker", "rmi", "-f", imageTag).Run()
	}
}

// container runs `docker run -d` with a unique name, removed (with its
// anonymous volumes) when the test ends.
func container(t *testing.T, args ...string) string {
	t.Helper()
	name := "qpc-e2e-" + suffix()
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", "-v", name).Run() })
	sh(t, append([]string{"docker", "run", "-d", "--name", name}, args...)...)
	return name
}

func inspect(t testing.TB, name, format string) string {
	t.Helper()
	return sh(t, "docker", "inspect", "-f", format, name)
}

// waitHealthy polls the container's health status (its HEALTHCHECK, qpc
// health) until it is healthy.
func waitHealthy(t testing.TB, name string, within time.Duration) {
	t.Helper()
	var st string
	if !probe.WaitEvery(within, 100*time.Millisecond, func() bool {
		st = inspect(t, name, "{{.State.Status}} {{.State.Health.Status}}")
		return st == "running healthy"
	}) {
		logs, _ := exec.Command("docker", "logs", "--tail", "30", name).CombinedOutput()
		t.Fatalf("%s not healthy within %v (%s):\n%s", name, within, st, logs)
	}
}

// TestImage is acceptance 1: the image (built with no network) runs as a
// non-root user, its HEALTHCHECK (qpc health, /healthz) turns it healthy,
// its data dir is a volume the node writes to, the API is on loopback,
// and docker stop ends it with exit code 0 well inside the 10 s grace
// period.
func TestImage(t *testing.T) {
	tag := image(t)
	size, _ := strconv.ParseInt(inspect(t, tag, "{{.Size}}"), 10, 64)
	t.Logf("image %s built in %s, %.1f MB", tag, imageTook.Round(time.Millisecond), float64(size)/1e6)
	if size > 30e6 {
		t.Errorf("image is %d bytes, the target is under 30 MB", size)
	}
	cfg := inspect(t, tag, "{{.Config.User}} {{json .Config.Volumes}} {{json .Config.Healthcheck.Test}} {{.Config.StopSignal}}")
	for _, want := range []string{"65532:65532", `"/data"`, `"/qpc","health"`, "SIGTERM"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("image config %s: no %s", cfg, want)
		}
	}

	// --read-only as in k8s/statefulset.yaml (readOnlyRootFilesystem):
	// the node writes only to its data dir.
	name := container(t, "--read-only", tag)
	start := time.Now()
	waitHealthy(t, name, 30*time.Second)
	t.Logf("healthy %s after docker run", time.Since(start).Round(time.Millisecond))
	if hl := inspect(t, name, "{{json .State.Health.Log}}"); !strings.Contains(hl, "ok /healthz") {
		t.Errorf("health log: %s", hl)
	}
	n := &node{name: name, c: nsClient("/proc/" + inspect(t, name, "{{.State.Pid}}") + "/ns/net")}
	st, err := n.status(t)
	if err != nil {
		t.Fatalf("status from inside the container's namespace: %v", err)
	}
	if st.Version != "e2e" {
		t.Errorf("version %q, want the stamped e2e", st.Version)
	}
	for _, l := range st.Listeners {
		if !strings.HasPrefix(l.Addr, "[::]:") && !strings.HasPrefix(l.Addr, "0.0.0.0:") {
			t.Errorf("listener %+v is not on every interface", l)
		}
	}
	// The API is not reachable on the container's address.
	ip := inspect(t, name, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
	if out, err := exec.Command(qpcBin, "health", "--api", ip+":7780", "--timeout", "1s").CombinedOutput(); err == nil {
		t.Errorf("the admin API answers on %s:7780 without a token: %s", ip, out)
	}
	if b, err := os.ReadFile("/proc/" + inspect(t, name, "{{.State.Pid}}") + "/status"); err != nil || !strings.Contains(string(b), "\nUid:\t65532\t") {
		t.Errorf("the node is not running as uid 65532: %v\n%s", err, b)
	}

	start = time.Now()
	sh(t, "docker", "stop", name)
	took := time.Since(start)
	code := inspect(t, name, "{{.State.ExitCode}}")
	t.Logf("docker stop took %s, exit code %s", took.Round(time.Millisecond), code)
	if code != "0" || took > 5*time.Second {
		logs, _ := exec.Command("docker", "logs", "--tail", "20", name).CombinedOutput()
		t.Fatalf("docker stop: exit %s after %s (want 0 well inside 10 s):\n%s", code, took, logs)
	}
	// The identity is in the volume: the container starts again as the same node.
	sh(t, "docker", "start", name)
	waitHealthy(t, name, 30*time.Second)
	n = &node{name: name, c: nsClient("/proc/" + inspect(t, name, "{{.State.Pid}}") + "/ns/net")}
	if again := n.address(t); again != st.Address {
		t.Errorf("after a restart the node is %s, was %s", again, st.Address)
	}

	// The API on the container's address (as in k8s), which the node takes
	// only with a token: /healthz answers without it, /readyz with it.
	if out, err := exec.Command("docker", "run", "--rm", "-e", "QPC_API_ADDR=0.0.0.0:7780", tag).CombinedOutput(); err == nil || !strings.Contains(string(out), "api.token") {
		t.Errorf("the image with a public API and no token: %v\n%s", err, out)
	}
	pub := container(t, "-e", "QPC_API_ADDR=0.0.0.0:7780", "-e", "QPC_API_TOKEN=e2e-token", tag)
	ip = inspect(t, pub, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
	var out []byte
	if !probe.WaitEvery(20*time.Second, 50*time.Millisecond, func() bool {
		out, err = exec.Command(qpcBin, "health", "--api", ip+":7780", "--timeout", "1s").CombinedOutput()
		return err == nil
	}) {
		t.Fatalf("/healthz on %s:7780: %v %s", ip, err, out)
	}
	if out, err := exec.Command(qpcBin, "health", "--ready", "--api", ip+":7780").CombinedOutput(); err == nil {
		t.Errorf("/readyz without the token answered: %s", out)
	}
	if out, err := exec.Command(qpcBin, "health", "--ready", "--api", ip+":7780", "--token", "e2e-token").CombinedOutput(); err != nil {
		t.Errorf("/readyz with the token: %v %s", err, out)
	}
}
