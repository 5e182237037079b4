package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/test/chain/harness"
)

// TestChainZeroLossUnderChaos is the zero-loss acceptance at test size:
// the chain A — B — C as three processes over TCP; A takes 600 texts for
// C through its admin API from 8 clients while B is SIGKILLed and restarted
// twice and C is stopped (SIGTERM) for a second and restarted. Every text
// must reach C exactly once and A must report every message delivered.
// The full count is `go run ./test/chain -n 10000 -kill-relay 2
// -stop-receiver`.
func TestChainZeroLossUnderChaos(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	rep, err := harness.Run(ctx, harness.Config{
		Bin:             qpcBin,
		Transports:      []string{"tcp"},
		N:               600,
		Clients:         8,
		KillRelay:       2,
		StopReceiver:    true,
		ReceiverDown:    time.Second,
		ReadyTimeout:    15 * time.Second,
		DeliverTimeout:  30 * time.Second,
		StatesTimeout:   10 * time.Second,
		BoundIterations: -1, // performance is make bench-chain's business
		WorkDir:         t.TempDir(),
		Progress:        testLog{t},
		ProgressEvery:   5 * time.Second,
	})
	var out strings.Builder
	rep.Print(&out)
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(rep.Runs))
	}
	run := rep.Runs[0]
	if run.CPU[1].Starts != 3 || run.CPU[2].Starts != 2 {
		t.Errorf("chaos did not happen as planned: B started %d times (want 3), C %d times (want 2)", run.CPU[1].Starts, run.CPU[2].Starts)
	}
	if err := run.ZeroLoss(); err != nil {
		t.Fatalf("not zero loss: %v", err)
	}
}

// testLog is an io.Writer into the test log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
