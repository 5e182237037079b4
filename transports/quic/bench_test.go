package quic

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"testing"

	quicgo "github.com/quic-go/quic-go"
)

// Frame sizes of the transport benchmarks (docs/benchmarks.md).
var benchSizes = []int{64, 1 << 10, 64 << 10}

// BenchmarkQUIC moves b.N frames one way over loopback: "qpc" through this
// transport (handshake done before the timer starts), "raw" as the
// baseline a user would write by hand with quic-go: one bidirectional
// stream, one Write per payload, io.ReadFull of the same size into one
// reused buffer on the other side, same TLS certificate and defaults.
func BenchmarkQUIC(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size)+"/qpc", func(b *testing.B) { benchQPC(b, size) })
		b.Run(sizeName(size)+"/raw", func(b *testing.B) { benchRaw(b, size) })
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
	lis := newTransport(b, newID(b), Options{})
	ln, err := lis.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	d, err := newTransport(b, newID(b), Options{}).Dial(ctx, ln.Addr())
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

func benchRaw(b *testing.B, size int) {
	ctx := context.Background()
	cert, err := certificate(newID(b))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := quicgo.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	qc, err := quicgo.DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	st, err := qc.OpenStream()
	if err != nil {
		b.Fatal(err)
	}
	sc, err := ln.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer sc.CloseWithError(0, "")
	var rs *quicgo.Stream // accepted on the reader's first read: the stream appears with its first byte
	buf := make([]byte, size)
	run(b, size, func(p []byte) error { _, err := st.Write(p); return err }, func() error {
		if rs == nil {
			if rs, err = sc.AcceptStream(ctx); err != nil {
				return err
			}
		}
		_, err := io.ReadFull(rs, buf)
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
