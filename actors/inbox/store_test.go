package inbox

import (
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	bolt "go.etcd.io/bbolt"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "inbox.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func add(t *testing.T, s *Store, at time.Time, text string) {
	t.Helper()
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return s.AddTx(tx, &messages.InboxMessage{Text: []byte(text), At: at})
	}); err != nil {
		t.Fatal(err)
	}
}

func texts(t *testing.T, s *Store) []string {
	t.Helper()
	es, _, err := s.List(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Text)
	}
	return out
}

func TestPruneByCountAndAge(t *testing.T) {
	s := openStore(t)
	now := time.Unix(1_800_000_000, 0)
	for i, age := range []time.Duration{50 * time.Hour, 40 * time.Hour, 3 * time.Hour, 2 * time.Hour, time.Hour} {
		add(t, s, now.Add(-age), string(rune('a'+i)))
	}
	// By age: the two older than a day go.
	if n, err := s.Prune(now, 100, 24*time.Hour); err != nil || n != 2 {
		t.Fatalf("pruned %d: %v", n, err)
	}
	if got := texts(t, s); len(got) != 3 || got[0] != "c" {
		t.Fatalf("after age: %v", got)
	}
	// By count: keep the newest two.
	if n, err := s.Prune(now, 2, 24*time.Hour); err != nil || n != 1 {
		t.Fatalf("pruned %d: %v", n, err)
	}
	if got := texts(t, s); len(got) != 2 || got[0] != "d" || got[1] != "e" {
		t.Fatalf("after count: %v", got)
	}
	// Numbers go on: the next message is #6, not a reused one.
	add(t, s, now, "f")
	es, _, _ := s.List(0, 10)
	if es[len(es)-1].Seq != 6 {
		t.Fatalf("next number %d, want 6", es[len(es)-1].Seq)
	}
}

func TestDeleteAndClear(t *testing.T) {
	s := openStore(t)
	now := time.Unix(1_800_000_000, 0)
	for _, x := range []string{"a", "b", "c"} {
		add(t, s, now, x)
	}
	if ok, err := s.Delete(2); err != nil || !ok {
		t.Fatalf("delete 2: %v %v", ok, err)
	}
	if ok, _ := s.Delete(2); ok {
		t.Fatal("deleted 2 twice")
	}
	if got := texts(t, s); len(got) != 2 || got[1] != "c" {
		t.Fatalf("after delete: %v", got)
	}
	if n, err := s.Clear(); err != nil || n != 2 || len(texts(t, s)) != 0 {
		t.Fatalf("clear: %d %v", n, err)
	}
	// Reopened (a restart): the next number is still 4, never a reused 1.
	s2, err := Open(s.db)
	if err != nil {
		t.Fatal(err)
	}
	add(t, s2, now, "d")
	if es, _, _ := s2.List(0, 10); len(es) != 1 || es[0].Seq != 4 {
		t.Fatalf("after clear and reopen: %+v", es)
	}
}

// The actor applies retention on its clock, every PruneEvery and not in
// between: a millisecond before the tick all four messages are there
// (two more than MaxMessages, one older than MaxAge by then); at the
// tick only the newest two remain, and at the next tick the one that has
// grown older than MaxAge goes too.
func TestActorPrunesOnItsClock(t *testing.T) {
	s := openStore(t)
	now := time.Unix(1_800_000_000, 0)
	const every, maxAge = time.Minute, 24 * time.Hour
	for _, m := range []struct {
		age  time.Duration
		text string
	}{{maxAge, "a"}, {time.Hour, "b"}, {maxAge - 90*time.Second, "c"}, {0, "d"}} {
		add(t, s, now.Add(-m.age), m.text)
	}
	clk := clock.NewManual(now)
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	defer sys.Shutdown()
	pid := sys.Root.Spawn(New(Config{Store: s, MaxMessages: 2, MaxAge: maxAge, PruneEvery: every,
		Clock: clk, Log: slog.New(slog.DiscardHandler)}))
	defer sys.Root.Stop(pid)
	// The prune timer is the only one on the clock; the actor arms the
	// next one after it pruned, so Pending back at 1 after a tick means
	// the tick's prune is done.
	armed := func() {
		probe.Until(t, 10*time.Second, func() bool { return clk.Pending() == 1 }, "the prune timer armed")
	}
	armed()
	for tick, want := range [][]string{{"c", "d"}, {"d"}} {
		clk.Advance(every - time.Millisecond)
		if clk.Pending() != 1 {
			t.Fatalf("tick %d: the timer fired before PruneEvery", tick+1)
		}
		if got := texts(t, s); len(got) != 4-tick*2 {
			t.Fatalf("tick %d: a millisecond before it the inbox holds %v", tick+1, got)
		}
		clk.Advance(time.Millisecond)
		armed()
		if got := texts(t, s); !slices.Equal(got, want) {
			t.Fatalf("tick %d: kept %v, want %v", tick+1, got, want)
		}
	}
}
