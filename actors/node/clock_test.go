package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/mem"
)

// The tests in this file run nodes on a manual clock (WithClock) and drive
// every timer of the tree through it: the router's GC tick and route
// expiry, the store's GC, the periodic re-announce, the trace timeout,
// the outbox's retransmission backoff and the inbox's retention tick. A
// node on a manual clock also needs its clock moved for its group commits
// (the 10 ms gather, the 1 s lazy flush): advanceUntil does that while it
// waits.

// manualClock starts a manual clock at the real time now, to the second:
// the shutdown's deadline is taken on the node's clock and waited for in
// real time, and envelopes carry their expiry in whole seconds.
func manualClock() *clock.Manual { return clock.NewManual(time.Now().Truncate(time.Second)) }

// advanceUntil moves clk in steps until cond holds (real-time deadline).
func advanceUntil(t testing.TB, clk *clock.Manual, step time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	probe.AdvanceUntil(t, clk, step, 30*time.Second, cond, what, args...)
}

// advanceTo moves clk to at in steps of at most step, letting the actors
// run between steps.
func advanceTo(t testing.TB, clk *clock.Manual, at time.Time, step time.Duration) {
	t.Helper()
	probe.Until(t, 30*time.Second, func() bool {
		d := at.Sub(clk.Now())
		if d <= 0 {
			return true
		}
		clk.Advance(min(d, step))
		return false
	}, "clock at %v (now %v)", at, clk.Now())
}

// hasRoute reports whether n routes to addr now.
func hasRoute(t testing.TB, n *Node, addr crypto.Address) (messages.RouteInfo, bool) {
	t.Helper()
	rs, err := n.Routes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Address == addr {
			return r, true
		}
	}
	return messages.RouteInfo{}, false
}

// envelopeFrom is a signed envelope from id to dest with the given expiry
// (whole seconds), carrying payload.
func envelopeFrom(t testing.TB, id *crypto.Identity, dest crypto.Address, expiry time.Time, pt messages.PayloadType, payload []byte) []byte {
	t.Helper()
	env := messages.NewEnvelope(id.Address(), dest, 8, expiry, pt, payload)
	env.Seq = testSeq.Add(1)
	if err := env.Sign(id.Sign); err != nil {
		t.Fatal(err)
	}
	b, err := messages.EncodeEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealedAt is sealedTo with an expiry of the test's choosing.
func sealedAt(t testing.TB, id *crypto.Identity, n *Node, text string, expiry time.Time) []byte {
	t.Helper()
	sealed, err := crypto.Seal(n.seal.Public(), []byte(text), crypto.SealAAD(id.Address(), n.Address()))
	if err != nil {
		t.Fatal(err)
	}
	return envelopeFrom(t, id, n.Address(), expiry, messages.PayloadSealed, sealed)
}

// A route expires on the router's GC tick, once a minute, after
// routing.route_ttl without a refresh: the older of two routes goes at the
// first tick past its TTL while the younger stays, and the younger goes at
// the first tick past its own.
func TestRouteExpiresOnTheGCTick(t *testing.T) {
	clk := manualClock()
	c := testConfig(t)
	c.Transports.Listen = nil
	ttl := c.Routing.RouteTTL.D() // 30 min
	n, _ := startNode(t, c, WithClock(clk))
	t0 := clk.Now()
	old, young := newIdentity(t), newIdentity(t)
	n.Inject("test", old.Address(), announceAt(t, old, t0))
	waitRoute(t, n, old.Address())
	advanceTo(t, clk, t0.Add(10*time.Minute), time.Second)
	t1 := clk.Now()
	n.Inject("test", young.Address(), announceAt(t, young, t1))
	if r := waitRoute(t, n, young.Address()); !r.Refreshed.Equal(t1) {
		t.Fatalf("route refreshed at %v, want the clock's %v", r.Refreshed, t1)
	}
	// The GC runs every minute (re-armed when it ran); a step of the test
	// may pass while a tick is on its way, so allow a minute and a half.
	const slack = 90 * time.Second
	for _, tc := range []struct {
		gone, kept *crypto.Identity
		refreshed  time.Time
	}{{old, young, t0}, {young, nil, t1}} {
		advanceUntil(t, clk, time.Second, func() bool { _, ok := hasRoute(t, n, tc.gone.Address()); return !ok },
			"route to %s expired", tc.gone.Address().Short())
		at, expiry := clk.Now(), tc.refreshed.Add(ttl)
		if at.Before(expiry) || at.After(expiry.Add(slack)) {
			t.Fatalf("route refreshed at +%v gone at +%v, want between its expiry +%v and one GC tick later",
				tc.refreshed.Sub(t0), at.Sub(t0), expiry.Sub(t0))
		}
		if tc.kept != nil {
			if _, ok := hasRoute(t, n, tc.kept.Address()); !ok {
				t.Fatalf("route to %s (refreshed at +%v) gone with the older one at +%v", tc.kept.Address().Short(), t1.Sub(t0), at.Sub(t0))
			}
		}
	}
	if got := testutil.ToFloat64(n.Metrics().Mesh.Routes); got != 0 {
		t.Fatalf("routes gauge %v after both expired", got)
	}
}

// The periodic re-announce is what keeps a node's route alive at its
// neighbours: A and B linked over mem, on one manual clock, through four
// route TTLs. B's route to A is refreshed at every one of A's intervals
// (announce.interval ±10 %), while a route B learned once from a peer that
// never announces again expires.
func TestReannounceKeepsNeighbourRoutes(t *testing.T) {
	clk := manualClock()
	net := mem.NewNetwork()
	ca := testConfig(t)
	ca.Transports.Listen = []string{"mem://a"}
	a, _ := startNode(t, ca, WithClock(clk), WithMemNetwork(net))
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = []string{"mem://a"}
	b, _ := startNode(t, cb, WithClock(clk), WithMemNetwork(net))
	t0 := clk.Now()
	first := waitRoute(t, b, a.Address())
	silent := newIdentity(t)
	b.Inject("test", silent.Address(), announceAt(t, silent, t0))
	waitRoute(t, b, silent.Address())

	interval, ttl := ca.Announce.Interval.D(), cb.Routing.RouteTTL.D()
	lastSeq, refreshes := first.Seq, 0
	end := t0.Add(4 * ttl)
	probe.Until(t, 60*time.Second, func() bool {
		if !clk.Now().Before(end) {
			return true
		}
		clk.Advance(5 * time.Second)
		r, ok := hasRoute(t, b, a.Address())
		if !ok {
			t.Fatalf("B lost its route to A at +%v", clk.Now().Sub(t0))
		}
		if r.Seq != lastSeq {
			// A's announce is signed at its tick: no sooner than 90 % of
			// the interval after the last one.
			if gap := time.Duration(r.Seq-lastSeq) * time.Millisecond; gap < interval*9/10 {
				t.Fatalf("A re-announced after %v, interval %v -10 %%", gap, interval)
			}
			lastSeq = r.Seq
			refreshes++
		}
		return false
	}, "four route TTLs on the clock")
	// A tick comes at most 110 % of the interval after the last.
	if want := int(4 * ttl / (interval * 11 / 10)); refreshes < want {
		t.Fatalf("B's route to A refreshed %d times in %v, want at least %d (interval %v)", refreshes, 4*ttl, want, interval)
	}
	if got := testutil.ToFloat64(a.Metrics().Mesh.AnnouncesSent); got < float64(refreshes) {
		t.Fatalf("A counted %v announces sent, B saw %d", got, refreshes)
	}
	if _, ok := hasRoute(t, b, silent.Address()); ok {
		t.Fatalf("the route from a peer silent for %v did not expire (TTL %v)", 4*ttl, ttl)
	}
}

// A trace whose path stops answering ends at its timeout on the router's
// clock, not before, with the hops that did answer: A – B over mem, B
// knows C through a neighbour X it has no link to, so the probe for hop 2
// is lost after B.
func TestTraceTimesOutOnTheClock(t *testing.T) {
	clk := manualClock()
	net := mem.NewNetwork()
	ca := testConfig(t)
	ca.Transports.Listen = []string{"mem://a"}
	a, _ := startNode(t, ca, WithClock(clk), WithMemNetwork(net))
	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = []string{"mem://a"}
	b, _ := startNode(t, cb, WithClock(clk), WithMemNetwork(net))
	waitRoute(t, a, b.Address())
	dest, x := newIdentity(t), newIdentity(t)
	b.Inject("test", x.Address(), announceAt(t, dest, clk.Now()))
	// B passes the announce on after a random delay of up to 50 ms.
	advanceUntil(t, clk, 10*time.Millisecond, func() bool { _, ok := hasRoute(t, a, dest.Address()); return ok },
		"A learns C's route through B")
	// Let the group commits and lazy flushes the announces started end, so
	// nothing of the trace waits for the clock.
	advanceTo(t, clk, clk.Now().Add(2*time.Second), 10*time.Millisecond)
	start := clk.Now()

	const timeout = 30 * time.Second
	type result struct {
		res *messages.TraceResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := a.Trace(context.Background(), dest.Address(), timeout)
		done <- result{res, err}
	}()
	// B answered hop 1; A's probe for hop 2 reached B, which has no link
	// to X to forward it on.
	waitCount(t, b.Metrics().Links.NoLink, 1, "B's probe to X without a link")
	clk.Advance(timeout - time.Millisecond)
	hasRoute(t, a, dest.Address()) // a round trip through A's router
	select {
	case r := <-done:
		t.Fatalf("trace ended before its timeout on the clock: %+v, %v", r.res, r.err)
	default:
	}
	clk.Advance(time.Millisecond)
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no trace result after the clock passed its timeout")
	}
	if !errors.Is(r.err, router.ErrTraceTimeout) || r.res == nil || r.res.Reached {
		t.Fatalf("trace = %+v, %v; want ErrTraceTimeout", r.res, r.err)
	}
	if len(r.res.Hops) != 1 || r.res.Hops[0].Address != b.Address() {
		t.Fatalf("hops %+v, want B's answer only", r.res.Hops)
	}
	if got := clk.Now().Sub(start); got != timeout {
		t.Fatalf("clock moved %v", got)
	}
}

// The outbox retransmits a message without a receipt after 5 s, then
// twice as long each time up to 5 min, each wait ±25 %, on the router's
// clock; it fails the message at its expiry (store.ttl after sending),
// neither before nor after.
func TestOutboxBackoffOnTheClock(t *testing.T) {
	clk := manualClock()
	c := testConfig(t)
	c.Transports.Listen = nil
	c.Store.TTL = config.Duration(20 * time.Minute)
	n, _ := startNode(t, c, WithClock(clk))
	base, capped := c.Outbox.RetryBase.D(), c.Outbox.RetryMax.D()
	dest, x := newIdentity(t), newIdentity(t)
	// dest is known through a neighbour x the node has no link to: every
	// transmission is lost.
	n.Inject("test", x.Address(), announceAt(t, dest, clk.Now()))
	waitRoute(t, n, dest.Address())
	res, err := n.SendText(context.Background(), dest.Address(), []byte("no receipt will come"))
	if err != nil || res.Status != router.StateSent {
		t.Fatalf("send: %+v %v", res, err)
	}
	sentAt := clk.Now()
	status := func() *messages.MessageStatus {
		st, err := n.Message(context.Background(), res.ID)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := status()
	if st.Attempts != 1 || !st.Expiry.Equal(sentAt.Add(20*time.Minute)) {
		t.Fatalf("after the send: %+v", st)
	}
	expiry := st.Expiry
	atCap := 0
	for st.State != router.StateFailed {
		k, next := st.Attempts, st.NextRetry
		wait := next.Sub(sentAt)
		if !next.Equal(expiry) {
			d := min(base<<(k-1), capped)
			if wait < d*3/4 || wait > d*5/4 {
				t.Fatalf("attempt %d: next retry %v after the last, want %v ±25 %%", k+1, wait, d)
			}
			if d == capped {
				atCap++
			}
		} else if wait > min(base<<(k-1), capped)*5/4 {
			t.Fatalf("attempt %d: the retry at the expiry is %v after the last, more than the backoff", k+1, wait)
		}
		// A millisecond before it is due, nothing has happened.
		clk.Advance(next.Sub(clk.Now()) - time.Millisecond)
		if st = status(); st.Attempts != k || st.State == router.StateFailed {
			t.Fatalf("a millisecond before the retry at %v: %+v", next, st)
		}
		clk.Advance(time.Millisecond)
		probe.Until(t, 10*time.Second, func() bool { st = status(); return st.Attempts > k || st.State == router.StateFailed },
			"retry %d at %v", k+1, next)
		if st.State != router.StateFailed && st.Attempts != k+1 {
			t.Fatalf("retry %d: %+v", k+1, st)
		}
		sentAt = next
	}
	if !st.Done.Equal(expiry) || !strings.Contains(st.Reason, "no receipt after") {
		t.Fatalf("failed at %v (%s), expiry %v", st.Done, st.Reason, expiry)
	}
	if atCap < 2 {
		t.Fatalf("%d waits at the 5 min cap in a 20 min life; want at least 2", atCap)
	}
	if got := testutil.ToFloat64(n.Metrics().Mesh.Messages.WithLabelValues(router.StateFailed)); got != 1 {
		t.Fatalf("failed counter %v", got)
	}
	if got := testutil.ToFloat64(n.Metrics().Mesh.Retransmits); got != float64(st.Attempts-1) {
		t.Fatalf("retransmits %v for %d attempts", got, st.Attempts)
	}
	t.Logf("%d attempts, failed at the expiry: %s", st.Attempts, st.Reason)
}

// A relay holds an envelope for a destination it has no route to until
// the envelope expires; the store's GC (store.gc_interval) drops it at its
// first tick past the expiry, and a later one at its own.
func TestStoreExpiresHeldEnvelopesOnTheClock(t *testing.T) {
	clk := manualClock()
	c := testConfig(t)
	c.Transports.Listen = nil
	gc := c.Store.GCInterval.D() // 1 min
	n, _ := startNode(t, c, WithClock(clk))
	t0 := clk.Now()
	sender, nowhere := newIdentity(t), newIdentity(t)
	n.Inject("test", sender.Address(), announceAt(t, sender, t0))
	waitRoute(t, n, sender.Address())
	mesh := n.Metrics().Mesh
	expiries := []time.Time{t0.Add(5 * time.Minute), t0.Add(15 * time.Minute)}
	for _, e := range expiries {
		n.Inject("test", sender.Address(), envelopeFrom(t, sender, nowhere.Address(), e, messages.PayloadSealed, []byte("opaque to the relay")))
	}
	// The announce's freshness record is gathering for its group commit
	// (10 ms on the clock); the envelopes go with it.
	advanceUntil(t, clk, time.Millisecond, func() bool { return testutil.ToFloat64(mesh.StoreEvents.WithLabelValues("put")) >= 2 },
		"envelopes held")
	expired := mesh.StoreEvents.WithLabelValues("expired")
	for i, e := range expiries {
		advanceUntil(t, clk, time.Second, func() bool { return testutil.ToFloat64(expired) >= float64(i+1) },
			"held envelope %d expired", i+1)
		at := clk.Now()
		if at.Before(e) || at.After(e.Add(gc+30*time.Second)) {
			t.Fatalf("envelope expiring at +%v dropped at +%v, want within a GC interval (%v) after", e.Sub(t0), at.Sub(t0), gc)
		}
		if got, want := testutil.ToFloat64(mesh.Stored), float64(len(expiries)-1-i); got != want {
			t.Fatalf("store holds %v after %d expired, want %v", got, i+1, want)
		}
	}
}

// Delivered messages older than inbox.max_age are deleted at the inbox's
// retention tick (every minute): the older of two goes first, the younger
// at the first tick past its own age.
func TestInboxRetentionOnTheClock(t *testing.T) {
	clk := manualClock()
	c := testConfig(t)
	c.Transports.Listen = nil
	c.Inbox.MaxAge = config.Duration(time.Hour)
	maxAge := c.Inbox.MaxAge.D()
	n, _ := startNode(t, c, WithClock(clk))
	t0 := clk.Now()
	peer := newIdentity(t)
	n.Inject("test", peer.Address(), announceAt(t, peer, t0))
	waitRoute(t, n, peer.Address())
	texts := func() []string {
		es, _, err := n.box.List(0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Text)
		}
		return out
	}
	deliveredAt := []time.Time{}
	for i, text := range []string{"older", "younger"} {
		if i > 0 {
			advanceTo(t, clk, t0.Add(20*time.Minute), time.Second)
		}
		deliveredAt = append(deliveredAt, clk.Now())
		n.Inject("test", peer.Address(), sealedAt(t, peer, n, text, clk.Now().Add(2*time.Hour)))
		// Delivered at the group commit, after its 10 ms gather.
		advanceUntil(t, clk, time.Millisecond, func() bool { return len(texts()) == i+1 }, "%q in the inbox", text)
	}
	for i, at := range deliveredAt {
		advanceUntil(t, clk, time.Second, func() bool { return len(texts()) == 1-i }, "inbox pruned to %d", 1-i)
		now := clk.Now()
		if now.Sub(at) <= maxAge || now.Sub(at) > maxAge+time.Minute+30*time.Second {
			t.Fatalf("message delivered at +%v deleted at +%v, want within a minute after its max age %v",
				at.Sub(t0), now.Sub(t0), maxAge)
		}
		if got := texts(); i == 0 && (len(got) != 1 || got[0] != "younger") {
			t.Fatalf("kept %v, want the younger message", got)
		}
	}
}

func newIdentity(t testing.TB) *crypto.Identity {
	t.Helper()
	id, err := crypto.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The router writes a changed routing table with its lazy flush, a second
// on its clock after the change, not at the change's group commit (which
// the 10 ms gather makes): a route learned is on disk one second later,
// and not a millisecond before.
func TestLazyFlushWritesTheTableOnTheClock(t *testing.T) {
	clk := manualClock()
	c := testConfig(t)
	c.Transports.Listen = nil
	n, _ := startNode(t, c, WithClock(clk))
	peer := newIdentity(t)
	written := func() bool {
		var found bool
		n.db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket([]byte("router")); b != nil {
				found = bytes.Contains(b.Get([]byte("router/table")), []byte(peer.Address().String()))
			}
			return nil
		})
		return found
	}
	t0 := clk.Now()
	n.Inject("test", peer.Address(), announceAt(t, peer, t0))
	waitRoute(t, n, peer.Address())
	// The announce's freshness record goes with the group commit after the
	// gather; the table does not.
	commits := n.Metrics().Mesh.Commits
	before := testutil.ToFloat64(commits)
	advanceUntil(t, clk, time.Millisecond, func() bool { return testutil.ToFloat64(commits) > before }, "the announce's group commit")
	advanceTo(t, clk, t0.Add(time.Second-time.Millisecond), 10*time.Millisecond)
	hasRoute(t, n, peer.Address()) // a round trip through the router
	if written() {
		t.Fatal("the table was written before the lazy flush was due")
	}
	clk.Advance(time.Millisecond)
	probe.Until(t, 10*time.Second, written, "the table with the new route written by the lazy flush")
}
