package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/quicprochat/qpc/actors/keys"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/lora"
)

func newSendCmd(environ []string) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "send ADDR TEXT",
		Short: "Send TEXT sealed end to end to the node ADDR (kept and retransmitted until ADDR's receipt arrives)",
		Long: `Send TEXT sealed end to end to the node ADDR. The node keeps the message in
its outbox, durable, and retransmits it until ADDR's signed receipt comes
back or the message expires. Without --wait, send prints the message's
state once the node accepted it (queued or sent) and its id; follow it with
'qpc outbox' or GET /v1/messages/ID. With --wait, send waits until the
message is delivered (exit 0) or failed (exit 1, with the reason).

A node whose outbox is full refuses for now; send says so and exits 1
(the API answers 429 with Retry-After).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("send takes ADDR and TEXT, got %d arguments", len(args))
			}
			if _, err := crypto.ParseAddress(args[0]); err != nil {
				return usageError{err}
			}
			if !utf8.ValidString(args[1]) {
				return usagef("TEXT is not UTF-8; send text, not bytes")
			}
			return nil
		},
	}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().BoolVarP(&wait, "wait", "w", false, "wait until the message is delivered (exit 0) or failed (exit 1)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --wait, give up waiting after this long (0: until the message is delivered or failed)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var res api.SendResponse
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := cf.client().Post(ctx, "/v1/send", api.SendRequest{To: args[0], Text: args[1]}, &res); err != nil {
			var ae *api.Error
			if errors.As(err, &ae) && ae.Code == "outbox_full" {
				return fmt.Errorf("the node's outbox is full (%s); nothing was sent: try again in %s", ae.Message, max(ae.RetryAfter, time.Second))
			}
			return err
		}
		if !wait {
			if cf.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", res.Status, res.ID)
			return nil
		}
		m, err := waitMessage(cmd, cf, res.ID, timeout)
		if err != nil {
			return err
		}
		if cf.json {
			if err := printJSON(cmd.OutOrStdout(), m); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s after %s\n", m.State, m.ID, plural(m.Attempts, "attempt"))
		}
		if m.State != "delivered" {
			return fmt.Errorf("message %s failed: %s", m.ID, m.Reason)
		}
		return nil
	}
	return cmd
}

// waitMessage polls the message's state until it is delivered or failed,
// printing each change on standard error.
func waitMessage(cmd *cobra.Command, cf *clientFlags, id string, timeout time.Duration) (api.Message, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	last := ""
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		var m api.Message
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := cf.client().Get(ctx, "/v1/messages/"+id, &m)
		cancel()
		if err != nil {
			return m, err
		}
		if m.State == "delivered" || m.State == "failed" {
			return m, nil
		}
		if m.State != last {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s %s (%s)\n", m.State, id, plural(m.Attempts, "attempt"))
			last = m.State
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return m, fmt.Errorf("message %s still %s after %s (it stays in the outbox: see qpc outbox)", id, m.State, timeout)
		}
		time.Sleep(delay) // polling the node's API between checks
	}
}

// shown is a message's text as a terminal may show it: control
// characters, bidirectional overrides and bytes that are not UTF-8 are
// escaped (\x1b, \u202e, \xff), so text from the mesh cannot move the
// cursor, recolour or rewrite the operator's terminal. --json shows the
// text exactly.
func shown(e api.InboxEntry) string {
	b := []byte(e.Text)
	if e.Encoding == api.EncodingBase64 {
		raw, err := base64.StdEncoding.DecodeString(e.Text)
		if err != nil {
			return "(undecodable base64 text)"
		}
		b = raw
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		case r == '\\':
			sb.WriteString(`\\`)
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == 0x2028 || r == 0x2029:
			if r < 0x100 {
				fmt.Fprintf(&sb, `\x%02x`, r)
			} else {
				fmt.Fprintf(&sb, `\u%04x`, r)
			}
		default:
			sb.WriteRune(r)
		}
		b = b[size:]
	}
	return sb.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func newOutboxCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{Use: "outbox", Short: "Show this node's messages still waiting for a receipt, with attempts and next retry"}
	cf := addClientFlags(cmd, environ)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var res api.OutboxResponse
		if err := cf.get("/v1/outbox", &res); err != nil {
			return err
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		if res.Pending == 0 {
			fmt.Fprintln(cmd.OutOrStdout(), "outbox empty: every message sent was delivered or failed")
			return nil
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tTO\tSTATE\tATTEMPTS\tNEXT RETRY\tEXPIRES")
		for _, m := range res.Messages {
			next := "-"
			if m.NextRetry != nil {
				next = "in " + time.Until(*m.NextRetry).Round(time.Second).String()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\tin %s\n", m.ID, m.To, m.State, m.Attempts, next, time.Until(m.Expiry).Round(time.Second))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%d pending\n", res.Pending)
		return nil
	}
	return cmd
}

func newInboxCmd(environ []string) *cobra.Command {
	var follow bool
	var after uint64
	cmd := &cobra.Command{
		Use:   "inbox",
		Short: "Show messages delivered to a running node (--follow to wait for more)",
	}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep waiting for new messages")
	cmd.Flags().Uint64Var(&after, "after", 0, "only messages after this number")
	var del uint64
	var clearAll bool
	cmd.Flags().Uint64Var(&del, "delete", 0, "delete message number N from the inbox")
	cmd.Flags().BoolVar(&clearAll, "clear", false, "delete every message in the inbox")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if del != 0 || clearAll {
			if follow || (del != 0 && clearAll) {
				return usagef("--delete and --clear go alone")
			}
			path := "/v1/inbox"
			if del != 0 {
				path += "/" + strconv.FormatUint(del, 10)
			}
			var res map[string]int
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cf.client().Do(ctx, http.MethodDelete, path, nil, &res); err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", plural(res["deleted"], "message"))
			return nil
		}
		down := false // following, and the node went away
		for delay := time.Second; ; {
			wait := "0s"
			if follow {
				wait = "60s"
			}
			var res api.InboxResponse
			ctx, cancel := context.WithTimeout(context.Background(), 75*time.Second)
			err := cf.client().Get(ctx, "/v1/inbox?after="+strconv.FormatUint(after, 10)+"&wait="+wait, &res)
			cancel()
			var ae *api.Error
			if err != nil && follow && !(errors.As(err, &ae) && ae.Status/100 == 4) {
				// The node stopped or restarts: keep following once it is
				// back, from the last message shown.
				if !down {
					fmt.Fprintf(cmd.ErrOrStderr(), "node at %s went away (%v); waiting for it to come back\n", cf.api, err)
					down = true
				}
				time.Sleep(delay) // waiting for another process to come back
				delay = min(2*delay, 10*time.Second)
				continue
			}
			if err != nil {
				return err
			}
			if down {
				fmt.Fprintf(cmd.ErrOrStderr(), "node at %s is back\n", cf.api)
				down, delay = false, time.Second
			}
			for _, m := range res.Messages {
				if cf.json {
					if err := printJSONLine(cmd.OutOrStdout(), m); err != nil {
						return err
					}
					continue
				}
				if m.Damaged != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "#%d cannot be read (%s); it stays in qpc.db: see 'qpc db check'\n", m.Seq, shown(api.InboxEntry{Text: m.Damaged}))
					continue
				}
				from := m.From
				if m.Group != "" {
					from += " in group " + shown(api.InboxEntry{Text: m.Group})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "#%d %s from %s (%s): %s\n", m.Seq, m.At.Local().Format(time.DateTime), from, plural(m.Hops, "hop"), shown(m))
			}
			if !follow && !cf.json && len(res.Messages) == 0 {
				if after == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no messages")
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "no messages after #%d\n", after)
				}
			}
			after = res.Last
			if !follow {
				return nil
			}
		}
	}
	return cmd
}

func newRoutesCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{Use: "routes", Short: "Show a running node's routing table"}
	cf := addClientFlags(cmd, environ)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var res struct {
			Routes []api.Route `json:"routes"`
		}
		if err := cf.get("/v1/routes", &res); err != nil {
			return err
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "DESTINATION\tHOPS\tNEXT HOP\tLINK\tCAPABILITIES\tREFRESHED")
		for _, r := range res.Routes {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s ago\n", r.Address, r.Hops, r.NextHop[:8], r.Link,
				strings.Join(r.Capabilities, ","), time.Since(r.Refreshed).Round(time.Second))
		}
		return w.Flush()
	}
	return cmd
}

func newTraceCmd(environ []string) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "trace ADDR",
		Short: "Show the hop-by-hop path to ADDR with round-trip times",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("trace takes one ADDR")
			}
			if _, err := crypto.ParseAddress(args[0]); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var res api.TraceResponse
		ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
		defer cancel()
		q := url.Values{"to": {args[0]}, "timeout": {timeout.String()}}
		if err := cf.client().Get(ctx, "/v1/trace?"+q.Encode(), &res); err != nil {
			return err
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		for _, h := range res.Hops {
			fmt.Fprintf(cmd.OutOrStdout(), "%2d  %s  %.2f ms\n", h.Hop, h.Address, h.RTTms)
		}
		if !res.Reached {
			return errors.New("destination not reached")
		}
		return nil
	}
	return cmd
}

func newSizesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sizes",
		Short: "Print the wire sizes of announces, envelopes, FAPP and group messages, measured from real encodings, and their airtime on LoRa",
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows := messages.Sizes()
			air, err := airRows(rows)
			if err != nil {
				return err
			}
			fappAir, err := fappAirRows(fapp.Sizes())
			if err != nil {
				return err
			}
			groups, err := keys.Sizes()
			if err != nil {
				return err
			}
			groupsAir, err := groupAirRows(groups)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"sizes": rows, "lora": air, "fapp": fappAir, "groups": groups, "groups_lora": groupsAir})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%5d B\t%s\n", r.Name, r.Bytes, r.Note)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if err := printAirRows(cmd.OutOrStdout(), air); err != nil {
				return err
			}
			if err := printFAPPAirRows(cmd.OutOrStdout(), fappAir); err != nil {
				return err
			}
			return printGroupSizes(cmd.OutOrStdout(), groups, groupsAir)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newLoRaCmd() *cobra.Command {
	root := &cobra.Command{Use: "lora", Short: "LoRa tools"}
	var (
		sf, bw, length, preamble int
		cr                       string
		implicit, noCRC, asJSON  bool
		ldro                     string
	)
	air := &cobra.Command{
		Use:   "airtime",
		Short: "Time on air of one LoRa packet (Semtech formula)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			rate, err := lora.ParseCodingRate(cr)
			if err != nil {
				return usageError{fmt.Errorf("--cr: %w", err)}
			}
			p := lora.Params{SF: sf, Bandwidth: bw, CR: rate, Preamble: preamble, ImplicitHeader: implicit, NoCRC: noCRC}
			switch ldro {
			case "auto":
			case "on":
				p.LDRO = lora.LDROOn
			case "off":
				p.LDRO = lora.LDROOff
			default:
				return usagef("--ldro %q: want auto, on or off", ldro)
			}
			b, err := lora.Calculate(p, length)
			if err != nil {
				return usageError{err}
			}
			ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{
					"sf": sf, "bandwidth_hz": bw, "coding_rate": "4/" + strconv.Itoa(rate.Denominator()), "payload_bytes": length,
					"preamble": preamble, "implicit_header": implicit, "crc": !noCRC, "low_data_rate": b.LowDataRate,
					"symbol_ms": ms(b.SymbolTime), "preamble_ms": ms(b.Preamble), "payload_ms": ms(b.Payload),
					"payload_symbols": b.PayloadSymbols, "airtime_ms": ms(b.Total),
				})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%.3f ms\n", ms(b.Total))
			return nil
		},
	}
	f := air.Flags()
	f.IntVar(&sf, "sf", 7, "spreading factor 5..12")
	f.IntVar(&bw, "bw", 125000, "bandwidth in Hz")
	f.StringVar(&cr, "cr", "5", "coding rate 5..8 (4/5..4/8)")
	f.IntVar(&length, "len", 20, "PHY payload bytes (0..255)")
	f.IntVar(&preamble, "preamble", 8, "preamble symbols")
	f.BoolVar(&implicit, "implicit", false, "implicit header")
	f.BoolVar(&noCRC, "no-crc", false, "payload CRC off")
	f.StringVar(&ldro, "ldro", "auto", "low data rate optimisation: auto, on or off")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	air.Args = noArgs
	root.AddCommand(air)
	return root
}
