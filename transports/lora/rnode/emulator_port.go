package rnode

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// EmulatorPort is an Emulator on a pty that a fixed path leads to (a
// symbolic link, as /dev/serial/by-id/… leads to a USB modem's tty), so
// that a test can unplug the modem and plug it in again: Vanish closes
// the pty and removes the link (the host's reads fail, opening the path
// fails), Return serves a new pty with a new Emulator and points the
// link at it. Where no pty can be opened NewEmulatorPort fails, and the
// tests skip.
type EmulatorPort struct {
	path string
	cfg  EmulatorConfig

	mu      sync.Mutex
	emu     *Emulator // nil while unplugged
	master  *os.File
	changed chan struct{} // closed and replaced by Vanish and Return
}

// NewEmulatorPort serves an Emulator with cfg on a new pty and makes path
// a symbolic link to its slave. path must not exist.
func NewEmulatorPort(path string, cfg EmulatorConfig) (*EmulatorPort, error) {
	p := &EmulatorPort{path: path, cfg: cfg, changed: make(chan struct{})}
	if _, err := p.Return(); err != nil {
		return nil, err
	}
	return p, nil
}

// Path is the link the host opens.
func (p *EmulatorPort) Path() string { return p.path }

// Emulator is the emulator serving now (nil while unplugged), and a
// channel closed at the next Vanish or Return.
func (p *EmulatorPort) Emulator() (*Emulator, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.emu, p.changed
}

func (p *EmulatorPort) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Vanish unplugs the modem: the link is removed and the pty closed, so
// the host's reads fail; it returns once the emulator has stopped.
func (p *EmulatorPort) Vanish() error {
	p.mu.Lock()
	emu, master := p.emu, p.master
	p.emu, p.master = nil, nil
	if master != nil {
		p.changedLocked()
	}
	p.mu.Unlock()
	if master == nil {
		return fmt.Errorf("%s: emulator port %s: already gone", prefix, p.path)
	}
	err := os.Remove(p.path)
	if cerr := master.Close(); err == nil && cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		err = cerr
	}
	<-emu.Done()
	return err
}

// Return plugs the modem in again: a new pty served by a new Emulator
// with the port's EmulatorConfig, and the link pointed at it (replaced
// atomically). A modem still plugged in vanishes first.
func (p *EmulatorPort) Return() (*Emulator, error) {
	p.mu.Lock()
	plugged := p.master != nil
	p.mu.Unlock()
	if plugged {
		if err := p.Vanish(); err != nil {
			return nil, err
		}
	}
	master, slave, err := OpenPTY()
	if err != nil {
		return nil, err
	}
	tmp := p.path + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(slave, tmp); err != nil {
		master.Close()
		return nil, fmt.Errorf("%s: emulator port: %w", prefix, err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		master.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("%s: emulator port: %w", prefix, err)
	}
	emu := NewEmulator(p.cfg)
	emu.Start(master)
	p.mu.Lock()
	p.emu, p.master = emu, master
	p.changedLocked()
	p.mu.Unlock()
	return emu, nil
}

// Close unplugs the modem if it is plugged in.
func (p *EmulatorPort) Close() error {
	p.mu.Lock()
	plugged := p.master != nil
	p.mu.Unlock()
	if !plugged {
		return nil
	}
	return p.Vanish()
}

// ShareAir carries every packet the emulator behind a transmits to the one
// behind b and back (received at -60 dBm, SNR 8 dB), following each port to
// its next emulator when it vanishes and returns, until stop is closed: two
// emulated modems in radio range of each other. A packet sent while the
// other port has no emulator is lost, as on the air.
func ShareAir(a, b *EmulatorPort, stop <-chan struct{}) {
	go carryAir(a, b, stop)
	go carryAir(b, a, stop)
}

func carryAir(from, to *EmulatorPort, stop <-chan struct{}) {
	for {
		e, changed := from.Emulator()
		var tx <-chan []byte
		if e != nil {
			tx = e.Transmitted()
		}
		select {
		case p := <-tx:
			if r, _ := to.Emulator(); r != nil {
				_ = r.Receive(p, -60, 8) // lost when the radio there is off or gone
			}
		case <-changed:
		case <-stop:
			return
		}
	}
}
