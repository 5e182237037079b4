package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
)

// sendAll sends n texts from a to dest with k concurrent senders, retrying
// each on a full outbox as an API client does on 429, and returns the ids.
func sendAll(t *testing.T, a *Node, dest crypto.Address, n, k int, prefix string) map[[16]byte]string {
	t.Helper()
	var mu sync.Mutex
	ids := make(map[[16]byte]string, n)
	work := make(chan int)
	errs := make(chan error, k)
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				text := fmt.Sprintf("%s-%05d", prefix, i)
				for {
					res, err := a.SendText(context.Background(), dest, []byte(text))
					if errors.Is(err, router.ErrOutboxFull) {
						time.Sleep(10 * time.Millisecond) // the client's back-off on 429
						continue
					}
					if err != nil {
						errs <- fmt.Errorf("send %s: %w", text, err)
						return
					}
					mu.Lock()
					ids[res.ID] = text
					mu.Unlock()
					break
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// collect reads the receiver's inbox (the durable record) until every
// text in want is there, and
// fails on a duplicate or a stranger.
func collect(t *testing.T, c *Node, want map[[16]byte]string, timeout time.Duration) {
	t.Helper()
	byText := make(map[string]bool, len(want))
	for _, text := range want {
		byText[text] = true
	}
	got := make(map[string]bool, len(want))
	deadline := time.Now().Add(timeout)
	var after uint64
	for len(got) < len(want) {
		wait := time.Until(deadline)
		if wait <= 0 {
			t.Fatalf("%d of %d messages delivered in %s; at the receiver: %s", len(got), len(want), timeout, dropSummary(c))
		}
		res, err := c.InboxSince(context.Background(), after, min(wait, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			if !byText[m.Text] {
				t.Fatalf("delivered a message nobody sent: %q", m.Text)
			}
			if got[m.Text] {
				t.Fatalf("%q delivered twice", m.Text)
			}
			got[m.Text] = true
		}
		after = res.Last
	}
}

// waitStates polls until every message is in state want at a.
func waitStates(t *testing.T, a *Node, ids map[[16]byte]string, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for id := range ids {
		var st *messages.MessageStatus
		if !probe.Wait(time.Until(deadline), func() bool {
			var err error
			if st, err = a.Message(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			return st.Found && st.State == want
		}) {
			t.Fatalf("message %x is %q (%s), want %q", id[:4], st.State, st.Reason, want)
		}
	}
}

// TestBurstAtDefaultsLosesNothing: a burst far over the relay's old token
// bucket (200/s) from 8 concurrent senders, at default settings, is
// delivered exactly once, and every message ends delivered at the sender.
func TestBurstAtDefaultsLosesNothing(t *testing.T) {
	a, b, c := line(t)
	const n = 2000
	ids := sendAll(t, a, c.Address(), n, 8, "burst")
	collect(t, c, ids, 60*time.Second)
	t.Logf("A: %s\nB: %s", dropSummary(a), dropSummary(b))
	waitStates(t, a, ids, router.StateDelivered, 30*time.Second)
	if got := testutil.ToFloat64(a.Metrics().Mesh.OutboxPending); got != 0 {
		t.Fatalf("outbox still holds %v", got)
	}
	mesh := c.Metrics().Mesh
	t.Logf("delivered %d; C commits %v for %v envelopes; A retransmits %v; B rate-limited %v, C duplicates %v",
		n, testutil.ToFloat64(mesh.Commits), testutil.ToFloat64(mesh.CommitOps), testutil.ToFloat64(a.Metrics().Mesh.Retransmits),
		testutil.ToFloat64(b.Metrics().Mesh.RateLimited.WithLabelValues("envelope")),
		testutil.ToFloat64(mesh.EnvelopesDropped.WithLabelValues(router.DropDuplicate)))
}

// TestFailedOnlyAtExpiry: with the destination gone for good, a message is
// reported failed once it expired — not before — with the reason.
func TestFailedOnlyAtExpiry(t *testing.T) {
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	ca.Store.TTL = config.Duration(3 * time.Second) // envelopes live 3 s
	ca.Outbox.RetryBase = config.Duration(200 * time.Millisecond)
	a, _ := startNode(t, ca)
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = a.ListenAddrs()
	c, _ := startNode(t, cc)
	waitRoute(t, a, c.Address())
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := a.SendText(context.Background(), c.Address(), []byte("into the void"))
	if err != nil {
		t.Fatal(err)
	}
	var st *messages.MessageStatus
	probe.Until(t, 15*time.Second, func() bool {
		if st, err = a.Message(context.Background(), res.ID); err != nil {
			t.Fatal(err)
		}
		if st.State == router.StateDelivered {
			t.Fatal("delivered to a node that is gone")
		}
		return st.State == router.StateFailed
	}, "the message failed")
	// The expiry has one-second resolution: at least 2 s of a 3 s life.
	if !st.Done.After(start.Add(2*time.Second)) || st.Done.Before(st.Expiry) {
		t.Fatalf("failed at %s, %s after sending, expiry %s", st.Done, st.Done.Sub(start), st.Expiry)
	}
	// Sent once, or never when A noticed C's link go down first (A and C
	// are neighbours): either way the reason says which.
	if st.Reason == "" {
		t.Fatalf("failed without a reason: %+v", st)
	}
	if got := testutil.ToFloat64(a.Metrics().Mesh.Messages.WithLabelValues(router.StateFailed)); got != 1 {
		t.Fatalf("failed counter %v", got)
	}
	t.Logf("failed after %s and %d attempts: %s", st.Done.Sub(start).Round(time.Millisecond), st.Attempts, st.Reason)
}

// dropSummary lists a node's non-zero drop counters, for failure messages.
func dropSummary(n *Node) string {
	var b strings.Builder
	fams, _ := n.Gatherer().Gather()
	for _, f := range fams {
		name := f.GetName()
		if !strings.Contains(name, "dropped") && !strings.Contains(name, "refused") && !strings.Contains(name, "limited") && !strings.Contains(name, "shed") && !strings.Contains(name, "messages_total") && !strings.Contains(name, "retransmits") {
			continue
		}
		for _, m := range f.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				fmt.Fprintf(&b, "%s%v=%v ", name, m.GetLabel(), v)
			}
		}
	}
	return b.String()
}

// TestSendBatchOneCommit: a batch of sends is one group commit at the
// sender, and every message of it is delivered once.
func TestSendBatchOneCommit(t *testing.T) {
	a, _, c := line(t)
	const batches, per = 5, 100
	want := make(map[[16]byte]string, batches*per)
	stranger, _ := crypto.NewIdentity(nil)
	for b := range batches {
		to := make([]crypto.Address, per+1)
		texts := make([][]byte, per+1)
		for i := range per {
			to[i], texts[i] = c.Address(), []byte(fmt.Sprintf("batch-%d-%03d", b, i))
		}
		to[per], texts[per] = stranger.Address(), []byte("to nobody")
		before := testutil.ToFloat64(a.Metrics().Mesh.Commits)
		res, err := a.SendBatch(context.Background(), to, texts)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res[:per] {
			if r.Err != nil {
				t.Fatalf("message %d: %v", i, r.Err)
			}
			want[r.ID] = string(texts[i])
		}
		if !errors.Is(res[per].Err, router.ErrUnknownDestination) {
			t.Fatalf("to a stranger: %v", res[per].Err)
		}
		// One durable commit covers the batch (a receipt's lazy write may
		// ride along, never a commit per message).
		if got := testutil.ToFloat64(a.Metrics().Mesh.Commits) - before; got < 1 || got > 3 {
			t.Fatalf("batch %d took %v commits", b, got)
		}
	}
	collect(t, c, want, 30*time.Second)
	waitStates(t, a, want, router.StateDelivered, 30*time.Second)
	if _, err := a.SendBatch(context.Background(), nil, nil); err == nil {
		t.Fatal("an empty batch was taken")
	}
}

// TestRouterRestartsUnderLoad: the sender's and the receiver's routers
// panic and restart while messages flow. Every message the sender
// accepted (its API answered without an error) is delivered exactly once
// and ends delivered; a send refused because the router went down is
// reported as an error, never accepted and lost.
func TestRouterRestartsUnderLoad(t *testing.T) {
	policy := RestartPolicy{Initial: time.Millisecond, Max: 10 * time.Millisecond, MaxRestarts: 20, Window: time.Minute}
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	ca.Outbox.RetryBase, ca.Outbox.RetryMax = config.Duration(500*time.Millisecond), config.Duration(2*time.Second)
	a, _ := startNode(t, ca, WithFaultInjection(), WithRestartPolicy(policy))
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = a.ListenAddrs()
	c, _ := startNode(t, cc, WithFaultInjection(), WithRestartPolicy(policy))
	waitRoute(t, a, c.Address())
	waitRoute(t, c, a.Address())
	// The routers write their tables within a second of a change; a crash
	// before that would forget the route (until the next announce).
	waitTableWritten(t, a, c.Address())
	waitTableWritten(t, c, a.Address())

	const n, k = 1200, 8
	var mu sync.Mutex
	ids := make(map[[16]byte]string)
	refused := 0
	work := make(chan int)
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				text := fmt.Sprintf("restart-%05d", i)
				res, err := a.SendText(context.Background(), c.Address(), []byte(text))
				mu.Lock()
				if err != nil {
					refused++ // not accepted: the caller knows
				} else {
					ids[res.ID] = text
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		work <- i
		if i%300 == 150 {
			a.Fault("router", "test")
			c.Fault("router", "test")
		}
	}
	close(work)
	wg.Wait()
	collect(t, c, ids, 60*time.Second)
	waitStates(t, a, ids, router.StateDelivered, 60*time.Second)
	t.Logf("%d accepted, %d refused while a router restarted; A restarts %v, C restarts %v", len(ids), refused,
		testutil.ToFloat64(a.Metrics().ActorRestarts.WithLabelValues("router")), testutil.ToFloat64(c.Metrics().ActorRestarts.WithLabelValues("router")))
	if len(ids) < n/2 {
		t.Fatalf("only %d of %d sends accepted", len(ids), n)
	}
}

// waitTableWritten probes n's database until its routing table snapshot
// holds addr.
func waitTableWritten(t *testing.T, n *Node, addr crypto.Address) {
	t.Helper()
	probe.Until(t, 10*time.Second, func() bool {
		var found bool
		n.db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket([]byte("router")); b != nil {
				found = bytes.Contains(b.Get([]byte("router/table")), []byte(addr.String()))
			}
			return nil
		})
		return found
	}, "%s wrote a table with %s", n.Address().Short(), addr.Short())
}

// A frame sent to one of the node's actors that is gone gives its link's
// credit back (dead letters), so a link is never stalled by an actor that
// no longer reads.
func TestDeadLettersReleaseCredit(t *testing.T) {
	n, _ := startNode(t, testConfig(t))
	released := make(chan struct{}, 2)
	gone := actor.NewPID(n.rootPID.Address, n.rootPID.Id+"/no-such-actor")
	n.system.Root.Send(gone, &messages.InboundFrame{Data: []byte{1}, Release: func() { released <- struct{}{} }})
	n.system.Root.Send(gone, &messages.VerifiedEnvelope{In: &messages.InboundFrame{Release: func() { released <- struct{}{} }}})
	for range 2 {
		select {
		case <-released:
		case <-time.After(10 * time.Second):
			t.Fatal("credit of a dead letter not released")
		}
	}
}

// A text that is not UTF-8 is kept as its bytes (base64 in the API, with
// the encoding said), never silently replaced.
func TestInboxKeepsBytesThatAreNotUTF8(t *testing.T) {
	n, _ := startNode(t, testConfig(t))
	peer, _ := crypto.NewIdentity(nil)
	n.Inject("test", peer.Address(), announceFrame(t, peer))
	waitRoute(t, n, peer.Address())
	raw := "ok\xff\x1b"
	n.Inject("test", peer.Address(), sealedTo(t, peer, n, raw))
	n.Inject("test", peer.Address(), sealedTo(t, peer, n, "plain"))
	var got []api.InboxEntry
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		res, err := n.InboxSince(context.Background(), 0, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = res.Messages
	}
	if len(got) != 2 {
		t.Fatalf("inbox %+v", got)
	}
	for _, e := range got {
		switch e.Encoding {
		case api.EncodingBase64:
			if b, err := base64.StdEncoding.DecodeString(e.Text); err != nil || string(b) != raw {
				t.Fatalf("bytes %q (%v), want %q", b, err, raw)
			}
		case api.EncodingUTF8:
			if e.Text != "plain" {
				t.Fatalf("text %q", e.Text)
			}
		default:
			t.Fatalf("encoding %q", e.Encoding)
		}
	}
}

// Sends that can never succeed are refused at once, saying why: to this
// node itself, and a text over the limit (with the limit in bytes).
func TestSendRefusesSelfAndOversize(t *testing.T) {
	a, _, c := line(t)
	if _, err := a.SendText(context.Background(), a.Address(), []byte("me")); !errors.Is(err, ErrBadSend) || !strings.Contains(err.Error(), "own address") {
		t.Fatalf("to self: %v", err)
	}
	big := make([]byte, MaxTextSize+1)
	_, err := a.SendText(context.Background(), c.Address(), big)
	if !errors.Is(err, ErrBadSend) || !strings.Contains(err.Error(), fmt.Sprintf("at most %d bytes", MaxTextSize)) {
		t.Fatalf("oversize: %v", err)
	}
	// The largest text goes, and arrives.
	res, err := a.SendText(context.Background(), c.Address(), make([]byte, MaxTextSize))
	if err != nil {
		t.Fatal(err)
	}
	waitStates(t, a, map[[16]byte]string{res.ID: ""}, router.StateDelivered, 30*time.Second)
}
