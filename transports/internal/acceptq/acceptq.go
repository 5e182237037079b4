// Package acceptq runs the accept loop shared by the stream transports'
// listeners: take a raw connection, upgrade it (identity handshake) on its
// own goroutine, queue the authenticated result for Accept.
package acceptq

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quicprochat/qpc/transports"
)

// Config of a Queue. Accept, Upgrade and Addr are required.
type Config[R any] struct {
	// Prefix starts every error message, e.g. "transports/tcp".
	Prefix string
	// Accept blocks for the next raw connection. It must return an error
	// once the underlying listener is closed; IsClosed recognises it.
	Accept func() (R, error)
	// IsClosed reports whether an Accept error means "listener closed".
	// Other errors are retried with back-off.
	IsClosed func(error) bool
	// Upgrade authenticates raw and returns the Conn. It owns raw: on
	// failure it must close it. It must give up when ctx ends.
	Upgrade func(ctx context.Context, raw R) (transports.Conn, error)
	// Remote names raw for error reports.
	Remote func(raw R) string
	// MaxPending bounds concurrent handshakes plus upgraded connections
	// waiting for Accept. When reached, the loop stops taking raw
	// connections (the kernel backlog or QUIC's queue fills instead).
	MaxPending int
	// OnError, when set, is told about failed handshakes and accept errors.
	OnError func(remote string, err error)
}

// Queue is a running accept loop.
type Queue struct {
	prefix string
	ready  chan transports.Conn
	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Start runs the accept loop until Close. The caller must close the
// underlying listener before (or while) calling Close, so that
// cfg.Accept returns.
func Start[R any](cfg Config[R]) *Queue {
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{
		prefix: cfg.Prefix,
		ready:  make(chan transports.Conn),
		done:   make(chan struct{}),
		cancel: cancel,
	}
	q.wg.Add(1)
	go run(q, ctx, cfg)
	return q
}

// Accept returns the next upgraded connection; see transports.Listener.
func (q *Queue) Accept(ctx context.Context) (transports.Conn, error) {
	select {
	case <-q.done:
		return nil, fmt.Errorf("%s: accept: %w", q.prefix, net.ErrClosed)
	default:
	}
	select {
	case c := <-q.ready:
		return c, nil
	case <-q.done:
		return nil, fmt.Errorf("%s: accept: %w", q.prefix, net.ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the loop, aborts handshakes in progress, closes upgraded
// connections nobody accepted, and waits for all of its goroutines. Close
// the underlying listener first so that the loop's Accept returns.
func (q *Queue) Close() {
	q.once.Do(func() {
		close(q.done)
		q.cancel()
	})
	q.wg.Wait()
}

// run is the accept loop.
func run[R any](q *Queue, ctx context.Context, cfg Config[R]) {
	defer q.wg.Done()
	slots := make(chan struct{}, cfg.MaxPending)
	backoff := 5 * time.Millisecond
	for {
		select {
		case slots <- struct{}{}:
		case <-q.done:
			return
		}
		raw, err := cfg.Accept()
		if err != nil {
			<-slots
			if cfg.IsClosed(err) {
				return
			}
			// A transient failure such as EMFILE: back off like net/http.
			if cfg.OnError != nil {
				cfg.OnError("", fmt.Errorf("%s: accept: %w", cfg.Prefix, err))
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-q.done:
				t.Stop()
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			defer func() { <-slots }()
			c, err := cfg.Upgrade(ctx, raw)
			if err != nil {
				if cfg.OnError != nil {
					cfg.OnError(cfg.Remote(raw), err)
				}
				return
			}
			select {
			case q.ready <- c:
			case <-q.done:
				c.Close()
			}
		}()
	}
}
