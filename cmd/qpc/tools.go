package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/config"
)

func newKeygenCmd() *cobra.Command {
	var out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create a node identity (Ed25519 key file, mode 0600) and print its address",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				c := config.Default()
				out = c.KeyPath()
			}
			id, err := crypto.NewIdentity(nil)
			if err != nil {
				return err
			}
			if err := crypto.SaveIdentity(out, id); err != nil {
				return err
			}
			abs, _ := filepath.Abs(out)
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{
					"address": id.Address().String(), "file": abs,
				})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "address %s\nkey file %s\n", id.Address(), abs)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "key file to create (default ./qpc-data/identity.pem); never overwritten")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGenconfCmd() *cobra.Command {
	var profile string
	cmd := &cobra.Command{
		Use:   "genconf",
		Short: "Print the default configuration as commented TOML",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := config.ForProfile(profile)
			if err != nil {
				return err
			}
			b, err := c.TOML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&profile, "profile", config.ProfileDefault, "default or constrained")
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "qpc %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
