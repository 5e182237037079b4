package rnode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/transports/lora"
)

// wait is how long a test waits for something that should happen at
// once; reaching it fails the test (it never passes by waiting).
const wait = 10 * time.Second

// link is a way to connect the driver to an emulator.
type link struct {
	name string
	// connect starts emu on a fresh stream and returns how the driver
	// opens its end.
	connect func(t *testing.T, emu *Emulator) OpenFunc
}

// ptyLink runs the emulator on a pty master and the driver on the slave
// through go.bug.st/serial: the real serial code path.
var ptyLink = link{"pty", func(t *testing.T, emu *Emulator) OpenFunc {
	t.Helper()
	master, path, err := OpenPTY()
	if err != nil {
		t.Skipf("SKIP: no pty: %v", err)
	}
	emu.Start(master)
	t.Cleanup(func() {
		master.Close()
		<-emu.Done()
	})
	return func() (io.ReadWriteCloser, error) { return OpenSerial(path) }
}}

// pipeLink runs both ends over net.Pipe.
var pipeLink = link{"pipe", func(t *testing.T, emu *Emulator) OpenFunc {
	t.Helper()
	a, b := net.Pipe()
	emu.Start(b)
	t.Cleanup(func() {
		b.Close()
		<-emu.Done()
	})
	return func() (io.ReadWriteCloser, error) { return a, nil }
}}

var links = []link{ptyLink, pipeLink}

// forLinks runs f over a pty and over a pipe.
func forLinks(t *testing.T, f func(t *testing.T, l link)) {
	for _, l := range links {
		t.Run(l.name, func(t *testing.T) { f(t, l) })
	}
}

func testConfig() Config {
	return Config{
		Frequency:     869_525_000,
		Bandwidth:     125_000,
		TxPower:       14,
		SF:            7,
		CR:            5,
		LTALock:       lora.DutyCycle10,
		STALock:       1500,
		DetectTimeout: wait,
		ConfigTimeout: wait,
		ReadyTimeout:  wait,
		CloseTimeout:  wait,
	}
}

// startModem connects a new emulator and starts a modem on it.
func startModem(t *testing.T, l link, ec EmulatorConfig, cfg Config) (*Emulator, *Modem, error) {
	t.Helper()
	emu := NewEmulator(ec)
	open := l.connect(t, emu)
	rw, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	m, err := New(rw, cfg)
	if m != nil {
		t.Cleanup(func() { m.Close() })
	}
	return emu, m, err
}

func mustStart(t *testing.T, l link, ec EmulatorConfig, cfg Config) (*Emulator, *Modem) {
	t.Helper()
	emu, m, err := startModem(t, l, ec, cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return emu, m
}

// within fails the test unless ch delivers before the deadline.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

func TestStartup(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		cfg := testConfig()
		emu, m := mustStart(t, l, EmulatorConfig{Firmware: [2]byte{1, 81}}, cfg)
		want := Info{
			Firmware: "1.81", Platform: int(PlatformESP32), MCU: int(MCUESP32),
			Frequency: 869_525_000, Bandwidth: 125_000, TxPower: 14, SF: 7, CR: 5,
			STALock: 1500, LTALock: lora.DutyCycle10,
		}
		if got := m.Info(); got != want {
			t.Errorf("Info = %+v, want %+v", got, want)
		}
		st := emu.State()
		wantSt := EmulatorState{Frequency: 869_525_000, Bandwidth: 125_000, TxPower: 14, SF: 7, CR: 5,
			STALock: 1500, LTALock: 1000, RadioOn: true}
		if st != wantSt {
			t.Errorf("emulator state = %+v, want %+v", st, wantSt)
		}
		if !m.Ready() {
			t.Error("modem not ready after start-up")
		}
	})
}

// Opening the slave by path goes through Open (and go.bug.st/serial).
func TestOpenPTY(t *testing.T) {
	master, path, err := OpenPTY()
	if err != nil {
		t.Skipf("SKIP: no pty: %v", err)
	}
	emu := NewEmulator(EmulatorConfig{})
	emu.Start(master)
	defer func() { master.Close(); <-emu.Done() }()
	m, err := Open(path, testConfig())
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	if err := m.Send([]byte("over the pty")); err != nil {
		t.Fatal(err)
	}
	if got := within(t, emu.Transmitted(), "transmitted frame"); string(got) != "over the pty" {
		t.Fatalf("transmitted %q", got)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	within(t, emu.Left(), "LEAVE")
}

// A board that ignores the first DETECTs (still booting) is found by the
// repeated DETECT; the retry runs on the injected clock.
func TestStartupDetectRetry(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		clk := clock.NewManual(time.Unix(0, 0))
		cfg := testConfig()
		cfg.Clock = clk
		cfg.DetectInterval = 100 * time.Millisecond
		emu := NewEmulator(EmulatorConfig{BootDetects: 1})
		open := l.connect(t, emu)
		rw, err := open()
		if err != nil {
			t.Fatal(err)
		}
		res := make(chan error, 1)
		go func() {
			m, err := New(rw, cfg)
			if err == nil {
				t.Cleanup(func() { m.Close() })
			}
			res <- err
		}()
		within(t, emu.Seen(CmdDetect), "first DETECT")
		// The retry timer is armed before DETECT is written.
		clk.Advance(cfg.DetectInterval)
		if err := within(t, res, "start-up"); err != nil {
			t.Fatalf("start-up after a late DETECT answer: %v", err)
		}
	})
}

func TestStartupMismatch(t *testing.T) {
	tests := []struct {
		name   string
		ec     EmulatorConfig
		param  string
		asked  any
		echoed any
	}{
		{"wrong SF", EmulatorConfig{EchoSF: 9}, "SF", 7, 9},
		{"frequency 5 kHz off", EmulatorConfig{FrequencyOffset: 5000}, "Frequency", uint32(869_525_000), uint32(869_530_000)},
		{"frequency 101 Hz low", EmulatorConfig{FrequencyOffset: -101}, "Frequency", uint32(869_525_000), uint32(869_524_899)},
		{"txpower clamped", EmulatorConfig{Echo: func(cmd byte, v []byte) []byte {
			if cmd == CmdTxPower {
				return []byte{12}
			}
			return v
		}}, "TxPower", 14, 12},
		{"bandwidth", EmulatorConfig{Echo: func(cmd byte, v []byte) []byte {
			if cmd == CmdBandwidth {
				return be32(250_000)
			}
			return v
		}}, "Bandwidth", 125_000, 250_000},
		{"airtime lock", EmulatorConfig{Echo: func(cmd byte, v []byte) []byte {
			if cmd == CmdLTALock {
				return be16(100)
			}
			return v
		}}, "LTALock", uint16(1000), uint16(100)},
		{"malformed echo", EmulatorConfig{Echo: func(cmd byte, v []byte) []byte {
			if cmd == CmdCR {
				return []byte{5, 5}
			}
			return v
		}}, "CR", 5, "05 05"},
	}
	for _, l := range links {
		for _, tt := range tests {
			t.Run(l.name+"/"+tt.name, func(t *testing.T) {
				emu, _, err := startModem(t, l, tt.ec, testConfig())
				if !errors.Is(err, ErrParamMismatch) {
					t.Fatalf("start-up = %v, want ErrParamMismatch", err)
				}
				var me *MismatchError
				if !errors.As(err, &me) {
					t.Fatalf("%v is not a *MismatchError", err)
				}
				if me.Param != tt.param || me.Asked != tt.asked || me.Echoed != tt.echoed {
					t.Fatalf("MismatchError = %+v, want %s asked %v echoed %v", me, tt.param, tt.asked, tt.echoed)
				}
				// The driver switched the radio off and left.
				within(t, emu.Left(), "LEAVE after a mismatch")
				if emu.State().RadioOn {
					t.Error("radio left on after a refused start-up")
				}
			})
		}
	}
}

// Within FrequencyTolerance the echo is accepted.
func TestStartupFrequencyTolerance(t *testing.T) {
	_, m := mustStart(t, pipeLink, EmulatorConfig{FrequencyOffset: 100}, testConfig())
	if got := m.Info().Frequency; got != 869_525_100 {
		t.Fatalf("Info.Frequency = %d", got)
	}
}

// A setting the modem never echoes is refused when ConfigTimeout passes
// on the injected clock.
func TestStartupMissingEcho(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	cfg := testConfig()
	cfg.Clock = clk
	cfg.ConfigTimeout = 2 * time.Second
	emu := NewEmulator(EmulatorConfig{Echo: func(cmd byte, v []byte) []byte {
		if cmd == CmdSTALock {
			return nil
		}
		return v
	}})
	rw, _ := pipeLink.connect(t, emu)()
	res := make(chan error, 1)
	go func() {
		_, err := New(rw, cfg)
		res <- err
	}()
	within(t, emu.Seen(CmdRadioState), "RADIO_STATE")
	clk.Advance(cfg.ConfigTimeout)
	err := within(t, res, "start-up")
	var me *MismatchError
	if !errors.As(err, &me) || me.Param != "STALock" || me.Echoed != nil {
		t.Fatalf("start-up = %v, want a MismatchError for STALock without echo", err)
	}
}

func TestStartupRadioInitError(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		_, _, err := startModem(t, l, EmulatorConfig{FailRadio: true}, testConfig())
		if !errors.Is(err, ErrRadioInit) || !errors.Is(err, ErrModem) {
			t.Fatalf("start-up = %v, want ErrRadioInit", err)
		}
	})
}

func TestNotRNode(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		t.Run("wrong answer", func(t *testing.T) {
			_, _, err := startModem(t, l, EmulatorConfig{DetectReply: 0x21}, testConfig())
			if !errors.Is(err, ErrNotRNode) {
				t.Fatalf("start-up = %v, want ErrNotRNode", err)
			}
		})
		t.Run("no answer", func(t *testing.T) {
			clk := clock.NewManual(time.Unix(0, 0))
			cfg := testConfig()
			cfg.Clock = clk
			cfg.DetectTimeout = 3 * time.Second
			emu := NewEmulator(EmulatorConfig{Silent: true})
			rw, err := l.connect(t, emu)()
			if err != nil {
				t.Fatal(err)
			}
			res := make(chan error, 1)
			go func() {
				_, err := New(rw, cfg)
				res <- err
			}()
			within(t, emu.Seen(CmdDetect), "DETECT")
			clk.Advance(cfg.DetectTimeout)
			if err := within(t, res, "start-up"); !errors.Is(err, ErrNotRNode) {
				t.Fatalf("start-up = %v, want ErrNotRNode", err)
			}
		})
	})
}

func TestSend(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		emu, m := mustStart(t, l, EmulatorConfig{}, testConfig())
		frames := [][]byte{
			[]byte("hello"),
			{0xC0, 0xDB, 0xDC, 0xDD, 0xC0},
			bytes.Repeat([]byte{0xC0}, MaxDataLen),
			{0x00},
		}
		for _, f := range frames {
			if err := m.Send(f); err != nil {
				t.Fatalf("Send(%d bytes): %v", len(f), err)
			}
		}
		for i, want := range frames {
			if got := within(t, emu.Transmitted(), "transmitted frame"); !bytes.Equal(got, want) {
				t.Fatalf("frame %d: emulator got % x, want % x", i, got, want)
			}
		}
		s := m.Stats()
		if s.TxFrames != 4 || s.TxBytes != uint64(5+5+MaxDataLen+1) {
			t.Errorf("stats %+v", s)
		}
		for _, n := range []int{0, MaxDataLen + 1} {
			err := m.Send(make([]byte, n))
			var pe *lora.ParamError
			if !errors.As(err, &pe) || pe.Field != "PayloadLen" {
				t.Errorf("Send(%d bytes) = %v, want a PayloadLen ParamError", n, err)
			}
		}
	})
}

func TestRecv(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		emu, m := mustStart(t, l, EmulatorConfig{}, testConfig())
		tests := []struct {
			data []byte
			rssi int
			snr  float64
		}{
			{[]byte("heard"), -90, 7.25},
			{[]byte{0xC0, 0xDB}, -120, -3.5},
			{bytes.Repeat([]byte{0x42}, MaxDataLen), -157, -32},
			{[]byte{1}, 98, 31.75},
		}
		for _, tt := range tests {
			if err := emu.Receive(tt.data, tt.rssi, tt.snr); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		for i, tt := range tests {
			p, err := m.Recv(ctx)
			if err != nil {
				t.Fatalf("Recv %d: %v", i, err)
			}
			if !bytes.Equal(p.Data, tt.data) || p.RSSI != tt.rssi || p.SNR != tt.snr || !p.Measured {
				t.Errorf("packet %d = %x RSSI %d SNR %v measured %v, want %x %d %v",
					i, p.Data, p.RSSI, p.SNR, p.Measured, tt.data, tt.rssi, tt.snr)
			}
		}
		// A DATA frame without the statistics before it.
		if err := emu.Send(CmdData, []byte("bare")); err != nil {
			t.Fatal(err)
		}
		p, err := m.Recv(ctx)
		if err != nil || string(p.Data) != "bare" || p.Measured || p.RSSI != 0 {
			t.Fatalf("bare packet = %+v, %v", p, err)
		}
		// Recv honours its context.
		short, cancel2 := context.WithCancel(context.Background())
		cancel2()
		if _, err := m.Recv(short); !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv(cancelled) = %v", err)
		}
	})
}

// Garbage, an oversize frame and an unknown command on the stream are
// counted and skipped; the next packet still arrives.
func TestRecvResync(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		emu, m := mustStart(t, l, EmulatorConfig{}, testConfig())
		if err := emu.WriteRaw(bytes.Repeat([]byte("rst:0x1 (POWERON_RESET),boot:0x13\r\n"), 30)); err != nil {
			t.Fatal(err)
		}
		if err := emu.Send(0x77, []byte{1, 2}); err != nil {
			t.Fatal(err)
		}
		if err := emu.Receive([]byte("after"), -80, 5); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		p, err := m.Recv(ctx)
		if err != nil || string(p.Data) != "after" {
			t.Fatalf("Recv = %+v, %v", p, err)
		}
		if s := m.Stats(); s.BadFrames != 1 || s.Unknown != 1 {
			t.Fatalf("stats %+v, want one bad frame and one unknown", s)
		}
	})
}

// Packets beyond RecvQueue are dropped and counted, never block the
// reader.
func TestRecvQueueFull(t *testing.T) {
	frames := make(chan Frame, 64)
	cfg := testConfig()
	cfg.RecvQueue = 2
	cfg.onFrame = func(f Frame) { frames <- f }
	emu, m := mustStart(t, pipeLink, EmulatorConfig{}, cfg)
	for i := range 3 {
		if err := emu.Receive([]byte{byte(i)}, -100, 0); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < 3; {
		if f := within(t, frames, "DATA handled"); f.Cmd == CmdData {
			n++
		}
	}
	if s := m.Stats(); s.RxFrames != 3 || s.RxDropped != 1 {
		t.Fatalf("stats %+v, want 3 received, 1 dropped", s)
	}
}

// handled waits until the driver has applied a frame with command cmd.
func handled(t *testing.T, frames <-chan Frame, cmd byte) {
	t.Helper()
	for {
		if f := within(t, frames, "frame handled"); f.Cmd == cmd {
			return
		}
	}
}

func TestModemErrors(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		frames := make(chan Frame, 64)
		cfg := testConfig()
		cfg.onFrame = func(f Frame) { frames <- f }
		emu, m := mustStart(t, l, EmulatorConfig{}, cfg)

		// A blocked Recv wakes with the error.
		res := make(chan error, 1)
		go func() {
			_, err := m.Recv(context.Background())
			res <- err
		}()
		if err := emu.SendError(ErrorTxFailed); err != nil {
			t.Fatal(err)
		}
		err := within(t, res, "Recv")
		var me *ModemError
		if !errors.Is(err, ErrTxFailed) || !errors.Is(err, ErrModem) || !errors.As(err, &me) || me.Code != ErrorTxFailed {
			t.Fatalf("Recv = %v, want ErrTxFailed", err)
		}
		handled(t, frames, CmdError)

		// The next Send reports the error instead of sending; the one after
		// sends.
		if err := emu.SendError(ErrorEEPROMLocked); err != nil {
			t.Fatal(err)
		}
		handled(t, frames, CmdError)
		if err := m.Send([]byte("x")); !errors.Is(err, ErrEEPROMLocked) {
			t.Fatalf("Send = %v, want ErrEEPROMLocked", err)
		}
		if err := m.Send([]byte("y")); err != nil {
			t.Fatalf("Send after the error: %v", err)
		}
		if got := within(t, emu.Transmitted(), "frame"); string(got) != "y" {
			t.Fatalf("transmitted %q", got)
		}

		// Unknown codes match ErrModem only.
		if err := emu.SendError(0x42); err != nil {
			t.Fatal(err)
		}
		handled(t, frames, CmdError)
		err = m.Send([]byte("z"))
		if !errors.Is(err, ErrModem) || errors.Is(err, ErrTxFailed) {
			t.Fatalf("Send = %v, want a bare ErrModem", err)
		}
		for code, sentinel := range map[byte]error{ErrorMemoryLow: ErrMemoryLow, ErrorModemTimeout: ErrModemTimeout, ErrorRadioInit: ErrRadioInit} {
			if err := emu.SendError(code); err != nil {
				t.Fatal(err)
			}
			handled(t, frames, CmdError)
			if _, err := m.Recv(context.Background()); !errors.Is(err, sentinel) {
				t.Fatalf("code %#x: Recv = %v, want %v", code, err, sentinel)
			}
		}
		s := m.Stats()
		if s.ModemErrors != 6 || s.ErrorsByCode[ErrorTxFailed] != 1 || s.ErrorsByCode[0x42] != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestQueueFull(t *testing.T) {
	setup := func(t *testing.T, l link, clk clock.Clock) (*Emulator, *Modem, chan Frame, chan struct{}) {
		frames := make(chan Frame, 64)
		waiting := make(chan struct{}, 1)
		cfg := testConfig()
		if clk != nil {
			cfg.Clock = clk
		}
		cfg.ReadyTimeout = 5 * time.Second
		cfg.onFrame = func(f Frame) { frames <- f }
		cfg.onReadyWait = func() { waiting <- struct{}{} }
		emu, m := mustStart(t, l, EmulatorConfig{}, cfg)
		return emu, m, frames, waiting
	}
	sendAsync := func(m *Modem, b []byte) chan error {
		res := make(chan error, 1)
		go func() { res <- m.Send(b) }()
		return res
	}
	noneTransmitted := func(t *testing.T, emu *Emulator) {
		t.Helper()
		select {
		case f := <-emu.Transmitted():
			t.Fatalf("emulator got %q while its queue was full", f)
		default:
		}
	}

	forLinks(t, func(t *testing.T, l link) {
		t.Run("READY releases", func(t *testing.T) {
			emu, m, frames, waiting := setup(t, l, nil)
			if err := emu.SetQueueFull(true); err != nil {
				t.Fatal(err)
			}
			handled(t, frames, CmdReady)
			res := sendAsync(m, []byte("queued"))
			within(t, waiting, "Send waiting for READY")
			noneTransmitted(t, emu)
			if err := emu.SetQueueFull(false); err != nil {
				t.Fatal(err)
			}
			if err := within(t, res, "Send"); err != nil {
				t.Fatalf("Send = %v", err)
			}
			if got := within(t, emu.Transmitted(), "frame"); string(got) != "queued" {
				t.Fatalf("transmitted %q", got)
			}
			if s := m.Stats(); s.ReadyWaits != 1 || s.QueueFull != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
		t.Run("ERROR 04 stops sending until READY", func(t *testing.T) {
			emu, m, frames, waiting := setup(t, l, nil)
			if err := emu.SendError(ErrorQueueFull); err != nil {
				t.Fatal(err)
			}
			handled(t, frames, CmdError)
			if m.Ready() {
				t.Fatal("Ready after ERROR 04")
			}
			res := sendAsync(m, []byte("later"))
			within(t, waiting, "Send waiting for READY")
			if err := emu.SetQueueFull(false); err != nil {
				t.Fatal(err)
			}
			if err := within(t, res, "Send"); err != nil {
				t.Fatalf("Send = %v", err)
			}
			if got := within(t, emu.Transmitted(), "frame"); string(got) != "later" {
				t.Fatalf("transmitted %q", got)
			}
		})
		t.Run("timeout", func(t *testing.T) {
			clk := clock.NewManual(time.Unix(0, 0))
			emu, m, frames, waiting := setup(t, l, clk)
			if err := emu.SetQueueFull(true); err != nil {
				t.Fatal(err)
			}
			handled(t, frames, CmdReady)
			res := sendAsync(m, []byte("never"))
			within(t, waiting, "Send waiting for READY")
			clk.Advance(5 * time.Second)
			err := within(t, res, "Send")
			if !errors.Is(err, ErrQueueFull) || !errors.Is(err, lora.ErrQueueFull) {
				t.Fatalf("Send = %v, want ErrQueueFull", err)
			}
			noneTransmitted(t, emu)
		})
		t.Run("NoWait", func(t *testing.T) {
			frames := make(chan Frame, 64)
			cfg := testConfig()
			cfg.ReadyTimeout = NoWait
			cfg.onFrame = func(f Frame) { frames <- f }
			emu, m := mustStart(t, l, EmulatorConfig{}, cfg)
			if err := emu.SetQueueFull(true); err != nil {
				t.Fatal(err)
			}
			handled(t, frames, CmdReady)
			if err := m.Send([]byte("now")); !errors.Is(err, ErrQueueFull) {
				t.Fatalf("Send = %v, want ErrQueueFull at once", err)
			}
			if err := emu.SetQueueFull(false); err != nil {
				t.Fatal(err)
			}
			handled(t, frames, CmdReady)
			sendOK(t, m, emu, "now")
		})
		t.Run("Close wakes a waiting Send", func(t *testing.T) {
			emu, m, frames, waiting := setup(t, l, nil)
			if err := emu.SetQueueFull(true); err != nil {
				t.Fatal(err)
			}
			handled(t, frames, CmdReady)
			res := sendAsync(m, []byte("never"))
			within(t, waiting, "Send waiting for READY")
			m.Close()
			if err := within(t, res, "Send"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send = %v, want ErrClosed", err)
			}
		})
	})
}

func TestDisconnect(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		emu, m := mustStart(t, l, EmulatorConfig{}, testConfig())
		res := make(chan error, 1)
		go func() {
			_, err := m.Recv(context.Background())
			res <- err
		}()
		if err := emu.Disappear(); err != nil {
			t.Fatal(err)
		}
		if err := within(t, res, "Recv"); !errors.Is(err, ErrDisconnected) {
			t.Fatalf("Recv = %v, want ErrDisconnected", err)
		}
		within(t, m.Done(), "Done")
		if err := m.Send([]byte("x")); !errors.Is(err, ErrDisconnected) {
			t.Fatalf("Send = %v, want ErrDisconnected", err)
		}
		if err := m.Err(); !errors.Is(err, ErrDisconnected) {
			t.Fatalf("Err = %v", err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("Close after a disconnect: %v", err)
		}
		if err := m.Send([]byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close = %v, want ErrClosed", err)
		}
	})
}

// Packets queued before a disconnect are still delivered.
func TestDisconnectDrains(t *testing.T) {
	frames := make(chan Frame, 64)
	cfg := testConfig()
	cfg.onFrame = func(f Frame) { frames <- f }
	emu, m := mustStart(t, pipeLink, EmulatorConfig{}, cfg)
	if err := emu.Receive([]byte("last words"), -100, 1); err != nil {
		t.Fatal(err)
	}
	handled(t, frames, CmdData)
	emu.Disappear()
	within(t, m.Done(), "Done")
	p, err := m.Recv(context.Background())
	if err != nil || string(p.Data) != "last words" {
		t.Fatalf("Recv = %+v, %v", p, err)
	}
	if _, err := m.Recv(context.Background()); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Recv = %v, want ErrDisconnected", err)
	}
}

func TestClose(t *testing.T) {
	forLinks(t, func(t *testing.T, l link) {
		emu, m := mustStart(t, l, EmulatorConfig{}, testConfig())
		res := make(chan error, 1)
		go func() {
			_, err := m.Recv(context.Background())
			res <- err
		}()
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		within(t, emu.Left(), "LEAVE 0xFF")
		if emu.State().RadioOn {
			t.Error("radio still on after Close")
		}
		if err := within(t, res, "Recv"); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Recv = %v, want net.ErrClosed", err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := m.Send([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Send = %v, want net.ErrClosed", err)
		}
		within(t, m.Done(), "Done")
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		field string
		edit  func(*Config)
	}{
		{"Frequency", func(c *Config) { c.Frequency = 0 }},
		{"Frequency", func(c *Config) { c.Frequency = 1_500_000_000 }},
		{"Bandwidth", func(c *Config) { c.Bandwidth = 100_000 }},
		{"Bandwidth", func(c *Config) { c.Bandwidth = 7810 }},
		{"TxPower", func(c *Config) { c.TxPower = -1 }},
		{"TxPower", func(c *Config) { c.TxPower = 31 }},
		{"SF", func(c *Config) { c.SF = 4 }},
		{"SF", func(c *Config) { c.SF = 13 }},
		{"CR", func(c *Config) { c.CR = 1 }},
		{"CR", func(c *Config) { c.CR = 9 }},
		{"STALock", func(c *Config) { c.STALock = 10001 }},
		{"LTALock", func(c *Config) { c.LTALock = 20000 }},
		{"Preamble", func(c *Config) { c.Preamble = -1 }},
		{"Settle", func(c *Config) { c.Settle = -time.Second }},
		{"CloseTimeout", func(c *Config) { c.CloseTimeout = -1 }},
		{"ReconnectMax", func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Minute, time.Second }},
		{"RecvQueue", func(c *Config) { c.RecvQueue = -1 }},
	}
	for _, tt := range tests {
		c := testConfig()
		tt.edit(&c)
		err := c.Validate()
		var pe *lora.ParamError
		if !errors.As(err, &pe) || pe.Field != tt.field || !errors.Is(err, lora.ErrBadParams) {
			t.Errorf("%s: Validate = %v, want a ParamError for it", tt.field, err)
		}
		// Open checks the config before it touches the port.
		if _, err := Open("/nonexistent/tty", c); !errors.As(err, &pe) {
			t.Errorf("%s: Open = %v, want the config error", tt.field, err)
		}
	}
	if err := testConfig().Validate(); err != nil {
		t.Fatalf("testConfig: %v", err)
	}
	for _, f := range []uint32{137_000_000, 433_775_000, 868_100_000, 915_000_000, 2_450_000_000} {
		c := testConfig()
		c.Frequency = f
		if err := c.Validate(); err != nil {
			t.Errorf("Frequency %d: %v", f, err)
		}
	}
	// New refuses a bad config too, and closes the stream it was given.
	a, b := net.Pipe()
	defer b.Close()
	c := testConfig()
	c.SF = 3
	if _, err := New(a, c); !errors.Is(err, lora.ErrBadParams) {
		t.Fatalf("New = %v", err)
	}
	if _, err := a.Write([]byte{0}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("stream not closed: %v", err)
	}
}

func TestAirtime(t *testing.T) {
	// The AN1200.13 reference: SF7, 20 bytes on air, preamble 8: 56.576 ms.
	p := lora.Params{SF: 7, Bandwidth: 125_000, CR: lora.CR45, Preamble: 8}
	if got, err := PacketAirtime(p, 19); err != nil || got != 56_576*time.Microsecond {
		t.Fatalf("PacketAirtime(19) = %v, %v; want 56.576ms", got, err)
	}
	// Split packets: 254 + the rest, each with its header.
	a255, _ := lora.Airtime(p, 255)
	a47, _ := lora.Airtime(p, 47)
	if got, err := PacketAirtime(p, 300); err != nil || got != a255+a47 {
		t.Fatalf("PacketAirtime(300) = %v, %v; want %v", got, err, a255+a47)
	}
	if got, _ := PacketAirtime(p, 254); got != a255 {
		t.Fatalf("PacketAirtime(254) = %v, want %v", got, a255)
	}
	for _, n := range []int{-1, MaxDataLen + 1} {
		if _, err := PacketAirtime(p, n); !errors.Is(err, lora.ErrBadParams) {
			t.Errorf("PacketAirtime(%d) = %v", n, err)
		}
	}

	for _, tt := range []struct{ sf, bw, want int }{
		{7, 125_000, 24}, {8, 125_000, 18}, {12, 125_000, 18}, {5, 500_000, 375}, {7, 250_000, 47},
	} {
		if got, err := RNodePreamble(tt.sf, tt.bw); err != nil || got != tt.want {
			t.Errorf("RNodePreamble(SF%d, %d) = %d, %v; want %d", tt.sf, tt.bw, got, err, tt.want)
		}
	}

	_, m := mustStart(t, pipeLink, EmulatorConfig{}, testConfig())
	mp := m.Params()
	if mp.SF != 7 || mp.Bandwidth != 125_000 || mp.CR != lora.CR45 || mp.Preamble != 24 {
		t.Fatalf("Params = %+v", mp)
	}
	want, _ := lora.Airtime(mp, 21)
	if got, err := m.Airtime(20); err != nil || got != want {
		t.Fatalf("Airtime(20) = %v, %v; want %v", got, err, want)
	}
}
