package links

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/discovery"
	"github.com/quicprochat/qpc/transports/mem"
)

// scriptedDialer is a transport whose dials fail as scripted: each Dial
// takes the next error of fails, and once they are used up dials through
// to the transport it wraps. Every Dial reports the clock's time on dials.
type scriptedDialer struct {
	transports.Transport
	clk   clock.Clock
	mu    sync.Mutex
	fails []error
	dials chan time.Time
	conn  transports.Conn // when set, what a dial past the script returns
}

func (s *scriptedDialer) Dial(ctx context.Context, addr string) (transports.Conn, error) {
	s.mu.Lock()
	var err error
	if len(s.fails) > 0 {
		err, s.fails = s.fails[0], s.fails[1:]
	}
	c := s.conn
	s.mu.Unlock()
	s.dials <- s.clk.Now()
	switch {
	case err != nil:
		return nil, err
	case c != nil:
		return c, nil
	}
	return s.Transport.Dial(ctx, addr)
}

// nextDial waits for the next dial and returns when (on the clock) it was.
func (s *scriptedDialer) nextDial(t *testing.T, what string) time.Time {
	t.Helper()
	select {
	case at := <-s.dials:
		return at
	case <-time.After(within):
		t.Fatalf("%s: no dial", what)
		return time.Time{}
	}
}

// randSeq returns vs in turn, as Backoff.Rand.
func randSeq(vs ...float64) func() float64 {
	var mu sync.Mutex
	i := 0
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		v := vs[i%len(vs)]
		i++
		return v
	}
}

// memPeer is a node on network listening as name: what a dial reaches.
// Its listener hands the test the far end of each link.
func memPeer(t *testing.T, network *mem.Network, name string) (crypto.Address, transports.Listener) {
	t.Helper()
	id := newIdentity(t)
	tr, err := network.NewTransport(mem.Options{Identity: id, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tr.Listen(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return id.Address(), ln
}

// dialerOn is our node's mem transport on network, scripted.
func dialerOn(t *testing.T, network *mem.Network, id *crypto.Identity, clk clock.Clock, fails ...error) *scriptedDialer {
	t.Helper()
	tr, err := network.NewTransport(mem.Options{Identity: id, Name: "us"})
	if err != nil {
		t.Fatal(err)
	}
	return &scriptedDialer{Transport: tr, clk: clk, fails: fails, dials: make(chan time.Time, 16)}
}

// A configured peer that cannot be dialled is re-dialled on the injected
// clock with capped exponential back-off and jitter: attempt n waits
// d = min(Min·2^(n−1), Max), less d·Jitter·Rand(), never less than
// d·(1−Jitter) and never more than d; not a nanosecond before it is due,
// and for ever (only a discovered peer's dialer gives up). The first
// failure and each change of its cause are logged at info, the same
// failure again is not; qpc status shows the back-off state, the attempts,
// the failures, the last error and when the next attempt is due; a dial
// that succeeds again is logged with the number of failures before it and
// shows the peer up.
func TestDialFailuresBackOffOnTheClock(t *testing.T) {
	network := mem.NewNetwork()
	peer, _ := memPeer(t, network, "peer")
	id := newIdentity(t)
	refused := fmt.Errorf("transports/mem: dial peer: %w", mem.ErrRefused)
	timeout := errors.New("transports/mem: dial peer: i/o timeout")
	steps := []struct {
		err   error
		delay time.Duration // base min(1 s·2^(n−1), 3 s) less base·0.5·r
	}{
		{refused, time.Second},                             // base 1 s, r 0: the whole delay
		{refused, 1500 * time.Millisecond},                 // base 2 s, r 0.5
		{timeout, 2625 * time.Millisecond},                 // base 3 s (4 s capped), r 0.25
		{timeout, 1875 * time.Millisecond},                 // base 3 s, r 0.75
		{timeout, 1500*time.Millisecond + time.Nanosecond}, // base 3 s, r just under 1: the least it may be
	}
	const uri = "mem://peer"
	var fails []error
	for _, s := range steps {
		fails = append(fails, s.err)
	}
	clk := newManual()
	d := dialerOn(t, network, id, clk, fails...)
	r := startRig(t, Config{
		Identity: id, Peers: []string{uri}, Clock: clk, Transports: map[string]transports.Transport{"mem": d},
		Backoff: Backoff{Min: time.Second, Max: 3 * time.Second, Jitter: 0.5,
			Rand: randSeq(0, 0.5, 0.25, 0.75, 1-1.0/(1<<31))},
	})

	due := r.clk.Now() // the first dial is at once
	for i, s := range steps {
		n := i + 1
		if at := d.nextDial(t, fmt.Sprintf("attempt %d", n)); !at.Equal(due) {
			t.Fatalf("attempt %d at %v, due at %v", n, at.Sub(due), due)
		}
		st := r.waitPeer(t, uri, fmt.Sprintf("failure %d", n), func(p messages.PeerStatus) bool { return p.Failures == n })
		if st.State != messages.PeerStateBackoff || st.Attempts != n || st.LastError != s.err.Error() ||
			!st.LastErrorAt.Equal(due) || !st.NextAttempt.Equal(due.Add(s.delay)) {
			t.Fatalf("after failure %d: %+v; want backoff, %d attempts, last error %q at the dial, next in %v",
				n, st, n, s.err, s.delay)
		}
		if p := r.clk.Pending(); p != 1 {
			t.Fatalf("after failure %d: %d timers pending, want the re-dial's", n, p)
		}
		r.clk.Advance(s.delay - time.Nanosecond)
		if p := r.clk.Pending(); p != 1 {
			t.Fatalf("after failure %d the re-dial fired before its back-off of %v", n, s.delay)
		}
		r.clk.Advance(time.Nanosecond)
		due = due.Add(s.delay)
	}
	// The script is used up: this dial reaches the peer.
	if at := d.nextDial(t, "the dial that succeeds"); !at.Equal(due) {
		t.Fatalf("the last attempt at %v, due at %v", at, due)
	}
	st := r.waitPeer(t, uri, "up", func(p messages.PeerStatus) bool { return p.State == messages.PeerStateUp })
	if st.Peer != peer || st.Failures != 0 || st.Attempts != len(steps)+1 || st.LastError != timeout.Error() {
		t.Fatalf("up: %+v; want peer %s, no failures, %d attempts, the last error kept", st, peer.Short(), len(steps)+1)
	}
	r.up(t, "the link") // the link tells the manager itself, after the dialer
	if ls := r.reply(t).Links; len(ls) != 1 || ls[0].Peer != peer || !ls[0].Outbound {
		t.Fatalf("links %+v, want one outbound to %s", ls, peer.Short())
	}
	if r.clk.Pending() != 0 {
		t.Fatal("a re-dial is still armed with the link up")
	}

	cannot := r.logLines("cannot dial peer; retrying with back-off")
	if len(cannot) != 2 {
		t.Fatalf("%d info lines for 5 failures with 2 causes, want 2:\n%s", len(cannot), r.log.String())
	}
	for i, w := range []struct {
		attempt int
		err     error
	}{{1, refused}, {3, timeout}} {
		if l := cannot[i]; !strings.Contains(l, "level=INFO") || !strings.Contains(l, fmt.Sprintf("attempt=%d ", w.attempt)) ||
			!strings.Contains(l, fmt.Sprintf("err=%q", w.err.Error())) || !strings.Contains(l, "uri="+uri) {
			t.Fatalf("line %d %q: want info, attempt %d, err %q, uri", i, l, w.attempt, w.err)
		}
	}
	if l := r.logLines("peer reachable again"); len(l) != 1 || !strings.Contains(l[0], "level=INFO") ||
		!strings.Contains(l[0], "after_failed_attempts=5") {
		t.Fatalf("reachable lines %q, want one at info after 5 failed attempts", l)
	}
	if e, ok := testutil.ToFloat64(r.metrics.Dials.WithLabelValues("mem", "error")), testutil.ToFloat64(r.metrics.Dials.WithLabelValues("mem", "ok")); e != 5 || ok != 1 {
		t.Fatalf("qpc_link_dials_total error %v ok %v, want 5 and 1", e, ok)
	}
}

// A peer heard on the LAN is dialled with the same back-off, but its
// dialer gives up after maxDiscoveredAttempts (4) failed dials: no timer
// left, logged at info once, and the manager forgets it, so the peer's
// next beacon starts a new dialer.
func TestDiscoveredPeerDialerGivesUpAfterFourFailures(t *testing.T) {
	network := mem.NewNetwork()
	// Of two nodes only the smaller address dials: make us the smaller.
	id, peer := newIdentity(t), newIdentity(t)
	if id.Address().String() > peer.Address().String() {
		id, peer = peer, id
	}
	failed := fmt.Errorf("transports/mem: dial peer: %w", mem.ErrRefused)
	var fails []error
	for range maxDiscoveredAttempts + 1 {
		fails = append(fails, failed)
	}
	clk := newManual()
	d := dialerOn(t, network, id, clk, fails...)
	r := startRig(t, Config{Identity: id, Clock: clk, Transports: map[string]transports.Transport{"mem": d},
		Backoff: Backoff{Min: time.Second, Max: time.Minute}})
	heard := &discovered{d: discovery.Discovered{Address: peer.Address(), URIs: []string{"mem://peer"}}}
	r.sys.Root.Send(r.pid, heard)

	due := r.clk.Now()
	for n := 1; n <= maxDiscoveredAttempts; n++ {
		if at := d.nextDial(t, fmt.Sprintf("attempt %d", n)); !at.Equal(due) {
			t.Fatalf("attempt %d at %v, due at %v", n, at, due)
		}
		if n == maxDiscoveredAttempts {
			break
		}
		delay := time.Second << (n - 1) // no jitter
		probe.Until(t, within, func() bool { return r.clk.Pending() == 1 }, "re-dial %d armed", n)
		r.clk.Advance(delay - time.Nanosecond)
		if r.clk.Pending() != 1 {
			t.Fatalf("re-dial %d fired before its back-off of %v", n, delay)
		}
		r.clk.Advance(time.Nanosecond)
		due = due.Add(delay)
	}
	probe.Until(t, within, func() bool { return len(r.logLines("giving up on discovered peer")) == 1 }, "giving up logged")
	if l := r.logLines("giving up on discovered peer")[0]; !strings.Contains(l, "level=INFO") || !strings.Contains(l, "uri=mem://peer") {
		t.Fatalf("giving up line %q", l)
	}
	if p := r.clk.Pending(); p != 0 {
		t.Fatalf("%d timers pending after giving up", p)
	}
	if e := testutil.ToFloat64(r.metrics.Dials.WithLabelValues("mem", "error")); e != maxDiscoveredAttempts {
		t.Fatalf("qpc_link_dials_total{result=error} = %v, want %d", e, maxDiscoveredAttempts)
	}
	// Told of the peer again (its next beacon), the manager dials it anew
	// once it has seen the dialer go.
	var again time.Time
	probe.Until(t, within, func() bool {
		r.sys.Root.Send(r.pid, heard)
		select {
		case again = <-d.dials:
			return true
		default:
			return false
		}
	}, "a new dialer for the peer's next beacon")
	if !again.Equal(due) {
		t.Fatalf("the new dialer dialled at %v, want at once (%v)", again, due)
	}
}

// A configured peer URI that reaches this node itself is not linked and
// not dialled again: counted as qpc_link_dials_total{result=self}, logged
// at warn once, and shown given up in qpc status with the reason. The
// transports refuse such a dial in their handshake (ErrSelf); a transport
// that does not is caught by the dialer comparing the peer's identity.
//
// Regression test: the dialer only compared the identity of a connection
// it got, which no transport returns for ourselves (tcp, quic and mem
// fail the handshake), so a node listed among its own peers (one peers
// list for a whole cluster) re-dialled itself for ever, logging "cannot
// dial peer" and showing it in back-off.
func TestDialThatReachesOurselvesGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noCheck bool // the transport hands over a connection to ourselves
	}{
		{name: "refused by the handshake"},
		{name: "a transport that does not check", noCheck: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			network := mem.NewNetwork()
			id := newIdentity(t)
			clk := newManual()
			d := dialerOn(t, network, id, clk)
			ln, err := d.Listen(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			var self *fakeConn
			if tc.noCheck {
				self = newFakeConn(id.Address())
				d.conn = self
			}
			const uri = "mem://us"
			r := startRig(t, Config{Identity: id, Peers: []string{uri}, Clock: clk,
				Transports: map[string]transports.Transport{"mem": d}, Listeners: []Bound{{URI: uri, Listener: ln}}})

			d.nextDial(t, "the first dial")
			st := r.waitPeer(t, uri, "given up", func(p messages.PeerStatus) bool {
				return p.State != messages.PeerStatePending && p.State != messages.PeerStateDialling
			})
			if st.State != messages.PeerStateGivenUp || st.LastError != "the URI reaches this node itself" || st.Attempts != 1 {
				t.Fatalf("peer %+v; want given up: the URI reaches this node itself, after 1 attempt", st)
			}
			for result, want := range map[string]float64{"self": 1, "error": 0, "ok": 0} {
				if got := testutil.ToFloat64(r.metrics.Dials.WithLabelValues("mem", result)); got != want {
					t.Errorf("qpc_link_dials_total{result=%s} = %v, want %v", result, got, want)
				}
			}
			if p := r.clk.Pending(); p != 0 {
				t.Fatalf("%d timers pending: a re-dial of ourselves is armed", p)
			}
			r.clk.Advance(time.Hour)
			if ls := r.reply(t).Links; len(ls) != 0 {
				t.Fatalf("links %+v: we linked to ourselves", ls)
			}
			select {
			case <-d.dials:
				t.Fatal("dialled ourselves again")
			case u := <-r.ups:
				t.Fatalf("PeerUp %+v", u.Link)
			default:
			}
			if self != nil {
				self.waitClosed(t, "the connection to ourselves")
			}
			if l := r.logLines("peer URI reaches this node itself; not dialing it again"); len(l) != 1 ||
				!strings.Contains(l[0], "level=WARN") || !strings.Contains(l[0], "uri="+uri) {
				t.Fatalf("self lines %q, want one warn naming the URI; log:\n%s", l, r.log.String())
			}
			if l := r.logLines("cannot dial peer; retrying with back-off"); len(l) != 0 {
				t.Fatalf("reaching ourselves logged as a dial failure: %q", l)
			}
		})
	}
}

// farEnd accepts the far end of the next link to ln.
func farEnd(t *testing.T, ln transports.Listener) transports.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	c, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A configured peer whose link goes is re-dialled after the first step of
// the back-off (Min), whatever failures came before the link: qpc status
// shows it down with the link's reason, then in back-off until the
// re-dial, which is due not a nanosecond early, and up again.
func TestLostLinkIsRedialledAfterTheFirstBackoff(t *testing.T) {
	network := mem.NewNetwork()
	peer, ln := memPeer(t, network, "peer")
	id := newIdentity(t)
	clk := newManual()
	refused := fmt.Errorf("transports/mem: dial peer: %w", mem.ErrRefused)
	d := dialerOn(t, network, id, clk, refused, refused)
	const uri = "mem://peer"
	r := startRig(t, Config{Identity: id, Peers: []string{uri}, Clock: clk,
		Transports: map[string]transports.Transport{"mem": d}, Backoff: Backoff{Min: time.Second, Max: time.Minute}})

	// Two failures (re-dials after 1 s and 2 s), then the link.
	d.nextDial(t, "attempt 1")
	for n, delay := range []time.Duration{time.Second, 2 * time.Second} {
		r.waitPeer(t, uri, "failure", func(p messages.PeerStatus) bool { return p.Failures == n+1 })
		clk.Advance(delay)
		d.nextDial(t, fmt.Sprintf("attempt %d", n+2))
	}
	up := r.up(t, "the link")
	far := farEnd(t, ln)
	r.waitPeer(t, uri, "up", func(p messages.PeerStatus) bool { return p.State == messages.PeerStateUp })

	clk.Advance(time.Minute) // the link lives a while
	lost := clk.Now()
	far.Close()
	if down := r.down(t, "the link lost"); down.Link.ID != up.Link.ID || down.Reason != "closed by peer" {
		t.Fatalf("PeerDown link %d %q, want link %d closed by peer", down.Link.ID, down.Reason, up.Link.ID)
	}
	st := r.waitPeer(t, uri, "re-dial scheduled", func(p messages.PeerStatus) bool { return p.State == messages.PeerStateBackoff })
	if !st.NextAttempt.Equal(lost.Add(time.Second)) || st.LastError != "link down: closed by peer" || !st.LastErrorAt.Equal(lost) ||
		st.Failures != 0 || st.Peer != peer {
		t.Fatalf("after the link went: %+v; want the re-dial in 1 s (the first step, not the fourth), the link's reason", st)
	}
	if p := clk.Pending(); p != 1 {
		t.Fatalf("%d timers pending, want the re-dial's", p)
	}
	clk.Advance(time.Second - time.Nanosecond)
	if p := clk.Pending(); p != 1 {
		t.Fatal("the re-dial fired before its back-off")
	}
	clk.Advance(time.Nanosecond)
	if at := d.nextDial(t, "the re-dial"); !at.Equal(lost.Add(time.Second)) {
		t.Fatalf("re-dialled at %v, due at %v", at, lost.Add(time.Second))
	}
	r.up(t, "the link again")
	st = r.waitPeer(t, uri, "up again", func(p messages.PeerStatus) bool { return p.State == messages.PeerStateUp })
	if st.Attempts != 4 || st.Failures != 0 {
		t.Fatalf("up again: %+v; want 4 attempts, no failures", st)
	}
}

// Draining stops the dialers: a peer waiting for its re-dial is not
// dialled again (its timer is stopped) and shows stopped in qpc status.
func TestDrainStopsRedialling(t *testing.T) {
	network := mem.NewNetwork()
	id := newIdentity(t)
	clk := newManual()
	refused := fmt.Errorf("transports/mem: dial peer: %w", mem.ErrRefused)
	d := dialerOn(t, network, id, clk, refused, refused)
	const uri = "mem://peer"
	r := startRig(t, Config{Identity: id, Peers: []string{uri}, Clock: clk,
		Transports: map[string]transports.Transport{"mem": d}, Backoff: Backoff{Min: time.Second, Max: time.Minute}})

	d.nextDial(t, "attempt 1")
	r.waitPeer(t, uri, "failure", func(p messages.PeerStatus) bool { return p.Failures == 1 })
	if _, err := r.sys.Root.RequestFuture(r.pid, &messages.Drain{}, within).Result(); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, within, func() bool { return clk.Pending() == 0 }, "the re-dial's timer stopped by the drain")
	clk.Advance(time.Hour)
	if st := r.peer(t, uri); st.State != messages.PeerStateStopped || st.Attempts != 1 {
		t.Fatalf("after the drain: %+v; want stopped after 1 attempt", st)
	}
	select {
	case <-d.dials:
		t.Fatal("dialled after the drain")
	default:
	}
}

// A discovered peer's dialer does not re-dial when its link ends: it
// stops, and the peer's next beacon starts a new one that dials at once.
func TestDiscoveredPeerIsNotRedialledWhenItsLinkEnds(t *testing.T) {
	network := mem.NewNetwork()
	id := newIdentity(t)
	clk := newManual()
	d := dialerOn(t, network, id, clk)
	// Of two nodes only the smaller address dials: make us the smaller.
	var peer crypto.Address
	var ln transports.Listener
	for {
		peer, ln = memPeer(t, network, fmt.Sprintf("peer-%d", fakeConns.Add(1)))
		if id.Address().String() < peer.String() {
			break
		}
		ln.Close()
	}
	r := startRig(t, Config{Identity: id, Clock: clk, Transports: map[string]transports.Transport{"mem": d}})
	heard := &discovered{d: discovery.Discovered{Address: peer, URIs: []string{"mem://" + ln.Addr()}}}
	r.sys.Root.Send(r.pid, heard)
	d.nextDial(t, "the first dial")
	up := r.up(t, "the link")
	if up.Link.Peer != peer || !up.Link.Outbound {
		t.Fatalf("PeerUp %+v, want outbound to %s", up.Link, peer.Short())
	}
	farEnd(t, ln).Close()
	r.down(t, "the link ends")

	var again time.Time
	probe.Until(t, within, func() bool {
		r.sys.Root.Send(r.pid, heard)
		select {
		case again = <-d.dials:
			return true
		default:
			return false
		}
	}, "a new dialer for the peer's next beacon, with no time passed")
	if !again.Equal(clk.Now()) || clk.Pending() != 0 {
		t.Fatalf("dialled at %v (now %v), %d timers pending", again, clk.Now(), clk.Pending())
	}
	r.up(t, "the link again")
}

// A peer that stays unreachable is re-dialled every Max for ever: the
// delay of any attempt, however late, is Max less its jitter, never more
// and never less (doubling past Max would overflow into a negative delay,
// a re-dial loop with no pause).
func TestBackoffStaysAtMaxForEver(t *testing.T) {
	for _, n := range []int{8, 36, 63, 64, 65, 1000, 1 << 20} {
		exact := Backoff{Min: 200 * time.Millisecond, Max: 30 * time.Second, Rand: func() float64 { return 0.999 }}
		if got := exact.Delay(n); got != exact.Max {
			t.Fatalf("attempt %d without jitter: %v, want Max %v", n, got, exact.Max)
		}
		jittered := exact
		jittered.Jitter = 0.2
		if got, least := jittered.Delay(n), 24*time.Second; got < least || got > exact.Max {
			t.Fatalf("attempt %d with jitter 0.2: %v, want within [%v, %v]", n, got, least, exact.Max)
		}
	}
}

// heldDialer is a transport whose Dial blocks until the test lets it
// finish: it reports on cancelled when the dial's context ends, then
// returns what the test sends on finish (as a handshake that completed
// just as the dialer let go of it).
type heldDialer struct {
	transports.Transport
	cancelled chan struct{}
	finish    chan transports.Conn
}

func (h *heldDialer) Dial(ctx context.Context, addr string) (transports.Conn, error) {
	<-ctx.Done()
	h.cancelled <- struct{}{}
	return <-h.finish, nil
}

// A drain means no new links: a dial that completes after the drain
// told its dialer to stop is closed, not linked, and no PeerUp goes out.
//
// Regression test: the dialer took such a result as any other, so a
// link came up (and PeerUp was published) while the node drained.
func TestDialCompletingAfterDrainIsNotLinked(t *testing.T) {
	network := mem.NewNetwork()
	id := newIdentity(t)
	clk := newManual()
	inner := dialerOn(t, network, id, clk)
	h := &heldDialer{Transport: inner.Transport, cancelled: make(chan struct{}, 1), finish: make(chan transports.Conn, 1)}
	const uri = "mem://peer"
	r := startRig(t, Config{Identity: id, Peers: []string{uri}, Clock: clk,
		Transports: map[string]transports.Transport{"mem": h}})

	r.waitPeer(t, uri, "dialling", func(p messages.PeerStatus) bool { return p.State == messages.PeerStateDialling })
	if _, err := r.sys.Root.RequestFuture(r.pid, &messages.Drain{}, within).Result(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.cancelled: // the dialer has the quiesce
	case <-time.After(within):
		t.Fatal("the drain did not cancel the dial in flight")
	}
	late := newFakeConn(newIdentity(t).Address())
	h.finish <- late
	late.waitClosed(t, "the dial that completed after the drain")
	if ls := r.reply(t).Links; len(ls) != 0 {
		t.Fatalf("links %+v after the drain", ls)
	}
	select {
	case u := <-r.ups:
		t.Fatalf("PeerUp %+v during the drain", u.Link)
	default:
	}
	if st := r.peer(t, uri); st.State != messages.PeerStateStopped {
		t.Fatalf("peer %+v, want stopped", st)
	}
	if ok := testutil.ToFloat64(r.metrics.Dials.WithLabelValues("mem", "ok")); ok != 0 {
		t.Fatalf("qpc_link_dials_total{result=ok} = %v after the drain", ok)
	}
}
