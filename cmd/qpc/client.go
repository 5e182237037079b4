package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/metrics"
)

// clientFlags are the flags of every command that asks a running node.
type clientFlags struct {
	api, token string
	json       bool
}

func addClientFlags(cmd *cobra.Command, environ []string) *clientFlags {
	env := envMap(environ)
	cf := &clientFlags{}
	def := config.Default().API.Addr
	if v, ok := env["QPC_API_ADDR"]; ok && v != "" {
		def = v
	}
	cmd.Flags().StringVar(&cf.api, "api", def, "admin API address of the node (env QPC_API_ADDR)")
	cmd.Flags().StringVar(&cf.token, "token", env["QPC_API_TOKEN"], "bearer token (env QPC_API_TOKEN)")
	cmd.Flags().BoolVar(&cf.json, "json", false, "print JSON")
	next := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if err := checkAPIAddr(cf.api); err != nil {
			return err
		}
		if next != nil {
			return next(c, args)
		}
		return nil
	}
	return cf
}

// checkAPIAddr refuses an admin API address without a port (--api
// localhost would mean port 80, where no node listens).
func checkAPIAddr(a string) error {
	if strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://") {
		return nil
	}
	if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
		return usagef("--api %q: want HOST:PORT, e.g. 127.0.0.1:7780", a)
	}
	return nil
}

func (cf *clientFlags) client() *api.Client { return &api.Client{Addr: cf.api, Token: cf.token} }

func (cf *clientFlags) get(path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cf.client().Get(ctx, path, v)
}

func printJSONLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newStatusCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a running node's address, uptime, listeners, links, configured peers and actors",
	}
	cf := addClientFlags(cmd, environ)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var st api.Status
		if err := cf.get("/v1/status", &st); err != nil {
			return err
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), st)
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintf(w, "address\t%s\n", st.Address)
		fmt.Fprintf(w, "version\t%s\n", st.Version)
		fmt.Fprintf(w, "profile\t%s\n", st.Profile)
		fmt.Fprintf(w, "uptime\t%s\n", st.Uptime)
		fmt.Fprintf(w, "phase\t%s (ready: %v)\n", st.Phase, st.Ready)
		for _, l := range st.Listeners {
			fmt.Fprintf(w, "listening\t%s %s\n", l.Transport, l.Addr)
		}
		for _, r := range st.Radios {
			fmt.Fprintf(w, "radio\t%s\n", radioLine(r, time.Now()))
		}
		if len(st.Links) == 0 {
			fmt.Fprintf(w, "links\tnone\n")
		}
		for _, l := range st.Links {
			fmt.Fprintf(w, "link\t%s via %s %s (%s, %s, since %s)\n", l.Peer, l.Transport, l.Remote, l.Direction, l.Class, l.Since.Format(time.RFC3339))
		}
		now := time.Now()
		for _, p := range st.Peers {
			fmt.Fprintf(w, "peer\t%s\n", peerLine(p, now))
		}
		var actors []string
		for _, a := range st.Actors {
			s := a.Name + "=" + a.State
			if a.Restarts > 0 {
				s += fmt.Sprintf("(%d restarts)", a.Restarts)
			}
			actors = append(actors, s)
		}
		fmt.Fprintf(w, "actors\t%s\n", strings.Join(actors, " "))
		return w.Flush()
	}
	return cmd
}

// radioLine describes a LoRa radio for qpc status: up or down, its
// settings and transmit power against the sub-band's limit, and while
// down why and when the next re-open is due (the error escaped).
func radioLine(r api.Radio, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", r.Transport, r.Channel, r.State)
	if !r.Since.IsZero() {
		fmt.Fprintf(&b, " since %s", r.Since.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, ", %s MHz SF%d %s kHz CR %s, %d dBm (limit %d in %s %s MHz)",
		strconv.FormatFloat(float64(r.Frequency)/1e6, 'f', -1, 64), r.SF, strconv.FormatFloat(float64(r.Bandwidth)/1e3, 'f', -1, 64),
		r.CR, r.TxPower, r.TxPowerLimit, r.Region, r.SubBand)
	if r.Reopens > 0 {
		fmt.Fprintf(&b, ", re-opened %s", plural(int(r.Reopens), "time"))
	}
	if r.State == "down" {
		if r.NextAttempt != nil {
			fmt.Fprintf(&b, ", next attempt in %s", ago(r.NextAttempt.Sub(now)))
		}
		if r.LastError != "" {
			b.WriteString(", last error: " + shown(api.InboxEntry{Text: r.LastError}))
		}
	}
	return b.String()
}

// peerLine describes a configured peer for qpc status: its state, when
// the next attempt is due, the attempts that failed and the last error
// (shown escaped: it may quote what a remote sent).
func peerLine(p api.Peer, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", p.URI, p.State)
	switch {
	case p.State == "up" && p.Peer != "":
		fmt.Fprintf(&b, " (%s, since %s)", p.Peer, p.Since.Format(time.RFC3339))
	case p.State == "backoff" && p.NextAttempt != nil:
		fmt.Fprintf(&b, ", next attempt in %s", ago(p.NextAttempt.Sub(now)))
	}
	if p.Failures > 0 {
		fmt.Fprintf(&b, ", %s failed", plural(p.Failures, "attempt"))
	}
	if p.LastError != "" {
		b.WriteString(", last error")
		if p.LastErrorAt != nil {
			fmt.Fprintf(&b, " %s ago", ago(now.Sub(*p.LastErrorAt)))
		}
		b.WriteString(": " + shown(api.InboxEntry{Text: p.LastError}))
	}
	return b.String()
}

// ago rounds a duration for people: 0s, 1.5s, 12s, 3m20s.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func newStatsCmd(environ []string) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show a running node's counters and gauges",
	}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().BoolVar(&all, "all", false, "include Go runtime and process metrics")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var body struct {
			Metrics []metrics.Family `json:"metrics"`
		}
		if err := cf.get("/v1/stats", &body); err != nil {
			return err
		}
		fams := body.Metrics[:0]
		for _, f := range body.Metrics {
			if all || strings.HasPrefix(f.Name, metrics.Namespace+"_") {
				fams = append(fams, f)
			}
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), map[string]any{"metrics": fams})
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		for _, f := range fams {
			for _, s := range f.Samples {
				name := f.Name
				if len(s.Labels) > 0 {
					keys := make([]string, 0, len(s.Labels))
					for k := range s.Labels {
						keys = append(keys, k)
					}
					sort.Strings(keys)
					parts := make([]string, len(keys))
					for i, k := range keys {
						parts[i] = k + "=" + s.Labels[k]
					}
					name += "{" + strings.Join(parts, ",") + "}"
				}
				if f.Type == "HISTOGRAM" || f.Type == "SUMMARY" {
					fmt.Fprintf(w, "%s\tcount=%d sum=%g\n", name, s.Count, s.Sum)
				} else {
					fmt.Fprintf(w, "%s\t%g\n", name, s.Value)
				}
			}
		}
		return w.Flush()
	}
	return cmd
}
