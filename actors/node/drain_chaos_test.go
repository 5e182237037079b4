package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/probe"
)

// crashStop stops n as harshly as the Go API allows, modelling a receiver
// killed at an arbitrary moment (SIGKILL, power loss). Node.stop takes the
// earlier of the configured shutdown timeout and ctx's deadline; a context
// that is merely cancelled has no deadline and would give the full
// graceful timeout, so this one has a deadline that has already passed.
// The coordinator's Draining and Persisting phases then time out at once
// (the actors' Drain/Persist requests race that zero deadline, as a kill
// races whatever the process was doing), and the actor tree is stopped
// with whatever is in its mailboxes and link queues discarded: frames in
// flight, a batch not yet committed, receipts not yet written to a link.
// What it cannot model is a torn write: bbolt commits are atomic either
// way.
func crashStop(n *Node) error {
	ctx, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	return n.Stop(ctx)
}

// waitGaugeEq polls a gauge (or counter) until it equals want.
func waitGaugeEq(t testing.TB, g prometheus.Collector, want float64, timeout time.Duration, what string) {
	t.Helper()
	if !probe.Wait(timeout, func() bool { return testutil.ToFloat64(g) == want }) {
		t.Fatalf("%s = %v after %s, want %v", what, testutil.ToFloat64(g), timeout, want)
	}
}

// TestRelayStoreDrainsAcrossReceiverCrashes: A – B – C, C is down while A
// sends 1,000 messages, so the relay B holds them all. C is then started
// and killed 20 times while B drains to it, and finally started for good.
// Across all of C's lives each message is in C's inbox exactly once, every
// one is delivered at A, and B's store and A's outbox end empty.
func TestRelayStoreDrainsAcrossReceiverCrashes(t *testing.T) {
	const (
		n      = 1000
		cycles = 20
	)
	began := time.Now()

	ca := testConfig(t)
	ca.API.Addr = ""
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	// A's retransmissions recover what B's store cannot: a receipt lost
	// after B dropped its copy, a drained frame shed by B's full link
	// queue. The default (5 s, doubling up to 5 min) is too slow for a
	// test; not below 3 s (±25 %), because B drops a copy of an envelope
	// it forwarded less than router.LoopWindow (2 s) ago as a loop copy.
	ca.Outbox.RetryBase = config.Duration(3 * time.Second)
	ca.Outbox.RetryMax = config.Duration(3 * time.Second)
	a, logsA := startNode(t, ca)
	cb := testConfig(t)
	cb.API.Addr = ""
	cb.Transports.Listen = []string{"quic://127.0.0.1:0"}
	cb.Transports.Peers = a.ListenAddrs()
	b, logsB := startNode(t, cb)
	// C is restarted on the same data dir (identity, replay window, inbox).
	cc := testConfig(t)
	cc.API.Addr = ""
	cc.Transports.Listen = nil
	cc.Transports.Peers = b.ListenAddrs()
	backoff := WithDialBackoff(linksBackoffFast)
	c, logsC := startNode(t, cc, backoff)
	lives := []*Node{c}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's log:\n%s", drainLogTail(logsA.String(), 200))
			t.Logf("B's log:\n%s", drainLogTail(logsB.String(), 200))
			t.Logf("last C's log:\n%s", drainLogTail(logsC.String(), 200))
		}
	})
	cAddr := c.Address()
	waitRoute(t, a, cAddr)
	waitRoute(t, c, a.Address())

	if err := crashStop(c); err != nil {
		t.Logf("first crash of C: %v", err)
	}
	// B notices C is gone and forgets its route; A keeps its route via B.
	waitRouteGone(t, b, cAddr)

	sendStart := time.Now()
	ids := sendAll(t, a, cAddr, n, 8, "chaos")
	sent := time.Since(sendStart)
	if len(ids) != n {
		t.Fatalf("%d ids for %d messages", len(ids), n)
	}
	want := make(map[string]bool, n)
	for _, text := range ids {
		want[text] = true
	}
	// A's window per destination (1024) lets all of them out at once, and
	// B holds up to 1000 per destination (store.max_per_destination).
	waitGaugeEq(t, b.Metrics().Mesh.Stored, n, 20*time.Second, "envelopes held at B")
	held := time.Since(sendStart)

	// seen counts each text as read from C's inbox while C was alive;
	// after is the inbox cursor (the inbox is persistent, its numbers go
	// on across lives).
	seen := make(map[string]int, n)
	var after uint64
	read := func(c *Node, wait time.Duration) (int, error) {
		res, err := c.InboxSince(context.Background(), after, wait)
		if err != nil {
			return 0, err
		}
		for _, m := range res.Messages {
			if !want[m.Text] {
				t.Fatalf("C's inbox has a message nobody sent: %q", m.Text)
			}
			seen[m.Text]++
		}
		after = res.Last
		return len(res.Messages), nil
	}

	chaosStart := time.Now()
	var perCycle []string
	for i := range cycles {
		c, logsC = startNode(t, cc, backoff)
		lives = append(lives, c)
		lifeStart := time.Now()
		// Kill C as soon as its inbox grows: mid-drain, with frames in
		// flight, receipts unsent. Once everything arrived there is
		// nothing to grow; then kill it when it is connected (it has a
		// route to A), so that B's redrain and its duplicates are hit too.
		got := 0
		for got == 0 && time.Since(lifeStart) < time.Second {
			if len(seen) == n {
				waitRoute(t, c, a.Address())
				break
			}
			k, err := read(c, max(time.Second-time.Since(lifeStart), time.Millisecond))
			if err != nil {
				t.Fatalf("cycle %d: reading C's inbox: %v", i, err)
			}
			got += k
		}
		life := time.Since(lifeStart)
		if err := crashStop(c); err != nil {
			t.Logf("cycle %d: crash of C: %v", i, err)
		}
		perCycle = append(perCycle, fmt.Sprintf("%d:+%d/%s", i+1, got, life.Round(time.Millisecond)))
	}
	chaos := time.Since(chaosStart)

	// C for good. Its inbox holds what every life committed.
	finalStart := time.Now()
	c, logsC = startNode(t, cc, backoff)
	lives = append(lives, c)
	final := make(map[string]int, n)
	var last uint64
	deadline := time.Now().Add(30 * time.Second)
	for len(final) < n {
		wait := time.Until(deadline)
		if wait <= 0 {
			var missing []string
			for text := range want {
				if final[text] == 0 {
					missing = append(missing, text)
				}
			}
			t.Fatalf("C's inbox has %d of %d messages after 30 s; %d missing, e.g. %v; B holds %v; A: %s; B: %s; C: %s",
				len(final), n, len(missing), missing[:min(len(missing), 10)], testutil.ToFloat64(b.Metrics().Mesh.Stored),
				dropSummary(a), dropSummary(b), dropSummary(c))
		}
		res, err := c.InboxSince(context.Background(), last, min(wait, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			if !want[m.Text] {
				t.Fatalf("C's inbox has a message nobody sent: %q", m.Text)
			}
			if final[m.Text]++; final[m.Text] > 1 {
				t.Fatalf("%q is in C's inbox twice (seq %d)", m.Text, m.Seq)
			}
		}
		last = res.Last
	}
	delivered := time.Since(finalStart)
	// What was read while C lived is in the inbox still, once.
	for text, k := range seen {
		if k != 1 {
			t.Fatalf("%q read %d times from C's inbox across its lives", text, k)
		}
	}

	waitStates(t, a, ids, router.StateDelivered, 30*time.Second)
	waitGaugeEq(t, b.Metrics().Mesh.Stored, 0, 20*time.Second, "envelopes held at B")
	waitGaugeEq(t, a.Metrics().Mesh.OutboxPending, 0, 10*time.Second, "A's outbox")
	// Nothing more arrives at C: exactly once, also after the last receipts.
	if res, err := c.InboxSince(context.Background(), last, 100*time.Millisecond); err != nil || len(res.Messages) > 0 {
		t.Fatalf("after all %d: %d more in C's inbox (%v)", n, len(res.Messages), err)
	}

	var dups, cDelivered float64
	for _, l := range lives {
		m := l.Metrics().Mesh
		dups += testutil.ToFloat64(m.EnvelopesDropped.WithLabelValues(router.DropDuplicate))
		cDelivered += testutil.ToFloat64(m.Envelopes.WithLabelValues("delivered"))
	}
	bm, am := b.Metrics().Mesh, a.Metrics().Mesh
	t.Logf("%d messages, %d crashes of C in %s (sent in %s, held at B after %s; chaos %s; final life delivered in %s); total %s",
		n, cycles, time.Since(began).Round(time.Millisecond), sent.Round(time.Millisecond), held.Round(time.Millisecond), chaos.Round(time.Millisecond),
		delivered.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	t.Logf("inbox growth per life: %s; read live: %d", strings.Join(perCycle, " "), len(seen))
	t.Logf("B: forwarded %v, stored %v, store puts %v, store acks %v; A: retransmits %v, receipts %v; C (all %d lives): delivered %v, duplicates %v",
		testutil.ToFloat64(bm.Envelopes.WithLabelValues("forwarded")), testutil.ToFloat64(bm.Envelopes.WithLabelValues("stored")),
		testutil.ToFloat64(bm.StoreEvents.WithLabelValues("put")), testutil.ToFloat64(bm.StoreEvents.WithLabelValues("delivered")),
		testutil.ToFloat64(am.Retransmits), testutil.ToFloat64(am.Receipts), len(lives), cDelivered, dups)
	t.Logf("drops A: %s; B: %s; final C: %s", dropSummary(a), dropSummary(b), dropSummary(c))
}

// drainLogTail is the last n lines of s.
func drainLogTail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
