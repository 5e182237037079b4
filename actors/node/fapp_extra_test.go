package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports/mem"
)

// startFAPPPair starts a therapist that is also a relay (T, PLZ 80331)
// and a patient (P) linked to it over mem, and waits for their routes.
func startFAPPPair(t *testing.T, opts ...Option) (tn, pn *Node) {
	t.Helper()
	net := mem.NewNetwork()
	ct := therapistConfig(t, "Praxis Eins", "80331")
	ct.FAPP.Role = []string{config.FAPPTherapist, config.FAPPRelay}
	ct.Transports.Listen = []string{"mem://t"}
	tn, _ = startNode(t, ct, append([]Option{WithMemNetwork(net)}, opts...)...)
	cp := fappConfig(t, config.FAPPPatient)
	cp.Transports.Peers = []string{"mem://t"}
	pn, _ = startNode(t, cp, append([]Option{WithMemNetwork(net)}, opts...)...)
	waitRoute(t, pn, tn.Address())
	waitRoute(t, tn, pn.Address())
	return tn, pn
}

// spyClock is a manual clock that reports every AfterFunc's duration,
// so a test knows when a wait has been armed on it.
type spyClock struct {
	*clock.Manual
	mu    sync.Mutex
	armed []time.Duration
}

func (c *spyClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	c.armed = append(c.armed, d)
	c.mu.Unlock()
	return c.Manual.AfterFunc(d, f)
}

func (c *spyClock) count(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.armed {
		if a == d {
			n++
		}
	}
	return n
}

// TestFAPPWaitsOnTheNodeClock is a regression test for the search and
// status waits running on the real clock (time.NewTimer) instead of the
// node's: on a manual clock a search with wait 30s (and a status wait of
// 30s on a pending reservation) returns once the clock has moved past
// 30s, and not at 29s. Real time bounds the test only.
func TestFAPPWaitsOnTheNodeClock(t *testing.T) {
	const wait = 30 * time.Second
	clk := &spyClock{Manual: manualClock()}
	tn, pn := startFAPPPair(t, WithClock(clk))
	ctx := context.Background()
	base := clk.Now().Add(48 * time.Hour)
	s := fappSlot(base, 1, fapp.Verhaltenstherapie, fapp.Praxis, fapp.GKV)
	pub, err := tn.FAPPPublish(ctx, []fapp.Slot{s})
	if err != nil {
		t.Fatal(err)
	}

	// waitFor runs call on its own goroutine, waits until it has armed a
	// 30s timer on clk and ready holds, checks it is still blocked at 29s
	// and done after 31s.
	waitFor := func(what string, ready func() bool, call func() error) {
		t.Helper()
		before := clk.count(wait)
		done := make(chan error, 1)
		go func() { done <- call() }()
		probe.Until(t, 10*time.Second, func() bool { return clk.count(wait) > before }, "%s to arm its 30s wait on the node's clock", what)
		probe.Until(t, 10*time.Second, ready, "%s to have what it waits for", what)
		clk.Advance(wait - time.Second)
		probe.Parked(t, 10*time.Second, "node.(*Node).FAPP")
		select {
		case err := <-done:
			t.Fatalf("%s returned at 29s of a 30s wait (err %v)", what, err)
		default:
		}
		clk.Advance(2 * time.Second)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not return within 10s (real) after the node's clock passed its 30s wait", what)
		}
	}

	f := fappSearchFilter(clk.Now())
	var found api.FAPPSearchResponse
	// The search's wait ends on the clock, not when T's response is in:
	// the clock moves only once P has opened T's response.
	responses := func() bool {
		return testutil.ToFloat64(pn.Metrics().FAPP.Own.WithLabelValues("responses")) >= 1
	}
	waitFor("the search", responses, func() (err error) {
		found, err = pn.FAPPSearch(ctx, f, wait)
		return err
	})
	if len(found.Slots) != 1 || found.Slots[0].Slot != pub.Slots[0].Slot {
		t.Fatalf("the search found %+v, want T's slot %s", found.Slots, pub.Slots[0].Slot)
	}

	target, _ := fapp.ParseSlotID(pub.Slots[0].Slot)
	res, err := pn.FAPPReserve(ctx, target, "")
	if err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool {
		rq, err := tn.FAPPRequests(ctx)
		return err == nil && len(rq.Requests) == 1
	}, "T to receive the reservation")
	var st api.FAPPReservation
	waitFor("the status wait", func() bool { return true }, func() (err error) {
		st, err = pn.FAPPStatus(ctx, res.Reservation, wait)
		return err
	})
	if st.Status != "pending" {
		t.Fatalf("status after the wait = %+v, want pending (T did not answer)", st)
	}
}
