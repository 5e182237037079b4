// Command chain runs the three-process chain A — B — C on loopback and
// reports whether every text A sent reached C exactly once, and how fast
// and at what CPU cost compared with the crypto bound. The harness is the
// package test/chain/harness.
//
// Usage:
//
//	go run ./test/chain [-transport tcp|quic|both] [-n 10000] [-clients 8] [-kill-relay 2] [-stop-receiver] [-bin PATH]
//
// Without -bin it builds ./cmd/qpc into a temporary directory first.
// `make bench-chain` runs it over tcp and quic without chaos. The exit
// code is 1 when a text was lost, duplicated or not reported delivered
// (or, with -require-targets, when a performance target was missed), 2
// for bad flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/quicprochat/qpc/test/chain/harness"
)

func main() {
	var cfg harness.Config
	transport := flag.String("transport", "both", "tcp, quic or both")
	flag.IntVar(&cfg.N, "n", 10000, "texts A sends to C per transport")
	flag.IntVar(&cfg.Clients, "clients", 8, "concurrent HTTP clients sending")
	flag.IntVar(&cfg.Batch, "batch", 1, "texts per POST /v1/send (above 1: the batch form, one group commit at A per request)")
	flag.IntVar(&cfg.KillRelay, "kill-relay", 0, "SIGKILL relay B this many times during the sends (and restart it)")
	flag.BoolVar(&cfg.StopReceiver, "stop-receiver", false, "SIGTERM receiver C half-way through the sends and restart it")
	flag.DurationVar(&cfg.ReceiverDown, "receiver-down", 2*time.Second, "how long C stays down with -stop-receiver")
	flag.DurationVar(&cfg.DeliverTimeout, "deliver-timeout", 3*time.Minute, "how long to wait after the last send for C to hold every text")
	flag.IntVar(&cfg.BoundIterations, "bound-iterations", 2000, "iterations of each crypto-bound measurement (negative: skip)")
	flag.StringVar(&cfg.Bin, "bin", "", "qpc binary (default: build ./cmd/qpc into a temporary directory)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the nodes' data directories and logs")
	outboxMax := flag.Int("outbox-max", 0, "give the nodes an outbox of this many messages (QPC_OUTBOX_MAX_PENDING), to see 429s")
	quiet := flag.Bool("quiet", false, "no progress lines")
	requireTargets := flag.Bool("require-targets", false, "exit 1 when a performance target is missed")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: go run ./test/chain [-transport tcp|quic|both] [-n 10000] [-clients 8] [-kill-relay 2] [-stop-receiver] [-bin PATH]")
		flag.PrintDefaults()
	}
	flag.Parse()
	switch *transport {
	case "tcp", "quic":
		cfg.Transports = []string{*transport}
	case "both":
		cfg.Transports = []string{"tcp", "quic"}
	default:
		fmt.Fprintf(os.Stderr, "-transport %q: want tcp, quic or both\n", *transport)
		os.Exit(2)
	}
	if flag.NArg() > 0 || cfg.N <= 0 || cfg.Clients <= 0 || cfg.KillRelay < 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *outboxMax > 0 {
		cfg.NodeEnv = append(cfg.NodeEnv, fmt.Sprintf("QPC_OUTBOX_MAX_PENDING=%d", *outboxMax))
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}

	// Ctrl-C or SIGTERM cancels the run; Run kills the nodes before it
	// returns. A second signal gets the default action.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()

	rep, err := harness.Run(ctx, cfg)
	rep.Print(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chain:", err)
		os.Exit(1)
	}
	code := 0
	for _, run := range rep.Runs {
		for _, v := range run.Verdicts() {
			if v.Outcome == "FAIL" || (v.Outcome == "MISS" && *requireTargets) {
				code = 1
			}
		}
	}
	os.Exit(code)
}
