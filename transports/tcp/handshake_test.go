package tcp

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
)

// tcpPair returns the two ends of a loopback TCP connection. (net.Pipe
// would deadlock: both sides write their hello before reading.)
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func deadline() time.Time { return time.Now().Add(5 * time.Second) }

func TestHandshakeSucceeds(t *testing.T) {
	a, b := tcpPair(t)
	idA, idB := newID(t), newID(t)
	got := make(chan ed25519.PublicKey, 1)
	go func() {
		k, err := handshake(b, idB, roleListener, deadline())
		if err != nil {
			t.Errorf("listener: %v", err)
		}
		got <- k
	}()
	k, err := handshake(a, idA, roleDialer, deadline())
	if err != nil {
		t.Fatalf("dialer: %v", err)
	}
	if !bytes.Equal(k, idB.PublicKey()) {
		t.Error("dialer learned the wrong key")
	}
	if k := <-got; !bytes.Equal(k, idA.PublicKey()) {
		t.Error("listener learned the wrong key")
	}
}

// evilPeer plays the listener's side by hand: it reads the dialer's
// hello, sends hello(ourHello), reads the dialer's signature and sends
// sig(dialerHello, ourHello).
type evilPeer struct {
	hello func(id *crypto.Identity) []byte
	sig   func(id *crypto.Identity, dialerHello, ourHello []byte) []byte
}

func goodHello(id *crypto.Identity) []byte {
	var h hello
	copy(h.key[:], id.PublicKey())
	copy(h.nonce[:], bytes.Repeat([]byte{7}, nonceSize))
	return h.encode()
}

func goodSig(id *crypto.Identity, dialerHello, ourHello []byte) []byte {
	return id.Sign(signedMessage(roleListener, dialerHello, ourHello))
}

func (p evilPeer) run(c net.Conn, id *crypto.Identity) {
	dialerHello := make([]byte, HelloSize)
	if _, err := io.ReadFull(c, dialerHello); err != nil {
		return
	}
	if p.hello == nil {
		p.hello = goodHello
	}
	ours := p.hello(id)
	if _, err := c.Write(ours); err != nil || p.sig == nil {
		c.Close()
		return
	}
	if _, err := io.ReadFull(c, make([]byte, SigSize)); err != nil {
		return
	}
	c.Write(p.sig(id, dialerHello, ours))
	c.Close()
}

func TestHandshakeFailures(t *testing.T) {
	other := newID(t)
	tests := []struct {
		name string
		peer evilPeer
		want string // in the error message
	}{
		{"good peer (control)", evilPeer{sig: goodSig}, ""},
		{"signature by another key", evilPeer{sig: func(_ *crypto.Identity, d, o []byte) []byte {
			return other.Sign(signedMessage(roleListener, d, o))
		}}, "bad signature"},
		{"signature for the wrong role", evilPeer{sig: func(id *crypto.Identity, d, o []byte) []byte {
			return id.Sign(signedMessage(roleDialer, d, o))
		}}, "bad signature"},
		{"signature over hellos swapped", evilPeer{sig: func(id *crypto.Identity, d, o []byte) []byte {
			return id.Sign(signedMessage(roleListener, o, d))
		}}, "bad signature"},
		{"signature without domain", evilPeer{sig: func(id *crypto.Identity, d, o []byte) []byte {
			return id.Sign(append(append([]byte{}, d...), o...))
		}}, "bad signature"},
		{"garbage signature", evilPeer{sig: func(*crypto.Identity, []byte, []byte) []byte {
			return bytes.Repeat([]byte{0xff}, SigSize)
		}}, "bad signature"},
		{"truncated signature", evilPeer{sig: func(*crypto.Identity, []byte, []byte) []byte {
			return make([]byte, SigSize-1)
		}}, "read signature"},
		{"garbage hello", evilPeer{hello: func(*crypto.Identity) []byte {
			return []byte(strings.Repeat("SSH-2.0-OpenSSH_9.6\r\n", 4))[:HelloSize]
		}}, "not a qpc peer"},
		{"other version", evilPeer{hello: func(id *crypto.Identity) []byte {
			h := goodHello(id)
			h[3] = Version + 1
			return h
		}}, "version"},
		{"short hello", evilPeer{hello: func(id *crypto.Identity) []byte {
			return goodHello(id)[:HelloSize-1]
		}}, "read hello"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tcpPair(t)
			go tc.peer.run(b, newID(t))
			_, err := handshake(a, newID(t), roleDialer, deadline())
			checkErr(t, err, tc.want)
		})
	}
}

// A peer that mirrors us is refused: one that presents our own key, and
// one that echoes our hello (our nonce) with its key swapped in.
func TestHandshakeRefusesMirrors(t *testing.T) {
	me, other := newID(t), newID(t)
	t.Run("our own key", func(t *testing.T) {
		a, b := tcpPair(t)
		go evilPeer{hello: func(*crypto.Identity) []byte { return goodHello(me) }}.run(b, other)
		_, err := handshake(a, me, roleDialer, deadline())
		checkErr(t, err, "own identity")
	})
	t.Run("our nonce", func(t *testing.T) {
		a, b := tcpPair(t)
		go func() {
			h := make([]byte, HelloSize)
			if _, err := io.ReadFull(b, h); err != nil {
				return
			}
			copy(h[4:4+ed25519.PublicKeySize], other.PublicKey())
			b.Write(h)
		}()
		_, err := handshake(a, me, roleDialer, deadline())
		checkErr(t, err, "echoed our nonce")
	})
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return
	}
	if !errors.Is(err, transports.ErrHandshake) {
		t.Fatalf("handshake error %v does not match ErrHandshake", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("handshake error %q does not mention %q", err, want)
	}
}

func TestDecodeHello(t *testing.T) {
	id := newID(t)
	good := goodHello(id)
	h, err := decodeHello(good)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.key[:], id.PublicKey()) || !bytes.Equal(h.encode(), good) {
		t.Error("decode/encode round trip")
	}
	for _, b := range [][]byte{nil, good[:10], append(good, 0), append([]byte("QPX"), good[3:]...)} {
		if _, err := decodeHello(b); !errors.Is(err, transports.ErrHandshake) {
			t.Errorf("decodeHello(%x) = %v, want ErrHandshake", b, err)
		}
	}
}
