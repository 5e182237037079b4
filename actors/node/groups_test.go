package node

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/mem"
)

// groupMesh is a relay R with members A, B, C, each linked to R only.
type groupMesh struct {
	R, A, B, C *Node
	net        *mem.Network
	cfg        map[*Node]config.Config
	mu         sync.Mutex
	seenByR    [][]byte
}

// startGroupMesh starts the mesh; mods adjust the members' configs.
func startGroupMesh(t *testing.T, mods ...func(*config.Config)) *groupMesh {
	t.Helper()
	net := mem.NewNetwork()
	m := &groupMesh{net: net, cfg: map[*Node]config.Config{}}
	tap := func(f *messages.InboundFrame) bool {
		m.mu.Lock()
		m.seenByR = append(m.seenByR, append([]byte(nil), f.Data...))
		m.mu.Unlock()
		return false
	}
	cr := testConfig(t)
	cr.Transports.Listen = []string{"mem://r"}
	m.R, _ = startNode(t, cr, WithMemNetwork(net), WithInboundTap(tap))
	start := func() *Node {
		c := testConfig(t)
		c.Transports.Listen = nil
		c.Transports.Peers = []string{"mem://r"}
		for _, f := range mods {
			f(&c)
		}
		n, _ := startNode(t, c, WithMemNetwork(net))
		m.cfg[n] = c
		return n
	}
	m.A, m.B, m.C = start(), start(), start()
	for _, n := range []*Node{m.A, m.B, m.C} {
		for _, o := range []*Node{m.A, m.B, m.C} {
			if n != o {
				waitRoute(t, n, o.Address())
			}
		}
	}
	return m
}

// nextGroupText waits for the next inbox entry of n after *after that
// belongs to group, and returns it.
func nextGroupText(t *testing.T, n *Node, after *uint64, group string) api.InboxEntry {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := n.InboxSince(context.Background(), *after, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Messages {
			*after = e.Seq
			if e.Group == group {
				return e
			}
		}
	}
	t.Fatalf("%s: no group message in its inbox", n.Address().Short())
	return api.InboxEntry{}
}

func groupOf(t *testing.T, n *Node, group string) (api.Group, bool) {
	t.Helper()
	l, err := n.GroupList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range l.Groups {
		if g.Group == group {
			return g, true
		}
	}
	return api.Group{}, false
}

// Acceptance 1 of the groups issue: three nodes over a relay; A creates a
// group and adds B and C with KeyPackages fetched over the mesh (nothing
// exchanged out of band); all three exchange messages; after A removes
// C, C cannot read what follows. The relay never sees a plaintext.
func TestGroupOverRelay(t *testing.T) {
	m := startGroupMesh(t)
	ctx := context.Background()
	created, err := m.A.GroupCreate(ctx, "Chor")
	if err != nil {
		t.Fatal(err)
	}
	gid := created.Group
	for _, n := range []*Node{m.B, m.C} {
		g, err := m.A.GroupAdd(ctx, gid, n.Address().String(), 15*time.Second)
		if err != nil {
			t.Fatalf("add %s: %v", n.Address().Short(), err)
		}
		if !hasMember(g, n.Address().String()) {
			t.Fatalf("after adding %s: %+v", n.Address().Short(), g)
		}
	}
	if got := testutil.ToFloat64(m.A.Metrics().Groups.KeyPackages.WithLabelValues("responses_received")); got != 2 {
		t.Fatalf("A received %v KeyPackages over the mesh, want 2", got)
	}
	// B and C joined, at A's epoch.
	ga, _ := groupOf(t, m.A, gid)
	for name, n := range map[string]*Node{"B": m.B, "C": m.C} {
		if !probe.Wait(20*time.Second, func() bool { g, ok := groupOf(t, n, gid); return ok && g.Epoch == ga.Epoch }) {
			g, _ := groupOf(t, n, gid)
			t.Fatalf("%s did not reach epoch %d: %+v", name, ga.Epoch, g)
		}
	}
	gb, _ := groupOf(t, m.B, gid)
	if gb.Name != "Chor" || gb.Creator != m.A.Address().String() || len(gb.Members) != 3 {
		t.Fatalf("B's view: %+v", gb)
	}

	var afterA, afterB, afterC uint64
	secret := "Probe am Donnerstag, 19 Uhr"
	if _, err := m.A.GroupSend(ctx, gid, secret); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*Node{"B": m.B, "C": m.C} {
		after := &afterB
		if name == "C" {
			after = &afterC
		}
		e := nextGroupText(t, n, after, gid)
		if e.Text != secret || e.From != m.A.Address().String() {
			t.Fatalf("%s got %+v", name, e)
		}
	}
	if _, err := m.B.GroupSend(ctx, gid, "B kommt"); err != nil {
		t.Fatal(err)
	}
	if e := nextGroupText(t, m.A, &afterA, gid); e.Text != "B kommt" || e.From != m.B.Address().String() {
		t.Fatalf("A got %+v", e)
	}
	if e := nextGroupText(t, m.C, &afterC, gid); e.Text != "B kommt" {
		t.Fatalf("C got %+v", e)
	}

	// A removes C: C learns it is out, and what A sends next C cannot read.
	if _, err := m.A.GroupRemove(ctx, gid, m.C.Address().String()); err != nil {
		t.Fatal(err)
	}
	if !probe.Wait(20*time.Second, func() bool { _, ok := groupOf(t, m.C, gid); return !ok }) {
		t.Fatal("C still in the group after its removal")
	}
	decC := testutil.ToFloat64(m.C.Metrics().Groups.Decryptions.WithLabelValues("mls", "application"))
	res, err := m.A.GroupSend(ctx, gid, "ohne C")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Copies) != 1 || res.Copies[0].To != m.B.Address().String() {
		t.Fatalf("after removing C the message went to %+v", res.Copies)
	}
	if e := nextGroupText(t, m.B, &afterB, gid); e.Text != "ohne C" {
		t.Fatalf("B got %+v", e)
	}
	if got := testutil.ToFloat64(m.C.Metrics().Groups.Decryptions.WithLabelValues("mls", "application")); got != decC {
		t.Fatalf("C decrypted %v application messages after its removal", got-decC)
	}
	// Membership changes are the creator's.
	if _, err := m.B.GroupRemove(ctx, gid, m.A.Address().String()); !errors.Is(err, api.ErrGroupNotCreator) {
		t.Fatalf("B removing A: %v, want ErrGroupNotCreator", err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.seenByR {
		for _, s := range []string{secret, "B kommt", "ohne C", "Chor"} {
			if bytes.Contains(f, []byte(s)) {
				t.Fatalf("the relay saw %q in a frame", s)
			}
		}
	}
}

func hasMember(g api.Group, addr string) bool {
	for _, m := range g.Members {
		if m.Address == addr {
			return true
		}
	}
	return false
}

// Acceptance 2 of the groups issue: B is offline during two commits (C
// added, C removed); when it is back it gets both, in order (they were
// retransmitted, or held by the relay, until B's receipts), and reads
// the next message.
func TestGroupMemberOfflineDuringTwoCommits(t *testing.T) {
	m := startGroupMesh(t)
	ctx := context.Background()
	created, err := m.A.GroupCreate(ctx, "Offline")
	if err != nil {
		t.Fatal(err)
	}
	gid := created.Group
	if _, err := m.A.GroupAdd(ctx, gid, m.B.Address().String(), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if !probe.Wait(20*time.Second, func() bool { _, ok := groupOf(t, m.B, gid); return ok }) {
		t.Fatal("B did not join")
	}
	cb := m.cfg[m.B]
	if err := m.B.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.A.GroupAdd(ctx, gid, m.C.Address().String(), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	g, err := m.A.GroupRemove(ctx, gid, m.C.Address().String())
	if err != nil {
		t.Fatal(err)
	}
	if g.Epoch < 3 {
		t.Fatalf("A at epoch %d after two commits past B's join", g.Epoch)
	}
	b, _ := startNode(t, cb, WithMemNetwork(m.net))
	if !probe.Wait(60*time.Second, func() bool { gb, ok := groupOf(t, b, gid); return ok && gb.Epoch == g.Epoch }) {
		gb, _ := groupOf(t, b, gid)
		t.Fatalf("B back at epoch %d, want A's %d", gb.Epoch, g.Epoch)
	}
	if got := testutil.ToFloat64(b.Metrics().Groups.Decryptions.WithLabelValues("mls", "commit")); got != 2 {
		t.Fatalf("B applied %v commits after its restart, want 2", got)
	}
	if _, err := m.A.GroupSend(ctx, gid, "wieder da?"); err != nil {
		t.Fatal(err)
	}
	var after uint64
	if e := nextGroupText(t, b, &after, gid); e.Text != "wieder da?" || e.From != m.A.Address().String() {
		t.Fatalf("B got %+v", e)
	}
}
