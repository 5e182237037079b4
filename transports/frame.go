package transports

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"time"
)

// MaxFramePrefix is the longest length prefix, in bytes: 5 bytes of
// uvarint hold 35 bits, more than MaxFrameSizeCap needs.
const MaxFramePrefix = 5

// AppendFrameHeader appends the length prefix of an n-byte frame to dst:
// n as an unsigned LEB128 varint in its shortest form (see the package
// documentation for the byte layout).
func AppendFrameHeader(dst []byte, n int) []byte {
	return binary.AppendUvarint(dst, uint64(n))
}

// AppendFrame appends the length prefix and the frame p to dst.
func AppendFrame(dst, p []byte) []byte {
	return append(AppendFrameHeader(dst, len(p)), p...)
}

const (
	readBufferSize = 16 << 10 // bufio size of a FrameReader
	allocChunk     = 64 << 10 // frames above this grow as their bytes arrive
)

// FrameReader reads length-prefixed frames from a byte stream. It is what
// the stream transports (tcp, quic) put behind Conn.ReadFrame, and is not
// safe for concurrent use (but Close is).
//
// Limits are enforced before allocation: a declared length above the limit
// fails with a *FrameTooLargeError without allocating anything, and a frame
// larger than 64 KiB is allocated in steps as its bytes arrive, so a peer
// that declares a large frame and then stalls pins at most about twice what
// it actually sent. With FrameReaderOptions a reader also bounds the time
// a started frame may take (FrameTimeout) and reserves large frames from a
// FrameBudget shared with other connections; a frame that has its
// reservation is allocated at once, so partial frames never hold more
// memory than the budget.
type FrameReader struct {
	src   io.Reader     // the stream
	r     *bufio.Reader // src, buffered: prefixes and small frames come from here
	limit int

	budget      *FrameBudget
	timeout     time.Duration
	setDeadline func(time.Time) error
	deadline    time.Time // of the frame being read; zero when not armed
	done        chan struct{}
	closeOnce   sync.Once
}

// FrameReaderOptions configure NewFrameReaderWith.
type FrameReaderOptions struct {
	// Limit is the largest frame accepted, in bytes.
	Limit int
	// FrameTimeout, when positive, bounds the reading of a frame from the
	// moment its first byte has arrived: if the rest does not follow in
	// time, ReadFrame fails with an error matching ErrFrameTimeout. It
	// needs SetReadDeadline. A frame already in the read buffer whole
	// never touches the deadline.
	FrameTimeout time.Duration
	// SetReadDeadline sets the stream's read deadline (net.Conn's, a QUIC
	// stream's).
	SetReadDeadline func(time.Time) error
	// Budget, when set, is reserved from for every frame above 64 KiB
	// before its body is read; see FrameBudget.
	Budget *FrameBudget
}

// NewFrameReader reads frames of at most limit bytes from r.
func NewFrameReader(r io.Reader, limit int) *FrameReader {
	return NewFrameReaderWith(r, FrameReaderOptions{Limit: limit})
}

// NewFrameReaderWith reads frames from r as o says.
func NewFrameReaderWith(r io.Reader, o FrameReaderOptions) *FrameReader {
	fr := &FrameReader{src: r, r: bufio.NewReaderSize(r, readBufferSize), limit: o.Limit, budget: o.Budget, done: make(chan struct{})}
	if o.FrameTimeout > 0 && o.SetReadDeadline != nil {
		fr.timeout, fr.setDeadline = o.FrameTimeout, o.SetReadDeadline
	}
	return fr
}

// Close makes a ReadFrame that waits for budget return net.ErrClosed. It
// does not close the stream; its owner does, which ends a blocked read.
func (fr *FrameReader) Close() { fr.closeOnce.Do(func() { close(fr.done) }) }

// ReadFrame reads the next frame; the caller owns the returned slice. It
// returns io.EOF when the stream ends cleanly between frames,
// io.ErrUnexpectedEOF when it ends inside one, an error matching
// ErrBadFrame for a malformed length prefix, one matching
// ErrFrameTooLarge for a declared length above the limit and one matching
// ErrFrameTimeout for a frame not complete within the frame timeout.
// Errors of the underlying reader are returned as they are.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	// The wait for a frame's first byte has no deadline: an idle link is
	// fine (keep-alives find a dead one).
	first, err := fr.r.ReadByte()
	if err != nil {
		return nil, err // io.EOF here is a clean end between frames
	}
	f, err := fr.readFrame(first)
	if !fr.deadline.IsZero() {
		if err == nil {
			err = fr.setDeadline(time.Time{})
		}
		if err != nil && isTimeout(err) {
			err = fmt.Errorf("%w: %w", ErrFrameTimeout, err)
		}
		fr.deadline = time.Time{}
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// arm starts the frame's deadline if the next read may block: nothing
// happens while the bytes wanted are already buffered.
func (fr *FrameReader) arm(want int) error {
	if fr.timeout == 0 || !fr.deadline.IsZero() || fr.r.Buffered() >= want {
		return nil
	}
	fr.deadline = time.Now().Add(fr.timeout)
	return fr.setDeadline(fr.deadline)
}

func (fr *FrameReader) readFrame(first byte) ([]byte, error) {
	length, err := fr.readLength(first)
	if err != nil {
		return nil, err
	}
	if length > uint64(fr.limit) {
		return nil, &FrameTooLargeError{Size: length, Limit: fr.limit}
	}
	n := int(length)
	if err := fr.arm(n); err != nil {
		return nil, err
	}
	if n <= allocChunk {
		buf := make([]byte, n)
		if err := fr.readFull(buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	if fr.budget != nil {
		if fr.deadline.IsZero() && fr.timeout > 0 {
			// Budget waits are bounded by the frame's deadline too.
			fr.deadline = time.Now().Add(fr.timeout)
			if err := fr.setDeadline(fr.deadline); err != nil {
				return nil, err
			}
		}
		if err := fr.budget.acquire(int64(n), fr.deadline, fr.done); err != nil {
			return nil, err
		}
		defer fr.budget.release(int64(n))
		// The reservation bounds it: allocate the frame once (no copies
		// as it grows, and memory never above the budget).
		buf := make([]byte, n)
		if err := fr.readFull(buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf := make([]byte, allocChunk)
	got := 0
	for {
		if err := fr.readFull(buf[got:]); err != nil {
			return nil, err
		}
		got = len(buf)
		if got == n {
			return buf, nil
		}
		next := min(2*len(buf), n)
		buf = slices.Grow(buf, next-len(buf))[:next]
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// directRead: bodies above this are read straight from the stream into
// the frame once the buffered bytes are used up, instead of through the
// bufio buffer (which would copy every byte twice).
const directRead = 8 << 10

// readFull fills buf; an end of stream is io.ErrUnexpectedEOF.
func (fr *FrameReader) readFull(buf []byte) error {
	if len(buf) <= directRead {
		_, err := io.ReadFull(fr.r, buf)
		return noEOF(err)
	}
	n := 0
	if b := fr.r.Buffered(); b > 0 {
		n, _ = fr.r.Read(buf[:min(b, len(buf))]) // only copies: no I/O when bytes are buffered
	}
	_, err := io.ReadFull(fr.src, buf[n:])
	return noEOF(err)
}

// readLength reads a uvarint length prefix whose first byte is first,
// refusing prefixes longer than MaxFramePrefix and ones not in their
// shortest form (so every frame has exactly one encoding).
func (fr *FrameReader) readLength(first byte) (uint64, error) {
	var x uint64
	b := first
	for i := range MaxFramePrefix {
		if i > 0 {
			if err := fr.arm(1); err != nil {
				return 0, err
			}
			var err error
			if b, err = fr.r.ReadByte(); err != nil {
				return 0, noEOF(err)
			}
		}
		if b < 0x80 {
			if i > 0 && b == 0 {
				return 0, fmt.Errorf("%w: length prefix not in shortest form", ErrBadFrame)
			}
			return x | uint64(b)<<(7*i), nil
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	return 0, fmt.Errorf("%w: length prefix longer than %d bytes", ErrBadFrame, MaxFramePrefix)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Write coalescing parameters of FrameWriter.
const (
	// writeHighWater: WriteFrame blocks while this many bytes are queued.
	// With the buffer being written, at most about twice this (plus one
	// frame) is held per connection.
	writeHighWater = 256 << 10
	// keepBuffer: a buffer that grew beyond this is dropped after use
	// instead of being kept for reuse.
	keepBuffer = 1 << 20
	// directWrite: frames of at least this size are not copied into the
	// queue: once the queue is written, WriteFrame writes them itself (one
	// writev of prefix and body on TCP). Copying would cost more than
	// coalescing saves.
	directWrite = 16 << 10
)

// FrameWriter writes length-prefixed frames to a byte stream. WriteFrame
// encodes the frame into a queue and returns; a flusher goroutine writes
// whatever is queued with one Write call. While a write is in progress,
// new frames gather behind it, so a busy link makes few large writes
// (few syscalls) and an idle link sends each frame at once (no timer, no
// added latency).
//
// WriteFrame may be called by one goroutine at a time; Close from any.
type FrameWriter struct {
	w     io.Writer
	limit int

	mu      sync.Mutex
	space   sync.Cond // broadcast when queue space frees up, on error, on close
	pending []byte    // encoded frames not yet handed to w
	writing bool      // a w.Write is in progress (by the flusher or a direct write)
	spare   []byte    // the last buffer written, kept for reuse
	err     error     // the first write error; sticky
	closed  bool

	// Scratch of writeDirectLocked, kept here so a direct write does not
	// allocate. Only the goroutine that set writing touches them.
	hdr    [MaxFramePrefix]byte
	direct [2][]byte
	bufs   net.Buffers

	wake chan struct{} // capacity 1: pending became non-empty, or closed
	done chan struct{} // closed when the flusher has exited
}

// NewFrameWriter starts a FrameWriter for frames of at most limit bytes.
// Its flusher goroutine runs until Close (after the queue is written) or
// the first write error.
func NewFrameWriter(w io.Writer, limit int) *FrameWriter {
	fw := &FrameWriter{
		w:     w,
		limit: limit,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	fw.space.L = &fw.mu
	go fw.flushLoop()
	return fw
}

// WriteFrame queues p. It blocks while the queue is full, returns
// net.ErrClosed after Close, the first write error once one happened, and
// a *FrameTooLargeError if p exceeds the limit. It does not retain p.
func (fw *FrameWriter) WriteFrame(p []byte) error {
	if len(p) > fw.limit {
		return &FrameTooLargeError{Size: uint64(len(p)), Limit: fw.limit}
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for len(fw.pending) >= writeHighWater && fw.err == nil && !fw.closed {
		fw.space.Wait()
	}
	switch {
	case fw.closed:
		return net.ErrClosed
	case fw.err != nil:
		return fw.err
	}
	if len(p) < directWrite {
		wasEmpty := len(fw.pending) == 0
		fw.pending = AppendFrame(fw.pending, p)
		if wasEmpty {
			fw.poke()
		}
		return nil
	}
	return fw.writeDirectLocked(p)
}

// writeDirectLocked writes a large frame from the caller's goroutine once
// the queue is empty and no write is in progress, so frames stay in order
// and the body is never copied. Called and returns with fw.mu held.
func (fw *FrameWriter) writeDirectLocked(p []byte) error {
	for (len(fw.pending) > 0 || fw.writing) && fw.err == nil && !fw.closed {
		fw.space.Wait()
	}
	switch {
	case fw.closed:
		return net.ErrClosed
	case fw.err != nil:
		return fw.err
	}
	fw.writing = true
	fw.mu.Unlock()
	fw.direct = [2][]byte{AppendFrameHeader(fw.hdr[:0], len(p)), p}
	fw.bufs = fw.direct[:]
	_, err := fw.bufs.WriteTo(fw.w) // writev on a TCP socket
	fw.direct = [2][]byte{}         // do not retain p
	fw.mu.Lock()
	fw.writing = false
	if err != nil && fw.err == nil {
		fw.err = err
		fw.pending = nil
		fw.poke() // the flusher exits on the error
	}
	fw.space.Broadcast()
	return err
}

// Close stops accepting frames. The flusher writes what is queued and
// exits; Done is closed then. To bound the wait, close the underlying
// stream, which makes the flusher's write fail.
func (fw *FrameWriter) Close() {
	fw.mu.Lock()
	fw.closed = true
	fw.space.Broadcast()
	fw.mu.Unlock()
	fw.poke()
}

// Done is closed when the flusher goroutine has exited.
func (fw *FrameWriter) Done() <-chan struct{} { return fw.done }

func (fw *FrameWriter) poke() {
	select {
	case fw.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (fw *FrameWriter) flushLoop() {
	defer close(fw.done)
	for {
		fw.mu.Lock()
		for len(fw.pending) == 0 && !fw.closed && fw.err == nil {
			fw.mu.Unlock()
			<-fw.wake
			fw.mu.Lock()
		}
		if len(fw.pending) == 0 { // closed and drained, or a direct write failed
			for fw.writing { // Done promises that no write is in progress
				fw.space.Wait()
			}
			fw.mu.Unlock()
			return
		}
		// A direct write only starts on an empty queue, and the only writer
		// is busy in it, so nothing can be pending while it runs.
		buf := fw.pending
		fw.pending, fw.spare = fw.spare[:0], nil
		fw.writing = true
		fw.space.Broadcast()
		fw.mu.Unlock()

		_, err := fw.w.Write(buf)

		fw.mu.Lock()
		fw.writing = false
		fw.space.Broadcast()
		if err != nil {
			fw.err = err
			fw.pending = nil
			fw.space.Broadcast()
			fw.mu.Unlock()
			return
		}
		if cap(buf) <= keepBuffer {
			fw.spare = buf[:0]
		}
		fw.mu.Unlock()
	}
}
