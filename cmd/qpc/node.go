package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/quicprochat/qpc/actors/node"
	"github.com/quicprochat/qpc/internal/logging"
)

func newNodeCmd(environ []string) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a mesh node until SIGINT or SIGTERM",
		Long: `Run a mesh node. Configuration precedence: the defaults of the profile
(--profile, QPC_PROFILE or the file's profile key) < --config FILE < QPC_*
environment (e.g. QPC_API_ADDR) < flags; 'qpc config show' prints the result. With nothing given the node keeps
its identity in ./qpc-data, listens on TCP and QUIC on loopback and serves the
admin API on 127.0.0.1:7780. SIGINT or SIGTERM drain, persist and stop it.`,
	}
	addConfigFlags(cmd.Flags(), &file)
	var newIdentity bool
	cmd.Flags().BoolVar(&newIdentity, "new-identity", false,
		"start with an identity other than the one that wrote the data dir's database (create identity.pem when it is missing); the database is kept under the new identity")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		r, err := resolveConfig(file, cmd.Flags(), environ)
		if err != nil {
			return err
		}
		if err := r.cfg.Validate(); err != nil {
			return err
		}
		cfg := r.cfg
		log, err := logging.New(cmd.ErrOrStderr(), cfg.Logging.Level, cfg.Logging.Format)
		if err != nil {
			return usageError{err}
		}
		if len(r.followed) > 0 {
			log.Info("config file was written for another profile; its values left at that profile's defaults follow this one (see 'qpc config show')",
				"file", r.file, "file_profile", r.fileProfile, "profile", cfg.Profile, "keys", len(r.followed))
		}
		opts := []node.Option{node.WithConfig(cfg), node.WithLogger(log), node.WithVersion(version), node.WithProcessMetrics()}
		if newIdentity {
			opts = append(opts, node.WithNewIdentity())
		}
		n, err := node.New(opts...)
		if err != nil {
			return err
		}
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sigs)

		startCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		go func() {
			// A signal during start-up cancels it.
			select {
			case <-sigs:
				cancel()
			case <-startCtx.Done():
			}
		}()
		if err := n.Start(startCtx); err != nil {
			return fmt.Errorf("start: %w", err)
		}
		cancel()

		select {
		case s := <-sigs:
			log.Info("signal received; shutting down", "signal", s.String())
		case <-n.Done():
			return errors.New("node stopped on its own")
		}
		stopCtx, stopCancel := context.WithTimeout(context.Background(), cfg.Shutdown.Timeout.D()+time.Second)
		defer stopCancel()
		go func() {
			select {
			case s := <-sigs:
				log.Error("second signal; exiting without finishing shutdown", "signal", s.String())
				os.Exit(exitFailure)
			case <-stopCtx.Done():
			}
		}()
		if err := n.Stop(stopCtx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	}
	return cmd
}
