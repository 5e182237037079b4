package rnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/quicprochat/qpc/transports/lora"
)

// ErrDown: the Device's modem has gone away (unplugged, reset) and is
// being re-opened. Send fails with it at once, so that a link treats the
// packet as lost; Recv waits instead. It does not match ErrClosed.
var ErrDown = errors.New("modem is down, re-opening it")

// ReopenJitter is the share of each re-open delay drawn at random: the
// wait is uniform in [d·(1−ReopenJitter), d], so modems on one host that
// went away together are not re-opened in lock step, and the cap holds.
const ReopenJitter = 0.2

// DeviceState is how a Device's modem is doing, for status pages and
// metrics.
type DeviceState struct {
	// Up is true while a started modem runs.
	Up bool
	// Since is when the modem last went up or down (Config.Clock).
	Since time.Time
	// Reopens counts the modems started after the first one went away.
	Reopens uint64
	// Failures counts re-open attempts that failed (the port missing,
	// no DETECT answer, a setting not echoed).
	Failures uint64
	// LastError is why the modem last went down or, after that, why the
	// last re-open failed; "" until something went wrong.
	LastError string
	// NextAttempt is when the next re-open is due while down; zero while
	// up or while an attempt runs.
	NextAttempt time.Time
	// Info is what the current modem reported at start-up (the last one
	// while down).
	Info Info
}

// Device is an RNode at a port that may go away and come back: the modem
// is started once (StartDevice: a failure then is returned, so a node
// refuses to run on a modem that does not take its settings), and when
// its stream fails (a read or write error, EOF, the device gone) the
// Device marks it down and re-opens the port with a capped exponential
// back-off with jitter (Config.ReconnectMin doubling up to ReconnectMax,
// ReopenJitter), re-running the whole start-up: DETECT, every setting
// and its echo. Meanwhile Send fails with ErrDown and Recv blocks, so
// the owner (a LoRa link) goes on as over a lossy channel and never sees
// the modem change. Its methods are safe for concurrent use.
type Device struct {
	open   OpenFunc
	cfg    Config
	params lora.Params
	log    *slog.Logger
	ctx    context.Context // cancelled by Close; aborts a start-up
	cancel context.CancelFunc
	done   chan struct{} // closed when the supervisor has ended

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	cur     *Modem // nil while down
	closed  bool
	changed chan struct{} // closed and replaced when cur or closed changes
	onUp    func()
	onDown  func()
	st      DeviceState
}

// OpenDevice starts the RNode at path (OpenSerial) as a Device. Use a
// stable path such as /dev/serial/by-id/…, which follows a modem that
// comes back under another tty name.
func OpenDevice(path string, cfg Config) (*Device, error) {
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.With("port", path)
	}
	return StartDevice(func() (io.ReadWriteCloser, error) { return OpenSerial(path) }, cfg)
}

// StartDevice validates cfg (errors before open is called), opens a
// stream with open and starts the modem on it (see New); on success it
// supervises the modem until Close, re-opening it with open whenever it
// goes away.
func StartDevice(open OpenFunc, cfg Config) (*Device, error) {
	c, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	params, err := c.Params()
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", prefix, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := dial(ctx, open, c)
	if err != nil {
		cancel()
		return nil, err
	}
	d := &Device{
		open: open, cfg: c, params: params, log: c.Logger, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), changed: make(chan struct{}), cur: m,
		st: DeviceState{Up: true, Since: c.Clock.Now(), Info: m.Info()},
	}
	go d.supervise(m)
	return d, nil
}

// OnUp makes the Device call f each time a re-opened modem has started
// (not for the first one), on the Device's goroutine and holding none of
// its locks. A link uses it to greet its peers again at once.
func (d *Device) OnUp(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.onUp = f
}

// OnDown makes the Device call f each time its modem has gone away,
// before it starts re-opening it, on the Device's goroutine and holding
// none of its locks. A link uses it to end its connections: their peers
// are out of reach until the modem is back.
func (d *Device) OnDown(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.onDown = f
}

// broadcastLocked wakes Recv calls waiting for a change. d.mu is held.
func (d *Device) broadcastLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// supervise waits for the running modem m to end, then re-opens it,
// until Close.
func (d *Device) supervise(m *Modem) {
	defer close(d.done)
	for m != nil {
		select {
		case <-m.Done():
		case <-d.ctx.Done():
		}
		if d.ctx.Err() != nil {
			m.Close()
			return
		}
		cause := m.Err()
		m.Close() // releases the port; the modem is finished anyway
		d.mu.Lock()
		d.cur = nil
		d.st.Up, d.st.Since = false, d.cfg.Clock.Now()
		if cause != nil {
			d.st.LastError = cause.Error()
		}
		f := d.onDown
		d.broadcastLocked()
		d.mu.Unlock()
		d.log.Warn("modem went away; re-opening it", "err", cause)
		if f != nil {
			f()
		}
		m = d.reopen()
	}
}

// reopen tries to start a modem again, with back-off, until it does (the
// modem) or Close (nil).
func (d *Device) reopen() *Modem {
	for attempt := 0; ; attempt++ {
		delay := reopenDelay(d.cfg.ReconnectMin, d.cfg.ReconnectMax, attempt, rand.Float64())
		d.mu.Lock()
		d.st.NextAttempt = d.cfg.Clock.Now().Add(delay)
		d.mu.Unlock()
		t, stop := afterClock(d.cfg, delay)
		select {
		case <-t:
		case <-d.ctx.Done():
			stop()
			return nil
		}
		d.mu.Lock()
		d.st.NextAttempt = time.Time{}
		d.mu.Unlock()
		m, err := dial(d.ctx, d.open, d.cfg)
		if d.ctx.Err() != nil {
			if m != nil {
				m.Close()
			}
			return nil
		}
		if err != nil {
			d.mu.Lock()
			d.st.Failures++
			d.st.LastError = err.Error()
			d.mu.Unlock()
			d.log.Debug("modem not back yet", "attempt", attempt+1, "err", err)
			continue
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			m.Close()
			return nil
		}
		d.cur = m
		d.st.Up, d.st.Since, d.st.Info = true, d.cfg.Clock.Now(), m.Info()
		d.st.Reopens++
		f := d.onUp
		d.broadcastLocked()
		d.mu.Unlock()
		d.log.Info("modem re-opened", "attempts", attempt+1, "firmware", m.Info().Firmware)
		if f != nil {
			f()
		}
		return m
	}
}

// reopenDelay is the wait before re-open attempt n (0-based): lo doubled
// n times, at most hi, less up to ReopenJitter of it (r in [0, 1)).
func reopenDelay(lo, hi time.Duration, n int, r float64) time.Duration {
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - time.Duration(float64(d)*ReopenJitter*r)
}

// current is the running modem (nil while down), whether the Device is
// closed, and the channel closed at the next change.
func (d *Device) current() (*Modem, bool, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur, d.closed, d.changed
}

// Send hands the packet to the running modem (Modem.Send). While the
// modem is down, or when it goes away during the call, it fails with an
// error matching ErrDown (not ErrClosed); after Close with ErrClosed.
// Other errors are the modem's (ErrQueueFull, *ModemError, a bad
// length).
func (d *Device) Send(packet []byte) error {
	m, closed, _ := d.current()
	switch {
	case closed:
		return fmt.Errorf("%s: send: %w", prefix, ErrClosed)
	case m == nil:
		return fmt.Errorf("%s: send: %w", prefix, ErrDown)
	}
	err := m.Send(packet)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrDisconnected), errors.Is(err, ErrClosed):
		if _, closed, _ := d.current(); closed {
			return fmt.Errorf("%s: send: %w", prefix, ErrClosed)
		}
		// The cause is kept as text only: it must not match ErrClosed.
		return fmt.Errorf("%s: send: %w (%v)", prefix, ErrDown, err)
	}
	return err
}

// Recv returns the next packet a modem received. It waits while the
// modem is down and goes on with the next one; ERROR frames of the modem
// (*ModemError) are logged and skipped, since they say nothing about the
// packets to come. It returns ctx's error when ctx ends first and
// ErrClosed after Close.
func (d *Device) Recv(ctx context.Context) (Packet, error) {
	for {
		m, closed, changed := d.current()
		if closed {
			return Packet{}, fmt.Errorf("%s: %w", prefix, ErrClosed)
		}
		if m == nil {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return Packet{}, ctx.Err()
			}
		}
		p, err := m.Recv(ctx)
		switch {
		case err == nil:
			return p, nil
		case ctx.Err() != nil:
			return Packet{}, ctx.Err()
		case errors.Is(err, ErrModem):
			d.log.Debug("modem error", "err", err)
			continue
		}
		// The modem ended: wait until the supervisor has seen it.
		if cur, closed, changed := d.current(); cur == m && !closed {
			select {
			case <-changed:
			case <-ctx.Done():
				return Packet{}, ctx.Err()
			}
		}
	}
}

// State is how the modem is doing.
func (d *Device) State() DeviceState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

// Up reports whether a modem runs now.
func (d *Device) Up() bool { return d.State().Up }

// Info is what the current modem (the last one while down) reported.
func (d *Device) Info() Info { return d.State().Info }

// Stats are the current modem's counters (zero while down).
func (d *Device) Stats() Stats {
	if m, _, _ := d.current(); m != nil {
		return m.Stats()
	}
	return Stats{}
}

// Config is the configuration with the defaults filled in.
func (d *Device) Config() Config { return d.cfg }

// Params are the modulation settings for airtime calculations.
func (d *Device) Params() lora.Params { return d.params }

// Airtime is PacketAirtime with the device's settings.
func (d *Device) Airtime(n int) (time.Duration, error) { return PacketAirtime(d.params, n) }

// Close stops re-opening, closes the running modem (radio off, LEAVE) and
// waits for the supervisor to end. It is idempotent; Send and Recv then
// return ErrClosed.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		m := d.cur
		d.broadcastLocked()
		d.mu.Unlock()
		d.cancel()
		if m != nil {
			d.closeErr = m.Close()
		}
		<-d.done
	})
	return d.closeErr
}
