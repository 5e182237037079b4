package node

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/crypto"
)

// A router replay store (bucket router/seqwindow) holding a record that
// cannot be read: the router cannot know what it accepted before, and a
// restart does not change that. The node does not start: Start returns at
// once with a data-dir error (crypto.ErrReplayStoreCorrupt, what `qpc
// node` exits 3 for) naming the record, after one failure of the router,
// not restarts until the caller's deadline (found by this test: Start
// waited 10 s for a router restarting every few seconds, and without a
// deadline would have waited for ever).
func TestCorruptReplayStoreFailsStart(t *testing.T) {
	c := testConfig(t)
	c.Transports.Listen = nil
	n, _ := startNode(t, c)
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(c.DBPath(), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("router/seqwindow"))
		if b == nil {
			t.Fatal("no router/seqwindow bucket after a start")
		}
		return b.Put([]byte("garbage"), []byte{1, 2, 3})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	n2, err := New(WithConfig(c), WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = n2.Start(ctx)
	if err == nil {
		n2.Stop(context.Background())
		t.Fatal("started with a corrupt replay store")
	}
	if !errors.Is(err, crypto.ErrReplayStoreCorrupt) || !IsDataDirError(err) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start: %v; want a data-dir error wrapping crypto.ErrReplayStoreCorrupt\n%s", err, logs)
	}
	if !strings.Contains(err.Error(), "router") || !strings.Contains(err.Error(), "67617262616765") { // "garbage"
		t.Fatalf("Start: %v; want it to name the router and the record", err)
	}
	if r := strings.Count(logs.String(), "actor failed; restarting"); r != 0 {
		t.Fatalf("the router was restarted %d times for a store a restart cannot mend\n%s", r, logs)
	}
	select {
	case <-n2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the node is not done after its failed Start")
	}
}
