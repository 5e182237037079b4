package transports

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// deadlineRecorder is a stream that hands out bytes only when given and
// records every read deadline set on it.
type deadlineRecorder struct {
	mu        sync.Mutex
	deadlines []time.Time
	data      chan []byte
	pending   []byte
}

func (d *deadlineRecorder) Read(p []byte) (int, error) {
	if len(d.pending) == 0 {
		b, ok := <-d.data
		if !ok {
			return 0, io.EOF
		}
		d.pending = b
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

func (d *deadlineRecorder) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadlines = append(d.deadlines, t)
	d.mu.Unlock()
	return nil
}

func (d *deadlineRecorder) calls() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.deadlines...)
}

// A frame that arrives whole touches no deadline (the hot path), nor does
// the wait for a frame's first byte (an idle link); a frame that must be
// waited for after its first byte gets a deadline, cleared at its end.
func TestFrameReaderArmsTheDeadlineOnlyInsideAFrame(t *testing.T) {
	d := &deadlineRecorder{data: make(chan []byte)}
	fr := NewFrameReaderWith(d, FrameReaderOptions{Limit: 1 << 20, FrameTimeout: time.Minute, SetReadDeadline: d.SetReadDeadline})
	got := make(chan []byte)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				close(got)
				return
			}
			got <- f
		}
	}()
	whole := AppendFrame(nil, pattern(1000))
	d.data <- whole
	if f := <-got; !bytes.Equal(f, pattern(1000)) {
		t.Fatal("first frame corrupted")
	}
	if c := d.calls(); len(c) != 0 {
		t.Fatalf("a whole frame set deadlines %v", c)
	}
	split := AppendFrame(nil, pattern(5000))
	d.data <- split[:10] // the reader now waits inside the frame
	d.data <- split[10:]
	if f := <-got; !bytes.Equal(f, pattern(5000)) {
		t.Fatal("split frame corrupted")
	}
	c := d.calls()
	if len(c) != 2 || c[0].IsZero() || !c[1].IsZero() {
		t.Fatalf("deadlines around a split frame = %v, want one set and one cleared", c)
	}
	close(d.data)
	<-got
}

// readAsync runs ReadFrame on fr and delivers its result.
func readAsync(fr *FrameReader) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := fr.ReadFrame()
		done <- err
	}()
	return done
}

func within(t *testing.T, ch <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s: no result within %s", what, d)
		return nil
	}
}

// A peer that stops inside a frame gets ErrFrameTimeout after the frame
// timeout, on a real deadline-capable stream.
func TestFrameReaderStalledFrameTimesOut(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	fr := NewFrameReaderWith(b, FrameReaderOptions{Limit: 1 << 20, FrameTimeout: 100 * time.Millisecond, SetReadDeadline: b.SetReadDeadline})
	res := readAsync(fr)
	frame := AppendFrame(nil, pattern(3000))
	go a.Write(frame[:1000])
	err := within(t, res, 10*time.Second, "stalled frame")
	if !errors.Is(err, ErrFrameTimeout) {
		t.Fatalf("stalled frame: %v, want ErrFrameTimeout", err)
	}
}

// Readers stalled inside large frames hold at most the budget between
// them; the others wait without reading, and every stalled frame ends in
// ErrFrameTimeout, after which the budget is free again.
func TestFrameBudgetBoundsStalledFrames(t *testing.T) {
	const frameSize, readers = 200 << 10, 8
	budget := NewFrameBudget(2 * frameSize)
	var results []<-chan error
	for i := 0; i < readers; i++ {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		fr := NewFrameReaderWith(b, FrameReaderOptions{Limit: frameSize, FrameTimeout: 300 * time.Millisecond, SetReadDeadline: b.SetReadDeadline, Budget: budget})
		results = append(results, readAsync(fr))
		frame := AppendFrame(nil, pattern(frameSize))
		go a.Write(frame[:len(frame)-1]) // all but the last byte
	}
	for i, res := range results {
		if err := within(t, res, 20*time.Second, "stalled reader"); !errors.Is(err, ErrFrameTimeout) {
			t.Fatalf("reader %d: %v, want ErrFrameTimeout", i, err)
		}
	}
	if p := budget.Peak(); p > budget.Limit() || p == 0 {
		t.Fatalf("peak reserved %d bytes, budget %d", p, budget.Limit())
	}
	if u := budget.InUse(); u != 0 {
		t.Fatalf("%d bytes still reserved after every reader ended", u)
	}
	if budget.Waits() == 0 {
		t.Fatal("no reader waited for the budget")
	}
}

// probe waits until cond holds, failing the test after 10 s.
func probe(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		runtime.Gosched()
	}
}

// A frame that completes gives its bytes back, and a reader waiting for
// them proceeds; Close ends a wait for budget.
func TestFrameBudgetWaitsForReleaseAndClose(t *testing.T) {
	const frameSize = 100 << 10
	budget := NewFrameBudget(frameSize)
	pipe := func() (net.Conn, *FrameReader) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, NewFrameReaderWith(b, FrameReaderOptions{Limit: frameSize, Budget: budget})
	}
	frame := AppendFrame(nil, pattern(frameSize))
	w1, r1 := pipe()
	w2, r2 := pipe()
	w3, r3 := pipe()

	go w1.Write(frame[:10])
	res1 := readAsync(r1)
	probe(t, "the first reader reserves its frame", func() bool { return budget.InUse() == frameSize })
	go w2.Write(frame)
	res2 := readAsync(r2)
	probe(t, "the second reader waits for the budget", func() bool { return budget.Waits() == 1 })
	go w1.Write(frame[10:])
	if err := within(t, res1, 10*time.Second, "first frame"); err != nil {
		t.Fatal(err)
	}
	if err := within(t, res2, 10*time.Second, "second frame, after the first released"); err != nil {
		t.Fatal(err)
	}

	go w1.Write(frame[:10])
	readAsync(r1)
	probe(t, "the first reader reserves again", func() bool { return budget.InUse() == frameSize })
	go w3.Write(frame[:10])
	res3 := readAsync(r3)
	probe(t, "the third reader waits for the budget", func() bool { return budget.Waits() == 2 })
	r3.Close()
	if err := within(t, res3, 10*time.Second, "closed while waiting"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed while waiting for budget: %v, want net.ErrClosed", err)
	}
}
