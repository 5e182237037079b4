package node

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/mem"
)

// TestFiftyNodeMesh is acceptance 5 of the mesh issue: 50 nodes in a
// random connected topology over the in-memory transport, all in one actor
// system as the simulator runs them, learn a route to every other node,
// and a message between sampled pairs is delivered.
func TestFiftyNodeMesh(t *testing.T) {
	const N = 50
	rng := rand.New(rand.NewPCG(7, 7))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discard() }))
	net := mem.NewNetwork()
	// A random spanning tree (connected) plus extra random edges.
	peers := make([][]int, N)
	for i := 1; i < N; i++ {
		peers[i] = append(peers[i], rng.IntN(i))
	}
	for range N / 2 {
		a, b := rng.IntN(N), rng.IntN(N)
		if a > b {
			peers[a] = append(peers[a], b)
		} else if b > a {
			peers[b] = append(peers[b], a)
		}
	}
	if d := diameter(peers); d > config.Default().Announce.MaxHops {
		t.Logf("topology diameter %d exceeds the default max hops", d)
	}
	nodes := make([]*Node, N)
	for i := range N {
		c := config.Default()
		c.DataDir = t.TempDir()
		c.API.Addr = ""
		c.Transports.Listen = []string{fmt.Sprintf("mem://n%d", i)}
		for _, p := range peers[i] {
			c.Transports.Peers = append(c.Transports.Peers, fmt.Sprintf("mem://n%d", p))
		}
		n, err := New(WithConfig(c), WithLogger(discard()), WithActorSystem(sys), WithMemNetwork(net))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Stop(context.Background()) })
		nodes[i] = n
	}
	// Every node learns a route to every other.
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		var rs []messages.RouteInfo
		if !probe.Wait(time.Until(deadline), func() bool {
			var err error
			rs, err = n.Routes(context.Background())
			return err == nil && len(rs) == N-1
		}) {
			known := map[crypto.Address]bool{n.Address(): true}
			for _, r := range rs {
				known[r.Address] = true
			}
			for j, o := range nodes {
				if !known[o.Address()] {
					holders := 0
					peerKnows := false
					for k, x := range nodes {
						xr, _ := x.Routes(context.Background())
						for _, r := range xr {
							if r.Address == o.Address() {
								holders++
								if k == peers[j][0] {
									peerKnows = true
								}
							}
						}
					}
					ol, _ := o.Links(context.Background())
					t.Logf("missing node %d %s (peers %v): known by %d nodes, its peer knows it: %v, its links %d", j, o.Address().Short(), peers[j], holders, peerKnows, len(ol))
				}
			}
			fams, _ := metrics.Snapshot(n.Gatherer())
			for _, f := range fams {
				if strings.Contains(f.Name, "mesh") || strings.Contains(f.Name, "link_") {
					t.Logf("%s %+v", f.Name, f.Samples)
				}
			}
			t.Fatalf("node %s knows %d of %d routes", n.Address().Short(), len(rs), N-1)
		}
	}
	// Messages between 25 sampled pairs arrive.
	for range 25 {
		i, j := rng.IntN(N), rng.IntN(N)
		if i == j {
			continue
		}
		text := fmt.Sprintf("from %d to %d", i, j)
		if _, err := nodes[i].SendText(context.Background(), nodes[j].Address(), []byte(text)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-nodes[j].Deliveries():
			if string(m.Text) != text || m.From != nodes[i].Address() {
				t.Fatalf("node %d got %+v", j, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q not delivered (route %v)", text, crypto.Address(nodes[j].Address()).Short())
		}
	}
}

// diameter of the undirected graph given as adjacency lists (edges listed
// on one side).
func diameter(peers [][]int) int {
	n := len(peers)
	adj := make([][]int, n)
	for a, ps := range peers {
		for _, b := range ps {
			adj[a] = append(adj[a], b)
			adj[b] = append(adj[b], a)
		}
	}
	best := 0
	for s := range n {
		dist := make([]int, n)
		for i := range dist {
			dist[i] = -1
		}
		dist[s] = 0
		q := []int{s}
		for len(q) > 0 {
			v := q[0]
			q = q[1:]
			for _, w := range adj[v] {
				if dist[w] < 0 {
					dist[w] = dist[v] + 1
					best = max(best, dist[w])
					q = append(q, w)
				}
			}
		}
	}
	return best
}
