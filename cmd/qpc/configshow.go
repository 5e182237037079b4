package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/quicprochat/qpc/internal/config"
)

func newConfigCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration a node would run with",
	}
	cmd.AddCommand(newConfigShowCmd(environ))
	return cmd
}

func newConfigShowCmd(environ []string) *cobra.Command {
	var file string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration and where each value came from",
		Long: `Print the configuration 'qpc node' would run with, given the same --config,
flags and QPC_* environment, and where each value came from: default (the
embedded defaults), profile (the chosen profile's default), file, env or flag.
api.token is shown as *** when set. Exits 2 if the configuration is invalid,
after printing it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := resolveConfig(file, cmd.Flags(), environ)
			if err != nil {
				return err
			}
			if asJSON {
				err = printJSON(cmd.OutOrStdout(), showJSON(r))
			} else {
				err = showTOML(cmd.OutOrStdout(), r)
			}
			if err != nil {
				return err
			}
			return r.cfg.Validate()
		},
	}
	addConfigFlags(cmd.Flags(), &file)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type shownKey struct {
	Key    string `json:"key"`
	Value  any    `json:"value"`
	Source string `json:"source"`         // default, profile, file, env or flag
	From   string `json:"from,omitempty"` // the profile, file, variable or flag
	Note   string `json:"note,omitempty"`
}

type shownConfig struct {
	Profile string     `json:"profile"`
	File    string     `json:"file,omitempty"`
	Keys    []shownKey `json:"keys"`
}

// shownValue is the value as JSON shows it: durations as "10m0s", the
// token hidden.
func shownValue(r *resolved, name string) any {
	v := r.cfg.Get(name)
	switch x := v.(type) {
	case config.Duration:
		return x.D().String()
	case string:
		if name == "api.token" && x != "" {
			return "***"
		}
	}
	return v
}

func showJSON(r *resolved) shownConfig {
	out := shownConfig{Profile: r.cfg.Profile, File: r.file, Keys: []shownKey{}}
	for _, k := range config.Keys() {
		s := r.sources[k.Name]
		out.Keys = append(out.Keys, shownKey{Key: k.Name, Value: shownValue(r, k.Name), Source: s.Kind, From: s.Name, Note: s.Note})
	}
	return out
}

// showTOML prints TOML (the values would load as a file) with each value's
// source as a comment at the end of its line.
func showTOML(w io.Writer, r *resolved) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Effective configuration of profile %q", r.cfg.Profile)
	if r.file != "" {
		fmt.Fprintf(&b, " with %s", r.file)
	}
	b.WriteString(".\n# Each line ends with where the value came from: default, profile, file, env or flag.\n")
	type line struct{ text, src string }
	var lines []line
	width := 0
	// Group by section, in the order sections first appear, so that a
	// section's keys stay together ([transports] around [transports.lora]).
	var order []string
	bySection := map[string][]config.Key{}
	for _, k := range config.Keys() {
		sec := ""
		if i := strings.LastIndex(k.Name, "."); i >= 0 {
			sec = k.Name[:i]
		}
		if _, seen := bySection[sec]; !seen {
			order = append(order, sec)
		}
		bySection[sec] = append(bySection[sec], k)
	}
	for _, sec := range order {
		if sec != "" {
			lines = append(lines, line{text: "\n[" + sec + "]"})
		}
		for _, k := range bySection[sec] {
			text := k.Name[len(sec):]
			text = strings.TrimPrefix(text, ".") + " = " + tomlValue(shownValue(r, k.Name))
			if len(text) <= 40 {
				width = max(width, len(text))
			}
			lines = append(lines, line{text: text, src: r.sources[k.Name].String()})
		}
	}
	for _, l := range lines {
		if l.src == "" {
			b.WriteString(l.text + "\n")
			continue
		}
		fmt.Fprintf(&b, "%-*s  # %s\n", width, l.text, l.src)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		if strings.ContainsAny(x, "'\n\r\t") {
			return strconv.Quote(x)
		}
		return "'" + x + "'"
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = tomlValue(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case float64:
		s := strconv.FormatFloat(x, 'f', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return s
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
