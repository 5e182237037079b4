package transporttest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// BenchSizes are the frame sizes of the transport and node benchmarks
// (docs/benchmarks.md).
var BenchSizes = []int{64, 1 << 10, 64 << 10}

// SizeName names a frame size for a sub-benchmark: "64B", "1KiB".
func SizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// RunOneWay times b.N writes of size bytes against b.N reads on another
// goroutine, and reports frames/s next to MB/s.
func RunOneWay(b *testing.B, size int, write func([]byte) error, read func() error) {
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

// BenchRawTCP is the TCP baseline a user would write by hand: a plain
// net.Conn on loopback, one Write per payload, io.ReadFull of the same size
// on the other side, into one reused buffer (or, with alloc, a fresh buffer
// per payload, as ReadFrame must allocate).
func BenchRawTCP(b *testing.B, size int, alloc bool) {
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
	RunOneWay(b, size, func(p []byte) error { _, err := d.Write(p); return err }, func() error {
		if alloc {
			buf = make([]byte, size)
		}
		_, err := io.ReadFull(a, buf)
		return err
	})
}

// BenchRawQUIC is the QUIC baseline a user would write by hand with
// quic-go: one bidirectional stream on loopback, one Write per payload,
// io.ReadFull of the same size into one reused buffer, quic-go's default
// config and a self-signed Ed25519 certificate.
func BenchRawQUIC(b *testing.B, size int) {
	ctx := context.Background()
	cert := selfSigned(b)
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
	RunOneWay(b, size, func(p []byte) error { _, err := st.Write(p); return err }, func() error {
		if rs == nil {
			if rs, err = sc.AcceptStream(ctx); err != nil {
				return err
			}
		}
		_, err := io.ReadFull(rs, buf)
		return err
	})
}

func selfSigned(b *testing.B) tls.Certificate {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		b.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}
