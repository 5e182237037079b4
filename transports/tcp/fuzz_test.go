package tcp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
)

// FuzzDecodeHello: any bytes either decode to a hello that re-encodes to
// exactly the input, or fail with ErrHandshake. Never a panic.
func FuzzDecodeHello(f *testing.F) {
	id, _ := crypto.IdentityFromSeed(make([]byte, 32))
	good := goodHello(id)
	f.Add(good)
	f.Add(good[:HelloSize-1])
	f.Add(append(append([]byte{}, good...), 0))
	f.Add([]byte{})
	f.Add([]byte("QPC"))
	f.Add(append([]byte("QPC\x02"), good[4:]...))
	f.Add(append([]byte("GET / HTTP/1.1\r\n"), make([]byte, HelloSize-16)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err != nil {
			if !errors.Is(err, transports.ErrHandshake) {
				t.Fatalf("error %v does not match ErrHandshake", err)
			}
			return
		}
		if !bytes.Equal(h.encode(), b) {
			t.Fatalf("decode(%x) re-encodes to %x", b, h.encode())
		}
	})
}

// scriptConn is a net.Conn whose peer "sends" a fixed byte string and
// swallows whatever we write: the listener's view of a hostile dialer.
type scriptConn struct {
	r io.Reader
}

func (c *scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzHandshake runs the listener's side of the handshake against
// arbitrary dialer bytes. It must fail with ErrHandshake, never panic, and
// never succeed: a valid signature would have to cover the listener's
// fresh nonce, which the script cannot know.
func FuzzHandshake(f *testing.F) {
	dialer, _ := crypto.IdentityFromSeed(bytes.Repeat([]byte{1}, 32))
	h := goodHello(dialer)
	f.Add(h)
	f.Add(append(append([]byte{}, h...), make([]byte, SigSize)...))
	f.Add(append(append([]byte{}, h...), dialer.Sign(h)...))
	f.Add([]byte("QPC\x01"))
	f.Add([]byte{})
	listener, _ := crypto.IdentityFromSeed(bytes.Repeat([]byte{2}, 32))
	f.Fuzz(func(t *testing.T, script []byte) {
		_, err := handshake(&scriptConn{r: bytes.NewReader(script)}, listener, roleListener, time.Time{})
		if !errors.Is(err, transports.ErrHandshake) {
			t.Fatalf("handshake against %x = %v, want ErrHandshake", script, err)
		}
	})
}
