package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// newHealthCmd is `qpc health`: the probe a container image without curl
// runs as its HEALTHCHECK (deploy/Dockerfile) and a Kubernetes exec probe
// can run. It asks the node's admin API for /healthz (no token needed) or,
// with --ready, /readyz (the token when one is set); exit 0 when the node
// answers 200, 1 when it does not answer in time or answers otherwise.
// An API on all interfaces (QPC_API_ADDR=0.0.0.0:7780) is reached on
// loopback.
func newHealthCmd(environ []string) *cobra.Command {
	var ready bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Probe a running node's /healthz (or /readyz): exit 0 when it answers 200",
	}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().BoolVar(&ready, "ready", false, "probe /readyz instead of /healthz (started, not shutting down)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		path := "/healthz"
		if ready {
			path = "/readyz"
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := cf.client().Get(ctx, path, nil); err != nil {
			return fmt.Errorf("health %s: %w", path, err)
		}
		if cf.json {
			return printJSONLine(c.OutOrStdout(), map[string]any{"ok": true, "path": path})
		}
		fmt.Fprintln(c.OutOrStdout(), "ok", path)
		return nil
	}
	return cmd
}
