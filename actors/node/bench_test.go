package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/transporttest"
)

// BenchmarkNodeToNode moves frames from node B to node A over a real
// loopback link, through the node's link path: Node.Send → transports
// manager → link actor (priority mailbox) → WriteFrame … ReadFrame → link
// reader → ratelimit (admission), where a tap takes them. Routing and
// signature checks are measured separately (router benchmarks). B keeps a window of frames
// in flight, so the link is kept busy without ever filling its queue (no
// frame is shed). "raw" is the hand-written baseline of the transport
// benchmarks, run here so the ratio comes from one run.
func BenchmarkNodeToNode(b *testing.B) {
	for _, scheme := range []string{"tcp", "quic"} {
		for _, size := range transporttest.BenchSizes {
			name := scheme + "/" + transporttest.SizeName(size)
			b.Run(name+"/qpc", func(b *testing.B) { benchNodes(b, scheme, size) })
			if scheme == "tcp" {
				b.Run(name+"/raw", func(b *testing.B) { transporttest.BenchRawTCP(b, size, false) })
			} else {
				b.Run(name+"/raw", func(b *testing.B) { transporttest.BenchRawQUIC(b, size) })
			}
		}
	}
}

const benchWindow = 256

func benchNodes(b *testing.B, scheme string, size int) {
	cfg := func() config.Config {
		c := config.Default()
		c.DataDir = b.TempDir()
		c.API.Addr = ""
		c.Transports.Listen = nil
		c.Transports.QueueFrames = 4 * benchWindow
		c.Transports.QueueBytes = max(4*benchWindow*(size+64), 2<<20)
		c.Transports.MaxFrameSize = max(1<<20, 2*size)
		c.RateLimit.EnvelopesPerSec, c.RateLimit.EnvelopeBurst = 1e9, 1<<20 // measure the link, not the limiter
		return c
	}
	got := make(chan struct{}, 2*benchWindow)
	tap := func(f *messages.InboundFrame) bool {
		if f.Data[1] != uint8(messages.MakeTag(messages.FrameEnvelope, 0)) {
			return false // announces go on to the announcer
		}
		got <- struct{}{}
		return true
	}
	start := func(c config.Config, opts ...Option) *Node {
		opts = append(opts, WithConfig(c), WithLogger(slog.New(slog.DiscardHandler)))
		n, err := New(opts...)
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Stop(context.Background()) })
		return n
	}
	ca := cfg()
	ca.Transports.Listen = []string{scheme + "://127.0.0.1:0"}
	a := start(ca, WithInboundTap(tap))
	cb := cfg()
	cb.Transports.Peers = a.ListenAddrs()
	sender := start(cb)
	waitLinkB(b, sender, a)

	frame, err := messages.Marshal([]any{uint8(messages.MakeTag(messages.FrameEnvelope, 0)), make([]byte, max(size-8, 1))})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for ; sent < min(benchWindow, b.N); sent++ {
		sender.Send(a.Address(), frame, messages.Data)
	}
	for recv := 0; recv < b.N; recv++ {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			b.Fatalf("stalled after %d of %d frames", recv, b.N)
		}
		if sent < b.N {
			sender.Send(a.Address(), frame, messages.Data)
			sent++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func waitLinkB(b *testing.B, from, to *Node) {
	probe.Until(b, 10*time.Second, func() bool {
		ls, _ := from.Links(context.Background())
		return len(ls) > 0
	}, "a link")
}

// BenchmarkChainDelivery sends sealed 32-byte texts from A to C across the
// relay B (A–B over TCP, B–C over QUIC, all three nodes in this process),
// 8 senders at a time, and counts a message when A holds C's receipt for
// it: the whole end-to-end path with its crypto, group commits and
// receipts, without the HTTP API. The multi-process version with the
// crypto bound is `make bench-chain`.
func BenchmarkChainDelivery(b *testing.B) {
	a, _, c := line(b)
	text := []byte("0123456789abcdef0123456789abcdef")
	b.ResetTimer()
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range benchSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				for {
					_, err := a.SendText(context.Background(), c.Address(), text)
					if errors.Is(err, router.ErrOutboxFull) {
						time.Sleep(time.Millisecond) // the client's back-off
						continue
					}
					if err != nil {
						b.Error(err)
					}
					break
				}
			}
		}()
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	delivered := a.Metrics().Mesh.Messages.WithLabelValues(router.StateDelivered)
	probe.Until(b, 5*time.Minute, func() bool { return testutil.ToFloat64(delivered) >= float64(b.N) },
		"%d messages delivered", b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	for _, n := range []struct {
		name string
		node *Node
	}{{"A", a}, {"C", c}} {
		m := n.node.Metrics().Mesh
		if commits := testutil.ToFloat64(m.Commits); commits > 0 {
			b.ReportMetric(testutil.ToFloat64(m.CommitOps)/commits, "batch-"+n.name)
		}
	}
}

// benchSenders is how many goroutines send at once in BenchmarkChainDelivery
// (as the chain benchmark's HTTP clients).
var benchSenders = 8
