package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
)

// qpc group: MLS groups through a running node's admin API (/v1/groups,
// docs/operations.md).

func newGroupCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "MLS groups: create one, add and remove members, send to it, list them",
		Long: `MLS groups through a running node. The node that creates a group is its
creator, the only member that adds and removes members.

  qpc group create NAME [--json]          prints the new group's id
  qpc group add GROUP ADDR [--wait 30s]   fetches ADDR's KeyPackage over the mesh, adds ADDR
  qpc group remove GROUP ADDR
  qpc group send GROUP TEXT               one copy to every other member, each retransmitted until its receipt
  qpc group list [--json]                 the groups this node is in, with their members

GROUP is a group id as create and list print it (32 lower-case hex
digits); ADDR a node address. Group messages arrive in 'qpc inbox', shown
with their group's id.`,
	}
	cmd.AddCommand(newGroupCreateCmd(environ), newGroupAddCmd(environ), newGroupRemoveCmd(environ),
		newGroupSendCmd(environ), newGroupListCmd(environ))
	for _, c := range cmd.Commands() {
		if c.Args == nil {
			c.Args = noArgs
		}
	}
	return cmd
}

// groupCall makes one request to the node's /v1/groups, allowed wait on
// top of the usual 15 seconds.
func groupCall(cf *clientFlags, method, path string, wait time.Duration, body, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait+15*time.Second)
	defer cancel()
	return cf.client().Do(ctx, method, path, body, v)
}

// groupErr turns the API's answer into a sentence for the operator (the
// code and the node's message follow in parentheses); what is not an API
// answer (no node running) is left as it is. op is the command (create,
// add, remove, send, list); group and addr are what it was asked about
// ("" when it names none).
func groupErr(err error, op, group, addr string, wait time.Duration) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err
	}
	var msg string
	switch ae.Code {
	case "groups_off":
		msg = "this node does not serve MLS groups"
	case "not_found":
		if group != "" {
			msg = fmt.Sprintf("unknown group %s: this node is not in it ('qpc group list' shows the groups it is in)", group)
		}
	case "group_member":
		switch op {
		case "add":
			msg = fmt.Sprintf("%s is already a member of group %s", addr, group)
		case "remove":
			msg = fmt.Sprintf("%s is not a member of group %s", addr, group)
		}
	case "keypackage_unavailable":
		msg = fmt.Sprintf("%s could not be added: no KeyPackage of it came over the mesh within %s; "+
			"is that node up and reachable ('qpc routes')? Try again, or with a longer --wait", addr, wait)
	case "group_not_creator":
		msg = fmt.Sprintf("only the creator of group %s adds and removes its members ('qpc group list' names the creator)", group)
	}
	if msg == "" {
		return err
	}
	return fmt.Errorf("%s (%s: %s)", msg, ae.Code, ae.Message)
}

// groupArgs checks the positional arguments: names[i] says what args[i]
// is ("GROUP", "ADDR", "TEXT", "NAME"). A bad one is a usage error.
func groupArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%s takes %s, got %s", cmd.CommandPath(), strings.Join(names, " and "), plural(len(args), "argument"))
		}
		for i, name := range names {
			var err error
			switch name {
			case "GROUP":
				err = api.CheckGroupID(args[i])
			case "ADDR":
				if _, perr := crypto.ParseAddress(args[i]); perr != nil {
					err = fmt.Errorf("ADDR: %w", perr)
				}
			case "NAME":
				err = api.CheckGroupName(args[i])
			case "TEXT":
				switch {
				case args[i] == "":
					err = errors.New("TEXT is empty")
				case !utf8.ValidString(args[i]):
					err = errors.New("TEXT is not UTF-8; send text, not bytes")
				case len(args[i]) > api.MaxGroupTextSize:
					err = fmt.Errorf("TEXT of %d bytes is over the limit of %d", len(args[i]), api.MaxGroupTextSize)
				}
			}
			if err != nil {
				return usageError{err}
			}
		}
		return nil
	}
}

func newGroupCreateCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME [--json]",
		Short: "Create a group with this node as its one member; prints the group's id",
		Args:  groupArgs("NAME"),
	}
	cf := addClientFlags(cmd, environ)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var res api.GroupCreateResponse
		if err := groupCall(cf, http.MethodPost, "/v1/groups", 0, api.GroupCreateRequest{Name: args[0]}, &res); err != nil {
			return groupErr(err, "create", "", "", 0)
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		_, err := fmt.Fprintln(cmd.OutOrStdout(), res.Group)
		return err
	}
	return cmd
}

func newGroupAddCmd(environ []string) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "add GROUP ADDR [--wait 30s]",
		Short: "Add ADDR to a group: fetch its KeyPackage over the mesh, commit, send it the Welcome",
		Long: `Add the node ADDR to a group this node created. The node fetches ADDR's
KeyPackage over the mesh, waiting up to --wait (at most 5m), commits the
addition and sends ADDR the Welcome. Exit 1 when no KeyPackage came in
time (ADDR down, unreachable, or without one), when ADDR is a member
already, or when this node is not the group's creator.`,
		Args: groupArgs("GROUP", "ADDR"),
	}
	cf := addClientFlags(cmd, environ)
	cmd.Flags().DurationVar(&wait, "wait", api.DefaultGroupAddWait, "how long the node waits for ADDR's KeyPackage (at most 5m)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if wait < 0 || wait > api.MaxGroupAddWait {
			return usagef("--wait %s: want a duration from 0s to %s", wait, api.MaxGroupAddWait)
		}
		req := api.GroupMemberRequest{Address: args[1], Wait: wait.String()}
		var g api.Group
		if err := groupCall(cf, http.MethodPost, "/v1/groups/"+args[0]+"/members", wait, req, &g); err != nil {
			return groupErr(err, "add", args[0], args[1], wait)
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), g)
		}
		_, err := fmt.Fprintf(cmd.OutOrStdout(), "added %s to group %s (epoch %d, %s)\n", args[1], args[0], g.Epoch, plural(len(g.Members), "member"))
		return err
	}
	return cmd
}

func newGroupRemoveCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove GROUP ADDR",
		Short: "Remove ADDR from a group this node created",
		Args:  groupArgs("GROUP", "ADDR"),
	}
	cf := addClientFlags(cmd, environ)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var g api.Group
		if err := groupCall(cf, http.MethodDelete, "/v1/groups/"+args[0]+"/members/"+args[1], 0, nil, &g); err != nil {
			return groupErr(err, "remove", args[0], args[1], 0)
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), g)
		}
		_, err := fmt.Fprintf(cmd.OutOrStdout(), "removed %s from group %s (epoch %d, %s)\n", args[1], args[0], g.Epoch, plural(len(g.Members), "member"))
		return err
	}
	return cmd
}

func newGroupSendCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "send GROUP TEXT",
		Short: "Send TEXT to every other member of a group (each copy kept and retransmitted until its receipt)",
		Long: `Send TEXT encrypted for the group: one copy to every other member, each
kept in the outbox and retransmitted until that member's receipt. Prints
each copy's state and message id; follow them with 'qpc outbox'.`,
		Args: groupArgs("GROUP", "TEXT"),
	}
	cf := addClientFlags(cmd, environ)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var res api.GroupSendResponse
		if err := groupCall(cf, http.MethodPost, "/v1/groups/"+args[0]+"/messages", 0, api.GroupSendRequest{Text: args[1]}, &res); err != nil {
			return groupErr(err, "send", args[0], "", 0)
		}
		if res.Copies == nil {
			res.Copies = []api.Message{}
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		out := cmd.OutOrStdout()
		if len(res.Copies) == 0 {
			_, err := fmt.Fprintf(out, "sent to nobody: this node is the only member of group %s (epoch %d)\n", res.Group, res.Epoch)
			return err
		}
		fmt.Fprintf(out, "sent to %s of group %s (epoch %d)\n", plural(len(res.Copies), "member"), res.Group, res.Epoch)
		for _, m := range res.Copies {
			fmt.Fprintf(out, "  %s %s to %s\n", m.State, m.ID, m.To)
		}
		return nil
	}
	return cmd
}

func newGroupListCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the groups this node is in: id, name, epoch, creator, members and how each member's copies are protected",
	}
	cf := addClientFlags(cmd, environ)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var res api.GroupListResponse
		if err := groupCall(cf, http.MethodGet, "/v1/groups", 0, nil, &res); err != nil {
			return groupErr(err, "list", "", "", 0)
		}
		if res.Groups == nil {
			res.Groups = []api.Group{}
		}
		if cf.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		if len(res.Groups) == 0 {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "no groups: 'qpc group create NAME' makes one")
			return err
		}
		return printGroups(cmd.OutOrStdout(), res.Groups)
	}
	return cmd
}

// printGroups is list's human form: one block per group, a blank line
// between them. Member modes are the link protection of the copies to
// that member (mls, mls+pq, mls-lite, mls-lite-unsigned).
func printGroups(w io.Writer, groups []api.Group) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		self := ""
		for _, m := range g.Members {
			if m.Self {
				self = m.Address
			}
		}
		creator := g.Creator
		if creator != "" && creator == self {
			creator += " (this node)"
		}
		fmt.Fprintf(tw, "group\t%s\n", g.Group)
		fmt.Fprintf(tw, "name\t%s\n", shown(api.InboxEntry{Text: g.Name}))
		pq := "no"
		if g.PQ {
			pq = "yes (X-Wing PSK in this epoch)"
		}
		fmt.Fprintf(tw, "epoch\t%d\n", g.Epoch)
		fmt.Fprintf(tw, "pq\t%s\n", pq)
		fmt.Fprintf(tw, "creator\t%s\n", creator)
		for _, m := range g.Members {
			mode := m.Mode
			switch {
			case m.Self:
				mode = "(this node)"
			case mode == "":
				mode = "(mode unknown)"
			}
			fmt.Fprintf(tw, "member\t%s %s\n", m.Address, mode)
		}
	}
	return tw.Flush()
}
