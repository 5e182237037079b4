package transports

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"
)

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*31 + 7)
	}
	return p
}

func TestFrameHeaderLayout(t *testing.T) {
	tests := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{300, []byte{0xac, 0x02}},
		{16383, []byte{0xff, 0x7f}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{DefaultMaxFrameSize, []byte{0x80, 0xa0, 0x40}},
		{1<<28 - 1, []byte{0xff, 0xff, 0xff, 0x7f}},
		{MaxFrameSizeCap, []byte{0x80, 0x80, 0x80, 0x80, 0x04}},
	}
	for _, tc := range tests {
		if got := AppendFrameHeader(nil, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("header(%d) = % x, want % x", tc.n, got, tc.want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 127, 128, 1000, 16383, 16384, allocChunk, allocChunk + 1, 300_000}
	var stream []byte
	for _, n := range sizes {
		stream = AppendFrame(stream, pattern(n))
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(stream),
		"one byte": iotest.OneByteReader(bytes.NewReader(stream)),
		"halves":   iotest.HalfReader(bytes.NewReader(stream)),
	} {
		fr := NewFrameReader(r, 300_000)
		for _, n := range sizes {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s: frame of %d: %v", name, n, err)
			}
			if !bytes.Equal(f, pattern(n)) {
				t.Fatalf("%s: frame of %d: wrong content (%d bytes)", name, n, len(f))
			}
		}
		if _, err := fr.ReadFrame(); err != io.EOF {
			t.Fatalf("%s: at the end: %v, want io.EOF", name, err)
		}
	}
}

func TestFrameReaderErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		limit int
		want  error
	}{
		{"empty stream", nil, 10, io.EOF},
		{"prefix cut", []byte{0x80}, 1000, io.ErrUnexpectedEOF},
		{"body cut", []byte{0x05, 1, 2}, 10, io.ErrUnexpectedEOF},
		{"over the limit", []byte{0x0b}, 10, ErrFrameTooLarge},
		{"at the limit", append([]byte{0x0a}, make([]byte, 10)...), 10, nil},
		{"non-minimal zero", []byte{0x80, 0x00}, 10, ErrBadFrame},
		{"non-minimal one", []byte{0x81, 0x00}, 10, ErrBadFrame},
		{"six-byte prefix", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, MaxFrameSizeCap, ErrBadFrame},
		{"2^35-1 declared", []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, MaxFrameSizeCap, ErrFrameTooLarge},
		{"zero limit", []byte{0x01, 0xff}, 0, ErrFrameTooLarge},
	}
	for _, tc := range tests {
		_, err := NewFrameReader(bytes.NewReader(tc.in), tc.limit).ReadFrame()
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// The heart of the size limit: a declared length of 2 GiB against a limit
// of 1 KiB fails at once with the numbers, and allocates nothing but the
// error itself.
func TestOversizeRejectedBeforeAllocation(t *testing.T) {
	in := AppendFrameHeader(nil, 1<<31)
	r := bytes.NewReader(in)
	fr := NewFrameReader(r, 1024)
	_, err := fr.ReadFrame()
	var tooLarge *FrameTooLargeError
	if !errors.As(err, &tooLarge) || !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("ReadFrame = %v, want *FrameTooLargeError", err)
	}
	if tooLarge.Size != 1<<31 || tooLarge.Limit != 1024 {
		t.Errorf("error carries %+v, want size 2^31 limit 1024", tooLarge)
	}
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(in)
		fr.r.Reset(r)
		if _, err := fr.ReadFrame(); err == nil {
			t.Fatal("no error")
		}
	})
	if allocs > 1 { // the *FrameTooLargeError
		t.Errorf("rejecting an oversize frame allocated %v times per run, want at most 1", allocs)
	}
}

// A peer that declares a big frame and then stalls pins memory in
// proportion to what it sent, not to what it declared.
func TestStalledLargeFrameAllocatesLittle(t *testing.T) {
	in := append(AppendFrameHeader(nil, 1<<20), make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := NewFrameReader(bytes.NewReader(in), 1<<20).ReadFrame()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadFrame = %v, want io.ErrUnexpectedEOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<10 {
		t.Errorf("a stalled 1 MiB frame allocated %d bytes, want at most the bufio buffer plus one chunk", got)
	}
}

// lockedBuffer is a bytes.Buffer safe for the flusher goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func TestFrameWriter(t *testing.T) {
	var out lockedBuffer
	fw := NewFrameWriter(&out, 1000)
	var want []byte
	for i := range 500 {
		p := pattern(i % 1000)
		want = AppendFrame(want, p)
		if err := fw.WriteFrame(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.WriteFrame(make([]byte, 1001)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversize WriteFrame = %v, want ErrFrameTooLarge", err)
	}
	fw.Close()
	<-fw.Done() // the flusher writes everything queued before it exits
	if !bytes.Equal(out.buf.Bytes(), want) {
		t.Fatalf("wrote %d bytes, want %d", out.buf.Len(), len(want))
	}
	if err := fw.WriteFrame([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteFrame after Close = %v, want net.ErrClosed", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestFrameWriterStickyError(t *testing.T) {
	boom := errors.New("boom")
	fw := NewFrameWriter(failingWriter{boom}, 100)
	if err := fw.WriteFrame([]byte("a")); err != nil {
		t.Fatalf("first WriteFrame = %v; the failure is reported later", err)
	}
	<-fw.Done() // the flusher stops at the first error
	if err := fw.WriteFrame([]byte("b")); !errors.Is(err, boom) {
		t.Errorf("WriteFrame after a failed write = %v, want %v", err, boom)
	}
	fw.Close()
	if err := fw.WriteFrame([]byte("c")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteFrame after Close = %v, want net.ErrClosed", err)
	}
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.release
	return len(p), nil
}

// While the stream is stuck, WriteFrame queues up to the high-water mark
// and then blocks (it never grows the queue without bound); Close wakes it
// with net.ErrClosed.
func TestFrameWriterBackpressure(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	const size = 64 << 10
	fw := NewFrameWriter(w, size)
	if err := fw.WriteFrame([]byte("first")); err != nil {
		t.Fatal(err)
	}
	<-w.entered // the flusher holds "first" and is stuck
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		p := make([]byte, size)
		for n := 0; ; n++ {
			if err := fw.WriteFrame(p); err != nil {
				res <- result{n, err}
				return
			}
		}
	}()
	fw.Close()
	r := <-res
	if !errors.Is(r.err, net.ErrClosed) {
		t.Errorf("blocked WriteFrame after Close = %v, want net.ErrClosed", r.err)
	}
	if max := writeHighWater/size + 1; r.n > max {
		t.Errorf("%d frames of %d bytes queued behind a stuck stream, want at most %d", r.n, size, max)
	}
	close(w.release)
	<-fw.Done()
}

// Large frames bypass the queue (written from the caller's goroutine);
// mixed with queued small ones they must still leave in order.
func TestFrameWriterMixedSizesKeepOrder(t *testing.T) {
	var out lockedBuffer
	fw := NewFrameWriter(&out, 100_000)
	var want []byte
	for i := range 200 {
		n := []int{10, directWrite, 5, 70_000, directWrite - 1, 0}[i%6]
		p := pattern(n + i)
		want = AppendFrame(want, p)
		if err := fw.WriteFrame(p); err != nil {
			t.Fatal(err)
		}
	}
	fw.Close()
	<-fw.Done()
	if !bytes.Equal(out.buf.Bytes(), want) {
		t.Fatalf("wrote %d bytes, want %d in order", out.buf.Len(), len(want))
	}
}

func TestFrameWriterDirectWriteError(t *testing.T) {
	boom := errors.New("boom")
	fw := NewFrameWriter(failingWriter{boom}, 100_000)
	if err := fw.WriteFrame(make([]byte, directWrite)); !errors.Is(err, boom) {
		t.Fatalf("direct WriteFrame = %v, want %v", err, boom)
	}
	<-fw.Done() // the flusher exits on the error without a Close
	if err := fw.WriteFrame([]byte("x")); !errors.Is(err, boom) {
		t.Errorf("WriteFrame after the error = %v, want %v", err, boom)
	}
}
