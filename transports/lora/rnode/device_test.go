package rnode

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/probe"
)

// The transmit power goes to the modem and its echo is checked like every
// other setting (issue 12 item 4): an exact txp must come back exactly; a
// ceiling (the node's default, the region's limit) accepts a modem that
// clamps lower and reports what it took, but not one that echoes more.
func TestTxPowerEcho(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		cfg := testConfig()
		cfg.TxPower = 14
		emu, m := mustStart(t, l, EmulatorConfig{}, cfg)
		if m.Info().TxPower != 14 || emu.State().TxPower != 14 {
			t.Errorf("txp: modem reports %d, emulator set %d; want 14", m.Info().TxPower, emu.State().TxPower)
		}

		wrong := EmulatorConfig{Echo: func(cmd byte, v []byte) []byte {
			if cmd == CmdTxPower {
				return []byte{v[0] - 4}
			}
			return v
		}}
		_, _, err := startModem(t, l, wrong, cfg)
		var me *MismatchError
		if !errors.As(err, &me) || me.Param != "TxPower" || me.Asked != 14 || me.Echoed != 10 {
			t.Errorf("wrong txp echo: %v, want a MismatchError for TxPower asked 14 echoed 10", err)
		}

		// An SX1276 board clamps to 17 dBm.
		cfg.TxPower = 27
		_, _, err = startModem(t, l, EmulatorConfig{MaxTxPower: 17}, cfg)
		if !errors.As(err, &me) || me.Param != "TxPower" || me.Echoed != 17 {
			t.Errorf("clamped echo of an exact txp: %v, want a MismatchError", err)
		}
		cfg.TxPowerCeiling = true
		emu, m = mustStart(t, l, EmulatorConfig{MaxTxPower: 17}, cfg)
		if m.Info().TxPower != 17 || emu.State().TxPower != 17 {
			t.Errorf("ceiling 27 on a 17 dBm board: modem reports %d, want 17", m.Info().TxPower)
		}
		above := EmulatorConfig{Echo: func(cmd byte, v []byte) []byte {
			if cmd == CmdTxPower {
				return []byte{28}
			}
			return v
		}}
		_, _, err = startModem(t, l, above, cfg)
		if !errors.As(err, &me) || me.Param != "TxPower" || me.Echoed != 28 {
			t.Errorf("echo above the ceiling: %v, want a MismatchError", err)
		}
	})
}

func TestReopenDelay(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		want *= time.Millisecond
		if got := reopenDelay(lo, hi, n, 0); got != want {
			t.Errorf("attempt %d: %s, want %s", n, got, want)
		}
		if got := reopenDelay(lo, hi, n, 0.999); got > want || got < want*8/10 {
			t.Errorf("attempt %d with jitter: %s, want within [%s, %s]", n, got, want*8/10, want)
		}
	}
	if got := reopenDelay(lo, hi, 1000, 0.5); got != 900*time.Millisecond {
		t.Errorf("attempt 1000: %s, want 900ms (the cap, less half the jitter)", got)
	}
}

func deviceConfig(clk clock.Clock) Config {
	cfg := testConfig()
	cfg.Clock = clk
	cfg.ReconnectMin = 100 * time.Millisecond
	cfg.ReconnectMax = time.Second
	return cfg
}

// recvAsync runs one Recv on its own goroutine.
func recvAsync(d *Device) <-chan Packet {
	ch := make(chan Packet, 1)
	go func() {
		p, err := d.Recv(context.Background())
		if err == nil {
			ch <- p
		}
		close(ch)
	}()
	return ch
}

// The modem vanishes (its pty closed, its path gone) and comes back at
// the same path (issue 12 item 5): the Device marks it down (Send fails
// with ErrDown, not ErrClosed; a Recv stays blocked), backs off while
// opening fails, re-opens it when it is back, re-applies every setting,
// and the blocked Recv goes on with the new modem's packets.
func TestDeviceReopensPTY(t *testing.T) {
	port, err := NewEmulatorPort(filepath.Join(t.TempDir(), "rnode"), EmulatorConfig{})
	if err != nil {
		t.Skipf("SKIP: no pty: %v", err)
	}
	t.Cleanup(func() { port.Close() })
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	d, err := OpenDevice(port.Path(), deviceConfig(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ups, downs := make(chan struct{}, 4), make(chan struct{}, 4)
	d.OnUp(func() { ups <- struct{}{} })
	d.OnDown(func() { downs <- struct{}{} })
	emu, _ := port.Emulator()
	if err := d.Send([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if got := within(t, emu.Transmitted(), "first packet"); string(got) != "one" {
		t.Fatalf("transmitted %q", got)
	}
	if st := d.State(); !st.Up || st.Reopens != 0 || st.Info.TxPower != 14 {
		t.Fatalf("state %+v", st)
	}

	rx := recvAsync(d)
	probe.Parked(t, wait, "(*Modem).Recv(")
	if err := port.Vanish(); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, wait, func() bool { return !d.Up() }, "the device is not marked down")
	within(t, downs, "OnDown")
	if err := d.Send([]byte("lost")); !errors.Is(err, ErrDown) || errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send while down = %v, want ErrDown and not net.ErrClosed", err)
	}
	if st := d.State(); st.LastError == "" || st.NextAttempt.IsZero() {
		t.Errorf("down state %+v: want the cause and the next attempt", st)
	}
	// The port is missing: attempts fail and back off.
	probe.AdvanceUntil(t, clk, 50*time.Millisecond, wait, func() bool { return d.State().Failures >= 2 }, "two failed re-opens")
	select {
	case p := <-rx:
		t.Fatalf("Recv returned %+v while the modem was down", p)
	default:
	}

	emu2, err := port.Return()
	if err != nil {
		t.Fatal(err)
	}
	probe.AdvanceUntil(t, clk, 50*time.Millisecond, wait, d.Up, "the modem is not re-opened")
	within(t, ups, "OnUp")
	if st := d.State(); st.Reopens != 1 || st.Info.TxPower != 14 {
		t.Errorf("after re-open: %+v", st)
	}
	if s := emu2.State(); !s.RadioOn || s.TxPower != 14 || s.SF != 7 || s.Frequency != 869_525_000 || s.LTALock != 1000 {
		t.Errorf("settings not re-applied: %+v", s)
	}
	if err := emu2.Receive([]byte("again"), -80, 6); err != nil {
		t.Fatal(err)
	}
	if p := within(t, rx, "a packet after the re-open"); string(p.Data) != "again" {
		t.Fatalf("Recv after re-open = %+v", p)
	}
	if err := d.Send([]byte("two")); err != nil {
		t.Fatal(err)
	}
	if got := within(t, emu2.Transmitted(), "packet after re-open"); string(got) != "two" {
		t.Fatalf("transmitted %q", got)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	within(t, emu2.Left(), "LEAVE")
	if err := d.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
	if _, err := d.Recv(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Recv after Close = %v", err)
	}
}

// Over pipes: the first modem goes away, the next refuses the settings
// (counted as a failure, retried), the third is taken. A Device whose
// first start fails returns the error, without retrying.
func TestDeviceRetriesRefusedModem(t *testing.T) {
	configs := []EmulatorConfig{{}, {EchoSF: 9}, {}}
	emus := make(chan *Emulator, len(configs))
	var mu sync.Mutex
	var hosts []net.Conn
	opens := 0
	open := func() (io.ReadWriteCloser, error) {
		mu.Lock()
		defer mu.Unlock()
		if opens >= len(configs) {
			return nil, errors.New("no more modems")
		}
		emu := NewEmulator(configs[opens])
		opens++
		host, dev := net.Pipe()
		emu.Start(dev)
		hosts = append(hosts, dev)
		emus <- emu
		return host, nil
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range hosts {
			h.Close()
		}
	})
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	d, err := StartDevice(open, deviceConfig(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	first := within(t, emus, "first emulator")
	if err := first.Disappear(); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, wait, func() bool { return !d.Up() }, "down")
	probe.AdvanceUntil(t, clk, 50*time.Millisecond, wait, d.Up, "re-opened past the refusing modem")
	if st := d.State(); st.Reopens != 1 || st.Failures != 1 {
		t.Errorf("state %+v, want 1 re-open after 1 failure", st)
	}

	_, err = StartDevice(func() (io.ReadWriteCloser, error) {
		host, dev := net.Pipe()
		NewEmulator(EmulatorConfig{EchoSF: 9}).Start(dev)
		t.Cleanup(func() { dev.Close() })
		return host, nil
	}, deviceConfig(clk))
	var me *MismatchError
	if !errors.As(err, &me) || me.Param != "SF" {
		t.Errorf("first start on a refusing modem = %v, want a MismatchError", err)
	}
}
