package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/api"
)

// qpc fapp: FAPP, finding free psychotherapy appointments, through a
// running node's admin API (/v1/fapp/, docs/operations.md).

func newFAPPCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fapp",
		Short: "Free psychotherapy appointments: publish slots (therapist), search, reserve (patient), answer (therapist)",
		Long: `FAPP through a running node (its fapp.role, or qpc node --fapp ROLE,...).

  therapist:  qpc fapp publish --file slots.toml|slots.ics
              qpc fapp requests;  qpc fapp confirm RES [--text TEXT];  qpc fapp decline RES [--reason TEXT]
  patient:    qpc fapp search --fachrichtung verhaltenstherapie --kostentraeger gkv --plz 803 ...
              qpc fapp reserve SLOT [--note TEXT];  qpc fapp status RES [--wait 30s]

Values on the command line are the lower-case names:
  fachrichtung   ` + strings.Join(fapp.FachrichtungNames(), " ") + ` (each may end in +kjp)
  modalitaet     ` + strings.Join(fapp.ModalitaetNames(), " ") + `
  kostentraeger  ` + strings.Join(fapp.KostentraegerNames(), " ") + `
  type           ` + strings.Join(fapp.SlotTypeNames(), " "),
	}
	cmd.AddCommand(newFAPPPublishCmd(environ), newFAPPSearchCmd(environ), newFAPPReserveCmd(environ),
		newFAPPStatusCmd(environ), newFAPPRequestsCmd(environ), newFAPPAnswerCmd(environ, true), newFAPPAnswerCmd(environ, false))
	for _, c := range cmd.Commands() {
		if c.Args == nil {
			c.Args = noArgs
		}
	}
	return cmd
}

// fappCall makes one request to the node's /v1/fapp/, allowed wait on
// top of the usual 15 seconds.
func fappCall(cf *clientFlags, method, path string, wait time.Duration, body, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait+15*time.Second)
	defer cancel()
	return cf.client().Do(ctx, method, path, body, v)
}

// oneID checks the single argument of reserve, status, confirm, decline.
func oneID(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("%s takes one %s, got %d arguments", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

func newFAPPPublishCmd(environ []string) *cobra.Command {
	var file, typ string
	var modalitaet []string
	cmd := &cobra.Command{
		Use:   "publish --file slots.toml|slots.ics",
		Short: "Publish the therapist's free slots, replacing the set published before",
		Long: `Publish the therapist's free slots from a file, replacing the set published
before (a file without slots withdraws every one). The node signs the set
and floods it; relays serve it to searches until fapp.announce_ttl ends.

A TOML file has one [[slot]] table per slot:

  [[slot]]
  start = 2026-12-03T10:00:00+01:00
  minutes = 50
  type = "therapieplatz"
  modalitaet = ["praxis", "video"]
  fachrichtung = "verhaltenstherapie"  # optional: the first of fapp.fachrichtung
  kostentraeger = ["gkv"]              # optional: fapp.kostentraeger

An iCalendar file (.ics) has one VEVENT per slot: DTSTART and DTEND (or
DURATION), and X-FAPP-TYPE, X-FAPP-MODALITAET (comma-separated),
X-FAPP-FACHRICHTUNG, X-FAPP-KOSTENTRAEGER. --type and --modalitaet are the
defaults for a slot that does not say.`,
	}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().StringVarP(&file, "file", "f", "", "the slots file: .toml or .ics (required)")
	cmd.Flags().StringVar(&typ, "type", "", "type of a slot that names none: "+strings.Join(fapp.SlotTypeNames(), ", "))
	cmd.Flags().StringSliceVar(&modalitaet, "modalitaet", nil, "modalitaet of a slot that names none: any of "+strings.Join(fapp.ModalitaetNames(), ", "))
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if file == "" {
			return usagef("publish needs --file slots.toml or --file slots.ics")
		}
		var def fapp.SlotDefaults
		var err error
		if typ != "" {
			if def.Type, err = fapp.ParseSlotType(typ); err != nil {
				return usagef("--type: %v", err)
			}
		}
		if len(modalitaet) > 0 {
			if def.Modalitaet, err = fapp.ParseModalitaet(modalitaet...); err != nil {
				return usagef("--modalitaet: %v", err)
			}
		}
		slots, err := fapp.ReadSlotFile(file, def)
		if err != nil {
			return usageError{err}
		}
		req := api.FAPPPublishRequest{Slots: make([]api.FAPPSlotInput, len(slots))}
		for i, s := range slots {
			req.Slots[i] = api.FAPPSlotInputOf(s)
		}
		var res api.FAPPPublishResponse
		if err := fappCall(cf, "POST", "/v1/fapp/publish", 0, req, &res); err != nil {
			return err
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "published %s (set %d, until %s)\n", plural(len(res.Slots), "slot"), res.Seq, res.Expires.Local().Format(time.RFC3339))
		return printSlots(out, res.Slots)
	}
	return cmd
}

// fappSearchFlags are the filter flags of qpc fapp search.
type fappSearchFlags struct {
	fachrichtung, plz, from, to, typ string
	modalitaet, kostentraeger        []string
	max                              int
	wait                             time.Duration
}

// query checks the flags locally and turns them into search's query
// parameters. A bad value is a usage error naming the flag and the
// allowed values.
func (sf *fappSearchFlags) query(cmd *cobra.Command, now time.Time) (url.Values, error) {
	q := url.Values{}
	set := func(name, v string) {
		if v != "" {
			q.Set(name, v)
		}
	}
	set("fachrichtung", sf.fachrichtung)
	set("modalitaet", strings.Join(sf.modalitaet, ","))
	set("kostentraeger", strings.Join(sf.kostentraeger, ","))
	set("plz", sf.plz)
	set("type", sf.typ)
	var window [2]time.Time // --from, --to
	for i, name := range []string{"from", "to"} {
		v := []string{sf.from, sf.to}[i]
		if v == "" {
			continue
		}
		t, err := api.ParseFAPPTime(v, now.Location())
		if err != nil {
			return nil, usagef("--%s: %v", name, err)
		}
		window[i] = t
		q.Set(name, t.Format(time.RFC3339))
	}
	if from, to := window[0], window[1]; !from.IsZero() && !to.IsZero() && !to.After(from) {
		return nil, usagef("--from %s and --to %s: the time window is empty, want --to after --from",
			from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if cmd.Flags().Changed("max") {
		q.Set("max", strconv.Itoa(sf.max))
	}
	if cmd.Flags().Changed("wait") {
		q.Set("wait", sf.wait.String())
	}
	if _, _, err := api.ParseFAPPSearch(q, now); err != nil {
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, "parameter "); ok {
			msg = "--" + rest
		}
		return nil, usageError{fmt.Errorf("%s", msg)}
	}
	return q, nil
}

func newFAPPSearchCmd(environ []string) *cobra.Command {
	sf := &fappSearchFlags{}
	cmd := &cobra.Command{
		Use:   "search [--fachrichtung F] [--modalitaet M,...] [--kostentraeger K,...] [--plz PREFIX] [--from TIME] [--to TIME] [--type T] [--max N] [--wait DURATION]",
		Short: "Search the mesh anonymously for free slots",
		Long: `Search the mesh anonymously for free slots. Every flag narrows the search;
a set (--modalitaet, --kostentraeger) matches a slot that offers any of it.
TIME is RFC 3339 (2026-12-03T10:00:00+01:00) or a date (2026-12-03, local
midnight). The node gathers answers for --wait (default 3s, at most 60s).`,
	}
	cf := addClientFlags(cmd, environ)
	f := cmd.Flags()
	f.StringVar(&sf.fachrichtung, "fachrichtung", "", "one of "+strings.Join(fapp.FachrichtungNames(), ", ")+" (each may end in +kjp)")
	f.StringSliceVar(&sf.modalitaet, "modalitaet", nil, "any of "+strings.Join(fapp.ModalitaetNames(), ", "))
	f.StringSliceVar(&sf.kostentraeger, "kostentraeger", nil, "any of "+strings.Join(fapp.KostentraegerNames(), ", "))
	f.StringVar(&sf.plz, "plz", "", "PLZ prefix, 1 to 5 digits (803 matches 80331)")
	f.StringVar(&sf.from, "from", "", "slots starting at or after TIME")
	f.StringVar(&sf.to, "to", "", "slots starting before TIME")
	f.StringVar(&sf.typ, "type", "", "one of "+strings.Join(fapp.SlotTypeNames(), ", "))
	f.IntVar(&sf.max, "max", fapp.DefaultQueryResults, fmt.Sprintf("at most N slots (1 to %d)", fapp.MaxQueryResults))
	f.DurationVar(&sf.wait, "wait", api.DefaultFAPPSearchWait, "how long the node gathers answers (at most 60s)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		q, err := sf.query(cmd, time.Now())
		if err != nil {
			return err
		}
		path := "/v1/fapp/search"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var res api.FAPPSearchResponse
		if err := fappCall(cf, "GET", path, sf.wait, nil, &res); err != nil {
			return err
		}
		if res.Slots == nil {
			res.Slots = []api.FAPPSlotJSON{}
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		if len(res.Slots) == 0 {
			fmt.Fprintln(cmd.OutOrStdout(), "no matching slots")
			return nil
		}
		return printSlots(cmd.OutOrStdout(), res.Slots)
	}
	return cmd
}

// printSlots is the table of search and publish.
func printSlots(w io.Writer, slots []api.FAPPSlotJSON) error {
	if len(slots) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tSTART\tMIN\tTYPE\tFACHRICHTUNG\tMODALITAET\tKOSTENTRAEGER\tPLZ")
	for _, s := range slots {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Slot, s.Start.Local().Format("Mon 2006-01-02 15:04"), s.Minutes, s.Type,
			s.Fachrichtung, strings.Join(s.Modalitaet, ","), strings.Join(s.Kostentraeger, ","), s.PLZ)
	}
	return tw.Flush()
}

// fappReservationJSON is what reserve and status print with --json:
// {"reservation": ID, "status": ...} and the therapist's text when there
// is one.
type fappReservationJSON struct {
	Reservation string `json:"reservation"`
	Status      string `json:"status"`
	Text        string `json:"text,omitempty"`
}

func printReservation(w io.Writer, json bool, r api.FAPPReservation) error {
	if json {
		return printJSON(w, fappReservationJSON{Reservation: r.Reservation, Status: r.Status, Text: r.Text})
	}
	line := r.Status + " " + r.Reservation
	if r.Slot != "" {
		line += " (slot " + r.Slot + ")"
	}
	if r.Text != "" {
		line += ": " + shown(api.InboxEntry{Text: r.Text})
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func newFAPPReserveCmd(environ []string) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "reserve SLOT [--note TEXT]",
		Short: "Reserve a slot a search listed (sealed to the therapist); prints the reservation id",
		Args:  oneID("SLOT (as search lists it)"),
	}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().StringVar(&note, "note", "", fmt.Sprintf("a note for the therapist (at most %d bytes)", fapp.MaxNoteSize))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if _, err := fapp.ParseSlotID(args[0]); err != nil {
			return usageError{err}
		}
		if len(note) > fapp.MaxNoteSize {
			return usagef("--note of %d bytes is over the limit of %d", len(note), fapp.MaxNoteSize)
		}
		var res api.FAPPReservation
		if err := fappCall(cf, "POST", "/v1/fapp/reserve", 0, api.FAPPReserveRequest{Slot: args[0], Note: note}, &res); err != nil {
			return err
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), fappReservationJSON{Reservation: res.Reservation, Status: res.Status})
		}
		return printReservation(cmd.OutOrStdout(), false, res)
	}
	return cmd
}

func newFAPPStatusCmd(environ []string) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "status RES [--wait DURATION]",
		Short: "Show where a reservation stands: pending, confirmed, declined or taken",
		Long: `Show where a reservation stands: pending, confirmed, declined or taken.
With --wait, wait up to DURATION for it to leave pending.`,
		Args: oneID("reservation id"),
	}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for an answer")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if wait < 0 {
			return usagef("--wait %s: want a duration of 0 or more", wait)
		}
		deadline := time.Now().Add(wait)
		var res api.FAPPReservation
		// The API waits at most MaxFAPPWait at a time: one request per
		// MaxFAPPWait of --wait (a node that answers "pending" early is not
		// asked again and again).
		for range int(wait/api.MaxFAPPWait) + 1 {
			step := min(max(time.Until(deadline), 0), api.MaxFAPPWait)
			path := "/v1/fapp/reservations/" + url.PathEscape(args[0])
			if step > 0 {
				path += "?wait=" + step.Round(time.Millisecond).String()
			}
			if err := fappCall(cf, "GET", path, step, nil, &res); err != nil {
				return err
			}
			if res.Status != "pending" || time.Until(deadline) <= 0 {
				break
			}
		}
		return printReservation(cmd.OutOrStdout(), cf.json, res)
	}
	return cmd
}

func newFAPPRequestsCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "requests",
		Short: "List the reservations the therapist received",
	}
	cf := addClientFlags(cmd, environ)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var res api.FAPPRequestsResponse
		if err := fappCall(cf, "GET", "/v1/fapp/requests", 0, nil, &res); err != nil {
			return err
		}
		if res.Requests == nil {
			res.Requests = []api.FAPPRequest{}
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		if len(res.Requests) == 0 {
			fmt.Fprintln(cmd.OutOrStdout(), "no reservations")
			return nil
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RESERVATION\tSLOT\tSTATUS\tAT\tNOTE")
		for _, r := range res.Requests {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Reservation, r.Slot, r.Status, r.At.Local().Format(time.RFC3339), shown(api.InboxEntry{Text: r.Note}))
		}
		return tw.Flush()
	}
	return cmd
}

// newFAPPAnswerCmd is qpc fapp confirm (confirm) or qpc fapp decline.
func newFAPPAnswerCmd(environ []string, confirm bool) *cobra.Command {
	var text string
	use, short, flag, help, action := "decline RES [--reason TEXT]", "Decline a reservation (the slot stays free)", "reason", "why, for the patient", "decline"
	if confirm {
		use, short, flag, help, action = "confirm RES [--text TEXT]", "Confirm a reservation: the slot is the patient's, every other reservation of it is taken", "text", "what the patient needs to know next", "confirm"
	}
	cmd := &cobra.Command{Use: use, Short: short, Args: oneID("reservation id")}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().StringVar(&text, flag, "", fmt.Sprintf("%s (at most %d bytes)", help, fapp.MaxNoteSize))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(text) > fapp.MaxNoteSize {
			return usagef("--%s of %d bytes is over the limit of %d", flag, len(text), fapp.MaxNoteSize)
		}
		var res api.FAPPReservation
		path := "/v1/fapp/requests/" + url.PathEscape(args[0]) + "/" + action
		if err := fappCall(cf, "POST", path, 0, api.FAPPAnswerRequest{Text: text}, &res); err != nil {
			return err
		}
		return printReservation(cmd.OutOrStdout(), cf.json, res)
	}
	return cmd
}
