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

// TestFAPPDemoScript runs test/fapp-demo.sh (issue 13, acceptance 1 and
// 2 with qpc processes and the CLI) with this run's binary, so the script
// a newcomer reads is the one make test keeps working.
func TestFAPPDemoScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("fapp-demo.sh needs bash, which this machine lacks")
	}
	_, jqErr := exec.LookPath("jq")
	_, pyErr := exec.LookPath("python3")
	if jqErr != nil && pyErr != nil {
		t.Skip("fapp-demo.sh needs jq or python3, which this machine lacks")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "fapp-demo.sh")
	cmd.Env = append(os.Environ(), "FAPP_DEMO_BIN="+qpcBin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("fapp-demo.sh: %v\n%s", err, out.String())
	}
	for _, want := range []string{"confirmed", "taken"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("fapp-demo.sh passed without saying %q:\n%s", want, out.String())
		}
	}
	t.Logf("fapp-demo.sh:\n%s", out.String())
}
