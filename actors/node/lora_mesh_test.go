package node

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/metrics"
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
	// min is the smallest step (default minStep): the clock's resolution.
	min time.Duration
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
		d = min(max(n.Sub(c.Now()), cmp.Or(c.min, minStep)), maxStep)
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
	// The announce cap held on every radio all along: announces within
	// the share of the time since the start, plus one announce.
	share, elapsed := config.Default().Transports.LoRa.AnnounceShare, m.clk.Now().Sub(start)
	worst := 0.0
	for i, node := range m.nodes {
		for _, r := range node.radios {
			a := r.Stats().Airtime.Announce
			worst = max(worst, float64(a)/float64(elapsed))
			if a > time.Duration(share*float64(elapsed))+time.Second {
				t.Errorf("node %d: announces used %s of %s, over the %v cap", i, a, elapsed, share)
			}
		}
	}
	t.Logf("announces of the busiest radio: %.2f %% of its %s (cap %.0f %%); all radios: %s", 100*worst, elapsed.Round(time.Second), 100*share, airtimeLog(m.airtime()))
	if after > n {
		t.Fatalf("an announce round cost %d transmissions, want at most %d", after, n)
	}
	if after >= before {
		t.Fatalf("broadcasting (%d) is no cheaper than the per-peer fan-out (%d)", after, before)
	}
}

// randomTopology places n radios at random in a unit square, in range of
// each other within radius r (grown until the graph is connected), and
// returns the adjacency and r. Links in range lose frames more the longer
// they are: up to 20 % at the edge (and so have a weaker SNR, see
// lora.Medium.LinkSNR).
func randomTopology(rng *rand.Rand, n int) (adj [][]bool, dist [][]float64, r float64) {
	x, y := make([]float64, n), make([]float64, n)
	for i := range n {
		x[i], y[i] = rng.Float64(), rng.Float64()
	}
	dist = make([][]float64, n)
	for i := range n {
		dist[i] = make([]float64, n)
		for j := range n {
			dx, dy := x[i]-x[j], y[i]-y[j]
			dist[i][j] = math.Sqrt(dx*dx + dy*dy)
		}
	}
	for r = 0.25; ; r += 0.01 {
		adj = make([][]bool, n)
		for i := range n {
			adj[i] = make([]bool, n)
			for j := range n {
				adj[i][j] = i != j && dist[i][j] <= r
			}
		}
		seen, stack := map[int]bool{0: true}, []int{0}
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for j := range n {
				if adj[i][j] && !seen[j] {
					seen[j] = true
					stack = append(stack, j)
				}
			}
		}
		if len(seen) == n {
			return adj, dist, r
		}
	}
}

// TestLoRaRandomMeshDeliversUnderTheAnnounceCap is acceptance 2 of issue
// 12: a 30-node random LoRa mock mesh (seeded, connected, lossy links)
// with the duty cycle of the 869.4-869.65 MHz sub-band (10 %): every node
// learns every route, 200 messages between random pairs are all
// delivered, exactly once (the outbox retransmits end to end), and every
// radio's announces stay within the announce share (here 10 %) of its
// time.
//
// Not in make test: it runs only with QPCTEST_LORA_MESH=1 (make
// test-lora-mesh, without -race; CI's .ci/run runs it after make test), as it takes about 3
// minutes without -race and about 5 with it (make test's budget wants it
// under 90 s under -race on 2 cores; the event clock's real-time wait
// per step, 300 µs for every 5 to 200 ms of simulated time, does not
// allow that for 2 to 3.5 hours of the channel's time). Every node learns every route after
// 50 minutes to 1.5 hours of the channel's time (35 s to 60 s of wall
// time: the 10-minute rounds repair lost broadcasts; the routes phase
// allows 180 s).
//
// History of the message phase (150 s of wall time, 1 to 2 hours of
// simulated time):
//   - Before the link kept its Conn when a frame is given up (Options.
//     PeerSilence in transports/lora/link): 76 to 87 of the 200, with
//     470 to 540 LoRa link failures, each taking its routes with it.
//   - Then 177 to 189, 3 to 7 link failures, about 1300 frames dropped
//     alone (Stats.FramesDropped) and recovered end to end. The causes,
//     from the per-message outcome and the route state this test logs:
//     (1) routing loops after a lost neighbour (7 0 7 0 …, 5 10 5 10 …,
//     19 12 19 12 …): the table fell back to an alternate path that ran
//     through itself. Fixed in actors/router: only feasible paths are
//     kept (hops at most the fewest seen for the announce, DUAL/Babel's
//     feasibility condition), a relay never forwards a frame back where
//     it came from, and retransmissions of an own message take the equal
//     paths in turn. No undelivered message's path loops since.
//     (2) the bridge, node 26 (neighbours 1, 5, 7, 10; between the
//     cluster of 0, 7, 12, 19, 28, 29 and the rest): every message
//     still missing crossed it. Its duty cycle held 5000 transmissions:
//     ACKs and NACKs were control traffic, allowed only up to the
//     control ceiling (half the budget), and its own data had filled
//     more than that, so it acknowledged nothing and its neighbours spent
//     their 8 rounds, then the frame, on it (26: 92 frames delivered,
//     115 dropped). Fixed in transports/lora/link: reports are user data.
//   - With both: 198 of 200 within the 150 s the message phase had
//     (1h50m of simulated time after the routes); frames dropped 758
//     (from 1413), no link failures; the two missing had been sent 13
//     and 14 times, both across 26. With 270 s all 200 arrived, exactly
//     once, 2h10m of simulated time after the routes, 3m36s of wall time
//     (5m40s under -race): 140 within 12 minutes, then nothing much for
//     45 minutes. That plateau is the bridge's duty cycle: the burst of
//     200 messages, their receipts and their end-to-end retransmissions
//     spend 26's 10 % of the rolling hour in the first quarter of it, and
//     it may send again only as those transmissions leave the window. Its
//     queue held several copies of the same envelopes (a retransmission
//     arriving while the first copy still waits), all of them sent.
//   - Now the LoRa link queues no second copy of a frame waiting for the
//     same peer (Stats.FramesCopies): all 200 in 1h9m of simulated time
//     after the routes (160 within 16 minutes), 2h39m in all, 2m43s of
//     wall time without -race; 555 frames dropped, no link failures; data
//     airtime 43m (was 66m). The busiest radio's announces: 1.29 % of its
//     time against the 10 % cap (all announces together 49 % of all
//     airtime: announce 47m50s, hello 3m9s, data 43m29s, ack/nack/bye
//     3m0s). Runs differ (the actors' timing moves the radios' random
//     draws): under -race all 200 in 2h2m of simulated time after the
//     routes, 5m25s of wall time, the plateau again after 160 within 17
//     minutes; the bridge 26 held 2341 transmissions, refused 205 copies
//     and sent 7m19s in 3h12m; the busiest radio's announces 1.28 %.
//
// What is left: the bridge's capacity (a relay that carries half the
// mesh's traffic runs at its duty cycle; the end-to-end retransmissions
// of messages it dropped come back to it), and the test's speed, which
// keeps it out of make test.
func TestLoRaRandomMeshDeliversUnderTheAnnounceCap(t *testing.T) {
	if os.Getenv("QPCTEST_LORA_MESH") == "" {
		t.Skip("SKIP: acceptance 2 of issue 12 takes about 3 minutes without -race, 5 with it: make test-lora-mesh runs it (CI does, after make test)")
	}
	const n, msgs = 30, 200
	wall := time.Now()
	rng := rand.New(rand.NewPCG(30, 200))
	adj, dist, r := randomTopology(rng, n)
	edges, far := 0, 0
	for i := range n {
		for j := i + 1; j < n; j++ {
			if adj[i][j] {
				edges++
			}
		}
	}
	topo := func(m *lora.Medium, names []string) {
		for i := range n {
			for j := i + 1; j < n; j++ {
				loss := 1.0
				if adj[i][j] {
					d := dist[i][j] / r
					loss = 0.2 * d * d
				}
				if err := m.SetLoss(names[i], names[j], loss); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// The configured cap: 10 % (the default 2 % holds too, but the mesh
	// then takes over an hour of the channel's time to converge).
	const share = 0.1
	m := startLoRaMesh(t, n, 30, "mesh", func(_ int, c *config.Config) {
		// Routes and announces outlive the test: no periodic round.
		c.Routing.RouteTTL = config.Duration(6 * time.Hour)
		c.Announce.MaxAge = config.Duration(6 * time.Hour)
		c.Announce.MaxHops = 16 // the diameter may exceed the default 8
		// The default round of announces every 10 minutes: a broadcast is
		// not retransmitted, the next round repairs what a loss cut.
		c.Announce.Interval = config.Default().Announce.Interval
		c.Transports.LoRa.AnnounceShare = share
		// End-to-end retransmission paced for a multi-hop LoRa path (a
		// round trip of 8 hops takes tens of seconds at SF7): the default
		// 5 s base floods a busy channel with copies.
		c.Outbox.RetryBase = config.Duration(time.Minute)
		c.Outbox.RetryMax = config.Duration(10 * time.Minute)
	}, topo)
	for i := range n {
		hops := bfs(adj, i)
		for _, h := range hops {
			far = max(far, h)
		}
	}
	t.Logf("%d nodes, %d links (range %.2f), diameter %d hops", n, edges, r, far)
	start := m.clk.Now()
	logged := false
	m.runUntil("every node routes to every other", 6*time.Hour, 180*time.Second, 200*time.Millisecond, func() bool {
		if m.allRoutes() {
			return true
		}
		if time.Since(wall) > 179*time.Second && !logged {
			logged = true
			idx := map[crypto.Address]int{}
			for i, node := range m.nodes {
				idx[node.Address()] = i
			}
			for i, node := range m.nodes {
				rs, _ := node.Routes(context.Background())
				known := map[int]bool{i: true}
				for _, r := range rs {
					known[idx[r.Address]] = true
				}
				var missing []int
				for j := range n {
					if !known[j] {
						missing = append(missing, j)
					}
				}
				if len(missing) == 0 {
					continue
				}
				st := node.radios[0].Stats()
				fams, _ := metrics.Snapshot(node.Gatherer())
				var rb []string
				for _, f := range fams {
					if strings.Contains(f.Name, "rebroadcast") || strings.Contains(f.Name, "broadcasts_total") {
						rb = append(rb, fmt.Sprintf("%s=%v", f.Name, f.Samples))
					}
				}
				t.Logf("node %d (neighbours %v): %d routes, missing %v; broadcasts sent %d, received %d, unknown %d; announces held %d, suppressed %d, collapsed %d; queued %d; %v", i, neighbours(adj, i), len(rs), missing,
					st.BroadcastsSent, st.BroadcastsReceived, st.BroadcastUnknown, st.AnnouncesHeld, st.AnnouncesSuppressed, st.AnnouncesCollapsed, st.Queued, rb)
			}
		}
		return false
	})
	t.Logf("every node routes to every other after %s of simulated time (%s real)", m.clk.Now().Sub(start).Round(time.Second), time.Since(wall).Round(time.Second))

	// 200 messages between random pairs, one a second of simulated time.
	var mu sync.Mutex
	got := map[string]int{}
	for _, node := range m.nodes {
		ch := node.Deliveries()
		go func() {
			for d := range ch {
				mu.Lock()
				got[string(d.Text)]++
				mu.Unlock()
			}
		}()
	}
	sendErr := make(chan error, msgs)
	lastLog, diag := 0, false
	const msgWall = 270 * time.Second
	msgWallStart := time.Now()
	type pair struct{ from, to int }
	pairs := map[string]pair{}
	ids := map[string][16]byte{} // text → its outbox id at the sender (under mu)
	sent, next := 0, m.clk.Now()
	sendStart := m.clk.Now()
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	// The cap and the airtime report, also when the messages fail (a
	// cleanup: it runs before the nodes stop). Every radio's announces
	// within the share of its time (the cap's bound: share × elapsed,
	// plus the one announce that may start at the end of it).
	t.Cleanup(func() {
		took := m.clk.Now().Sub(sendStart)
		elapsed := m.clk.Now().Sub(start)
		var all link.AirtimeByKind
		worst := 0.0
		var dropped, failed, copies, shed, held uint64
		busiest, busiestHeld := -1, uint64(0)
		for i, node := range m.nodes {
			for _, radio := range node.radios {
				st := radio.Stats()
				dropped += st.FramesDropped
				failed += st.FramesFailed
				copies += st.FramesCopies
				held += st.Held
				if st.Held > busiestHeld {
					busiest, busiestHeld = i, st.Held
				}
				for _, k := range st.FramesShed {
					shed += k
				}
				a := st.Airtime
				all.Announce += a.Announce
				all.Hello += a.Hello
				all.Data += a.Data
				all.Control += a.Control
				if got := float64(a.Announce) / float64(elapsed); got > worst {
					worst = got
				}
				oneAnnounce := 2 * time.Second // an announce lasts about 0.3 s at SF7; generous
				if limit := time.Duration(share*float64(elapsed)) + oneAnnounce; a.Announce > limit {
					t.Errorf("node %d: announces used %s of %s, over the %v share", i, a.Announce, elapsed, share)
				}
			}
		}
		t.Logf("%d of %d messages delivered in %s of simulated time after the routes; %s of simulated time in all, %s of wall time",
			delivered(), msgs, took.Round(time.Second), elapsed.Round(time.Second), time.Since(wall).Round(time.Second))
		t.Logf("LoRa frames given up after the last round: %d dropped (peer heard), %d failed their link (peer silent); %d shed from full queues, %d copies of queued frames not queued; %d transmissions held by the duty cycle", dropped, failed, shed, copies, held)
		t.Logf("airtime of all radios: %s; the busiest radio's announces: %.2f %% of its time (cap %.0f %%); all announces: %.2f %% of all airtime",
			airtimeLog(all), 100*worst, 100*share, 100*float64(all.Announce)/float64(all.Total()))
		if busiest >= 0 {
			st := m.nodes[busiest].radios[0].Stats()
			t.Logf("the radio its duty cycle held most: node %d (neighbours %v): %d transmissions held; frames sent %d, received %d, dropped %d, shed %v, copies not queued %d; airtime %s",
				busiest, neighbours(adj, busiest), st.Held, st.FramesSent, st.FramesReceived, st.FramesDropped, st.FramesShed, st.FramesCopies, airtimeLog(st.Airtime))
		}
		ms := m.medium.Stats()
		t.Logf("medium: %d transmissions, %s on air, %d delivered, %d collided, %d lost to loss, %d half-duplex", ms.Transmissions, ms.Airtime.Round(time.Second), ms.Delivered, ms.Collided, ms.Lost, ms.HalfDuplex)
	})
	m.runUntil("all messages delivered", 6*time.Hour, msgWall, 200*time.Millisecond, func() bool {
		for sent < msgs && !m.clk.Now().Before(next) {
			i, j := rng.IntN(n), rng.IntN(n-1)
			if j >= i {
				j++
			}
			from, to, text := m.nodes[i], m.nodes[j], fmt.Sprintf("%d: from %d to %d", sent, i, j)
			pairs[text] = pair{i, j}
			go func() {
				res, err := from.SendText(context.Background(), to.Address(), []byte(text))
				if err == nil {
					mu.Lock()
					ids[text] = res.ID
					mu.Unlock()
				}
				sendErr <- err
			}()
			sent++
			next = next.Add(time.Second)
		}
		select {
		case err := <-sendErr:
			if err != nil {
				t.Fatalf("send: %v", err)
			}
		default:
		}
		if time.Since(msgWallStart) > msgWall-2*time.Second && !diag {
			diag = true
			sums := map[string]float64{}
			for _, node := range m.nodes {
				fams, _ := metrics.Snapshot(node.Gatherer())
				for _, f := range fams {
					if !strings.Contains(f.Name, "envelope") && !strings.Contains(f.Name, "retransmit") && !strings.Contains(f.Name, "link_errors") &&
						!strings.Contains(f.Name, "outbox") && !strings.Contains(f.Name, "messages") && !strings.Contains(f.Name, "shed") && !strings.Contains(f.Name, "no_route") && !strings.Contains(f.Name, "store") {
						continue
					}
					for _, x := range f.Samples {
						sums[fmt.Sprintf("%s%v", f.Name, x.Labels)] += x.Value
					}
				}
			}
			for k, v := range sums {
				if v != 0 {
					t.Logf("sum over nodes: %s = %v", k, v)
				}
			}
			// Every node's table and radio: where frames are lost.
			for i, node := range m.nodes {
				rs, _ := node.Routes(context.Background())
				known := map[[16]byte]bool{}
				for _, r := range rs {
					known[r.Address] = true
				}
				var missing []int
				for j, o := range m.nodes {
					if j != i && !known[o.Address()] {
						missing = append(missing, j)
					}
				}
				st := node.radios[0].Stats()
				t.Logf("node %d (neighbours %v): %d routes, missing %v; frames sent %d, received %d, dropped %d, failed %d, shed %v; timeouts %d, carrier busy %d, queued %d, held %d",
					i, neighbours(adj, i), len(rs), missing, st.FramesSent, st.FramesReceived, st.FramesDropped, st.FramesFailed, st.FramesShed, st.Timeouts, st.CarrierBusy, st.Queued, st.Held)
			}
			// The undelivered: the path their origin's routes take now.
			idx := map[[16]byte]int{}
			for i, node := range m.nodes {
				idx[node.Address()] = i
			}
			mu.Lock()
			for text, p := range pairs {
				if got[text] > 0 {
					continue
				}
				path, at := []int{p.from}, p.from
				for len(path) < 20 && at != p.to {
					r, ok := hasRoute(t, m.nodes[at], m.nodes[p.to].Address())
					if !ok {
						path = append(path, -1)
						break
					}
					at = idx[r.NextHop]
					path = append(path, at)
				}
				outcome := "never accepted"
				if id, ok := ids[text]; ok {
					if st, err := m.nodes[p.from].Message(context.Background(), id); err != nil {
						outcome = err.Error()
					} else {
						outcome = fmt.Sprintf("%s after %d transmissions, next at %s", st.State, st.Attempts, st.NextRetry.Sub(m.clk.Now()).Round(time.Second))
					}
				}
				t.Logf("undelivered %q: %d hops apart, the routes' path now %v; at the sender: %s", text, bfs(adj, p.from)[p.to], path, outcome)
			}
			mu.Unlock()
		}
		if d := delivered(); d/20 != lastLog {
			lastLog = d / 20
			t.Logf("%d of %d sent, %d delivered at %s (%s real)", sent, msgs, d, m.clk.Now().Sub(sendStart).Round(time.Second), time.Since(wall).Round(time.Second))
		}
		return sent == msgs && delivered() == msgs
	})
	mu.Lock()
	for text, k := range got {
		if k != 1 {
			t.Errorf("%q delivered %d times", text, k)
		}
	}
	mu.Unlock()
}

// bfs returns the hop counts from src in adj (-1: unreachable).
func bfs(adj [][]bool, src int) []int {
	d := make([]int, len(adj))
	for i := range d {
		d[i] = -1
	}
	d[src] = 0
	q := []int{src}
	for len(q) > 0 {
		i := q[0]
		q = q[1:]
		for j, ok := range adj[i] {
			if ok && d[j] < 0 {
				d[j] = d[i] + 1
				q = append(q, j)
			}
		}
	}
	return d
}

func neighbours(adj [][]bool, i int) []int {
	var out []int
	for j, ok := range adj[i] {
		if ok {
			out = append(out, j)
		}
	}
	return out
}
