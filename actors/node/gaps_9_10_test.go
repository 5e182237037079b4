package node

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/tcp"
)

// Tests closing the gaps of the review of issues 9 and 10
// (notes-9-10.md, GAPS 3, 5, 6 and the /readyz point of 9).

// infoLines returns the INFO lines of logs with msg in them.
func infoLines(logs *syncBuffer, msg string) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=INFO") && strings.Contains(l, `msg="`+msg+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// peerFront stands at a peer's address between the node and the peer:
// nothing listens there at first (the dial is refused); then it accepts
// and answers with something that is not a qpc hello (the handshake
// fails); then it resets the connection inside the handshake; then it
// forwards every connection to the real peer.
type peerFront struct {
	addr  string
	ln    net.Listener
	reset atomic.Bool            // hang up on the dialer's hello, unread (a reset)
	to    atomic.Pointer[string] // set: forward to it
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// listen starts accepting at f.addr, answering junk.
func (f *peerFront) listen(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		t.Fatalf("listen again at %s: %v", f.addr, err)
	}
	f.ln = ln
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
			}()
		}
	}()
	t.Cleanup(f.close)
}

func (f *peerFront) serve(c net.Conn) {
	defer c.Close()
	to := f.to.Load()
	if to == nil && f.reset.Load() {
		// Close with the hello unread: the kernel answers with a reset,
		// and the dialer's error names its ephemeral port, another one at
		// every attempt.
		c.Read(make([]byte, 1))
		return
	}
	if to == nil {
		// A web server's answer where a hello belongs, whole: the dialer
		// reads it, refuses it and hangs up; we read until it does, so
		// the cause is the same every time (not a reset).
		junk := []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		junk = append(junk, bytes.Repeat([]byte{' '}, tcp.HelloSize-len(junk))...)
		c.Write(junk)
		io.Copy(io.Discard, c)
		return
	}
	up, err := net.Dial("tcp", *to)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (f *peerFront) close() {
	if f.ln != nil {
		f.ln.Close()
	}
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Issue 9 item 5, "log the first failure and every change, with backoff"
// (GAP 3): a configured peer whose address first refuses connections, then
// answers with something that is not qpc, then resets the connection in
// the handshake, then is the peer. Each cause is one INFO line however
// often it repeats (a reset too, whose error text names another local
// port each time); the peer's return is one INFO "peer reachable again"
// line.
func TestUnreachablePeerLogsEachChangeOfCauseAndItsReturn(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := &peerFront{addr: free.Addr().String()}
	free.Close() // nothing listens there now: connection refused

	c := testConfig(t)
	c.Transports.Listen = nil
	c.Transports.Peers = []string{"tcp://" + front.addr}
	n, logs := startNode(t, c, WithDialBackoff(linksBackoffFast))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node's log:\n%s", logs)
		}
	})
	const cannot, again = "cannot dial peer; retrying with back-off", "peer reachable again"
	failed := n.Metrics().Links.Dials.WithLabelValues("tcp", "error")
	// repeats waits for k more failed dials (with the cause unchanged).
	repeats := func(k float64, what string) {
		t.Helper()
		waitCount(t, failed, testutil.ToFloat64(failed)+k, what)
	}

	// 1. Refused: one line, however many attempts.
	probe.Until(t, 10*time.Second, func() bool { return len(infoLines(logs, cannot)) == 1 }, "an INFO line for the refused peer")
	if l := infoLines(logs, cannot)[0]; !strings.Contains(l, "connection refused") {
		t.Fatalf("the first line does not give the cause: %s", l)
	}
	repeats(3, "refused dials")
	if got := infoLines(logs, cannot); len(got) != 1 {
		t.Fatalf("%d INFO lines for one cause (refused), want 1:\n%s", len(got), strings.Join(got, "\n"))
	}

	// 2. Something answers that is not qpc: a change of cause, one line.
	front.listen(t)
	probe.Until(t, 10*time.Second, func() bool { return len(infoLines(logs, cannot)) == 2 }, "an INFO line for the new cause")
	if l := infoLines(logs, cannot)[1]; !strings.Contains(l, "not a qpc peer") {
		t.Fatalf("the second line does not give the new cause: %s", l)
	}
	repeats(3, "failed handshakes")
	if got := infoLines(logs, cannot); len(got) != 2 {
		t.Fatalf("%d INFO lines for two causes, want 2:\n%s", len(got), strings.Join(got, "\n"))
	}

	// 3. Reset inside the handshake: a change, one line, although each
	// attempt's error names another local port.
	front.reset.Store(true)
	probe.Until(t, 10*time.Second, func() bool { return len(infoLines(logs, cannot)) == 3 }, "an INFO line for the reset")
	if l := infoLines(logs, cannot)[2]; !strings.Contains(l, "reset by peer") {
		t.Fatalf("the third line does not give the new cause: %s", l)
	}
	repeats(3, "reset handshakes")
	if got := infoLines(logs, cannot); len(got) != 3 {
		t.Fatalf("%d INFO lines for three causes, want 3:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := infoLines(logs, again); len(got) != 0 {
		t.Fatalf("reachable while it is not:\n%s", strings.Join(got, "\n"))
	}

	// 4. The peer is there: one "reachable again" line, and the link.
	cp := testConfig(t)
	cp.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	peer, _ := startNode(t, cp)
	to := peer.ListenAddrs()[0]
	to = strings.TrimPrefix(to, "tcp://")
	front.to.Store(&to)
	waitLink(t, n, peer.Address(), "tcp")
	got := infoLines(logs, again)
	if len(got) != 1 {
		t.Fatalf("%d %q lines, want 1:\n%s", len(got), again, strings.Join(got, "\n"))
	}
	if !strings.Contains(got[0], "after_failed_attempts=") || !strings.Contains(got[0], front.addr) {
		t.Fatalf("the return does not say which peer and after how many attempts: %s", got[0])
	}
	if k := len(infoLines(logs, cannot)); k != 3 {
		t.Fatalf("%d %q lines after the peer came back, want 3", k, cannot)
	}
}

// Issue 9 item 6, "show what is sent" (GAP 5): the announce row of
// messages.Sizes() (what `qpc sizes` and docs/wire-format.md show) is the
// size of the announce a node really sends to a new neighbour, for the
// capabilities the row is for (relay and store, no KeyPackage hash: a
// node's defaults).
func TestSizesAnnounceRowIsWhatANodeSends(t *testing.T) {
	var row messages.SizeRow
	for _, r := range messages.Sizes() {
		if r.Name == "announce" {
			row = r
		}
	}
	if row.Bytes == 0 {
		t.Fatal("messages.Sizes() has no announce row")
	}

	c := testConfig(t)
	c.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	n, _ := startNode(t, c)
	if caps := n.Capabilities(); caps != messages.CapRelay|messages.CapStore {
		t.Fatalf("a node's default capabilities are %v; the announce row is for relay and store", caps)
	}
	// A neighbour: a bare TCP transport that reads what the node sends.
	nb, err := tcp.New(tcp.Options{Identity: newIdentity(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := nb.Dial(ctx, strings.TrimPrefix(n.ListenAddrs()[0], "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frames := make(chan []byte)
	go func() {
		defer close(frames)
		for {
			f, err := conn.ReadFrame()
			if err != nil {
				return
			}
			select {
			case frames <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("the link ended before the node sent its announce")
			}
			tag, err := messages.FrameTag(f)
			if err != nil || tag.Type() != messages.FrameAnnounce {
				continue
			}
			a, err := messages.DecodeAnnounce(f)
			if err != nil {
				t.Fatalf("the node sent an announce that does not decode: %v", err)
			}
			if crypto.AddressOf(a.PublicKey) != n.Address() {
				continue // another node's, relayed
			}
			if a.Capabilities != messages.CapRelay|messages.CapStore || len(a.KeyPackageHash) != 0 || a.Hops != 0 {
				t.Fatalf("the node announced caps %v, a %d-byte KeyPackage hash, %d hops: not the row's variant", a.Capabilities, len(a.KeyPackageHash), a.Hops)
			}
			if len(f) != row.Bytes {
				t.Fatalf("the node sent a %d-byte announce; messages.Sizes() (qpc sizes) says %d B (%s)", len(f), row.Bytes, row.Note)
			}
			t.Logf("announce as sent: %d B, as qpc sizes says", len(f))
			return
		case <-ctx.Done():
			t.Fatal("no announce from the node within 10 s")
		}
	}
}

// Issue 9 item 7, inbox retention by count (GAP 6): inbox.max_messages set
// in the node's config reaches the inbox, which keeps only that many, the
// newest, from its retention tick on (once a minute on the node's clock),
// not before.
func TestInboxMaxMessagesFromConfigOnTheClock(t *testing.T) {
	clk := manualClock()
	c := testConfig(t)
	c.Transports.Listen = nil
	c.Inbox.MaxMessages = 2
	n, _ := startNode(t, c, WithClock(clk))
	t0 := clk.Now()
	peer := newIdentity(t)
	n.Inject("test", peer.Address(), announceAt(t, peer, t0))
	waitRoute(t, n, peer.Address())
	texts := func() []string {
		es, _, err := n.box.List(0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Text)
		}
		return out
	}
	sent := []string{"one", "two", "three", "four"}
	for i, text := range sent {
		n.Inject("test", peer.Address(), sealedAt(t, peer, n, text, clk.Now().Add(2*time.Hour)))
		// Delivered at the group commit, after its 10 ms gather.
		advanceUntil(t, clk, time.Millisecond, func() bool { return len(texts()) == i+1 }, "%q in the inbox", text)
	}
	if clk.Now().Sub(t0) >= time.Minute {
		t.Fatalf("the clock is at +%v already; the test needs the deliveries before the first tick", clk.Now().Sub(t0))
	}
	// More than max_messages until the tick...
	if got := texts(); len(got) != len(sent) {
		t.Fatalf("inbox %v before the retention tick, want all %d", got, len(sent))
	}
	// ...and max_messages, the newest, from it on.
	advanceUntil(t, clk, time.Second, func() bool { return len(texts()) == c.Inbox.MaxMessages }, "inbox pruned to inbox.max_messages = %d", c.Inbox.MaxMessages)
	if d := clk.Now().Sub(t0); d < time.Minute-time.Second || d > time.Minute+30*time.Second {
		t.Fatalf("pruned at +%v, want at the retention tick a minute after the start", d)
	}
	if got := strings.Join(texts(), ","); got != "three,four" {
		t.Fatalf("kept %s, want the newest two (three,four)", got)
	}
}

// Issue 9 item 7, "/readyz should answer 503 while draining" (the weak
// point of the review): draining brought about by the node's own Stop,
// not by calling onPhase. A frame the inbound tap holds keeps the rate
// limiter (a shutdown participant) from acknowledging Drain, so the node
// stays in Draining while the test asks /readyz.
func TestReadyzIs503WhileStopDrains(t *testing.T) {
	hold, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tap := func(f *messages.InboundFrame) bool {
		once.Do(func() {
			close(hold)
			<-release
		})
		return false
	}
	n, _ := startNode(t, testConfig(t), WithInboundTap(tap))
	base := "http://" + n.APIAddr()
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz = %d before the shutdown", code)
	}
	peer := newIdentity(t)
	if err := n.Inject("test", peer.Address(), announceAt(t, peer, time.Now())); err != nil {
		t.Fatal(err)
	}
	<-hold // the rate limiter is inside the tap
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop(context.Background()) }()
	probe.Until(t, 10*time.Second, func() bool { return n.Phase() == messages.PhaseDraining }, "phase Draining (now %v)", n.Phase())
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while Stop drains = %d %q, want 503", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz while Stop drains = %d, want 200", code)
	}
	close(release)
	released = true
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Stop did not return after the drain was let go")
	}
}
