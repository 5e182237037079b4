package tcp

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/transports"
)

// rssKiB reads this process's resident set size from /proc (Linux), or 0.
func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kib int64
			for _, c := range strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")) {
				kib = kib*10 + int64(c-'0')
			}
			return kib
		}
	}
	return 0
}

// stalledPeer connects to addr, passes the handshake as a fresh identity
// and sends all but the last byte of a frame of size bytes, then nothing:
// it stalls inside the frame. The write runs on its own goroutine (the
// listener may not read it all) and ends when the connection closes.
func stalledPeer(t *testing.T, addr string, size int, body []byte) {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if _, err := handshake(raw, newID(t), roleDialer, time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() {
		hdr := transports.AppendFrameHeader(nil, size)
		if _, err := raw.Write(hdr); err == nil {
			raw.Write(body[:size-1])
		}
	}()
}

// Regression test for issue 10, item 2: 100 peers each stalled inside a
// 1 MiB frame pinned 100+ MiB (RSS 28 → 185 MB) for as long as they liked.
// With a shared frame budget the partial frames hold at most the budget,
// and with a frame timeout every stalled frame fails the read
// (ErrFrameTimeout), which closes its link, and gives its bytes back.
func TestStalledPeersInsideLargeFramesStayWithinBudget(t *testing.T) {
	const peers, frameSize, budgetSize = 100, 1 << 20, 8 << 20
	const frameTimeout = time.Second
	budget := transports.NewFrameBudget(budgetSize)
	server, err := New(Options{Identity: newID(t), MaxFrameSize: frameSize + 64, FrameTimeout: frameTimeout, FrameBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	runtime.GC()
	before := rssKiB()
	body := make([]byte, frameSize)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make(chan error, peers)
	for i := 0; i < peers; i++ {
		stalledPeer(t, ln.Addr(), frameSize, body)
		c, err := ln.Accept(ctx)
		if err != nil {
			t.Fatalf("accept peer %d: %v", i, err)
		}
		defer c.Close()
		go func() {
			_, err := c.ReadFrame()
			results <- err
		}()
	}
	peakRSS := rssKiB()
	for i := 0; i < peers; i++ {
		var err error
		select {
		case err = <-results:
		case <-ctx.Done():
			t.Fatalf("only %d of %d stalled frames ended (frame timeout %s): %v", i, peers, frameTimeout, ctx.Err())
		}
		if !errors.Is(err, transports.ErrFrameTimeout) {
			t.Fatalf("stalled frame %d: %v, want ErrFrameTimeout", i, err)
		}
		if r := rssKiB(); r > peakRSS {
			peakRSS = r
		}
	}
	if p := budget.Peak(); p > budgetSize {
		t.Fatalf("partial frames reserved %d bytes at once, budget %d", p, budgetSize)
	}
	if u := budget.InUse(); u != 0 {
		t.Fatalf("%d bytes still reserved after every stalled frame ended", u)
	}
	t.Logf("%d peers stalled inside %d-byte frames: budget peak %d of %d bytes, %d waits; RSS %d MiB before, %d MiB at most while stalled",
		peers, frameSize, budget.Peak(), budgetSize, budget.Waits(), before>>10, peakRSS>>10)
}
