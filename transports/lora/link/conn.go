package link

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// connState is where a connection is in its life.
type connState uint8

const (
	connOpen   connState = iota
	connEOF              // the peer said BYE: buffered frames, then io.EOF
	connFailed           // unacknowledged or radio failure: buffered frames, then err
	connClosed           // closed here: net.ErrClosed
)

// conn is the link to one peer over the transport's radio. Its mutable
// fields are guarded by the transport's lock.
type conn struct {
	t      *Transport
	p      *peer
	remote string

	state connState
	err   error    // connFailed
	rx    [][]byte // received frames not yet read
	// rxMeta is the reception of each frame in rx (pushLocked).
	rxMeta []messages.Signal
	rxSig  signal
	dead   chan struct{} // closed when the state leaves connOpen

	// confirmed: the peer has shown that it has its end of the link (a
	// HELLO addressed to us, or a packet to us). Dial waits for it.
	confirmed  bool
	confirmSig signal
	dialing    bool      // a Dial repeats its HELLO to the peer until confirmed
	nextHello  time.Time // when it repeats it
}

var (
	_ transports.Conn = (*conn)(nil)
	_ PriorityWriter  = (*conn)(nil)
)

// newConnLocked makes the connection to p (which has none).
func (t *Transport) newConnLocked(p *peer) *conn {
	c := &conn{t: t, p: p, remote: t.channel + "/" + p.addr.String(), dead: make(chan struct{})}
	p.conn = c
	t.st.conns++
	return c
}

// endLocked moves c out of connOpen into s, detaches it from its peer
// and drops its queued frames. It reports whether c was open.
func (t *Transport) endLocked(c *conn, s connState, err error) bool {
	if c.state != connOpen {
		if s == connClosed && c.state != connClosed {
			c.state = connClosed // Close after EOF or failure
			c.rx, c.rxMeta = nil, nil
			c.rxSig.fire()
		}
		return false
	}
	c.state, c.err = s, err
	if s == connClosed {
		c.rx, c.rxMeta = nil, nil
	}
	close(c.dead)
	c.rxSig.fire()
	c.confirmSig.fire()
	t.st.conns--
	if c.p.conn == c {
		c.p.conn = nil
	}
	if t.st.queue.removeConn(c) > 0 {
		t.st.spaceSig.fire()
	}
	if m := t.st.cur; m != nil && m.c == c {
		t.st.cur = nil
	}
	return true
}

// closeConnLocked closes c here; bye sends the peer a BYE.
func (t *Transport) closeConnLocked(c *conn, bye bool) {
	if t.endLocked(c, connClosed, nil) && bye && !t.st.closed {
		t.queueCtlLocked(c.p.keys.tx.seal(byePacket(c.p.hint, t.hint)))
	}
}

// offerLocked hands a new connection to whoever takes it: a waiting Dial
// (if the peer listens), else the listener, else it waits unclaimed.
func (t *Transport) offerLocked(c *conn) {
	if c.p.listening && len(t.st.waiters) > 0 {
		w := t.st.waiters[0]
		t.st.waiters = t.st.waiters[1:]
		w.ch <- c // buffered, and each waiter is served once
		return
	}
	if t.st.listener != nil {
		t.st.acceptQ = append(t.st.acceptQ, c)
		t.st.acceptSig.fire()
		return
	}
	t.st.unclaimed = append(t.st.unclaimed, c)
}

// pickForDialLocked returns a connection for Dial, or nil: an unclaimed
// one to a listening peer, else a new one to the first-heard listening
// peer without one.
func (t *Transport) pickForDialLocked() *conn {
	t.expirePeersLocked(t.clk.Now())
	t.st.unclaimed = slices.DeleteFunc(t.st.unclaimed, func(c *conn) bool { return c.state != connOpen && len(c.rx) == 0 })
	for i, c := range t.st.unclaimed {
		if c.p.listening && c.state == connOpen {
			t.st.unclaimed = slices.Delete(t.st.unclaimed, i, i+1)
			return c
		}
	}
	for _, p := range t.peersInOrderLocked() {
		if p.listening && p.conn == nil {
			return t.newConnLocked(p)
		}
	}
	return nil
}

// confirmLocked records that c's peer has its end of the link.
func (c *conn) confirmLocked() {
	if !c.confirmed {
		c.confirmed = true
		c.confirmSig.fire()
	}
}

// WriteFrame queues p for the peer with the priority PriorityOf(p).
func (c *conn) WriteFrame(p []byte) error { return c.WriteFramePriority(p, PriorityOf(p)) }

// WriteFramePriority queues p for the peer. When the radio's queue is
// full it sheds queued frames of lower priority (counted in
// Stats.FramesShed); when those cannot make room it blocks until there is
// room, the connection ends or the transport closes. A frame whose bytes
// wait in the queue for the same peer already is not queued again
// (Stats.FramesCopies). A nil error means queued; delivery is confirmed only by the peer's ACK. A frame that
// never gets one is dropped while the peer is heard (Stats.FramesDropped:
// the end-to-end retransmission recovers it), and fails the connection
// (ErrPeerLost) when the peer was silent for Options.PeerSilence.
func (c *conn) WriteFramePriority(p []byte, prio messages.Priority) error {
	t := c.t
	if len(p) > t.limit {
		return fmt.Errorf("%s: write to %s: %w", prefix, c.remote, &transports.FrameTooLargeError{Size: uint64(len(p)), Limit: t.limit})
	}
	if len(p) == 0 {
		return fmt.Errorf("%s: write to %s: %w", prefix, c.remote, ErrEmptyFrame)
	}
	f := newOutFrame(c, p, prio)
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		if err := c.writeErrLocked(); err != nil {
			return err
		}
		if t.st.queue.collapse(f) { // a newer announce of a queued one's destination
			t.st.stats.AnnouncesCollapsed++
			t.pumpLocked()
			return nil
		}
		if t.st.queue.hasCopy(f) {
			// The same bytes for the same peer wait already (an end-to-end
			// retransmission reaching a relay whose duty cycle or channel
			// still holds the first copy): one copy on the air is enough.
			t.st.stats.FramesCopies++
			return nil
		}
		ok, shed := t.st.queue.push(f)
		if ok {
			t.countShedLocked(shed)
			t.pumpLocked()
			return nil
		}
		space := t.st.spaceSig.wait()
		t.mu.Unlock()
		select {
		case <-space:
		case <-c.dead:
		case <-t.done:
		}
		t.mu.Lock()
	}
}

func (c *conn) writeErrLocked() error {
	switch c.state {
	case connClosed:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.remote, net.ErrClosed)
	case connEOF:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.remote, io.ErrClosedPipe)
	case connFailed:
		return fmt.Errorf("%s: write to %s: %w", prefix, c.remote, c.err)
	}
	return nil
}

// ReadFrame returns the next frame from the peer. After the peer's BYE
// it returns io.EOF once the buffered frames are read; after a failure,
// the failure.
func (c *conn) ReadFrame() ([]byte, error) {
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	f, _, err := c.readLocked()
	return f, err
}

// readLocked waits for the next frame (releasing the lock meanwhile).
func (c *conn) readLocked() ([]byte, messages.Signal, error) {
	t := c.t
	for {
		if c.state == connClosed {
			return nil, messages.Signal{}, fmt.Errorf("%s: read from %s: %w", prefix, c.remote, net.ErrClosed)
		}
		if len(c.rx) > 0 {
			f := c.rx[0]
			c.rx[0] = nil
			c.rx = c.rx[1:]
			var sig messages.Signal
			if len(c.rxMeta) > 0 {
				sig = c.rxMeta[0]
				c.rxMeta = c.rxMeta[1:]
			}
			return f, sig, nil
		}
		switch c.state {
		case connEOF:
			return nil, messages.Signal{}, io.EOF
		case connFailed:
			return nil, messages.Signal{}, fmt.Errorf("%s: read from %s: %w", prefix, c.remote, c.err)
		}
		wake := c.rxSig.wait()
		t.mu.Unlock()
		<-wake
		t.mu.Lock()
	}
}

// Close closes the connection and sends the peer a BYE (best effort, when
// the duty cycle allows). Frames still queued for the peer are dropped.
func (c *conn) Close() error {
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeConnLocked(c, true)
	t.pumpLocked()
	return nil
}

func (c *conn) Peer() crypto.Address       { return c.p.addr }
func (c *conn) PeerKey() ed25519.PublicKey { return c.p.key }
func (c *conn) LocalAddr() string          { return c.t.channel + "/" + c.t.self.String() }
func (c *conn) RemoteAddr() string         { return c.remote }
func (c *conn) Info() transports.Info      { return c.t.info }

// listener hands out the connections of peers heard on the channel.
type listener struct {
	t      *Transport
	closed bool // guarded by t.mu
	done   chan struct{}
}

func (l *listener) Accept(ctx context.Context) (transports.Conn, error) {
	t := l.t
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		if l.closed {
			return nil, fmt.Errorf("%s: accept %s: %w", prefix, t.channel, net.ErrClosed)
		}
		if err := t.errLocked("accept"); err != nil {
			return nil, err
		}
		for len(t.st.acceptQ) > 0 {
			c := t.st.acceptQ[0]
			t.st.acceptQ[0] = nil
			t.st.acceptQ = t.st.acceptQ[1:]
			if c.state == connOpen || len(c.rx) > 0 {
				return c, nil
			}
		}
		wake := t.st.acceptSig.wait()
		t.mu.Unlock()
		select {
		case <-wake:
		case <-l.done:
		case <-ctx.Done():
			t.mu.Lock()
			return nil, ctx.Err()
		}
		t.mu.Lock()
	}
}

func (l *listener) Addr() string { return l.t.channel }

// Close stops accepting. Connections not yet accepted are closed (their
// peers get a BYE), and the node's next HELLO, sent now, says it no longer
// listens; accepted connections stay open.
func (l *listener) Close() error {
	t := l.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closeLocked()
	for _, c := range t.st.acceptQ {
		t.closeConnLocked(c, true)
	}
	t.st.acceptQ = nil
	if !t.st.closed {
		t.requestHelloLocked(t.clk.Now().Add(t.randDur(8*t.airHello)), false)
		t.pumpLocked()
	}
	return nil
}

func (l *listener) closeLocked() {
	l.closed = true
	close(l.done)
	if l.t.st.listener == l {
		l.t.st.listener = nil
	}
}
