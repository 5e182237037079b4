package tcp

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
)

// Frame sizes of the transport benchmarks (docs/benchmarks.md).
var benchSizes = []int{64, 1 << 10, 64 << 10}

// BenchmarkTCP moves b.N frames one way over loopback: "qpc" through this
// transport (handshake done before the timer starts), "raw" as the
// baseline a user would write by hand: a plain net.Conn, one Write per
// payload, io.ReadFull of the same size into one reused buffer on the
// other side. "raw-alloc" is raw reading into a fresh buffer per payload,
// as ReadFrame must (the caller owns each frame): it shows what that
// allocation alone costs.
func BenchmarkTCP(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size)+"/qpc", func(b *testing.B) { benchQPC(b, size) })
		b.Run(sizeName(size)+"/raw", func(b *testing.B) { benchRaw(b, size, false) })
		b.Run(sizeName(size)+"/raw-alloc", func(b *testing.B) { benchRaw(b, size, true) })
	}
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func benchQPC(b *testing.B, size int) {
	ctx := context.Background()
	lis := newTransport(b, newID(b), 0)
	ln, err := lis.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	d, err := newTransport(b, newID(b), 0).Dial(ctx, ln.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	a, err := ln.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	run(b, size, func(p []byte) error { return d.WriteFrame(p) }, func() error {
		_, err := a.ReadFrame()
		return err
	})
}

func benchRaw(b *testing.B, size int, alloc bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	a := <-accepted
	if a == nil {
		b.Fatal("accept failed")
	}
	defer a.Close()
	buf := make([]byte, size)
	run(b, size, func(p []byte) error { _, err := d.Write(p); return err }, func() error {
		if alloc {
			buf = make([]byte, size)
		}
		_, err := io.ReadFull(a, buf)
		return err
	})
}

// run times b.N writes of size bytes against b.N reads on another
// goroutine, and reports frames/s next to MB/s.
func run(b *testing.B, size int, write func([]byte) error, read func() error) {
	p := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		for range b.N {
			if err := read(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := write(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
