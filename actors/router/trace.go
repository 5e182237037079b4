package router

import (
	"errors"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// ErrTraceTimeout: the traced path did not answer in time.
var ErrTraceTimeout = errors.New("router: trace timed out")

// Tracer runs traceroutes: a probe with hop limit h is answered by the
// node h hops away, so asking with h = 1, 2, … walks the path until the
// destination answers or MaxHops is reached. It keeps the traces in
// flight; the router sends the probes (Core.TraceProbe) and the replies
// (TraceHop actions) come back to Answer. Plain state, owned by the router
// actor.
type Tracer struct {
	MaxHops int
	pending map[[16]byte]*Trace
}

// Trace is one traceroute in flight.
type Trace struct {
	To     [16]byte
	Hop    int       // the hop the current probe asks
	Sent   time.Time // when the current probe went out
	Result messages.TraceResult
	// Owner is the caller's: where the result goes, its timer.
	Owner any
}

// Start begins a trace to to under the random id probe, at hop 1.
func (t *Tracer) Start(probe, to [16]byte, owner any) *Trace {
	if t.pending == nil {
		t.pending = make(map[[16]byte]*Trace)
	}
	tr := &Trace{To: to, Hop: 1, Owner: owner}
	t.pending[probe] = tr
	return tr
}

// Sent records that the probe for the trace's current hop went out.
func (t *Tracer) Sent(probe [16]byte, now time.Time) {
	if tr := t.pending[probe]; tr != nil {
		tr.Sent = now
	}
}

// Answer records the reply of from to probe. It returns nil for a probe
// that is not in flight (late, or not ours); otherwise the trace, and done
// when it is finished (the destination answered, or MaxHops was asked) and
// forgotten. When not done, Hop was advanced: send the next probe.
func (t *Tracer) Answer(probe, from [16]byte, now time.Time) (tr *Trace, done bool) {
	tr = t.pending[probe]
	if tr == nil {
		return nil, false
	}
	tr.Result.Hops = append(tr.Result.Hops, messages.TraceHop{Hop: tr.Hop, Address: from, RTT: now.Sub(tr.Sent)})
	if from == tr.To || tr.Hop >= t.MaxHops {
		tr.Result.Reached = from == tr.To
		delete(t.pending, probe)
		return tr, true
	}
	tr.Hop++
	return tr, false
}

// End finishes the trace with err (a timeout, a probe that could not be
// sent) and forgets it; nil if it was not in flight.
func (t *Tracer) End(probe [16]byte, err error) *Trace {
	tr := t.pending[probe]
	if tr == nil {
		return nil
	}
	delete(t.pending, probe)
	tr.Result.Err = err
	return tr
}

// Len is the number of traces in flight.
func (t *Tracer) Len() int { return len(t.pending) }
