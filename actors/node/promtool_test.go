package node

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/crypto"
)

// TestMetricsPassPromtool checks the /metrics exposition with Prometheus's
// own linter. CI installs promtool (.ci/run) and sets QPCTEST_REQUIRE_PROMTOOL=1:
// there a missing promtool fails the test. Elsewhere (and with CI unset)
// the test skips and says so.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if promtoolRequired() {
			t.Fatalf("promtool not installed (Debian package 'prometheus') and QPCTEST_REQUIRE_PROMTOOL=1 or CI=true: the /metrics check cannot be skipped here: %v", err)
		}
		t.Skip("SKIP: promtool not installed (Debian package 'prometheus'); .ci/run installs it")
	}
	n, _ := startNode(t, testConfig(t), WithProcessMetrics(), WithFaultInjection())
	// Make the labelled series exist too.
	peer, _ := crypto.NewIdentity(nil)
	_ = n.Inject("test", peer.Address(), announceFrame(t, peer))
	waitRoute(t, n, peer.Address())
	code, body := get(t, "http://"+n.APIAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{"qpc_actor_restarts_total", "qpc_shutdown_phase", "qpc_build_info", "go_goroutines", "qpc_mesh_announces_accepted_total 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cmd := exec.CommandContext(context.Background(), promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out.String())
	}
}

// promtoolRequired: under CI (.ci/run sets QPCTEST_REQUIRE_PROMTOOL=1; most CI
// services set CI=true) the promtool check must run.
func promtoolRequired() bool {
	return os.Getenv("QPCTEST_REQUIRE_PROMTOOL") == "1" || os.Getenv("CI") == "true"
}
