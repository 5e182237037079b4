package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/mem"
)

// TestRoutesComeBackAfterRelayRestart: A – B – C, B restarts (gracefully,
// then harshly). A and C lose their routes through B when its links go;
// once B is back they must have them again within seconds — B keeps the
// announce frames with its table, so its dump to each neighbour carries
// the other one — not after the next periodic announce (10 minutes).
func TestRoutesComeBackAfterRelayRestart(t *testing.T) {
	ca := testConfig(t)
	ca.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	a, _ := startNode(t, ca)
	cb := testConfig(t)
	cb.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	cb.Transports.Peers = a.ListenAddrs()
	b, _ := startNode(t, cb, WithDialBackoff(linksBackoffFast))
	// B's port must stay the same across its restarts, for C to re-dial.
	cb.Transports.Listen = b.ListenAddrs()
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = b.ListenAddrs()
	c, _ := startNode(t, cc, WithDialBackoff(linksBackoffFast))
	waitRoute(t, a, c.Address())
	waitRoute(t, c, a.Address())
	waitTableWritten(t, b, a.Address())
	waitTableWritten(t, b, c.Address())

	for _, harsh := range []bool{false, true} {
		if harsh {
			_ = crashStop(b)
		} else if err := b.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitRouteGone(t, c, a.Address())
		waitRouteGone(t, a, c.Address())
		start := time.Now()
		b, _ = startNode(t, cb, WithDialBackoff(linksBackoffFast))
		waitRoute(t, c, a.Address())
		waitRoute(t, a, c.Address())
		t.Logf("harsh=%v: routes back %s after B started", harsh, time.Since(start).Round(time.Millisecond))
	}
}

// The announces a node sends to neighbours as they come up are counted
// (qpc_mesh_announces_sent_total stayed 0 until the first periodic one).
func TestAnnouncesToNewNeighboursAreCounted(t *testing.T) {
	a, _, c := line(t)
	for _, n := range []*Node{a, c} {
		if got := testutil.ToFloat64(n.Metrics().Mesh.AnnouncesSent); got < 1 {
			t.Fatalf("%s counted %v announces sent", n.Address().Short(), got)
		}
	}
}

// A message whose envelope is larger than the links to the first hop of
// its route carry is refused at send, saying the sizes (issue 9 item 5:
// "refused at send, never accepted and then lost"): before, it was
// accepted, put on no link (qpc_link_no_route_total) and failed only at
// its expiry. The link stays up for everything else, and through the API
// the refusal is a 413 too_large for a single send and for one message
// of a batch.
func TestFrameOverLinkLimitIsRefusedAtSend(t *testing.T) {
	net := mem.NewNetwork()
	idB, _ := crypto.NewIdentity(nil)
	net.SetLink(idB.Address().String(), "a", transports.Info{MTU: 600})
	ca := testConfig(t)
	ca.Transports.Listen = []string{"mem://a"}
	a, _ := startNode(t, ca, WithMemNetwork(net))
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = []string{"mem://a"}
	b, _ := startNode(t, cb, WithMemNetwork(net), WithIdentity(idB))
	waitRoute(t, b, a.Address())
	waitRoute(t, a, b.Address())

	before, err := b.Outbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.SendText(context.Background(), a.Address(), make([]byte, 1000))
	if !errors.Is(err, router.ErrTooLargeForLink) || !strings.Contains(err.Error(), "carry at most 600") {
		t.Fatalf("send of a 1000-byte text over a 600-byte link: %v, want ErrTooLargeForLink naming the limit", err)
	}
	res, err := b.SendMessage(context.Background(), api.SendRequest{To: a.Address().String(), Text: string(make([]byte, 1000))})
	var tl *api.TooLarge
	if !errors.As(err, &tl) {
		t.Fatalf("API send: %v %+v, want a 413 too_large", err, res)
	}
	batch, err := b.SendMessages(context.Background(), []api.SendRequest{{To: a.Address().String(), Text: string(make([]byte, 1000))}})
	if err != nil || batch.Results[0].Error == nil || batch.Results[0].Error.Code != "too_large" {
		t.Fatalf("API batch: %+v, %v; want too_large", batch, err)
	}
	if after, _ := b.Outbox(context.Background()); len(after.Messages) != len(before.Messages) || after.Pending != before.Pending {
		t.Fatalf("outbox %+v → %+v: a refused message was kept", before, after)
	}
	small, err := b.SendText(context.Background(), a.Address(), []byte("fits"))
	if err != nil {
		t.Fatal(err)
	}
	waitStates(t, b, map[[16]byte]string{small.ID: "fits"}, router.StateDelivered, 10*time.Second)
	if got := testutil.ToFloat64(b.Metrics().Links.NoLink); got != 0 {
		t.Fatalf("%v frames put on no link", got)
	}
	if got := testutil.ToFloat64(b.Metrics().Links.Errors.WithLabelValues("mem", "frame_too_large")); got != 0 {
		t.Fatalf("the link failed on it (%v)", got)
	}
}

// A peer that cannot be dialled is logged at info level: the first
// failure and each change of cause, not every retry; and its return.
func TestUnreachablePeerIsLogged(t *testing.T) {
	c := testConfig(t)
	c.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	free := testConfig(t)
	free.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	peer, _ := startNode(t, free)
	addr := peer.ListenAddrs()[0]
	if err := peer.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Transports.Peers = []string{addr}
	n, logs := startNode(t, c, WithDialBackoff(linksBackoffFast))
	_ = n
	if !probe.Wait(10*time.Second, func() bool {
		return strings.Contains(logs.String(), `level=INFO msg="cannot dial peer; retrying with back-off"`)
	}) {
		t.Fatalf("no info line for the unreachable peer:\n%s", logs)
	}
	// Retries with the same cause stay at debug level.
	waitCount(t, n.Metrics().Links.Dials.WithLabelValues("tcp", "error"), 3, "failed dials")
	if k := strings.Count(logs.String(), "cannot dial peer"); k != 1 {
		t.Fatalf("%d info lines for one cause:\n%s", k, logs)
	}
}
