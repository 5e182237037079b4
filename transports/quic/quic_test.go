package quic

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/probe"
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

func newTransport(t testing.TB, id *crypto.Identity, opts Options) *Transport {
	t.Helper()
	opts.Identity = id
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = 5 * time.Second
	}
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Harness{
		New: func(t testing.TB, id *crypto.Identity, maxFrame int) transports.Transport {
			return newTransport(t, id, Options{MaxFrameSize: maxFrame, Linger: 100 * time.Millisecond})
		},
		ListenAddr: "127.0.0.1:0",
		// quic-go winds its connection goroutines down after Close returns.
		CheckGoroutines: false,
	})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// listen starts a listener that reports failed inbound connections.
// TLS-level refusals happen inside quic-go and are not reported; only
// failures of the stream setup after TLS are.
func listen(t *testing.T, id *crypto.Identity, addr string) (*Transport, transports.Listener, chan error) {
	t.Helper()
	failures := make(chan error, 8)
	tr := newTransport(t, id, Options{OnHandshakeError: func(_ string, err error) { failures <- err }})
	ln, err := tr.Listen(ctxT(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return tr, ln, failures
}

// The address each side learns from TLS is the other side's identity
// address, and a connection dialed from a wildcard listener's socket
// leaves from the listening port.
func TestPeerAddressAndSharedSocket(t *testing.T) {
	idA, idB := newID(t), newID(t)
	trA, lnA, _ := listen(t, idA, ":0")
	_, lnB, _ := listen(t, idB, "127.0.0.1:0")
	ctx := ctxT(t)
	d, err := trA.Dial(ctx, lnB.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	acc, err := lnB.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	if d.Peer() != idB.Address() || acc.Peer() != idA.Address() {
		t.Fatalf("peers: dialer sees %s (want %s), listener sees %s (want %s)",
			d.Peer(), idB.Address(), acc.Peer(), idA.Address())
	}
	_, portA, _ := net.SplitHostPort(lnA.Addr())
	_, port, _ := net.SplitHostPort(acc.RemoteAddr())
	if port != portA {
		t.Errorf("dial left from port %s, want the listening port %s", port, portA)
	}

	// Closing A's listener keeps the shared socket up for the dialed link.
	lnA.Close()
	if err := d.WriteFrame([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if f, err := acc.ReadFrame(); err != nil || string(f) != "ping" {
		t.Fatalf("after listener close: %q, %v", f, err)
	}
}

// rawDial dials ln with a hand-made TLS config.
func rawDial(t *testing.T, addr string, conf *tls.Config) (*quicgo.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return quicgo.DialAddr(ctx, addr, conf, &quicgo.Config{HandshakeIdleTimeout: 2 * time.Second})
}

func ecdsaCert(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestListenerRefusesBadClients(t *testing.T) {
	_, ln, failures := listen(t, newID(t), "127.0.0.1:0")
	client := newID(t)
	good, err := certificate(client)
	if err != nil {
		t.Fatal(err)
	}
	base := func() *tls.Config {
		return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}, Certificates: []tls.Certificate{good}}
	}
	// TLS refuses these inside quic-go with an alert, carried as the
	// CRYPTO_ERROR 0x100+alert of the connection's close.
	const (
		alertBadCertificate        = 42
		alertCertificateRequired   = 116
		alertNoApplicationProtocol = 120
	)
	tests := []struct {
		name  string
		conf  func() *tls.Config
		alert uint64
	}{
		{"no client certificate", func() *tls.Config { c := base(); c.Certificates = nil; return c }, alertCertificateRequired},
		{"ECDSA certificate", func() *tls.Config { c := base(); c.Certificates = []tls.Certificate{ecdsaCert(t)}; return c }, alertBadCertificate},
		{"other ALPN", func() *tls.Config { c := base(); c.NextProtos = []string{"h3"}; return c }, alertNoApplicationProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The dial fails, or (TLS 1.3 clients finish before the server
			// checks their certificate) the server closes the connection
			// right after: either way with the listener's alert.
			qc, err := rawDial(t, ln.Addr(), tc.conf())
			if err == nil {
				select {
				case <-qc.Context().Done():
					err = context.Cause(qc.Context())
				case <-ctxT(t).Done():
					t.Fatal("the listener kept the connection open")
				}
			}
			var te *quicgo.TransportError
			if !errors.As(err, &te) || !te.Remote || te.ErrorCode != quicgo.TransportErrorCode(0x100+tc.alert) {
				t.Fatalf("refused with %v, want the listener's CRYPTO_ERROR %#x (TLS alert %d)", err, 0x100+tc.alert, tc.alert)
			}
		})
	}

	// A client with a good certificate that opens a stream of another kind.
	t.Run("unknown stream type", func(t *testing.T) {
		qc, err := rawDial(t, ln.Addr(), base())
		if err != nil {
			t.Fatal(err)
		}
		defer qc.CloseWithError(0, "")
		st, err := qc.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte{0x7f})
		select {
		case err := <-failures:
			if !errors.Is(err, transports.ErrHandshake) {
				t.Errorf("reported %v, want ErrHandshake", err)
			}
		case <-ctxT(t).Done():
			t.Fatal("not reported")
		}
		<-qc.Context().Done() // and the listener closed the connection
	})

	// None of them reached Accept: no handshake of the listener succeeded
	// (a connection queued for Accept has), their slots are free, and the
	// first connection Accept returns is a good client's that came after.
	q := ln.(*listener).q
	if st := q.Stats(); st.Good != 0 {
		t.Fatalf("%d sources completed a handshake: %+v", st.Good, st)
	}
	probe.Until(t, 10*time.Second, func() bool { return q.Stats().Pending == 0 }, "handshake slots released: %+v", q.Stats())
	goodTr := newTransport(t, client, Options{})
	ctx := ctxT(t)
	d, err := goodTr.Dial(ctx, ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Peer() != client.Address() {
		t.Errorf("Accept returned %s before the good client %s: a bad client was accepted", c.Peer(), client.Address())
	}
}

// A server whose certificate is not Ed25519 is refused by our Dial with
// ErrHandshake.
func TestDialRefusesBadServer(t *testing.T) {
	ln, err := quicgo.ListenAddr("127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{ecdsaCert(t)}, NextProtos: []string{ALPN},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tr := newTransport(t, newID(t), Options{})
	_, err = tr.Dial(ctxT(t), ln.Addr().String())
	if !errors.Is(err, transports.ErrHandshake) {
		t.Fatalf("Dial to an ECDSA server = %v, want ErrHandshake", err)
	}
	t.Log(err)
}

func TestPeerKey(t *testing.T) {
	id := newID(t)
	cert, err := certificate(id)
	if err != nil {
		t.Fatal(err)
	}
	other := newID(t)
	key, err := peerKey(cert.Certificate, other.PublicKey())
	if err != nil || crypto.AddressOf(key) != id.Address() {
		t.Fatalf("peerKey = %x, %v", key, err)
	}
	for name, certs := range map[string][][]byte{
		"none":      nil,
		"two":       {cert.Certificate[0], cert.Certificate[0]},
		"garbage":   {[]byte("not a certificate")},
		"ECDSA":     ecdsaCert(t).Certificate,
		"our own":   nil, // checked below
		"truncated": {cert.Certificate[0][:len(cert.Certificate[0])/2]},
	} {
		own := other.PublicKey()
		if name == "our own" {
			certs, own = cert.Certificate, id.PublicKey()
		}
		if _, err := peerKey(certs, own); !errors.Is(err, transports.ErrHandshake) {
			t.Errorf("%s: %v, want ErrHandshake", name, err)
		}
	}
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, transports.ErrBadOptions) {
		t.Errorf("New without identity = %v, want ErrBadOptions", err)
	}
	tr := newTransport(t, newID(t), Options{MaxFrameSize: 64 << 10, Bitrate: 500_000})
	if got := tr.Info(); got.Class != transports.Medium || got.Name != "quic" || got.Limit() != 64<<10 {
		t.Errorf("Info = %v", got)
	}
	if tr.conf.KeepAlivePeriod != 5*time.Second || tr.conf.MaxIdleTimeout != 15*time.Second || tr.resetKey == nil {
		t.Errorf("defaults: keep-alive %v idle %v", tr.conf.KeepAlivePeriod, tr.conf.MaxIdleTimeout)
	}
	tr = newTransport(t, newID(t), Options{KeepAlivePeriod: -1})
	if tr.conf.KeepAlivePeriod != 0 {
		t.Errorf("negative KeepAlivePeriod: %v, want 0 (off)", tr.conf.KeepAlivePeriod)
	}
}

// A peer that sends a frame above our limit gets the connection's reader
// a typed error carrying both numbers.
func TestPeerFrameTooLarge(t *testing.T) {
	ctx := ctxT(t)
	small := newTransport(t, newID(t), Options{MaxFrameSize: 100_000})
	ln, err := small.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := newTransport(t, newID(t), Options{MaxFrameSize: 1 << 20}).Dial(ctx, ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := d.WriteFrame(make([]byte, 200_000)); err != nil {
		t.Fatal(err)
	}
	_, err = a.ReadFrame()
	var tooLarge *transports.FrameTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Size != 200_000 || tooLarge.Limit != 100_000 {
		t.Fatalf("ReadFrame = %v, want FrameTooLargeError{200000, 100000}", err)
	}
}
