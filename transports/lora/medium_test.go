package lora

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports"
)

var sf7 = params(7, 125000, CR45)

func newMedium(t *testing.T, seed uint64) (*Medium, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(t0)
	return NewMedium(MediumOptions{Clock: clk, Rand: rand.New(rand.NewPCG(seed, 1))}), clk
}

func attach(t *testing.T, m *Medium, name string, p Params) *Radio {
	t.Helper()
	r, err := m.Attach(name, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func drain(r *Radio) []Packet {
	var out []Packet
	for {
		p, ok := r.TryRecv()
		if !ok {
			return out
		}
		out = append(out, p)
	}
}

func TestMediumDeliveryAfterAirtime(t *testing.T) {
	m, clk := newMedium(t, 1)
	a, b, c := attach(t, m, "a", sf7), attach(t, m, "b", sf7), attach(t, m, "c", sf7)
	frame := bytes.Repeat([]byte{0x82}, 20)
	airtime, _ := Airtime(sf7, 20) // 56.576 ms
	if err := a.Send(frame); err != nil {
		t.Fatal(err)
	}
	frame[0] = 0 // Send copied it
	if !b.CarrierSense() || !c.CarrierSense() || a.CarrierSense() {
		t.Error("carrier sense at the start of the frame")
	}
	if !a.Transmitting() {
		t.Error("a not transmitting")
	}
	clk.Advance(airtime - time.Nanosecond)
	if got := drain(b); len(got) != 0 {
		t.Fatalf("delivered %d frames before the airtime was over", len(got))
	}
	if !b.CarrierSense() {
		t.Error("channel free before the frame ended")
	}
	clk.Advance(time.Nanosecond)
	for _, r := range []*Radio{b, c} {
		got := drain(r)
		if len(got) != 1 {
			t.Fatalf("%s got %d frames", r.Name(), len(got))
		}
		p := got[0]
		if p.From != "a" || p.Data[0] != 0x82 || len(p.Data) != 20 || !p.Start.Equal(t0) || !p.End.Equal(t0.Add(airtime)) {
			t.Errorf("%s got %+v", r.Name(), p)
		}
	}
	if got := drain(a); len(got) != 0 {
		t.Error("a heard itself")
	}
	if b.CarrierSense() || a.Transmitting() {
		t.Error("channel still busy after the frame")
	}
	s := m.Stats()
	if s.Transmissions != 1 || s.Delivered != 2 || s.Airtime != airtime {
		t.Errorf("stats %+v", s)
	}
	if rs := a.Stats(); rs.Sent != 1 || rs.Airtime != airtime {
		t.Errorf("radio stats %+v", rs)
	}
}

func TestMediumCollision(t *testing.T) {
	airtime, _ := Airtime(sf7, 20)
	for _, c := range []struct {
		name    string
		offset  time.Duration // b starts this long after a
		collide bool
	}{
		{"same instant", 0, true},
		{"partial overlap", airtime / 2, true},
		{"1 ns overlap", airtime - time.Nanosecond, true},
		{"back to back", airtime, false},
		{"apart", 2 * airtime, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, clk := newMedium(t, 1)
			a, b, r := attach(t, m, "a", sf7), attach(t, m, "b", sf7), attach(t, m, "r", sf7)
			a.Send(bytes.Repeat([]byte{'a'}, 20))
			clk.Advance(c.offset)
			b.Send(bytes.Repeat([]byte{'b'}, 20))
			clk.Advance(3 * airtime)
			got := drain(r)
			if c.collide && len(got) != 0 {
				t.Errorf("receiver got %d frames from a collision", len(got))
			}
			if !c.collide && len(got) != 2 {
				t.Errorf("receiver got %d frames, want 2", len(got))
			}
			s := m.Stats()
			if c.collide {
				// a and b hear each other, but each was transmitting.
				if s.Collided != 2 || s.HalfDuplex != 2 || s.Delivered != 0 {
					t.Errorf("stats %+v", s)
				}
				if len(drain(a)) != 0 || len(drain(b)) != 0 {
					t.Error("a transmitter received during its own transmission")
				}
			} else if s.Delivered != 4 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// Collisions happen only at receivers that hear both transmitters.
func TestMediumCollisionNeedsBothInRange(t *testing.T) {
	m, clk := newMedium(t, 1)
	a, b := attach(t, m, "a", sf7), attach(t, m, "b", sf7)
	near, far := attach(t, m, "near-a", sf7), attach(t, m, "hears-both", sf7)
	m.SetLoss("b", "near-a", 1) // near-a does not hear b
	m.SetLoss("a", "b", 1)      // hidden terminals
	a.Send([]byte("from a"))
	b.Send([]byte("from b"))
	clk.Advance(time.Second)
	if got := drain(near); len(got) != 1 || got[0].From != "a" {
		t.Errorf("near-a got %v, want a's frame", got)
	}
	if got := drain(far); len(got) != 0 {
		t.Errorf("hears-both got %d frames through a collision", len(got))
	}
	if s := m.Stats(); s.HalfDuplex != 0 || s.Collided != 2 {
		t.Errorf("stats %+v (a and b cannot hear each other)", s)
	}
}

func TestMediumHalfDuplex(t *testing.T) {
	m, clk := newMedium(t, 1)
	a, b := attach(t, m, "a", sf7), attach(t, m, "b", sf7)
	m.SetLoss("b", "c", 1)
	c := attach(t, m, "c", sf7)
	a.Send(bytes.Repeat([]byte{'a'}, 100)) // long
	clk.Advance(10 * time.Millisecond)
	b.Send([]byte{'b'}) // short, during a's frame: b misses a's frame
	clk.Advance(time.Second)
	if got := drain(b); len(got) != 0 {
		t.Errorf("b got %d frames while it transmitted", len(got))
	}
	// b is out of range of c, so nothing collides there: c gets a's frame.
	if got := drain(c); len(got) != 1 || got[0].From != "a" {
		t.Errorf("c got %v", got)
	}
	// a was on air for all of b's short frame.
	if got := drain(a); len(got) != 0 {
		t.Errorf("a got %d frames while it transmitted", len(got))
	}
}

func TestMediumOrthogonalSettings(t *testing.T) {
	m, clk := newMedium(t, 1)
	a7, b7 := attach(t, m, "a7", sf7), attach(t, m, "b7", sf7)
	a9, b9 := attach(t, m, "a9", params(9, 125000, CR45)), attach(t, m, "b9", params(9, 125000, CR45))
	w7 := attach(t, m, "w7", params(7, 250000, CR45))
	a7.Send([]byte("sf7"))
	a9.Send([]byte("sf9"))
	clk.Advance(time.Second)
	if got := drain(b7); len(got) != 1 || string(got[0].Data) != "sf7" {
		t.Errorf("b7 got %v", got)
	}
	if got := drain(b9); len(got) != 1 || string(got[0].Data) != "sf9" {
		t.Errorf("b9 got %v", got)
	}
	if got := drain(w7); len(got) != 0 {
		t.Errorf("250 kHz radio got %v", got)
	}
}

func TestMediumLossIsSeededAndDeterministic(t *testing.T) {
	run := func(seed uint64) []int {
		m, clk := newMedium(t, seed)
		a, b := attach(t, m, "a", sf7), attach(t, m, "b", sf7)
		if err := m.SetLoss("a", "b", 0.3); err != nil {
			t.Fatal(err)
		}
		var got []int
		for i := range 1000 {
			if err := a.Send([]byte{0x81, byte(i), byte(i >> 8)}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(100 * time.Millisecond)
			for _, p := range drain(b) {
				got = append(got, int(p.Data[1])|int(p.Data[2])<<8)
			}
		}
		if s := m.Stats(); s.Lost+s.Delivered != 1000 {
			t.Errorf("stats %+v", s)
		}
		return got
	}
	x, y, z := run(42), run(42), run(43)
	if len(x) < 650 || len(x) > 750 {
		t.Errorf("%d of 1000 frames arrived at 30 %% loss", len(x))
	}
	if !slices.Equal(x, y) {
		t.Error("the same seed gave different losses")
	}
	if slices.Equal(x, z) {
		t.Error("different seeds gave the same losses")
	}
	if !slices.IsSorted(x) {
		t.Error("frames out of order")
	}
}

func TestMediumTransmitQueue(t *testing.T) {
	clk := clock.NewManual(t0)
	m := NewMedium(MediumOptions{Clock: clk, Rand: rand.New(rand.NewPCG(1, 1)), TxQueue: 3})
	a, b := attach(t, m, "a", sf7), attach(t, m, "b", sf7)
	airtime, _ := Airtime(sf7, 10)
	for i := range 4 { // one on air, three queued
		if err := a.Send(bytes.Repeat([]byte{byte(i)}, 10)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := a.Send([]byte{9}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fifth frame: %v", err)
	}
	clk.Advance(time.Minute) // one big step: still back to back, in order
	got := drain(b)
	if len(got) != 4 {
		t.Fatalf("got %d frames", len(got))
	}
	for i, p := range got {
		start := t0.Add(time.Duration(i) * airtime)
		if p.Data[0] != byte(i) || !p.Start.Equal(start) || !p.End.Equal(start.Add(airtime)) {
			t.Errorf("frame %d: %v at +%v, want at +%v", i, p.Data[0], p.Start.Sub(t0), start.Sub(t0))
		}
	}
}

func TestRadioErrors(t *testing.T) {
	m, _ := newMedium(t, 1)
	a := attach(t, m, "a", sf7)
	if _, err := m.Attach("a", sf7); !errors.Is(err, ErrNameInUse) {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := m.Attach("x", Params{SF: 13}); !errors.Is(err, ErrBadParams) {
		t.Errorf("bad params: %v", err)
	}
	if err := m.SetLoss("a", "b", 1.5); !errors.Is(err, ErrBadParams) {
		t.Errorf("loss 1.5: %v", err)
	}
	err := a.Send(make([]byte, 256))
	var tl *transports.FrameTooLargeError
	if !errors.Is(err, transports.ErrFrameTooLarge) || !errors.As(err, &tl) || tl.Limit != 255 {
		t.Errorf("256-byte frame: %v", err)
	}
	if err := a.Send(nil); !errors.Is(err, ErrBadParams) {
		t.Errorf("empty frame: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := a.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Recv with nothing: %v", err)
	}
	a.Close()
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := a.Send([]byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if _, err := a.Recv(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Recv after Close: %v", err)
	}
	if _, err := m.Attach("a", sf7); err != nil {
		t.Errorf("re-attach after Close: %v", err)
	}
}

// blockedRecv is the call TestRadioCloseUnblocksRecv waits on.
//
//go:noinline
func blockedRecv(r *Radio) error {
	_, err := r.Recv(context.Background())
	return err
}

func TestRadioCloseUnblocksRecv(t *testing.T) {
	m, _ := newMedium(t, 1)
	a := attach(t, m, "a", sf7)
	done := make(chan error, 1)
	go func() { done <- blockedRecv(a) }()
	// Recv is blocked waiting for a frame before Close: Close is what
	// ends it (a Recv that starts after Close returns at its first check).
	probe.Parked(t, 5*time.Second, "lora.blockedRecv(", "(*Radio).Recv(")
	a.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Recv: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Recv still blocked after Close")
	}
}

// A Recv waiting for a frame is woken by the medium's own timer on its
// clock at the end of the frame's airtime, not before, and not by a
// Sync, TryRecv or Advance of the test (the frame is delivered from the
// clock's timer). With no clock given, the medium runs on the real one.
func TestMediumRecvWokenByTheClock(t *testing.T) {
	m, clk := newMedium(t, 1)
	p := params(7, 500000, CR45)
	a, b := attach(t, m, "a", p), attach(t, m, "b", p)
	airtime, _ := Airtime(p, 16) // about 12 ms
	type got struct {
		pkt Packet
		err error
	}
	done := make(chan got, 1)
	go func() {
		pkt, err := b.Recv(context.Background())
		done <- got{pkt, err}
	}()
	probe.Parked(t, 5*time.Second, "(*Radio).Recv(")
	if err := a.Send([]byte("real-time frame!")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(airtime - time.Nanosecond)
	if s := m.Stats(); s.Delivered != 0 {
		t.Fatalf("delivered before the airtime was over: %+v", s)
	}
	select {
	case r := <-done:
		t.Fatalf("Recv returned before the airtime was over: %+v, %v", r.pkt, r.err)
	default:
	}
	clk.Advance(time.Nanosecond)
	select {
	case r := <-done:
		if r.err != nil || string(r.pkt.Data) != "real-time frame!" || r.pkt.From != "a" ||
			!r.pkt.Start.Equal(t0) || r.pkt.End.Sub(r.pkt.Start) != airtime {
			t.Fatalf("got %+v, %v; want the frame from a, on air from %v for %v", r.pkt, r.err, t0, airtime)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Recv not woken at the end of the airtime")
	}
	if _, real := NewMedium(MediumOptions{}).clk.(clock.Real); !real {
		t.Fatal("a medium without a clock does not run on the real one")
	}
}

// Many radios sending at random times: the medium's bookkeeping agrees
// with a brute-force check of overlaps.
func TestMediumAgainstReference(t *testing.T) {
	m, clk := newMedium(t, 5)
	rng := rand.New(rand.NewPCG(9, 9))
	names := []string{"r0", "r1", "r2", "r3", "r4"}
	radios := make([]*Radio, len(names))
	for i, n := range names {
		radios[i] = attach(t, m, n, sf7)
	}
	m.SetLoss("r0", "r4", 1)
	type sent struct {
		from       int
		start, end time.Time
		id         uint16
	}
	var all []sent
	got := map[int]map[uint16]bool{}
	for i := range radios {
		got[i] = map[uint16]bool{}
	}
	for id := range uint16(400) {
		i := rng.IntN(len(radios))
		if radios[i].Transmitting() {
			clk.Advance(time.Duration(rng.IntN(80)) * time.Millisecond)
			continue
		}
		frame := []byte{0x82, byte(id >> 8), byte(id), 0, 0, 0, 0, 0}
		a, _ := Airtime(sf7, len(frame))
		all = append(all, sent{i, clk.Now(), clk.Now().Add(a), id})
		radios[i].Send(frame)
		clk.Advance(time.Duration(rng.IntN(80)) * time.Millisecond)
		for j, r := range radios {
			for _, p := range drain(r) {
				got[j][uint16(p.Data[1])<<8|uint16(p.Data[2])] = true
			}
		}
	}
	clk.Advance(time.Second)
	for j, r := range radios {
		for _, p := range drain(r) {
			got[j][uint16(p.Data[1])<<8|uint16(p.Data[2])] = true
		}
	}
	inRange := func(a, b int) bool {
		return a != b && !((a == 0 && b == 4) || (a == 4 && b == 0))
	}
	overlap := func(x, y sent) bool { return x.start.Before(y.end) && y.start.Before(x.end) }
	for _, s := range all {
		for j := range radios {
			if !inRange(s.from, j) {
				if got[j][s.id] {
					t.Errorf("frame %d reached out-of-range r%d", s.id, j)
				}
				continue
			}
			want := true
			for _, o := range all {
				if o.id == s.id || !overlap(s, o) {
					continue
				}
				if o.from == j || inRange(o.from, j) { // j transmitted, or heard both
					want = false
				}
			}
			if got[j][s.id] != want {
				t.Errorf("frame %d from r%d at r%d: delivered %v, reference %v", s.id, s.from, j, got[j][s.id], want)
			}
		}
	}
	t.Logf("%d frames, stats %+v", len(all), m.Stats())
}

// With DefaultLoss 1 only the pairs SetLoss names hear each other.
func TestMediumDefaultLossIsolates(t *testing.T) {
	clk := clock.NewManual(t0)
	m := NewMedium(MediumOptions{Clock: clk, Rand: rand.New(rand.NewPCG(1, 1)), DefaultLoss: 1})
	a, b, c := attach(t, m, "a", sf7), attach(t, m, "b", sf7), attach(t, m, "c", sf7)
	if err := m.SetLoss("a", "b", 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Send([]byte("hallo")); err != nil {
		t.Fatal(err)
	}
	if c.CarrierSense() {
		t.Error("c, out of range, senses a's carrier")
	}
	airtime, _ := Airtime(sf7, 5)
	clk.Advance(airtime)
	if got := drain(b); len(got) != 1 {
		t.Fatalf("b (SetLoss 0) got %d frames", len(got))
	}
	if got := drain(c); len(got) != 0 {
		t.Fatalf("c (no SetLoss, default loss 1) got %d frames", len(got))
	}
	if snr := m.LinkSNR("a", "c"); snr != DefaultSNR-25 {
		t.Errorf("SNR of an unset pair %v, want %v", snr, DefaultSNR-25)
	}
}
