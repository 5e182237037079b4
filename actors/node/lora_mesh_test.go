package node

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
)

// The LoRa mesh tests of issue 12 run many nodes on one simulated channel
// (link.MockNetwork) in one actor system, on a manual clock that an
// eventClock drives: it jumps from one due timer to the next (at most
// maxStep at a time), waiting a moment of real time after each jump for
// the actors the timers woke. So simulated minutes of LoRa airtime and
// duty cycle pass in seconds, and no test sleeps.

// minStep is the clock's resolution in the LoRa mesh tests: a small
// part of the shortest packet's airtime (about 30 ms at SF7).
const minStep = 5 * time.Millisecond

// eventClock is a clock.Manual that knows when its next timer is due.
type eventClock struct {
	*clock.Manual
	mu  sync.Mutex
	due map[*eventTimer]time.Time
}

type eventTimer struct {
	c     *eventClock
	inner clock.Timer
}

func newEventClock() *eventClock {
	return &eventClock{Manual: manualClock(), due: map[*eventTimer]time.Time{}}
}

func (c *eventClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	et := &eventTimer{c: c}
	c.mu.Lock()
	c.due[et] = c.Now().Add(d)
	c.mu.Unlock()
	et.inner = c.Manual.AfterFunc(d, func() {
		c.mu.Lock()
		delete(c.due, et)
		c.mu.Unlock()
		f()
	})
	return et
}

func (et *eventTimer) Stop() bool {
	et.c.mu.Lock()
	delete(et.c.due, et)
	et.c.mu.Unlock()
	return et.inner.Stop()
}

// next is the earliest due time of a pending timer (zero: none).
func (c *eventClock) next() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n time.Time
	for _, at := range c.due {
		if n.IsZero() || at.Before(n) {
			n = at
		}
	}
	return n
}

// step moves the clock to the next due timer, but by at least 1 ms and
// at most maxStep, and gives the actors a moment of real time.
func (c *eventClock) step(maxStep time.Duration) {
	d := maxStep
	if n := c.next(); !n.IsZero() {
		d = min(max(n.Sub(c.Now()), minStep), maxStep)
	}
	c.Advance(d)
	waitBriefly()
}

// waitBriefly lets goroutines woken by timers run: a fraction of a
// millisecond of real time, the unit of the probes' polling.
func waitBriefly() {
	t := time.NewTimer(300 * time.Microsecond)
	<-t.C
}

// loraMesh is n nodes on one simulated LoRa channel.
type loraMesh struct {
	t      testing.TB
	clk    *eventClock
	net    *link.MockNetwork
	medium *lora.Medium
	nodes  []*Node
	names  []string // radio names on the medium
}

// startLoRaMesh starts n nodes listening on lora+mock://channel; cfg
// adjusts each node's config, topo (before any radio attaches) the
// medium's links between the radios, named by names[i].
func startLoRaMesh(t testing.TB, n int, seed uint64, channel string, cfg func(i int, c *config.Config), topo func(m *lora.Medium, names []string), opts ...Option) *loraMesh {
	t.Helper()
	clk := newEventClock()
	net := link.NewMockNetwork(lora.MediumOptions{Clock: clk, Rand: rand.New(rand.NewPCG(seed, 12))})
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discard() }))
	m := &loraMesh{t: t, clk: clk, net: net, medium: net.Medium(channel)}
	ids := make([]*crypto.Identity, n)
	for i := range n {
		ids[i] = newIdentity(t)
		m.names = append(m.names, ids[i].Address().String()) // the radio's name on the medium
	}
	if topo != nil {
		topo(m.medium, m.names)
	}
	for i := range n {
		c := config.Default()
		c.DataDir = t.TempDir()
		c.API.Addr = ""
		c.Transports.Listen = []string{"lora+mock://" + channel}
		c.Announce.Interval = config.Duration(time.Hour) // no periodic round while a test measures
		if cfg != nil {
			cfg(i, &c)
		}
		o := append([]Option{WithConfig(c), WithLogger(discard()), WithActorSystem(sys), WithLoRaMock(net), WithClock(clk), WithIdentity(ids[i])}, opts...)
		node, err := New(o...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = node.Start(ctx)
		cancel()
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		m.nodes = append(m.nodes, node)
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, node := range m.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_ = node.Stop(ctx)
			}()
		}
		// Stopping waits on the clock (draining): keep it moving.
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		for {
			select {
			case <-done:
				return
			default:
				clk.Advance(100 * time.Millisecond)
				waitBriefly()
			}
		}
	})
	return m
}

// runUntil drives the clock until cond holds; it fails after maxSim of
// simulated time or maxWall of real time.
func (m *loraMesh) runUntil(what string, maxSim, maxWall time.Duration, maxStep time.Duration, cond func() bool) {
	m.t.Helper()
	start, wall := m.clk.Now(), time.Now()
	for i := 0; ; i++ {
		if i%20 == 0 && cond() {
			return
		}
		if m.clk.Now().Sub(start) > maxSim || time.Since(wall) > maxWall {
			if cond() {
				return
			}
			for i, n := range m.nodes[:2] {
				for _, r := range n.radios {
					st := r.Stats()
					m.t.Logf("radio %d: sent %d packets, %d broadcasts, %d dropped, %d announces held, %d suppressed, %d collapsed; received %d broadcasts; queued %d; %d timeouts, %d frames failed",
						i, st.PacketsSent, st.BroadcastsSent, st.BroadcastsDropped, st.AnnouncesHeld, st.AnnouncesSuppressed, st.AnnouncesCollapsed, st.BroadcastsReceived, st.Queued, st.Timeouts, st.FramesFailed)
				}
			}
			m.t.Fatalf("%s: not within %s of simulated time (%s real)", what, m.clk.Now().Sub(start).Round(time.Second), time.Since(wall).Round(time.Second))
		}
		m.clk.step(maxStep)
	}
}

// quiet drives the clock until the channel has been silent for d and no
// radio holds a queued frame.
func (m *loraMesh) quiet(d time.Duration) {
	m.t.Helper()
	last, at := m.medium.Stats().Transmissions, m.clk.Now()
	m.runUntil("channel quiet", time.Hour, 60*time.Second, 200*time.Millisecond, func() bool {
		tx := m.medium.Stats().Transmissions
		if tx != last {
			last, at = tx, m.clk.Now()
			return false
		}
		for _, n := range m.nodes {
			for _, r := range n.radios {
				if r.Stats().Queued > 0 {
					at = m.clk.Now()
					return false
				}
			}
		}
		return m.clk.Now().Sub(at) >= d
	})
}

// allRoutes reports whether every node routes to every other.
func (m *loraMesh) allRoutes() bool {
	for _, n := range m.nodes {
		rs, err := n.Routes(context.Background())
		if err != nil || len(rs) < len(m.nodes)-1 {
			return false
		}
	}
	return true
}

// airtime sums the radios' airtime by kind.
func (m *loraMesh) airtime() link.AirtimeByKind {
	var a link.AirtimeByKind
	for _, n := range m.nodes {
		for _, r := range n.radios {
			k := r.Stats().Airtime
			a.Announce += k.Announce
			a.Hello += k.Hello
			a.Data += k.Data
			a.Control += k.Control
		}
	}
	return a
}

func (a airtimeLog) String() string {
	k := link.AirtimeByKind(a)
	return fmt.Sprintf("announce %s, hello %s, data %s, ack/nack/bye %s (total %s)",
		k.Announce.Round(time.Millisecond), k.Hello.Round(time.Millisecond), k.Data.Round(time.Millisecond),
		k.Control.Round(time.Millisecond), k.Total().Round(time.Millisecond))
}

type airtimeLog link.AirtimeByKind

// announceRound has origin announce anew (new capabilities) and counts
// the transmissions on the medium until every other node has the new
// announce and the channel is quiet again.
func (m *loraMesh) announceRound(origin *Node) uint64 {
	m.t.Helper()
	prev, ok := hasRoute(m.t, m.nodes[len(m.nodes)-1], origin.Address())
	if !ok {
		m.t.Fatal("no route to the origin")
	}
	before := m.medium.Stats().Transmissions
	if err := origin.SetCapabilities(origin.Capabilities() ^ messages.CapGateway); err != nil {
		m.t.Fatal(err)
	}
	m.runUntil("every node has the new announce", 30*time.Minute, 40*time.Second, 100*time.Millisecond, func() bool {
		for _, o := range m.nodes {
			if o == origin {
				continue
			}
			r, ok := hasRoute(m.t, o, origin.Address())
			if !ok || r.Seq <= prev.Seq {
				return false
			}
		}
		return true
	})
	m.quiet(20 * time.Second)
	return m.medium.Stats().Transmissions - before
}

// TestLoRaCliqueAnnounceRoundOnTheAir is acceptance 1 of issue 12: in a
// 20-node LoRa mock clique one announce round (one node's new announce
// flooded to every other) costs at most 20 transmissions on the air,
// counted by the medium, against the per-peer fan-out of before issue 12
// measured on the same clique right after (withPerPeerFanout); every
// node learns every route.
func TestLoRaCliqueAnnounceRoundOnTheAir(t *testing.T) {
	const n = 20
	wall := time.Now()
	var perPeer atomic.Bool
	m := startLoRaMesh(t, n, 20, "clique", nil, nil, withPerPeerFanout(perPeer.Load))
	start := m.clk.Now()
	m.runUntil("every node routes to every other", 30*time.Minute, 40*time.Second, 100*time.Millisecond, m.allRoutes)
	t.Logf("every node routes to every other after %s of simulated time", m.clk.Now().Sub(start).Round(time.Second))
	m.quiet(20 * time.Second)
	t.Logf("airtime of the start: %s", airtimeLog(m.airtime()))

	after := m.announceRound(m.nodes[0])
	a0 := m.airtime()
	t.Logf("one announce round with broadcasts: %d transmissions", after)
	perPeer.Store(true)
	before := m.announceRound(m.nodes[1])
	t.Logf("one announce round with one frame per peer (before issue 12): %d transmissions", before)
	a1 := m.airtime()
	t.Logf("airtime of the per-peer round: announce %s, ack/nack/bye %s", (a1.Announce - a0.Announce).Round(time.Millisecond), (a1.Control - a0.Control).Round(time.Millisecond))
	t.Logf("a %d-node LoRa clique, one announce round: %d transmissions per peer before, %d with broadcasts (%s of wall time)",
		n, before, after, time.Since(wall).Round(time.Second))
	if after > n {
		t.Fatalf("an announce round cost %d transmissions, want at most %d", after, n)
	}
	if after >= before {
		t.Fatalf("broadcasting (%d) is no cheaper than the per-peer fan-out (%d)", after, before)
	}
}
