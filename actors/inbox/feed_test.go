package inbox

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/messages"
)

// The feed reads from the database as its reader takes, at most readAhead
// ahead, in arrival order, skipping what was deleted meanwhile, bytes
// that are not UTF-8 given back as sent; new entries wake it; it ends
// when done is closed.
func TestFeedReadsAheadAtMostAndFollows(t *testing.T) {
	s := openStore(t)
	now := time.Unix(1_800_000_000, 0)
	for _, x := range []string{"a", "b", "c", "d", "e", "f"} {
		add(t, s, now, x)
	}
	out := make(chan *messages.InboxMessage)
	handed := 0
	f := s.NewFeed(1, out, 2, func() { handed++ }) // after #1: from "b" on
	if f.Held() != 0 {
		t.Fatalf("held %d before running", f.Held())
	}
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() { f.Run(done); close(ended) }()
	next := func() string {
		t.Helper()
		select {
		case m := <-out:
			if h := f.Held(); h > 2 {
				t.Fatalf("held %d, read ahead at most 2", h)
			}
			return string(m.Text)
		case <-time.After(10 * time.Second):
			t.Fatal("nothing handed out")
			return ""
		}
	}
	if got := next(); got != "b" {
		t.Fatalf("first %q, want b", got)
	}
	if ok, err := s.Delete(5); err != nil || !ok { // "e", not read yet
		t.Fatal(ok, err)
	}
	for _, want := range []string{"c", "d", "f"} {
		if got := next(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	// Nothing left: a new entry (not UTF-8) wakes it.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return s.AddTx(tx, &messages.InboxMessage{Text: []byte{0xff, 'g'}, At: now})
	}); err != nil {
		t.Fatal(err)
	}
	s.Notify()
	if got := next(); got != "\xffg" {
		t.Fatalf("got %q, want the bytes as sent", got)
	}
	close(done)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end when done closed")
	}
	if handed != 5 || f.Held() != 0 {
		t.Fatalf("handed %d (want 5), held %d", handed, f.Held())
	}
}

// A record that does not decode (a damaged page, a foreign record) is
// listed as damaged with its number and left in the database, and
// neither the listing nor the feed stops at it: before, List failed as a
// whole, so `qpc inbox` showed nothing and the feed waited for ever at
// the damaged entry with every later message behind it.
func TestDamagedEntryIsListedAndSkipped(t *testing.T) {
	s := openStore(t)
	now := time.Unix(1_800_000_000, 0)
	for _, x := range []string{"a", "b", "c"} {
		add(t, s, now, x)
	}
	var k [8]byte
	k[7] = 2 // "b" becomes bytes that are not an entry
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(k[:], []byte("\x00garbage{")) }); err != nil {
		t.Fatal(err)
	}
	es, _, err := s.List(0, 10)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(es) != 3 || es[0].Text != "a" || es[2].Text != "c" {
		t.Fatalf("listed %+v, want a, the damaged #2, c", es)
	}
	if d := es[1]; d.Seq != 2 || d.Damaged == "" || d.Text != "" || d.ID != "" {
		t.Fatalf("damaged entry listed as %+v", d)
	}
	if es[0].Damaged != "" || es[2].Damaged != "" {
		t.Fatalf("good entries marked damaged: %+v", es)
	}
	// It stays: the record is still there for qpc db salvage.
	if err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucket).Get(k[:]); string(v) != "\x00garbage{" {
			t.Errorf("damaged record now %q", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	out := make(chan *messages.InboxMessage)
	done := make(chan struct{})
	defer close(done)
	go s.NewFeed(0, out, 4, nil).Run(done)
	for _, want := range []string{"a", "c"} {
		select {
		case m := <-out:
			if string(m.Text) != want {
				t.Fatalf("fed %q, want %q", m.Text, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("feed stopped before %q", want)
		}
	}
}
