package rnode

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/transports/lora"
)

func keepConfig() Config {
	cfg := testConfig()
	cfg.ReconnectMin = time.Millisecond
	cfg.ReconnectMax = 20 * time.Millisecond
	return cfg
}

// runKeep runs KeepOpen on its own goroutine; the modems it hands out
// arrive on the returned channel, its result on the other.
func runKeep(ctx context.Context, open OpenFunc, cfg Config) (<-chan *Modem, <-chan error) {
	modems := make(chan *Modem, 8)
	res := make(chan error, 1)
	go func() { res <- KeepOpen(ctx, open, cfg, func(m *Modem) { modems <- m }) }()
	return modems, res
}

func sendOK(t *testing.T, m *Modem, emu *Emulator, payload string) {
	t.Helper()
	if err := m.Send([]byte(payload)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := within(t, emu.Transmitted(), "transmitted frame"); string(got) != payload {
		t.Fatalf("transmitted %q, want %q", got, payload)
	}
}

func recvDisconnected(t *testing.T, m *Modem) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := m.Recv(ctx); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Recv = %v, want ErrDisconnected", err)
	}
}

// In memory: every open makes a new pipe with a new emulator, the way a
// modem that was unplugged and plugged in again is a new stream. The
// second emulator refuses the settings, so Keep must retry past it.
func TestKeepReconnectPipe(t *testing.T) {
	configs := []EmulatorConfig{{}, {EchoSF: 9}, {}}
	emus := make(chan *Emulator, len(configs))
	var mu sync.Mutex
	opens := 0
	open := func() (io.ReadWriteCloser, error) {
		mu.Lock()
		defer mu.Unlock()
		if opens == len(configs) {
			return nil, errors.New("no more emulators")
		}
		a, b := net.Pipe()
		emu := NewEmulator(configs[opens])
		opens++
		emu.Start(b)
		t.Cleanup(func() { b.Close(); <-emu.Done() })
		emus <- emu
		return a, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	modems, res := runKeep(ctx, open, keepConfig())

	e1, m1 := within(t, emus, "first open"), within(t, modems, "first modem")
	sendOK(t, m1, e1, "one")
	if err := e1.Disappear(); err != nil {
		t.Fatal(err)
	}
	recvDisconnected(t, m1)

	e2 := within(t, emus, "second open")
	within(t, e2.Left(), "LEAVE from the refused start-up")
	e3, m2 := within(t, emus, "third open"), within(t, modems, "second modem")
	sendOK(t, m2, e3, "two")

	cancel()
	if err := within(t, res, "Keep"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Keep = %v, want context.Canceled", err)
	}
	within(t, e3.Left(), "LEAVE when Keep stops")
	select {
	case m := <-modems:
		t.Fatalf("unexpected modem %p", m)
	default:
	}
}

// Over ptys: the emulator disappears with its pty (the slave path
// vanishes, opens fail and Keep backs off), then comes back on a new pty.
// The open function reads the current slave path, as a udev symlink
// (/dev/serial/by-id/…) follows a re-enumerated USB modem; the real
// serial code opens it each time.
func TestKeepReconnectPTY(t *testing.T) {
	var mu sync.Mutex
	path := ""
	attempts := make(chan error, 1024)
	open := func() (io.ReadWriteCloser, error) {
		mu.Lock()
		p := path
		mu.Unlock()
		rw, err := OpenSerial(p)
		select {
		case attempts <- err:
		default:
		}
		return rw, err
	}
	newPTY := func() *Emulator {
		master, p, err := OpenPTY()
		if err != nil {
			t.Skipf("SKIP: no pty: %v", err)
		}
		emu := NewEmulator(EmulatorConfig{})
		emu.Start(master)
		t.Cleanup(func() { master.Close(); <-emu.Done() })
		mu.Lock()
		path = p
		mu.Unlock()
		return emu
	}

	e1 := newPTY()
	modems, res := runKeep(context.Background(), open, keepConfig())
	m1 := within(t, modems, "first modem")
	sendOK(t, m1, e1, "one")

	if err := e1.Disappear(); err != nil {
		t.Fatal(err)
	}
	recvDisconnected(t, m1)
	for failures := 0; failures < 2; {
		if err := within(t, attempts, "open attempt"); err != nil {
			failures++
		}
	}

	e2 := newPTY()
	m2 := within(t, modems, "second modem")
	sendOK(t, m2, e2, "two")

	// The owner closing the modem ends Keep.
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, res, "Keep"); err != nil {
		t.Fatalf("Keep = %v, want nil after the owner closed the modem", err)
	}
	within(t, e2.Left(), "LEAVE")
}

// Keep by path, over a pty.
func TestKeepPath(t *testing.T) {
	master, path, err := OpenPTY()
	if err != nil {
		t.Skipf("SKIP: no pty: %v", err)
	}
	emu := NewEmulator(EmulatorConfig{})
	emu.Start(master)
	t.Cleanup(func() { master.Close(); <-emu.Done() })

	ctx, cancel := context.WithCancel(context.Background())
	modems := make(chan *Modem, 1)
	res := make(chan error, 1)
	go func() { res <- Keep(ctx, path, keepConfig(), func(m *Modem) { modems <- m }) }()
	m := within(t, modems, "modem")
	sendOK(t, m, emu, "by path")
	cancel()
	if err := within(t, res, "Keep"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Keep = %v", err)
	}
	within(t, emu.Left(), "LEAVE")
}

func TestKeepBadConfig(t *testing.T) {
	cfg := keepConfig()
	cfg.CR = 4
	called := false
	err := KeepOpen(context.Background(), func() (io.ReadWriteCloser, error) {
		called = true
		return nil, errors.New("unreachable")
	}, cfg, func(*Modem) {})
	var pe *lora.ParamError
	if !errors.As(err, &pe) || pe.Field != "CR" || called {
		t.Fatalf("KeepOpen = %v (opened %v), want the CR error before opening", err, called)
	}
}

// Cancelling the context during a start-up aborts it.
func TestKeepCancelDuringStartup(t *testing.T) {
	emu := NewEmulator(EmulatorConfig{Silent: true})
	open := pipeLink.connect(t, emu)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := keepConfig()
	cfg.DetectTimeout = time.Hour
	_, res := runKeep(ctx, open, cfg)
	within(t, emu.Seen(CmdDetect), "DETECT")
	cancel()
	if err := within(t, res, "Keep"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Keep = %v, want context.Canceled", err)
	}
}
