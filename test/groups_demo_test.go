package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestGroupsDemoScript runs test/groups-demo.sh (issue 14, acceptance 1
// with four qpc processes and the CLI: a group created, members added by
// address over the mesh, texts to the group, a member removed) with this
// run's binary, so the script a newcomer reads is the one make test keeps
// working.
func TestGroupsDemoScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("groups-demo.sh needs bash, which this machine lacks")
	}
	_, jqErr := exec.LookPath("jq")
	_, pyErr := exec.LookPath("python3")
	if jqErr != nil && pyErr != nil {
		t.Skip("groups-demo.sh needs jq or python3, which this machine lacks")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "groups-demo.sh")
	cmd.Env = append(os.Environ(), "GROUPS_DEMO_BIN="+qpcBin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("groups-demo.sh: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"B and C got A's text", "A and C got B's text", "removed", "no longer lists", "cannot read", "PASS",
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("groups-demo.sh passed without saying %q:\n%s", want, out.String())
		}
	}
	t.Logf("groups-demo.sh:\n%s", out.String())
}
