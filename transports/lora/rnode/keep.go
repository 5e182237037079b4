package rnode

import (
	"context"
	"fmt"
	"io"
	"time"
)

// OpenFunc opens a byte stream to a modem. Keep uses OpenSerial on a
// path; a test or a device that changes its path (a new pty, a USB
// adapter enumerated under another name) passes its own.
type OpenFunc func() (io.ReadWriteCloser, error)

// Keep keeps an RNode at path running: it opens and starts it (Open),
// hands the Modem to onModem, and when the modem disconnects opens it
// again, waiting between attempts with a capped back-off (Config
// ReconnectMin, doubling per failure up to ReconnectMax, reset after a
// successful start). Use a stable path such as /dev/serial/by-id/….
// See KeepOpen for the rules.
func Keep(ctx context.Context, path string, cfg Config, onModem func(*Modem)) error {
	return KeepOpen(ctx, func() (io.ReadWriteCloser, error) { return OpenSerial(path) }, cfg, onModem)
}

// KeepOpen is Keep over any OpenFunc. It runs until ctx is done (it then
// closes the current modem and returns ctx's error), until the owner
// Closes a modem it was given (it returns nil: the owner is done with
// the radio), or until cfg is invalid (it returns the config error at
// once). Every other failure (the open, DETECT, a mismatch, a
// disconnect) is logged at warning level and retried.
//
// onModem is called on Keep's goroutine and should not block: hand the
// modem to its owner (send it to the link actor) and return. The owner
// sees the end of a modem as ErrDisconnected from Send or Recv, or on
// Done, and waits for the next onModem.
func KeepOpen(ctx context.Context, open OpenFunc, cfg Config, onModem func(*Modem)) error {
	c, err := cfg.normalize()
	if err != nil {
		return err
	}
	log := c.Logger
	backoff := c.ReconnectMin
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := dial(ctx, open, c)
		if err == nil {
			attempt, backoff = 0, c.ReconnectMin
			onModem(m)
			select {
			case <-m.Done():
				if m.closedByOwner() {
					return nil
				}
				log.Warn("modem disconnected; reopening", "err", m.Err(), "in", backoff)
			case <-ctx.Done():
				m.Close()
				return ctx.Err()
			}
		} else {
			if err := ctx.Err(); err != nil {
				return err
			}
			log.Warn("modem start failed; retrying", "attempt", attempt, "err", err, "in", backoff)
		}
		t, stop := afterClock(c, backoff)
		select {
		case <-t:
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
		if attempt > 0 {
			backoff = min(2*backoff, c.ReconnectMax)
		}
	}
}

// dial opens a stream and starts a modem on it.
func dial(ctx context.Context, open OpenFunc, c Config) (*Modem, error) {
	rw, err := open()
	if err != nil {
		return nil, err
	}
	if rw == nil {
		return nil, fmt.Errorf("%s: open returned no stream", prefix)
	}
	return start(ctx, rw, c)
}

func afterClock(c Config, d time.Duration) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	t := c.Clock.AfterFunc(d, func() { close(ch) })
	return ch, func() { t.Stop() }
}
