package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/api"
)

// groupNode is a Backend with groups for the CLI's tests: the real admin
// API in front of it, groups in memory. fappNode gives it the rest of a
// Backend.
type groupNode struct {
	fappNode
	gmu      sync.Mutex
	greqs    int // requests that reached the groups
	err      error
	groups   []api.Group
	lastWait time.Duration
	lastText string
	inbox    []api.InboxEntry
}

const (
	groupSelf   = "00112233445566778899aabbccddeeff"
	groupPeer   = "ffeeddccbbaa99887766554433221100"
	groupPeer2  = "0f0e0d0c0b0a09080706050403020100"
	groupFirst  = "0123456789abcdef0123456789abcdef"
	groupSecond = "fedcba9876543210fedcba9876543210"
)

func (n *groupNode) begin() error {
	n.gmu.Lock()
	n.greqs++
	return n.err
}

func (n *groupNode) find(id string) (int, error) {
	for i, g := range n.groups {
		if g.Group == id {
			return i, nil
		}
	}
	return 0, &api.NotFound{Err: fmt.Errorf("groups: no group %s", id)}
}

func (n *groupNode) GroupCreate(_ context.Context, name string) (api.GroupCreateResponse, error) {
	defer n.gmu.Unlock()
	if err := n.begin(); err != nil {
		return api.GroupCreateResponse{}, err
	}
	id := []string{groupFirst, groupSecond}[len(n.groups)%2]
	n.groups = append(n.groups, api.Group{Group: id, Name: name, Creator: groupSelf, Members: []api.GroupMember{{Address: groupSelf, Self: true}}})
	return api.GroupCreateResponse{Group: id}, nil
}
func (n *groupNode) GroupList(context.Context) (api.GroupListResponse, error) {
	defer n.gmu.Unlock()
	if err := n.begin(); err != nil {
		return api.GroupListResponse{}, err
	}
	return api.GroupListResponse{Groups: append([]api.Group(nil), n.groups...)}, nil
}
func (n *groupNode) GroupShow(_ context.Context, group string) (api.Group, error) {
	defer n.gmu.Unlock()
	if err := n.begin(); err != nil {
		return api.Group{}, err
	}
	i, err := n.find(group)
	if err != nil {
		return api.Group{}, err
	}
	return n.groups[i], nil
}
func (n *groupNode) GroupAdd(_ context.Context, group, addr string, wait time.Duration) (api.Group, error) {
	defer n.gmu.Unlock()
	if err := n.begin(); err != nil {
		return api.Group{}, err
	}
	n.lastWait = wait
	i, err := n.find(group)
	if err != nil {
		return api.Group{}, err
	}
	g := &n.groups[i]
	g.Epoch++
	g.Members = append(g.Members, api.GroupMember{Address: addr, Mode: "mls"})
	return *g, nil
}
func (n *groupNode) GroupRemove(_ context.Context, group, addr string) (api.Group, error) {
	defer n.gmu.Unlock()
	if err := n.begin(); err != nil {
		return api.Group{}, err
	}
	i, err := n.find(group)
	if err != nil {
		return api.Group{}, err
	}
	g := &n.groups[i]
	for k, m := range g.Members {
		if m.Address == addr {
			g.Epoch++
			g.Members = append(g.Members[:k:k], g.Members[k+1:]...)
			return *g, nil
		}
	}
	return api.Group{}, fmt.Errorf("%w: %s is not a member", api.ErrGroupMember, addr)
}
func (n *groupNode) GroupSend(_ context.Context, group, text string) (api.GroupSendResponse, error) {
	defer n.gmu.Unlock()
	if err := n.begin(); err != nil {
		return api.GroupSendResponse{}, err
	}
	n.lastText = text
	i, err := n.find(group)
	if err != nil {
		return api.GroupSendResponse{}, err
	}
	g := n.groups[i]
	res := api.GroupSendResponse{Group: group, Epoch: g.Epoch}
	for k, m := range g.Members {
		if !m.Self {
			res.Copies = append(res.Copies, api.Message{ID: fmt.Sprintf("msg%d", k), To: m.Address, State: "queued"})
		}
	}
	return res, nil
}
func (n *groupNode) InboxSince(context.Context, uint64, time.Duration) (api.InboxResponse, error) {
	n.gmu.Lock()
	defer n.gmu.Unlock()
	return api.InboxResponse{Messages: n.inbox, Last: uint64(len(n.inbox))}, nil
}

var _ api.GroupsBackend = (*groupNode)(nil)

func startGroupNode(t *testing.T) (*groupNode, string) {
	t.Helper()
	n := &groupNode{fappNode: fappNode{status: map[string]string{}}}
	s, err := api.Listen(api.Options{Addr: "127.0.0.1:0"}, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return n, s.Addr()
}

func TestGroupCreateAddSendRemoveList(t *testing.T) {
	n, addr := startGroupNode(t)
	code, out, errs := qpc(t, "group", "create", "Station Nord", "--api", addr)
	if code != exitOK || out != groupFirst+"\n" {
		t.Fatalf("create: exit %d %q %s, want the id alone", code, out, errs)
	}
	code, out, errs = qpc(t, "group", "create", "zweite", "--api", addr, "--json")
	var created map[string]string
	if code != exitOK || json.Unmarshal([]byte(out), &created) != nil || len(created) != 1 || created["group"] != groupSecond {
		t.Fatalf("create --json: exit %d %q %s, want {\"group\": %s}", code, out, errs, groupSecond)
	}

	// add: --wait defaults to 30s and is passed on.
	code, out, errs = qpc(t, "group", "add", groupFirst, groupPeer, "--api", addr)
	if code != exitOK || out != "added "+groupPeer+" to group "+groupFirst+" (epoch 1, 2 members)\n" || n.lastWait != 30*time.Second {
		t.Errorf("add: exit %d %q %s, node got wait %s", code, out, errs, n.lastWait)
	}
	code, out, errs = qpc(t, "group", "add", groupFirst, groupPeer2, "--wait", "2m", "--api", addr, "--json")
	var g api.Group
	if code != exitOK || json.Unmarshal([]byte(out), &g) != nil || g.Epoch != 2 || len(g.Members) != 3 || n.lastWait != 2*time.Minute {
		t.Errorf("add --wait 2m --json: exit %d %s %s, node got wait %s", code, out, errs, n.lastWait)
	}

	code, out, errs = qpc(t, "group", "send", groupFirst, "Übergabe 7 Uhr", "--api", addr)
	want := "sent to 2 members of group " + groupFirst + " (epoch 2)\n  queued msg1 to " + groupPeer + "\n  queued msg2 to " + groupPeer2 + "\n"
	if code != exitOK || out != want || n.lastText != "Übergabe 7 Uhr" {
		t.Errorf("send: exit %d\n%s%s\nwant\n%s(node got %q)", code, out, errs, want, n.lastText)
	}
	code, out, _ = qpc(t, "group", "send", groupFirst, "hi", "--api", addr, "--json")
	var sent api.GroupSendResponse
	if code != exitOK || json.Unmarshal([]byte(out), &sent) != nil || sent.Group != groupFirst || len(sent.Copies) != 2 || sent.Copies[1].To != groupPeer2 {
		t.Errorf("send --json: exit %d %s", code, out)
	}
	if code, out, _ := qpc(t, "group", "send", groupSecond, "allein", "--api", addr); code != exitOK || !strings.Contains(out, "sent to nobody: this node is the only member") {
		t.Errorf("send to a group of one: exit %d %q", code, out)
	}

	code, out, errs = qpc(t, "group", "remove", groupFirst, groupPeer2, "--api", addr)
	if code != exitOK || out != "removed "+groupPeer2+" from group "+groupFirst+" (epoch 3, 2 members)\n" {
		t.Errorf("remove: exit %d %q %s", code, out, errs)
	}

	code, out, errs = qpc(t, "group", "list", "--api", addr)
	wantList := "group    " + groupFirst + "\n" +
		"name     Station Nord\n" +
		"epoch    3\n" +
		"pq       no\n" +
		"creator  " + groupSelf + " (this node)\n" +
		"member   " + groupSelf + " (this node)\n" +
		"member   " + groupPeer + " mls\n" +
		"\n" +
		"group    " + groupSecond + "\n" +
		"name     zweite\n" +
		"epoch    0\n" +
		"pq       no\n" +
		"creator  " + groupSelf + " (this node)\n" +
		"member   " + groupSelf + " (this node)\n"
	if code != exitOK || out != wantList {
		t.Errorf("list: exit %d %s\n%s\nwant\n%s", code, errs, out, wantList)
	}
	code, out, _ = qpc(t, "group", "list", "--api", addr, "--json")
	var list api.GroupListResponse
	if code != exitOK || json.Unmarshal([]byte(out), &list) != nil || len(list.Groups) != 2 || list.Groups[0].Name != "Station Nord" ||
		list.Groups[0].Members[1] != (api.GroupMember{Address: groupPeer, Mode: "mls"}) || !list.Groups[0].Members[0].Self {
		t.Errorf("list --json: exit %d %s", code, out)
	}
	for _, k := range []string{`"groups"`, `"group"`, `"name"`, `"epoch"`, `"creator"`, `"pq"`, `"members"`, `"address"`, `"self"`, `"mode"`} {
		if !strings.Contains(out, k) {
			t.Errorf("list --json has no %s: %s", k, out)
		}
	}
}

func TestGroupListEmptyAndNamesEscaped(t *testing.T) {
	n, addr := startGroupNode(t)
	if code, out, _ := qpc(t, "group", "list", "--api", addr); code != exitOK || out != "no groups: 'qpc group create NAME' makes one\n" {
		t.Errorf("list with no groups: exit %d %q", code, out)
	}
	if code, out, _ := qpc(t, "group", "list", "--api", addr, "--json"); code != exitOK || strings.Join(strings.Fields(out), "") != `{"groups":[]}` {
		t.Errorf("list --json with no groups: exit %d %q, want {\"groups\": []}", code, out)
	}
	// A name that came over the mesh (a Welcome) is shown escaped.
	n.gmu.Lock()
	n.groups = []api.Group{{Group: groupFirst, Name: "x\u202eevil", Creator: groupPeer, PQ: true, Members: []api.GroupMember{{Address: groupPeer}, {Address: groupSelf, Self: true}}}}
	n.gmu.Unlock()
	code, out, _ := qpc(t, "group", "list", "--api", addr)
	if code != exitOK || !strings.Contains(out, `name     x\u202eevil`) || !strings.Contains(out, "creator  "+groupPeer+"\n") || !strings.Contains(out, groupPeer+" (mode unknown)") ||
		!strings.Contains(out, "pq       yes (X-Wing PSK in this epoch)\n") {
		t.Errorf("list of a group another node created: exit %d\n%s", code, out)
	}
}

func TestGroupBadArgsExit2BeforeAnyRequest(t *testing.T) {
	n, addr := startGroupNode(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create"}, "takes NAME, got 0 arguments"},
		{[]string{"create", "a", "b"}, "got 2 arguments"},
		{[]string{"create", ""}, "name is missing"},
		{[]string{"create", strings.Repeat("n", 65)}, "name of 65 bytes is over the limit of 64"},
		{[]string{"create", "a\tb"}, "name has a control character"},
		{[]string{"add", groupFirst}, "takes GROUP and ADDR, got 1 argument"},
		{[]string{"add", "nope", groupPeer}, `group "nope": want a group id, 32 lower-case hex digits`},
		{[]string{"add", strings.ToUpper(groupFirst), groupPeer}, "lower-case hex digits"},
		{[]string{"add", groupFirst, "zz"}, `ADDR: crypto: bad address: "zz"`},
		{[]string{"add", groupFirst, groupPeer, "--wait", "6m"}, "--wait 6m0s: want a duration from 0s to 5m0s"},
		{[]string{"add", groupFirst, groupPeer, "--wait", "-1s"}, "--wait -1s"},
		{[]string{"add", groupFirst, groupPeer, "--wait", "soon"}, "invalid argument"},
		{[]string{"remove", groupFirst}, "takes GROUP and ADDR"},
		{[]string{"remove", groupFirst + "0", groupPeer}, "want a group id"},
		{[]string{"remove", groupFirst, groupPeer + "0"}, "ADDR: crypto: bad address"},
		{[]string{"send", groupFirst}, "takes GROUP and TEXT"},
		{[]string{"send", "x", "hi"}, "want a group id"},
		{[]string{"send", groupFirst, ""}, "TEXT is empty"},
		{[]string{"send", groupFirst, "\xff"}, "TEXT is not UTF-8"},
		{[]string{"send", groupFirst, strings.Repeat("x", api.MaxGroupTextSize+1)}, fmt.Sprintf("TEXT of %d bytes is over the limit of %d", api.MaxGroupTextSize+1, api.MaxGroupTextSize)},
		{[]string{"list", "x"}, "takes no arguments"},
	} {
		code, _, errs := qpc(t, append(append([]string{"group"}, c.args...), "--api", addr)...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("qpc group %.80s: exit %d %q, want exit 2 with %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
	n.gmu.Lock()
	defer n.gmu.Unlock()
	if n.greqs != 0 {
		t.Errorf("%d requests reached the node; bad arguments are refused before asking", n.greqs)
	}
}

func TestGroupErrorsSaySoAndExit1(t *testing.T) {
	n, addr := startGroupNode(t)
	if code, _, errs := qpc(t, "group", "send", groupFirst, "hi", "--api", addr); code != exitFailure ||
		!strings.Contains(errs, "qpc: unknown group "+groupFirst+": this node is not in it ('qpc group list' shows the groups it is in) (not_found: groups: no group "+groupFirst+")") {
		t.Errorf("send to an unknown group: exit %d %s", code, errs)
	}
	if code, _, errs := qpc(t, "group", "create", "g", "--api", addr); code != exitOK {
		t.Fatalf("create: exit %d %s", code, errs)
	}
	if code, _, errs := qpc(t, "group", "remove", groupFirst, groupPeer, "--api", addr); code != exitFailure ||
		!strings.Contains(errs, "qpc: "+groupPeer+" is not a member of group "+groupFirst+" (group_member: ") {
		t.Errorf("remove of a non-member: exit %d %s", code, errs)
	}
	for _, c := range []struct {
		err  error
		args []string
		want []string
	}{
		{fmt.Errorf("%w: %s said it has none", api.ErrKeyPackageUnavailable, groupPeer), []string{"add", groupFirst, groupPeer, "--wait", "10s"},
			[]string{groupPeer + " could not be added: no KeyPackage of it came over the mesh within 10s", "longer --wait", "keypackage_unavailable", "said it has none"}},
		{fmt.Errorf("%w: %s is in the group", api.ErrGroupMember, groupPeer), []string{"add", groupFirst, groupPeer},
			[]string{groupPeer + " is already a member of group " + groupFirst, "(group_member: "}},
		{fmt.Errorf("%w: the creator is %s", api.ErrGroupNotCreator, groupPeer), []string{"remove", groupFirst, groupPeer2},
			[]string{"only the creator of group " + groupFirst + " adds and removes its members", "group_not_creator"}},
		{&api.Unavailable{Err: errors.New("node: stopping")}, []string{"list"}, []string{"node: stopping", "unavailable"}},
		{&api.TooLarge{Err: errors.New("does not fit the envelope")}, []string{"send", groupFirst, "hi"}, []string{"does not fit the envelope", "too_large"}},
		{errors.New("boom"), []string{"create", "x"}, []string{"boom", "failed"}},
	} {
		n.gmu.Lock()
		n.err = c.err
		n.gmu.Unlock()
		code, out, errs := qpc(t, append(append([]string{"group"}, c.args...), "--api", addr)...)
		ok := code == exitFailure && out == "" && strings.HasPrefix(errs, "qpc: ")
		for _, w := range c.want {
			ok = ok && strings.Contains(errs, w)
		}
		if !ok {
			t.Errorf("qpc group %s with the node answering %v: exit %d %q %q, want exit 1 with %q", strings.Join(c.args, " "), c.err, code, out, errs, c.want)
		}
	}
}

func TestGroupOnANodeWithoutGroups(t *testing.T) {
	s, err := api.Listen(api.Options{Addr: "127.0.0.1:0"}, &noFAPP{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	for _, args := range [][]string{{"list"}, {"create", "x"}, {"add", groupFirst, groupPeer}, {"send", groupFirst, "hi"}} {
		code, _, errs := qpc(t, append(append([]string{"group"}, args...), "--api", s.Addr())...)
		if code != exitFailure || !strings.Contains(errs, "qpc: this node does not serve MLS groups (groups_off: ") {
			t.Errorf("group %s on a node without groups: exit %d %s", args[0], code, errs)
		}
	}
}

func TestGroupWithNoNodeRunning(t *testing.T) {
	// A port nothing listens on: a node's address after it stopped.
	s, err := api.Listen(api.Options{Addr: "127.0.0.1:0"}, &noFAPP{})
	if err != nil {
		t.Fatal(err)
	}
	closed := s.Addr()
	s.Close(context.Background())
	if code, _, errs := qpc(t, "group", "list", "--api", closed); code != exitFailure || !strings.Contains(errs, "is a node running at "+closed) {
		t.Errorf("list with no node: exit %d %s", code, errs)
	}
}

func TestInboxShowsTheGroupOfGroupMessages(t *testing.T) {
	n, addr := startGroupNode(t)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	n.gmu.Lock()
	n.inbox = []api.InboxEntry{
		{Seq: 1, ID: "a", From: groupPeer, Text: "eins", Encoding: api.EncodingUTF8, At: at, Hops: 1},
		{Seq: 2, ID: "b", From: groupPeer2, Text: "zwei", Encoding: api.EncodingUTF8, At: at, Hops: 2, Group: groupFirst},
	}
	n.gmu.Unlock()
	code, out, errs := qpc(t, "inbox", "--api", addr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 2 {
		t.Fatalf("inbox: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(lines[0], "from "+groupPeer+" (1 hop): eins") || strings.Contains(lines[0], "group") {
		t.Errorf("a 1:1 message shown as %q", lines[0])
	}
	if !strings.Contains(lines[1], "from "+groupPeer2+" in group "+groupFirst+" (2 hops): zwei") {
		t.Errorf("a group message shown as %q, want its group's id", lines[1])
	}
	code, out, _ = qpc(t, "inbox", "--api", addr, "--json")
	jl := strings.Split(strings.TrimSpace(out), "\n")
	var e1, e2 map[string]any
	if code != exitOK || len(jl) != 2 || json.Unmarshal([]byte(jl[0]), &e1) != nil || json.Unmarshal([]byte(jl[1]), &e2) != nil {
		t.Fatalf("inbox --json: exit %d %s", code, out)
	}
	if _, ok := e1["group"]; ok || e2["group"] != groupFirst {
		t.Errorf("inbox --json: group %v and %v, want none and %s", e1["group"], e2["group"], groupFirst)
	}
}
