// Package streamconn implements transports.Conn on top of an ordered byte
// stream (a TCP socket after the identity handshake, a QUIC stream after
// TLS), with transports.FrameReader and transports.FrameWriter doing the
// framing. The tcp and quic packages differ only in how they set the
// stream up and tear it down.
package streamconn

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
)

// Config describes an established, authenticated stream.
type Config struct {
	// Prefix starts every error message, e.g. "transports/tcp".
	Prefix string
	// Stream carries the frames. Its Read is only called by ReadFrame's
	// goroutine, its Write only by the FrameWriter's flusher.
	Stream io.ReadWriter
	// Close tears the connection down. It must make a blocked Stream.Read
	// or Stream.Write return. flushed says whether every queued frame was
	// handed to Stream.Write; if not, a Write may still be in progress.
	Close func(flushed bool) error
	// PeerKey is the peer's authenticated Ed25519 public key.
	PeerKey ed25519.PublicKey
	// Info describes the link.
	Info transports.Info
	// LocalAddr and RemoteAddr name the two ends, for logs.
	LocalAddr, RemoteAddr string
	// MaxFrameSize is the frame limit in both directions.
	MaxFrameSize int
	// Linger bounds how long Close waits for queued frames to be written.
	Linger time.Duration
	// FrameTimeout, when positive, bounds the reading of a frame once its
	// first byte arrived (see transports.FrameReaderOptions); it needs
	// SetReadDeadline, the stream's.
	FrameTimeout    time.Duration
	SetReadDeadline func(time.Time) error
	// FrameBudget, when set, is reserved from for frames above 64 KiB.
	FrameBudget *transports.FrameBudget
}

// Conn is a transports.Conn over a byte stream.
type Conn struct {
	cfg  Config
	peer crypto.Address
	r    *transports.FrameReader
	w    *transports.FrameWriter

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ transports.Conn = (*Conn)(nil)

// New starts a Conn (and its writer's flusher goroutine, which Close ends).
func New(cfg Config) *Conn {
	return &Conn{
		cfg:  cfg,
		peer: crypto.AddressOf(cfg.PeerKey),
		r: transports.NewFrameReaderWith(cfg.Stream, transports.FrameReaderOptions{
			Limit: cfg.MaxFrameSize, FrameTimeout: cfg.FrameTimeout,
			SetReadDeadline: cfg.SetReadDeadline, Budget: cfg.FrameBudget,
		}),
		w: transports.NewFrameWriter(cfg.Stream, cfg.MaxFrameSize),
	}
}

// WriteFrame queues p for the peer; see transports.Conn.
func (c *Conn) WriteFrame(p []byte) error {
	err := c.w.WriteFrame(p)
	switch {
	case err == nil:
		return nil
	case c.closed.Load() || err == net.ErrClosed: // the FrameWriter's own "closed"; it is only closed by Close
		return fmt.Errorf("%s: write to %s: %w", c.cfg.Prefix, c.cfg.RemoteAddr, net.ErrClosed)
	default:
		return fmt.Errorf("%s: write to %s: %w", c.cfg.Prefix, c.cfg.RemoteAddr, err)
	}
}

// ReadFrame returns the next frame from the peer; see transports.Conn.
func (c *Conn) ReadFrame() ([]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("%s: read from %s: %w", c.cfg.Prefix, c.cfg.RemoteAddr, net.ErrClosed)
	}
	f, err := c.r.ReadFrame()
	switch {
	case err == nil:
		return f, nil
	case c.closed.Load():
		return nil, fmt.Errorf("%s: read from %s: %w", c.cfg.Prefix, c.cfg.RemoteAddr, net.ErrClosed)
	case err == io.EOF:
		return nil, io.EOF
	default:
		return nil, fmt.Errorf("%s: read from %s: %w", c.cfg.Prefix, c.cfg.RemoteAddr, err)
	}
}

// Close gives queued frames up to Linger to be written, then closes the
// connection and waits for the flusher to exit.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.r.Close() // a read waiting for frame budget returns
		c.w.Close()
		linger := time.NewTimer(c.cfg.Linger)
		flushed := false
		select {
		case <-c.w.Done():
			flushed = true
		case <-linger.C:
		}
		linger.Stop()
		if err := c.cfg.Close(flushed); err != nil {
			c.closeErr = fmt.Errorf("%s: close %s: %w", c.cfg.Prefix, c.cfg.RemoteAddr, err)
		}
		<-c.w.Done() // the stream is closed, so a blocked write has returned
	})
	return c.closeErr
}

func (c *Conn) Peer() crypto.Address       { return c.peer }
func (c *Conn) PeerKey() ed25519.PublicKey { return c.cfg.PeerKey }
func (c *Conn) LocalAddr() string          { return c.cfg.LocalAddr }
func (c *Conn) RemoteAddr() string         { return c.cfg.RemoteAddr }
func (c *Conn) Info() transports.Info      { return c.cfg.Info }
