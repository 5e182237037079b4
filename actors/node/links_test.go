package node

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/links"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/tcp"
)

// dataFrame is a well-formed outer frame (an envelope tag and a payload),
// enough for the link layer, which checks only the tag.
func dataFrame(t testing.TB, payload []byte) []byte {
	t.Helper()
	b, err := messages.Marshal([]any{uint8(messages.MakeTag(messages.FrameEnvelope, 0)), payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitLink probes n's links until one to peer over transport is up.
func waitLink(t *testing.T, n *Node, peer crypto.Address, transport string) messages.LinkInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		ls, err := n.Links(ctx)
		if err == nil {
			for _, l := range ls {
				if l.Peer == peer && l.Transport == transport {
					return l
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s link from %s to %s: %v %+v", transport, n.Address().Short(), peer.Short(), err, ls)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestTwoNodesConnectAndExchange(t *testing.T) {
	for _, scheme := range []string{"tcp", "quic"} {
		t.Run(scheme, func(t *testing.T) {
			ca := testConfig(t)
			ca.Transports.Listen = []string{scheme + "://127.0.0.1:0"}
			a, _ := startNode(t, ca)
			cb := testConfig(t)
			cb.Transports.Listen = nil
			cb.Transports.Peers = a.ListenAddrs()
			b, _ := startNode(t, cb)

			la := waitLink(t, a, b.Address(), scheme)
			lb := waitLink(t, b, a.Address(), scheme)
			if la.Outbound || !lb.Outbound {
				t.Fatalf("directions: a sees outbound=%v, b sees outbound=%v", la.Outbound, lb.Outbound)
			}
			st, err := a.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Links) != 1 || st.Links[0].Peer != b.Address().String() || st.Links[0].Transport != scheme {
				t.Fatalf("status links = %+v", st.Links)
			}

			// Each learns the other's announce as the link comes up, and a
			// sealed message crosses.
			waitRoute(t, b, a.Address())
			text := "hello over " + scheme
			if _, err := b.SendText(context.Background(), a.Address(), []byte(text)); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-a.Deliveries():
				if string(d.Text) != text || d.From != b.Address() || d.Hops != 1 {
					t.Fatalf("delivered %+v", d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("message not delivered")
			}
			if got := testutil.ToFloat64(b.Metrics().Links.FramesSent.WithLabelValues(scheme)); got < 2 {
				t.Fatalf("frames sent = %v, want at least an announce and the message", got)
			}
		})
	}
}

// TestPeerReconnectsAfterRestart is acceptance 2 of the transports issue:
// the dialing node re-dials on its own when the other comes back.
func TestPeerReconnectsAfterRestart(t *testing.T) {
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	a, _ := startNode(t, ca)
	addr := a.ListenAddrs()[0]
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = []string{addr}
	b, _ := startNode(t, cb)
	waitLink(t, b, a.Address(), "tcp")

	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Same data dir (identity) and same port.
	ca.Transports.Listen = []string{addr}
	a2, _ := startNode(t, ca)
	if a2.Address() != a.Address() {
		t.Fatal("restarted node has another identity")
	}
	waitLink(t, b, a.Address(), "tcp")
	if got := testutil.ToFloat64(b.Metrics().Links.Dials.WithLabelValues("tcp", "ok")); got < 2 {
		t.Fatalf("successful dials = %v, want a re-dial", got)
	}
}

// TestOversizeFrameDisconnectsOnlyThatPeer is acceptance 3: a peer that
// sends a frame over the limit is disconnected with a logged reason, and
// the node keeps serving another peer.
func TestOversizeFrameDisconnectsOnlyThatPeer(t *testing.T) {
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	ca.Transports.MaxFrameSize = 4096
	ca.Transports.QueueBytes = 4096
	a, logs := startNode(t, ca)
	addr := strings.TrimPrefix(a.ListenAddrs()[0], "tcp://")

	// A well-behaved peer: a second node.
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = a.ListenAddrs()
	b, _ := startNode(t, cb)
	waitLink(t, a, b.Address(), "tcp")

	// A hostile peer: a raw transport with a larger limit of its own.
	evil, _ := crypto.NewIdentity(nil)
	et, err := tcp.New(tcp.Options{Identity: evil, MaxFrameSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := et.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitLink(t, a, evil.Address(), "tcp")
	if err := conn.WriteFrame(make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	// The node closes the link: our reads end (after the node's announce,
	// which it sent when the link came up).
	readDone := make(chan error, 1)
	go func() {
		for {
			if _, err := conn.ReadFrame(); err != nil {
				readDone <- err
				return
			}
		}
	}()
	select {
	case <-readDone:
	case <-time.After(10 * time.Second):
		t.Fatal("hostile peer not disconnected")
	}
	if got := testutil.ToFloat64(a.Metrics().Links.Errors.WithLabelValues("tcp", "frame_too_large")); got != 1 {
		t.Fatalf("frame_too_large errors = %v", got)
	}
	if !strings.Contains(logs.String(), "reason=frame_too_large") {
		t.Fatalf("no logged reason:\n%s", logs)
	}
	// The good peer is still served.
	waitRoute(t, b, a.Address())
	if _, err := b.SendText(context.Background(), a.Address(), []byte("still here")); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-a.Deliveries():
		if d.From != b.Address() || string(d.Text) != "still here" {
			t.Fatalf("delivered %+v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("good peer's frame not delivered after the hostile one was cut off")
	}
}

// TestSlowReaderShedsInsteadOfGrowing is acceptance 4: a peer that does not
// read makes the link queue shed (counted), not grow without bound.
func TestSlowReaderShedsInsteadOfGrowing(t *testing.T) {
	// The slow reader: a raw TCP listener that completes the handshake and
	// then never reads.
	slow, _ := crypto.NewIdentity(nil)
	st, err := tcp.New(tcp.Options{Identity: slow})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := st.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(context.Background()); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}()
	// The node dials it as a configured peer, with a small link queue.
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = []string{"tcp://" + ln.Addr()}
	cb.Transports.QueueFrames = 16
	cb.Transports.QueueBytes = 1 << 20
	b, _ := startNode(t, cb)
	waitLink(t, b, slow.Address(), "tcp")

	frame := dataFrame(t, make([]byte, 32<<10))
	const n = 4000 // 128 MB offered: far beyond socket buffers and the queue
	for range n {
		if err := b.Send(slow.Address(), frame, messages.Bulk); err != nil {
			t.Fatal(err)
		}
	}
	// Probe until every frame is accounted for: sent into the socket or shed.
	shed := b.Metrics().Links.Shed.WithLabelValues("tcp", "bulk")
	sent := b.Metrics().Links.FramesSent.WithLabelValues("tcp")
	deadline := time.After(30 * time.Second)
	for {
		s, w := testutil.ToFloat64(shed), testutil.ToFloat64(sent)
		// Queued frames are at most the mailbox bound (+1 in WriteFrame).
		if s > 0 && s+w >= float64(n-cb.Transports.QueueFrames-1) {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("shed %v sent %v of %d", s, w, n)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if s := testutil.ToFloat64(shed); s < n/2 {
		t.Fatalf("only %v of %d frames shed for a reader that never reads", s, n)
	}
	t.Logf("offered %d, shed %v, written into the socket %v", n, testutil.ToFloat64(shed), testutil.ToFloat64(sent))
}

// TestPeerEventsOnEventStream checks that links publish PeerUp and
// PeerDown, tagged with the local node, on the shared event stream (the
// store drains on PeerUp; the simulator runs many nodes on one stream).
func TestPeerEventsOnEventStream(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discard() }))
	events := make(chan any, 16)
	sub := sys.EventStream.Subscribe(func(ev any) {
		switch ev.(type) {
		case *messages.PeerUp, *messages.PeerDown:
			events <- ev
		}
	})
	defer sys.EventStream.Unsubscribe(sub)

	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	a, _ := startNode(t, ca, WithActorSystem(sys))
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = a.ListenAddrs()
	b, _ := startNode(t, cb, WithActorSystem(sys))

	next := func() any {
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no peer event")
			return nil
		}
	}
	ups := map[crypto.Address]crypto.Address{}
	for range 2 {
		up, ok := next().(*messages.PeerUp)
		if !ok {
			t.Fatalf("want PeerUp first")
		}
		ups[up.Node] = up.Link.Peer
	}
	if ups[a.Address()] != b.Address() || ups[b.Address()] != a.Address() {
		t.Fatalf("PeerUp events %v", ups)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for {
		if down, ok := next().(*messages.PeerDown); ok && down.Node == a.Address() {
			if down.Link.Peer != b.Address() || down.Reason == "" {
				t.Fatalf("PeerDown %+v", down)
			}
			return
		}
	}
}

// linksBackoffFast re-dials quickly, for tests that restart nodes.
var linksBackoffFast = links.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: 0.2}
