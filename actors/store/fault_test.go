package store

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
)

// The store's bbolt error branches, reached by closing the database under
// a running store (issue 11 item 3): no seam, the real bbolt failure.

// reopen stands for a restart of the node after the fault: the store
// stops, its database is opened again from the file and a new store
// starts on it.
func (h *harness) reopen() {
	h.t.Helper()
	if err := h.sys.Root.StopFuture(h.store).Wait(); err != nil {
		h.t.Fatal(err)
	}
	path := h.db.Path()
	h.db.Close() // closed already by the fault; Close again is a no-op
	db, err := persist.Open(path, time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	h.store = h.spawn()
}

func storeMsg(it Item) *messages.StoreFrame {
	return &messages.StoreFrame{Dest: it.Dest, ID: it.ID, Frame: it.Frame, Expiry: it.Expiry}
}

// count is the store_events counter for event.
func (h *harness) count(event string) float64 {
	return testutil.ToFloat64(h.mesh.StoreEvents.WithLabelValues(event))
}

// A flush whose transaction fails (the database closed under the store)
// stores nothing of its puts and acks: the Persist waiting on it is told
// it failed, the puts are counted as write_failed (not refused: the
// store is not full) and logged, the Stored gauge stays at what is on
// disk. After a restart everything that was durable is there, the frame
// whose receipt was not written included, and drains exactly once; the
// senders' retransmissions of the lost puts are stored then.
func TestActorWriteFailureStoresNothingAndLosesNothingDurable(t *testing.T) {
	d := dest(7)
	h := newHarness(t, Limits{PerDest: 100}, fillN(t, d, 10))
	var lost []any
	for i := 10; i < 15; i++ {
		lost = append(lost, storeMsg(numbered(d, i)))
	}
	ack := &messages.StoreAck{ID: numbered(d, 3).ID, Dest: d}
	// All of it lands while the store is inside a commit; the database is
	// closed before it goes on, so the flush the Persist asks for fails.
	h.whileBusy(func() {
		h.fromProbe(append(lost, ack, &messages.Persist{})...)
		if err := h.db.Close(); err != nil {
			t.Fatal(err)
		}
	})
	p, ok := h.next().(*messages.Persisted)
	if !ok {
		t.Fatal("no Persisted first")
	}
	if !errors.Is(p.Err, bolterrors.ErrDatabaseNotOpen) || !strings.Contains(p.Err.Error(), "store: apply 5 puts and 1 acks") {
		t.Fatalf("Persisted.Err = %v, want the store's apply error wrapping bbolt's ErrDatabaseNotOpen", p.Err)
	}
	h.quiet(d) // the store runs on, and the flush queued behind the Persist has nothing left
	// One put: whileBusy's frame, committed before the fault.
	if put, failed, refused, delivered := h.count("put"), h.count("write_failed"), h.count("refused"), h.count("delivered"); put != 1 || failed != 5 || refused != 0 || delivered != 0 {
		t.Fatalf("put %v write_failed %v refused %v delivered %v; want 1 5 0 0", put, failed, refused, delivered)
	}
	if got := testutil.ToFloat64(h.mesh.Stored); got != 11 {
		t.Fatalf("Stored %v after the failed write, want 11 (what is on disk)", got)
	}
	if logs := h.logs.String(); !strings.Contains(logs, `msg="store write failed" puts=5 not_stored=5 acks=1`) || !strings.Contains(logs, "database not open") {
		t.Fatalf("logs do not say the write failed:\n%s", logs)
	}

	h.reopen()
	h.fromProbe(&messages.RouteUp{Dest: d})
	if got := slices.Concat(h.batchesOf(d, 10)...); !slices.Equal(got, seq(0, 10)) {
		t.Fatalf("after the restart: handed back %v, want 0..9 once (3's receipt was not written)", got)
	}
	h.quiet(d)
	// The senders retransmit what was not stored, and the receipt comes
	// again.
	h.fromProbe(append(lost, ack, &messages.RouteUp{Dest: d})...)
	want := slices.DeleteFunc(seq(0, 15), func(i int) bool { return i == 3 })
	if got := slices.Concat(h.batchesOf(d, 14)...); !slices.Equal(got, want) {
		t.Fatalf("after the retransmissions: handed back %v, want %v", got, want)
	}
	h.quiet(d)
	if got := testutil.ToFloat64(h.mesh.Stored); got != 15 {
		t.Fatalf("Stored %v, want 15", got)
	}
}

// A drain whose read fails between two batches (the database closed
// under the store) hands back nothing more and is counted as read_failed
// and logged; nothing is deleted. The frame committed just before the
// fault is durable: after a restart the next RouteUp hands back
// everything, that frame included, exactly once.
func TestActorDrainReadFailureLosesNothing(t *testing.T) {
	d := dest(8)
	h := newHarness(t, Limits{PerDest: 1000}, fillN(t, d, 300))
	late := numbered(d, 300)
	fault := &gate{paused: make(chan struct{}, 1), release: make(chan struct{})}
	// The RouteUp hands back the first batch and posts the next step
	// behind late's StoreFrame; that step writes late first (a commit,
	// where fault pauses the store) and then reads: the database is
	// closed in between.
	h.whileBusy(func() {
		h.fromProbe(&messages.RouteUp{Dest: d}, storeMsg(late))
		h.gate.Store(fault)
	})
	select {
	case <-fault.paused:
	case <-time.After(deadline):
		t.Fatal("the store did not commit late's frame")
	}
	if err := h.db.Close(); err != nil {
		t.Fatal(err)
	}
	close(fault.release)
	if got := h.batch(h.next(), d); !slices.Equal(got, seq(0, drainBatch)) {
		t.Fatalf("first batch %v, want 0..%d", got, drainBatch-1)
	}
	h.quiet(d)
	if got := h.count("read_failed"); got != 1 {
		t.Fatalf("read_failed %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.mesh.Stored); got != 302 {
		t.Fatalf("Stored %v after the failed read, want 302", got)
	}
	if logs := h.logs.String(); !strings.Contains(logs, `msg="store peek failed"`) || !strings.Contains(logs, "database not open") {
		t.Fatalf("logs do not say the read failed:\n%s", logs)
	}

	h.reopen()
	h.fromProbe(&messages.RouteUp{Dest: d})
	all := h.batchesOf(d, 301)
	if got := slices.Concat(all...); !slices.Equal(got, seq(0, 301)) {
		t.Fatalf("after the restart: batches %v, want 0..300 once, in order", sizes(all))
	}
	h.quiet(d)
}
