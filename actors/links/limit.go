package links

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
)

// DefaultMaxInboundLinks is the inbound link cap when Config leaves it 0.
const DefaultMaxInboundLinks = 256

// refusalLogEvery is how often at most a refused link is logged; the line
// says how many were refused since the previous one.
const refusalLogEvery = time.Minute

// inboundLimit caps the links a node accepts from other nodes, across all
// of its listeners. A listener actor takes a slot before it spawns an
// inbound link and gives it back when the link actor has stopped (its
// connection is closed then). Links the node dials (configured and
// discovered peers) take no slot: the operator chose them; nor do peers
// heard on a LoRa radio, which its transport bounds (link.Options.MaxPeers).
//
// A refused connection is closed after its handshake (the peer is known
// then, for the log), counted in qpc_link_refused_total and logged at warn
// level, the first at once and then at most once per refusalLogEvery, so a
// peer re-dialling a full node does not flood the log.
type inboundLimit struct {
	max     int
	n       atomic.Int64
	refused *prometheus.CounterVec // transport, reason
	log     *slog.Logger
	clock   clock.Clock

	mu       sync.Mutex
	throttle logThrottle
}

func newInboundLimit(max int, refused *prometheus.CounterVec, log *slog.Logger, clk clock.Clock) *inboundLimit {
	if max <= 0 {
		max = DefaultMaxInboundLinks
	}
	return &inboundLimit{max: max, refused: refused, log: log, clock: clk, throttle: logThrottle{every: refusalLogEvery}}
}

// tryAcquire takes a slot if one is free.
func (l *inboundLimit) tryAcquire() bool {
	for {
		n := l.n.Load()
		if n >= int64(l.max) {
			return false
		}
		if l.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives a slot back.
func (l *inboundLimit) release() { l.n.Add(-1) }

// inUse is the number of slots taken.
func (l *inboundLimit) inUse() int { return int(l.n.Load()) }

// refuse counts a connection refused for want of a slot and logs it,
// throttled.
func (l *inboundLimit) refuse(transport, remote string, peer crypto.Address) {
	l.refused.WithLabelValues(transport, "max_inbound_links").Inc()
	l.mu.Lock()
	ok, since := l.throttle.allow(l.clock.Now())
	l.mu.Unlock()
	if !ok {
		return
	}
	l.log.Warn("refusing an inbound link: the node holds transports.max_inbound_links links from other nodes",
		"max_inbound_links", l.max, "peer", peer.Short(), "transport", transport, "remote", remote,
		"refused_since_last_line", since)
}

// logThrottle lets a repeated log line through at most once per every;
// it is plain state, the caller serialises it.
type logThrottle struct {
	every      time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether to log now and how many lines were held back
// since the last one.
func (t *logThrottle) allow(now time.Time) (bool, int) {
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		t.suppressed++
		return false, 0
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	return true, n
}
