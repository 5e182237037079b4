// Package acceptq runs the accept loop shared by the stream transports'
// listeners: take a raw connection, upgrade it (identity handshake) on its
// own goroutine, queue the authenticated result for Accept.
//
// Handshake slots are the listener's scarce resource: a peer that opens a
// connection and sends nothing holds one until the handshake times out. So
// the loop never stops accepting (that would leave honest peers in the
// kernel's backlog behind the idle ones); it admits a connection to a
// handshake only within limits and closes the others at once:
//
//   - at most Limits.PerSource pending from one source (an IPv4 address or
//     an IPv6 /64), so one host cannot hold more than a few slots;
//   - at most Limits.MaxPending in all, plus Limits.Reserved slots open
//     only to sources that completed a handshake recently (a bounded
//     memory of Limits.Remember sources), so a flood from many sources
//     still leaves room for the peers the node already knows.
package acceptq

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quicprochat/qpc/transports"
)

// Config of a Queue. Accept, IsClosed, Upgrade, Remote and Refuse are
// required.
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
	// Remote is raw's remote address: its source for the limits and its
	// name in error reports.
	Remote func(raw R) net.Addr
	// Refuse closes a raw connection that is not admitted to a handshake.
	Refuse func(raw R)
	// Limits bound the pending handshakes, in all and per source. Zero
	// fields mean transports.DefaultMaxPending, DefaultMaxPendingPerSource,
	// a quarter of MaxPending reserved, DefaultRemember.
	Limits Limits
	// OnError, when set, is told about failed handshakes, refused
	// connections (the error matches transports.ErrListenerBusy) and
	// accept errors.
	OnError func(remote string, err error)
}

// Queue is a running accept loop.
type Queue struct {
	prefix string
	ready  chan transports.Conn
	done   chan struct{}
	cancel context.CancelFunc
	adm    *admission
	wg     sync.WaitGroup
	once   sync.Once
}

// Stats reports the slots in use and the sources remembered.
func (q *Queue) Stats() Stats { return q.adm.stats() }

// withDefaults fills in the zero fields of l.
func (l Limits) withDefaults() Limits {
	if l.MaxPending <= 0 {
		l.MaxPending = transports.DefaultMaxPending
	}
	if l.PerSource <= 0 {
		l.PerSource = transports.DefaultMaxPendingPerSource
	}
	if l.Reserved == 0 {
		l.Reserved = max(l.MaxPending/4, 1)
	}
	if l.Reserved < 0 {
		l.Reserved = 0
	}
	if l.Remember <= 0 {
		l.Remember = DefaultRemember
	}
	return l
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
		adm:    newAdmission(cfg.Limits.withDefaults()),
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
	backoff := 5 * time.Millisecond
	for {
		raw, err := cfg.Accept()
		if err != nil {
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
		select {
		case <-q.done:
			cfg.Refuse(raw)
			return
		default:
		}
		remote := cfg.Remote(raw)
		name := nameOf(remote)
		tk, no := q.adm.admit(SourceOf(remote))
		if no != nil {
			cfg.Refuse(raw)
			if cfg.OnError != nil {
				cfg.OnError(name, fmt.Errorf("%s: refused %s: %w: %w", cfg.Prefix, name, transports.ErrListenerBusy, no))
			}
			continue
		}
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			defer q.adm.release(tk)
			c, err := cfg.Upgrade(ctx, raw)
			if err != nil {
				if cfg.OnError != nil {
					cfg.OnError(name, err)
				}
				return
			}
			q.adm.succeeded(tk.src)
			select {
			case q.ready <- c:
			case <-q.done:
				c.Close()
			}
		}()
	}
}

func nameOf(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	return a.String()
}
