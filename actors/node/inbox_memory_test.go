package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// waitInboxLen probes the inbox store until it holds want entries.
func waitInboxLen(t *testing.T, n *Node, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := n.InboxSince(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbox holds %d messages, want %d", len(res.Messages), want)
		}
		// Woken by the next commit, or a short wait.
		_, _ = n.InboxSince(context.Background(), res.Last, 50*time.Millisecond)
	}
}

// TestUnreadDeliveriesPinNoMemory is item 6 of issue 10: every delivered
// message was also copied into the Deliveries channel's buffer of 1,024,
// which nobody reads in `qpc node`, so those messages stayed in memory for
// the life of the process (1,100 × 60 KB texts: 118 MB of heap) and every
// later one was counted as unread. Now the channel reads from the inbox
// store only once someone asks for it and then at most a few messages
// ahead; long polls read the store, woken by each commit.
func TestUnreadDeliveriesPinNoMemory(t *testing.T) {
	n, _ := startNode(t, testConfig(t))
	peer, _ := crypto.NewIdentity(nil)
	if err := n.Inject("test", peer.Address(), announceFrame(t, peer)); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, n, peer.Address())

	const count = 40
	big := strings.Repeat("x", 32<<10)
	for i := range count {
		if err := n.Inject("test", peer.Address(), sealedTo(t, peer, n, fmt.Sprintf("%03d %s", i, big))); err != nil {
			t.Fatal(err)
		}
	}
	waitInboxLen(t, n, count)
	// The router told the inbox actor about its commits, and the actor
	// handled them: it answers in mailbox order.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.ask(ctx, inbox.Name, &messages.Drain{}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if h := n.heldDeliveries(); h != 0 {
		t.Fatalf("%d delivered messages (%d KiB) held in memory for a Deliveries channel nobody reads", h, h*32)
	}

	// A long poll waiting for the next message gets it from the store.
	res, err := n.InboxSince(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	polled := make(chan error, 1)
	go func() {
		r, err := n.InboxSince(ctx, res.Last, 10*time.Second)
		switch {
		case err != nil:
			polled <- err
		case len(r.Messages) != 1 || r.Messages[0].Text != "news":
			polled <- fmt.Errorf("long poll answered %d messages: %+v", len(r.Messages), r.Messages)
		default:
			polled <- nil
		}
	}()
	if err := n.Inject("test", peer.Address(), sealedTo(t, peer, n, "news")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-polled:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the long poll did not get the new message")
	}

	// A reader that comes late still gets every delivery since the start,
	// in the inbox's order, from the store; until it reads, the channel
	// holds at most a few messages ahead of it.
	all, err := n.InboxSince(ctx, 0, 0)
	if err != nil || len(all.Messages) != count+1 {
		t.Fatalf("inbox: %d messages, %v", len(all.Messages), err)
	}
	d := n.Deliveries()
	for i, want := range all.Messages {
		if h := n.heldDeliveries(); h > deliveriesReadAhead {
			t.Fatalf("Deliveries read %d messages ahead of its reader, want at most %d", h, deliveriesReadAhead)
		}
		select {
		case m := <-d:
			if string(m.Text) != want.Text || m.From != peer.Address() || crypto.Address(m.ID).String() != want.ID {
				t.Fatalf("delivery %d: %.10q from %s, want #%d %.10q", i, m.Text, crypto.Address(m.From).Short(), want.Seq, want.Text)
			}
		case <-ctx.Done():
			t.Fatalf("delivery %d of %d not handed out", i, count+1)
		}
	}
	// The feed counts a message once its receive is done: after the
	// reader has it.
	waitCount(t, n.metrics.FramesDelivered, count+1, "qpc_frames_delivered_total")
	if got := testutil.ToFloat64(n.metrics.FramesDelivered); got != count+1 {
		t.Fatalf("qpc_frames_delivered_total = %v, want %d", got, count+1)
	}
}
