package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/persist"
)

// exitCodeError ends qpc with code after the command printed what it
// had to say (msg, when not empty, goes to stderr as usual).
type exitCodeError struct {
	code int
	msg  string
}

func (e exitCodeError) Error() string { return e.msg }

func newDBCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Check a data dir's database, or salvage what can be read from a damaged one (with the node stopped)",
		Long: `qpc db check and qpc db salvage read a node's data dir while the node is
stopped (a running node holds the database's lock). Neither changes
qpc.db. Exit codes: 0 sound (check) or written (salvage), 1 failure
(locked, missing), 3 a damaged data dir (check).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q (check or salvage)", args[0], cmd.CommandPath())
			}
			return usagef("%s needs a command: check or salvage (see '%s --help')", cmd.CommandPath(), cmd.CommandPath())
		},
	}
	cmd.AddCommand(newDBCheckCmd(environ), newDBSalvageCmd(environ))
	return cmd
}

// addDataDirFlags gives a db command the node's way to find its data
// dir: --config, QPC_DATA_DIR, --data-dir.
func addDataDirFlags(f *pflag.FlagSet, file *string) {
	f.StringVarP(file, "config", "c", "", "the node's TOML config file (for its data_dir)")
	f.String("data-dir", "", "the node's data dir (default ./qpc-data)")
}

func dataDirConfig(cmd *cobra.Command, file string, environ []string) (config.Config, error) {
	r, err := resolveConfig(file, cmd.Flags(), environ)
	if err != nil {
		return config.Config{}, err
	}
	return r.cfg, nil
}

func newDBCheckCmd(environ []string) *cobra.Command {
	var file string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check qpc.db page by page (and bbolt's own check) and the identity beside it; exit 3 when damaged",
		Long: `Check the data dir without changing it: qpc.db's meta pages, its length
against the pages in use, every page reached from the root (id, type,
bounds, key order, no page used twice), the freelist, that every page in
use is reached or free, then bbolt's own consistency check; and that
identity.pem is there, readable and the identity that wrote the
database. There is no time limit (the check at node start has one).
bbolt keeps no checksum of values: a flipped byte inside a stored text
is found by no check.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := dataDirConfig(cmd, file, environ)
			if err != nil {
				return err
			}
			return dbCheck(cmd.OutOrStdout(), cfg, asJSON)
		},
	}
	addDataDirFlags(cmd.Flags(), &file)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

type dataDirReport struct {
	DataDir  string          `json:"data_dir"`
	OK       bool            `json:"ok"`
	Identity string          `json:"identity"`
	Address  string          `json:"address,omitempty"`
	Problems []string        `json:"problems"`
	Database *persist.Report `json:"database"`
}

func dbCheck(out io.Writer, cfg config.Config, asJSON bool) error {
	dbPath, keyPath := cfg.DBPath(), cfg.KeyPath()
	rep := dataDirReport{DataDir: cfg.DataDir, Identity: keyPath, Problems: []string{}}
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s holds no database (%s): nothing to check", cfg.DataDir, dbPath)
	}
	dr, err := persist.Check(dbPath, persist.CheckOptions{})
	if err != nil {
		return err
	}
	rep.Database = dr
	rep.Problems = append(rep.Problems, dr.Problems...)
	id, err := crypto.LoadIdentity(keyPath)
	switch {
	case errors.Is(err, crypto.ErrKeyFileNotExists) && dr.Size > 0:
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s is missing, but the database holds a node's data: restore it from a backup, or start with 'qpc node --new-identity'", keyPath))
	case err != nil && !errors.Is(err, crypto.ErrKeyFileNotExists):
		rep.Problems = append(rep.Problems, err.Error())
	case err == nil:
		rep.Address = id.Address().String()
		if dr.Owner != "" && dr.Owner != rep.Address {
			rep.Problems = append(rep.Problems, fmt.Sprintf("the database was written by node %s, but %s is node %s: start with the key file that wrote it, or with 'qpc node --new-identity'", dr.Owner, keyPath, rep.Address))
		}
	}
	rep.OK = len(rep.Problems) == 0
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printCheck(out, rep)
	}
	if !rep.OK {
		return exitCodeError{code: exitDataDir}
	}
	return nil
}

func printCheck(out io.Writer, rep dataDirReport) {
	dr := rep.Database
	if rep.OK {
		fmt.Fprintf(out, "%s: ok: %d pages of %d B in use (%d B file), %d buckets, %d keys; bbolt check %s (%.3fs)\n",
			dr.Path, dr.Pages, dr.PageSize, dr.Size, dr.Buckets, dr.Keys, dr.BboltCheck, dr.ElapsedSec)
	} else {
		n := len(rep.Problems) + dr.MoreProblems
		fmt.Fprintf(out, "%s: DAMAGED: %d problem(s)\n", rep.DataDir, n)
		for _, p := range rep.Problems {
			fmt.Fprintf(out, "  %s\n", p)
		}
		if dr.MoreProblems > 0 {
			fmt.Fprintf(out, "  … and %d more\n", dr.MoreProblems)
		}
	}
	if rep.Address != "" {
		fmt.Fprintf(out, "identity %s: node %s\n", rep.Identity, rep.Address)
	}
	for _, n := range dr.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	if !dr.OK() {
		if dr.Size == 0 {
			fmt.Fprintf(out, "what to do: the file is empty; move it away and restore a backup, or start with a new, empty database (see docs/operations.md, \"A damaged data dir\")\n")
			return
		}
		fmt.Fprintf(out, "what to do: restore qpc.db from a backup, or copy what can still be read into a new file with 'qpc db salvage --data-dir %s' and use that (see docs/operations.md, \"A damaged data dir\")\n", rep.DataDir)
	}
}

func newDBSalvageCmd(environ []string) *cobra.Command {
	var file, outPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "salvage",
		Short: "Copy what can still be read from a damaged qpc.db into a new file, leaving qpc.db as it is",
		Long: `Copy every key and value of qpc.db that can still be read into a new
database (default DATA_DIR/qpc.db.salvaged; never overwritten), leaving
qpc.db unchanged. Pages that cannot be read are skipped; pages the tree no
longer reaches (below a damaged page, or all of them when a cut-short
file lost its root) go back into their bucket when their keys show where
they belong (inbox entries always do). The new file is checked before
qpc says it is done. To use it, with the node stopped:

  mv DATA_DIR/qpc.db DATA_DIR/qpc.db.damaged
  mv DATA_DIR/qpc.db.salvaged DATA_DIR/qpc.db
  qpc db check --data-dir DATA_DIR && qpc node ...

bbolt keeps no checksum of values: a value with a flipped byte is copied
as it is.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := dataDirConfig(cmd, file, environ)
			if err != nil {
				return err
			}
			if outPath == "" {
				outPath = cfg.DBPath() + ".salvaged"
			}
			return dbSalvage(cmd.OutOrStdout(), cfg.DBPath(), outPath, asJSON)
		},
	}
	addDataDirFlags(cmd.Flags(), &file)
	cmd.Flags().StringVarP(&outPath, "out", "o", "", "the new database to write (default DATA_DIR/qpc.db.salvaged; never overwritten)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// salvagePlace puts back inbox entries found outside the tree.
func salvagePlace(k, v []byte) [][]byte {
	if inbox.LooksLikeEntry(k, v) {
		return [][]byte{inbox.Bucket}
	}
	return nil
}

// salvageKeep leaves out inbox entries that no longer decode: the
// inbox could not list past them.
func salvageKeep(path [][]byte, k, v []byte) bool {
	return len(path) != 1 || string(path[0]) != string(inbox.Bucket) || inbox.LooksLikeEntry(k, v)
}

func dbSalvage(out io.Writer, from, to string, asJSON bool) error {
	if _, err := os.Stat(from); err != nil {
		return fmt.Errorf("nothing to salvage: %w", err)
	}
	rep, err := persist.Salvage(from, to, persist.SalvageOptions{Place: salvagePlace, Keep: salvageKeep})
	if err != nil {
		return err
	}
	check, err := persist.Check(to, persist.CheckOptions{})
	if err != nil {
		return fmt.Errorf("check the salvaged file: %w", err)
	}
	if !check.OK() {
		return fmt.Errorf("the salvaged file %s fails its check (%s); it was kept for inspection", to, check.Problems[0])
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"salvage": rep, "check": check})
	}
	abs, _ := filepath.Abs(to)
	fmt.Fprintf(out, "copied %d keys in %d buckets from %s into %s (%d from pages outside the tree); %s is unchanged\n",
		rep.Keys, rep.Buckets, from, abs, rep.FromOrphans, from)
	if n := len(rep.Problems) + rep.MoreProblems; n > 0 {
		fmt.Fprintf(out, "damage met (%d): %s\n", n, rep.Problems[0])
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	fmt.Fprintf(out, "the new file passed its check. To use it, with the node stopped:\n  mv %s %s.damaged && mv %s %s\n", from, from, to, from)
	return nil
}
