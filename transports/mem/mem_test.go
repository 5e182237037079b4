package mem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/transporttest"
)

func newID(t testing.TB) *crypto.Identity {
	t.Helper()
	id, err := crypto.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestConformance(t *testing.T) {
	n := NewNetwork()
	transporttest.Run(t, transporttest.Harness{
		New: func(t testing.TB, id *crypto.Identity, maxFrame int) transports.Transport {
			tr, err := n.NewTransport(Options{Identity: id, MaxFrameSize: maxFrame})
			if err != nil {
				t.Fatal(err)
			}
			return tr
		},
		ListenAddr:      "",
		CheckGoroutines: true,
	})
}

func mustTransport(t *testing.T, n *Network, opts Options) *Transport {
	t.Helper()
	if opts.Identity == nil {
		opts.Identity = newID(t)
	}
	tr, err := n.NewTransport(opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestPerLinkInfo(t *testing.T) {
	n := NewNetwork()
	a := mustTransport(t, n, Options{Name: "a"})
	b := mustTransport(t, n, Options{Name: "b"})
	c := mustTransport(t, n, Options{Name: "c", Info: transports.Info{MTU: 4096, Bitrate: 200_000}})
	ln, err := b.Listen(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lora := transports.Info{Name: "lora", MTU: 222, MaxFrame: 4000, Bitrate: 5470}
	n.SetLink("b", "a", lora) // order does not matter

	tests := []struct {
		from      *Transport
		wantClass transports.Class
		wantLimit int
	}{
		{a, transports.Constrained, 4000}, // the link set above
		{c, transports.Medium, 4096},      // c's own default
		{mustTransport(t, n, Options{}), transports.Unconstrained, transports.DefaultMaxFrameSize}, // defaults
	}
	for _, tc := range tests {
		d, err := tc.from.Dial(context.Background(), "b")
		if err != nil {
			t.Fatal(err)
		}
		acc, err := ln.Accept(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, conn := range []transports.Conn{d, acc} {
			if got := conn.Info(); got.Class != tc.wantClass || got.Limit() != tc.wantLimit {
				t.Errorf("%s -> b: Info = %v, want class %v limit %d", tc.from.Name(), got, tc.wantClass, tc.wantLimit)
			}
		}
		if err := d.WriteFrame(make([]byte, tc.wantLimit+1)); !errors.Is(err, transports.ErrFrameTooLarge) {
			t.Errorf("%s -> b: frame above the link's limit: %v, want ErrFrameTooLarge", tc.from.Name(), err)
		}
		d.Close()
		acc.Close()
	}
}

func TestDialErrors(t *testing.T) {
	n := NewNetwork()
	a := mustTransport(t, n, Options{})
	b := mustTransport(t, n, Options{Name: "b", Backlog: 1})
	ctx := context.Background()
	if _, err := a.Dial(ctx, "nobody"); !errors.Is(err, ErrRefused) {
		t.Errorf("dial to no listener = %v, want ErrRefused", err)
	}
	ln, err := b.Listen(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := b.Listen(ctx, "b"); !errors.Is(err, ErrAddrInUse) {
		t.Errorf("second Listen on b = %v, want ErrAddrInUse", err)
	}
	c1, err := a.Dial(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Dial(ctx, "b"); !errors.Is(err, ErrRefused) {
		t.Errorf("dial beyond the backlog = %v, want ErrRefused", err)
	}
	// Closing the listener closes what it never accepted: the dialer sees EOF.
	ln.Close()
	if _, err := c1.ReadFrame(); err != io.EOF {
		t.Errorf("read on a never-accepted conn after listener close = %v, want io.EOF", err)
	}
	// The name is free again.
	ln2, err := b.Listen(ctx, "b")
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	ln2.Close()
}

// Frames queued before the peer closed are still delivered, then io.EOF.
func TestDrainAfterPeerClose(t *testing.T) {
	n := NewNetwork()
	a := mustTransport(t, n, Options{})
	b := mustTransport(t, n, Options{Name: "b"})
	ln, _ := b.Listen(context.Background(), "")
	defer ln.Close()
	d, err := a.Dial(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := ln.Accept(context.Background())
	for i := range 10 {
		if err := d.WriteFrame([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	for i := range 10 {
		f, err := acc.ReadFrame()
		if err != nil || len(f) != 1 || f[0] != byte(i) {
			t.Fatalf("frame %d: %v %v", i, f, err)
		}
	}
	if _, err := acc.ReadFrame(); err != io.EOF {
		t.Errorf("after the queued frames: %v, want io.EOF", err)
	}
	if err := acc.WriteFrame([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write to a closed peer = %v, want io.ErrClosedPipe", err)
	}
}

// A simulator-sized mesh: 300 nodes in a ring, each sends to its
// neighbour. It starts no goroutines of its own.
func TestManyNodes(t *testing.T) {
	const nodes = 300
	n := NewNetwork()
	before := runtime.NumGoroutine()
	trs := make([]*Transport, nodes)
	lns := make([]transports.Listener, nodes)
	for i := range trs {
		trs[i] = mustTransport(t, n, Options{Name: fmt.Sprintf("node-%d", i), QueueFrames: 4})
		var err error
		if lns[i], err = trs[i].Listen(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	var conns []transports.Conn
	for i, tr := range trs {
		next := (i + 1) % nodes
		d, err := tr.Dial(ctx, trs[next].Name())
		if err != nil {
			t.Fatal(err)
		}
		acc, err := lns[next].Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if acc.Peer() != trs[i].opts.Identity.Address() {
			t.Fatal("wrong peer")
		}
		if err := d.WriteFrame([]byte(tr.Name())); err != nil {
			t.Fatal(err)
		}
		if f, err := acc.ReadFrame(); err != nil || string(f) != tr.Name() {
			t.Fatalf("got %q, %v", f, err)
		}
		conns = append(conns, d, acc)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines with %d open links, %d before", g, len(conns), before)
	}
	for _, c := range conns {
		c.Close()
	}
	for _, l := range lns {
		l.Close()
	}
}
