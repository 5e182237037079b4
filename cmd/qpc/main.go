// Command qpc is the QuicProChat mesh node and its tools. It turns flags,
// the environment and a TOML file into a typed config.Config and hands it
// to actors/node (cmd/qpc/config.go); nothing else in qpc reads flags.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/quicprochat/qpc/actors/node"
	"github.com/quicprochat/qpc/internal/config"
)

// Stamped by the Makefile: -ldflags "-X main.version=$(git describe ...)".
var version = "dev"

// Exit codes: 0 ok, 1 failure, 2 bad usage or bad config, 3 a damaged
// data dir (a database that fails its check, an empty qpc.db, a missing
// or unreadable identity beside an existing database, a database of
// another identity): the node refuses to serve it and leaves it as it is.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitDataDir = 3
)

// usageError marks a mistake in how qpc was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Environ()))
}

// run executes one qpc command and returns the exit code.
func run(args []string, stdout, stderr io.Writer, environ []string) int {
	root := newRootCmd(environ)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ec exitCodeError
	if errors.As(err, &ec) {
		if ec.msg != "" {
			fmt.Fprintln(stderr, "qpc:", ec.msg)
		}
		return ec.code
	}
	fmt.Fprintln(stderr, "qpc:", err)
	if node.IsDataDirError(err) {
		return exitDataDir
	}
	var ue usageError
	// Cobra reports an unknown command with a plain error.
	unknownCmd := strings.HasPrefix(err.Error(), "unknown command")
	if errors.As(err, &ue) || errors.Is(err, config.ErrInvalid) || unknownCmd {
		return exitUsage
	}
	return exitFailure
}

func newRootCmd(environ []string) *cobra.Command {
	root := &cobra.Command{
		Use:   "qpc",
		Short: "QuicProChat mesh node: end-to-end encrypted messaging over QUIC, TCP and LoRa",
		Long: `qpc runs a QuicProChat mesh node and talks to a running one.

  qpc node                 run a node (embedded defaults: ./qpc-data, admin API on 127.0.0.1:7780)
  qpc genconf > qpc.toml   print the default configuration, commented
  qpc config show          print the effective configuration and where each value came from
  qpc status               ask a running node how it is
  qpc db check             check a stopped node's data dir (exit 3 when damaged)`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(
		newNodeCmd(environ),
		newKeygenCmd(),
		newGenconfCmd(),
		newConfigCmd(environ),
		newVersionCmd(),
		newStatusCmd(environ),
		newStatsCmd(environ),
		newSendCmd(environ),
		newOutboxCmd(environ),
		newInboxCmd(environ),
		newRoutesCmd(environ),
		newTraceCmd(environ),
		newSizesCmd(),
		newLoRaCmd(),
		newDBCmd(environ),
		newHealthCmd(environ),
		newFAPPCmd(environ),
		newGroupCmd(environ),
	)
	for _, c := range root.Commands() {
		if c.Args == nil && c.HasSubCommands() == false {
			c.Args = noArgs
		}
	}
	return root
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
