package tcp

import (
	"context"
	"testing"

	"github.com/quicprochat/qpc/transports/transporttest"
)

// BenchmarkTCP moves b.N frames one way over loopback: "qpc" through this
// transport (handshake done before the timer starts), "raw" as the
// baseline a user would write by hand: a plain net.Conn, one Write per
// payload, io.ReadFull of the same size into one reused buffer on the
// other side. "raw-alloc" is raw reading into a fresh buffer per payload,
// as ReadFrame must (the caller owns each frame): it shows what that
// allocation alone costs.
func BenchmarkTCP(b *testing.B) {
	for _, size := range transporttest.BenchSizes {
		b.Run(transporttest.SizeName(size)+"/qpc", func(b *testing.B) { benchQPC(b, size) })
		b.Run(transporttest.SizeName(size)+"/raw", func(b *testing.B) { transporttest.BenchRawTCP(b, size, false) })
		b.Run(transporttest.SizeName(size)+"/raw-alloc", func(b *testing.B) { transporttest.BenchRawTCP(b, size, true) })
	}
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
	transporttest.RunOneWay(b, size, func(p []byte) error { return d.WriteFrame(p) }, func() error {
		_, err := a.ReadFrame()
		return err
	})
}
