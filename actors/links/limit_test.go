package links

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/mem"
	"github.com/quicprochat/qpc/transports/tcp"
)

func TestLogThrottle(t *testing.T) {
	th := logThrottle{every: time.Minute}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at       time.Duration
		ok       bool
		withheld int
	}{
		{0, true, 0}, // the first at once
		{time.Second, false, 0},
		{30 * time.Second, false, 0},
		{time.Minute, true, 2}, // then once a minute, with the count held back
		{time.Minute + time.Second, false, 0},
		{10 * time.Minute, true, 1},
	}
	for _, s := range steps {
		ok, n := th.allow(t0.Add(s.at))
		if ok != s.ok || n != s.withheld {
			t.Fatalf("at %s: allow = %v, %d; want %v, %d", s.at, ok, n, s.ok, s.withheld)
		}
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hub is a transports subtree listening on a mem network, for tests.
type hub struct {
	sys     *actor.ActorSystem
	pid     *actor.PID
	net     *mem.Network
	addr    string
	metrics *metrics.Links
	log     *syncBuffer
}

func newHub(t *testing.T, maxInbound int) *hub {
	t.Helper()
	id := newIdentity(t)
	network := mem.NewNetwork()
	tr, err := network.NewTransport(mem.Options{Identity: id, Name: "hub"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tr.Listen(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	h := newHubWith(t, id, maxInbound, map[string]transports.Transport{"mem": tr}, Bound{URI: "mem://hub", Listener: ln})
	h.net, h.addr = network, ln.Addr()
	return h
}

// newHubWith starts a transports subtree for id over ts, listening on ls.
func newHubWith(t *testing.T, id *crypto.Identity, maxInbound int, ts map[string]transports.Transport, ls ...Bound) *hub {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	m := metrics.New(metrics.Options{}).Links
	cfg := Config{
		Identity: id, Transports: ts, Listeners: ls,
		Metrics: m, Log: log, Clock: clock.Real{}, Backoff: DefaultBackoff,
		MaxInboundLinks: maxInbound,
	}
	pid, err := sys.Root.SpawnNamed(New(cfg), Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sys.Root.StopFuture(pid).Wait()
		for _, b := range ls {
			b.Listener.Close()
		}
	})
	sys.Root.Send(pid, &messages.StartLinks{})
	return &hub{sys: sys, pid: pid, metrics: m, log: logs}
}

func newIdentity(t *testing.T) *crypto.Identity {
	t.Helper()
	id, err := crypto.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// dial connects a new identity to the hub.
func (h *hub) dial(t *testing.T) transports.Conn {
	t.Helper()
	id := newIdentity(t)
	tr, err := h.net.NewTransport(mem.Options{Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tr.Dial(context.Background(), h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// links asks the hub for its links.
func (h *hub) links(t *testing.T) []messages.LinkInfo {
	t.Helper()
	res, err := h.sys.Root.RequestFuture(h.pid, &messages.LinksRequest{}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res.(*messages.LinksReply).Links
}

// waitLinks probes until the hub holds n links.
func (h *hub) waitLinks(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ls := h.links(t)
		if len(ls) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub holds %d links, want %d", len(ls), n)
		}
		<-time.After(5 * time.Millisecond) // the next probe
	}
}

// closedByHub reads c until the hub closes it, within a deadline.
func closedByHub(t *testing.T, c transports.Conn, what string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := c.ReadFrame(); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the hub did not close the connection", what)
	}
}

// Regression test for issue 10, item 2: any number of authenticated peers
// could link. With transports.max_inbound_links the link over the cap is
// closed after its handshake, counted, and logged once (not per attempt);
// a slot comes back when a link goes.
func TestInboundLinkCapRefusesTheLinkOverTheCap(t *testing.T) {
	h := newHub(t, 2)
	first := h.dial(t)
	h.dial(t)
	h.waitLinks(t, 2)

	refused := h.metrics.Refused.WithLabelValues("mem", "max_inbound_links")
	for i := 1; i <= 3; i++ {
		closedByHub(t, h.dial(t), fmt.Sprintf("link %d over the cap", i))
		if got := testutil.ToFloat64(refused); got != float64(i) {
			t.Fatalf("qpc_link_refused_total{reason=max_inbound_links} = %v after %d refusals", got, i)
		}
	}
	if n := len(h.links(t)); n != 2 {
		t.Fatalf("hub holds %d links, cap 2", n)
	}
	if n := strings.Count(h.log.String(), "refusing an inbound link"); n != 1 {
		t.Fatalf("%d refusal lines for 3 refusals within a minute, want 1:\n%s", n, h.log.String())
	}

	first.Close()
	h.waitLinks(t, 1)
	h.dial(t)
	h.waitLinks(t, 2)
}

// stallingProxy forwards TCP connections to target: everything from
// target, and from the client only the first limit bytes; then it stops
// reading the client, so target sees a peer stalled at that point.
func stallingProxy(t *testing.T, target string, limit int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				return
			}
			t.Cleanup(func() { client.Close(); server.Close() })
			go io.Copy(client, server)
			go io.CopyN(server, client, limit)
		}
	}()
	return ln.Addr().String()
}

// Regression test for issue 10, item 2: a peer that stops inside a frame
// kept its link (and the partial frame) for as long as it liked. Over real
// TCP, through a proxy that passes the handshake and the start of a 200 KB
// frame and then nothing, the hub closes the link once the frame timeout
// passes and counts it as frame_timeout.
func TestStalledFrameClosesTheLink(t *testing.T) {
	const frameTimeout = 300 * time.Millisecond
	hubID := newIdentity(t)
	budget := transports.NewFrameBudget(1 << 20)
	tr, err := tcp.New(tcp.Options{Identity: hubID, FrameTimeout: frameTimeout, FrameBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tr.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newHubWith(t, hubID, 0, map[string]transports.Transport{"tcp": tr}, Bound{URI: "tcp://" + ln.Addr(), Listener: ln})

	proxy := stallingProxy(t, ln.Addr(), tcp.HelloSize+tcp.SigSize+1000)
	peer, err := tcp.New(tcp.Options{Identity: newIdentity(t)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := peer.Dial(context.Background(), proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h.waitLinks(t, 1)
	frame := make([]byte, 200<<10)
	frame[0] = byte(messages.MakeTag(messages.FrameEnvelope, 0))
	go c.WriteFrame(frame) // the proxy passes its first 1000 bytes

	h.waitLinks(t, 0)
	timeouts := h.metrics.Errors.WithLabelValues("tcp", "frame_timeout")
	if got := testutil.ToFloat64(timeouts); got != 1 {
		t.Fatalf("qpc_link_errors_total{reason=frame_timeout} = %v, want 1; log:\n%s", got, h.log.String())
	}
	if !strings.Contains(h.log.String(), "reason=frame_timeout") {
		t.Fatalf("no closing line naming frame_timeout:\n%s", h.log.String())
	}
	if u := budget.InUse(); u != 0 {
		t.Fatalf("%d bytes of the frame budget still reserved after the link closed", u)
	}
}

// radioConn is a connection as a LoRa radio's listener returns it.
type radioConn struct{ transports.Conn }

func (c radioConn) Info() transports.Info {
	i := c.Conn.Info()
	i.Name = lora.InfoName
	return i
}

type radioListener struct{ transports.Listener }

func (l radioListener) Accept(ctx context.Context) (transports.Conn, error) {
	c, err := l.Listener.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return radioConn{c}, nil
}

// Peers heard on a radio take no inbound slot (the radio bounds them).
func TestRadioPeersAreNotCapped(t *testing.T) {
	id := newIdentity(t)
	network := mem.NewNetwork()
	tr, err := network.NewTransport(mem.Options{Identity: id, Name: "hub"})
	if err != nil {
		t.Fatal(err)
	}
	ipLn, err := tr.Listen(context.Background(), "hub")
	if err != nil {
		t.Fatal(err)
	}
	radio, err := tr.Listen(context.Background(), "radio")
	if err != nil {
		t.Fatal(err)
	}
	h := newHubWith(t, id, 1, map[string]transports.Transport{"mem": tr},
		Bound{URI: "mem://hub", Listener: ipLn}, Bound{URI: "mem://radio", Listener: radioListener{radio}})
	h.net = network
	h.addr = "hub"
	h.dial(t)
	h.addr = "radio"
	h.dial(t)
	h.dial(t)
	h.waitLinks(t, 3)
	if got := testutil.ToFloat64(h.metrics.Refused.WithLabelValues(lora.InfoName, "max_inbound_links")); got != 0 {
		t.Fatalf("radio peers refused: %v", got)
	}
}
