package router

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTestDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "outbox.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func commitOutbox(t *testing.T, db *bolt.DB, o *Outbox) {
	t.Helper()
	if err := db.Update(o.Commit); err != nil {
		t.Fatal(err)
	}
}

// addMsg hands out a seq and adds a message to to.
func addMsg(t *testing.T, o *Outbox, to [16]byte, now time.Time, ttl time.Duration) *OutMsg {
	t.Helper()
	seq := o.NextSeq(to)
	m := &OutMsg{To: to, Seq: seq, Frame: []byte{byte(seq), byte(seq >> 8), 0xEE}, Expiry: now.Add(ttl)}
	m.ID[0], m.ID[1], m.ID[2] = to[0], byte(seq), byte(seq>>8)
	if err := o.Add(m, now); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOutboxLifecycle(t *testing.T) {
	db := openTestDB(t)
	o, err := OpenOutbox(db, OutboxLimits{RetryBase: time.Second, RetryMax: 8 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	to := [16]byte{1}
	m := addMsg(t, o, to, now, time.Hour)
	if m.Seq != 1 || m.State != StateQueued || o.Pending() != 1 {
		t.Fatalf("added: %+v, pending %d", m, o.Pending())
	}
	if !o.Transmit(m, now) || m.State != StateSent || m.Attempts != 1 {
		t.Fatalf("transmit: %+v", m)
	}
	// The first retry comes after RetryBase ±25 %, the next ones doubled.
	if d := m.NextRetry.Sub(now); d < 750*time.Millisecond || d > 1250*time.Millisecond {
		t.Fatalf("first retry after %s", d)
	}
	if due, _ := o.Due(now.Add(500 * time.Millisecond)); len(due) != 0 {
		t.Fatal("due before its time")
	}
	due, failed := o.Due(now.Add(2 * time.Second))
	if len(due) != 1 || len(failed) != 0 || due[0] != m {
		t.Fatalf("due %d failed %d", len(due), len(failed))
	}
	at := now.Add(2 * time.Second)
	if !o.Transmit(m, at) || m.Attempts != 2 {
		t.Fatal("retransmission refused")
	}
	if d := m.NextRetry.Sub(at); d < 1500*time.Millisecond || d > 2500*time.Millisecond {
		t.Fatalf("second retry after %s", d)
	}
	// A receipt from someone else does nothing; the destination's does.
	if got, _ := o.Delivered(m.ID, [16]byte{9}, at); got != nil {
		t.Fatal("receipt from another node accepted")
	}
	if got, _ := o.Delivered(m.ID, to, at); got != m || m.State != StateDelivered || o.Pending() != 0 || m.Frame != nil {
		t.Fatalf("delivered: %+v", m)
	}
	if got, _ := o.Delivered(m.ID, to, at); got != nil {
		t.Fatal("a second receipt counted again")
	}
	commitOutbox(t, db, o)

	// After a restart: the state, and the next seq, are back.
	o2, err := OpenOutbox(db, OutboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := o2.Get(m.ID); !ok || st.State != StateDelivered || st.Attempts != 2 {
		t.Fatalf("after restart: %+v %v", st, ok)
	}
	if s := o2.NextSeq(to); s != 2 {
		t.Fatalf("next seq after restart %d, want 2 (never reused)", s)
	}
}

// A seq handed out but whose message was never committed is not reused
// either: the next seq is written with the message.
func TestOutboxSeqSurvivesRestart(t *testing.T) {
	db := openTestDB(t)
	o, _ := OpenOutbox(db, OutboxLimits{})
	now := time.Unix(1_800_000_000, 0)
	to := [16]byte{2}
	for range 5 {
		addMsg(t, o, to, now, time.Hour)
	}
	commitOutbox(t, db, o)
	o2, err := OpenOutbox(db, OutboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if o2.Pending() != 5 || len(o2.List()) != 5 {
		t.Fatalf("pending after restart %d", o2.Pending())
	}
	if s := o2.NextSeq(to); s != 6 {
		t.Fatalf("next seq %d, want 6", s)
	}
	// Pending messages are due at once after a restart: retransmitted.
	due, _ := o2.Due(now)
	if len(due) != 5 {
		t.Fatalf("due after restart %d", len(due))
	}
}

func TestOutboxExpiryFails(t *testing.T) {
	o, _ := OpenOutbox(nil, OutboxLimits{RetryBase: time.Minute})
	now := time.Unix(1_800_000_000, 0)
	to := [16]byte{3}
	sent := addMsg(t, o, to, now, 10*time.Second)
	o.Transmit(sent, now)
	never := addMsg(t, o, to, now, 10*time.Second)
	o.Defer(never, now) // no route
	// The retry would come after a minute, but the messages expire first:
	// they are failed at their expiry, not later.
	if at := o.NextDue(); !at.Equal(now.Add(10 * time.Second)) {
		t.Fatalf("next due %s, want the expiry", at.Sub(now))
	}
	due, failed := o.Due(now.Add(10 * time.Second))
	if len(due) != 0 || len(failed) != 2 || o.Pending() != 0 {
		t.Fatalf("due %d failed %d pending %d", len(due), len(failed), o.Pending())
	}
	if sent.State != StateFailed || sent.Reason != "expired: no receipt after 1 attempt" {
		t.Fatalf("sent: %+v", sent)
	}
	if never.Reason != "expired: no route to the destination before the message expired" {
		t.Fatalf("never sent: %q", never.Reason)
	}
	// A late receipt still says what happened: it was delivered.
	if m, _ := o.Delivered(sent.ID, to, now.Add(11*time.Second)); m == nil || sent.State != StateDelivered {
		t.Fatalf("late receipt: %+v", sent)
	}
}

// Only seqs below the oldest unacknowledged one plus Window go out, so a
// receiver's replay window never has to judge a seq it has not seen that
// lies below its window.
func TestOutboxWindow(t *testing.T) {
	o, _ := OpenOutbox(nil, OutboxLimits{Window: 4})
	now := time.Unix(1_800_000_000, 0)
	to := [16]byte{4}
	var ms []*OutMsg
	for range 10 {
		ms = append(ms, addMsg(t, o, to, now, time.Hour))
	}
	for i, m := range ms {
		if got := o.Transmit(m, now); got != (i < 4) {
			t.Fatalf("message %d (seq %d) transmit %v", i, m.Seq, got)
		}
	}
	// Acknowledging seq 2 opens nothing: seq 1 still holds the window.
	if _, opened := o.Delivered(ms[1].ID, to, now); len(opened) != 0 {
		t.Fatalf("opened %d", len(opened))
	}
	// Acknowledging seq 1 moves the oldest to 3: seqs 5 and 6 may go.
	_, opened := o.Delivered(ms[0].ID, to, now)
	if len(opened) != 2 || opened[0].Seq != 5 || opened[1].Seq != 6 {
		t.Fatalf("opened %v", opened)
	}
	// Another destination has its own window.
	other := addMsg(t, o, [16]byte{5}, now, time.Hour)
	if other.Seq != 1 || !o.Transmit(other, now) {
		t.Fatal("another destination is held by the first one's window")
	}
}

func TestOutboxFull(t *testing.T) {
	o, _ := OpenOutbox(nil, OutboxLimits{MaxPending: 3})
	now := time.Unix(1_800_000_000, 0)
	to := [16]byte{6}
	var first *OutMsg
	for i := range 3 {
		m := addMsg(t, o, to, now, time.Hour)
		if i == 0 {
			first = m
		}
	}
	err := o.Add(&OutMsg{ID: [16]byte{0xFF}, To: to, Seq: o.NextSeq(to), Frame: []byte{1}, Expiry: now.Add(time.Hour)}, now)
	if !errors.Is(err, ErrOutboxFull) || !o.Full() {
		t.Fatalf("over the limit: %v", err)
	}
	o.Delivered(first.ID, to, now)
	if o.Full() {
		t.Fatal("still full after a receipt")
	}
}

func TestOutboxFinishedRecordsBounded(t *testing.T) {
	db := openTestDB(t)
	o, _ := OpenOutbox(db, OutboxLimits{MaxFinished: 3})
	now := time.Unix(1_800_000_000, 0)
	to := [16]byte{7}
	var ms []*OutMsg
	for range 5 {
		m := addMsg(t, o, to, now, time.Hour)
		ms = append(ms, m)
		o.Delivered(m.ID, to, now)
	}
	commitOutbox(t, db, o)
	o2, _ := OpenOutbox(db, OutboxLimits{MaxFinished: 3})
	for i, m := range ms {
		_, ok := o2.Get(m.ID)
		if ok != (i >= 2) {
			t.Fatalf("message %d kept %v", i, ok)
		}
	}
}

func TestOutboxRouteUpMakesDue(t *testing.T) {
	o, _ := OpenOutbox(nil, OutboxLimits{RetryBase: time.Minute})
	now := time.Unix(1_800_000_000, 0)
	to := [16]byte{8}
	m := addMsg(t, o, to, now, time.Hour)
	o.Defer(m, now)
	if due, _ := o.Due(now.Add(time.Second)); len(due) != 0 {
		t.Fatal("due before the route came")
	}
	o.RouteUp(to, now.Add(time.Second), 3*time.Second)
	due, _ := o.Due(now.Add(time.Second))
	if len(due) != 1 {
		t.Fatal("not due after the route came up")
	}
	// Sent just now: a route coming up leaves it to its schedule.
	o.Transmit(due[0], now.Add(time.Second))
	o.RouteUp(to, now.Add(2*time.Second), 3*time.Second)
	if due, _ := o.Due(now.Add(2 * time.Second)); len(due) != 0 {
		t.Fatal("a message sent a second ago was made due again")
	}
	o.RouteUp(to, now.Add(5*time.Second), 3*time.Second)
	if due, _ := o.Due(now.Add(5 * time.Second)); len(due) != 1 {
		t.Fatal("a message sent 4 s ago was not made due by a route coming up")
	}
}

func TestOutboxRecordRoundTripAndCorrupt(t *testing.T) {
	now := time.Unix(1_800_000_000, 123)
	m := &OutMsg{ID: [16]byte{1, 2}, To: [16]byte{3}, Seq: 99, State: StateSent, Attempts: 3, Created: now,
		Expiry: now.Add(time.Hour), NextRetry: now.Add(time.Minute), Frame: []byte("frame")}
	key := binary.BigEndian.AppendUint64(nil, 7)
	got, err := decodeOutMsg(key, encodeOutMsg(m))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || got.key != 7 {
		t.Fatalf("id %x key %d, want %x 7", got.ID, got.key, m.ID)
	}
	if got.Seq != 99 || got.State != StateSent || got.Attempts != 3 || !got.Created.Equal(now) || string(got.Frame) != "frame" || got.To != m.To {
		t.Fatalf("round trip: %+v", got)
	}
	f := &OutMsg{ID: m.ID, State: StateFailed, Reason: "expired", Done: now}
	if got, err := decodeOutMsg(key, encodeOutMsg(f)); err != nil || got.Reason != "expired" || got.Frame != nil {
		t.Fatalf("finished: %+v %v", got, err)
	}
	bad := [][]byte{nil, {2}, append([]byte{3}, encodeOutMsg(m)[1:]...), encodeOutMsg(m)[:outRecordHead-1]}
	pendingNoFrame := encodeOutMsg(&OutMsg{State: StateQueued})
	bad = append(bad, pendingNoFrame)
	for i, v := range bad {
		if _, err := decodeOutMsg(key, v); !errors.Is(err, ErrOutboxCorrupt) {
			t.Fatalf("bad record %d: %v", i, err)
		}
	}
	// A version-2 record under a 16-byte key, or version 1 under an 8-byte
	// one, is corrupt; so is key 0.
	for _, kv := range [][2][]byte{{m.ID[:], encodeOutMsg(m)}, {key, encodeOutMsgV1(m)}, {make([]byte, 8), encodeOutMsg(m)}} {
		if _, err := decodeOutMsg(kv[0], kv[1]); !errors.Is(err, ErrOutboxCorrupt) {
			t.Fatalf("key %x with version %d: %v", kv[0], kv[1][0], err)
		}
	}
	// Version 1 still reads.
	if got, err := decodeOutMsg(m.ID[:], encodeOutMsgV1(m)); err != nil || got.ID != m.ID || got.Seq != 99 || string(got.Frame) != "frame" || got.key != 0 {
		t.Fatalf("version 1: %+v %v", got, err)
	}
}

// encodeOutMsgV1 is the record layout before the records were keyed in
// order of Add: stored under the id, no id inside, 8 spare bytes.
func encodeOutMsgV1(m *OutMsg) []byte {
	v2 := encodeOutMsg(m)
	v1 := append([]byte{1}, v2[1:64]...)
	v1 = append(v1, make([]byte, 8)...)
	return append(v1, v2[outRecordHead:]...)
}

// Records written by the node before the records were keyed in order of
// Add are read, rewritten under new keys at the next commit, and read
// back from the new layout.
func TestOutboxReadsAndRewritesVersion1(t *testing.T) {
	db := openTestDB(t)
	now := time.Unix(1_800_000_000, 0)
	pend := &OutMsg{ID: [16]byte{9}, To: [16]byte{3}, Seq: 1, State: StateSent, Attempts: 1, Created: now, Expiry: now.Add(time.Hour), NextRetry: now.Add(time.Minute), Frame: []byte("f1")}
	done := &OutMsg{ID: [16]byte{8}, To: [16]byte{3}, Seq: 2, State: StateDelivered, Created: now, Expiry: now.Add(time.Hour), Done: now}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(outboxMsgs)
		if err != nil {
			return err
		}
		for _, m := range []*OutMsg{pend, done} {
			if err := b.Put(m.ID[:], encodeOutMsgV1(m)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	o, err := OpenOutbox(db, OutboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Pending() != 1 || !o.Dirty() {
		t.Fatalf("pending %d dirty %v after loading version 1", o.Pending(), o.Dirty())
	}
	if err := db.Update(o.Commit); err != nil {
		t.Fatal(err)
	}
	var keys []int
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(outboxMsgs).ForEach(func(k, v []byte) error {
			keys = append(keys, len(k))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != 8 || keys[1] != 8 {
		t.Fatalf("keys after the rewrite: lengths %v, want two of 8", keys)
	}
	again, err := OpenOutbox(db, OutboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := again.Get(pend.ID); !ok || g.State != StateSent || g.Seq != 1 {
		t.Fatalf("pending after the rewrite: %+v %v", g, ok)
	}
	if g, ok := again.Get(done.ID); !ok || g.State != StateDelivered {
		t.Fatalf("delivered after the rewrite: %+v %v", g, ok)
	}
	if again.Dirty() {
		t.Fatal("nothing to rewrite the second time")
	}
}

// A commit of messages added together writes them under adjacent keys,
// in the order they were added.
func TestOutboxKeysFollowAddOrder(t *testing.T) {
	db := openTestDB(t)
	o, err := OpenOutbox(db, OutboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	var ids [][16]byte
	for i := range 50 {
		id := [16]byte{byte(255 - i), 0x55} // ids in falling order
		m := &OutMsg{ID: id, To: [16]byte{3}, Seq: o.NextSeq([16]byte{3}), Expiry: now.Add(time.Hour), Frame: []byte("f")}
		if err := o.Add(m, now); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := db.Update(o.Commit); err != nil {
		t.Fatal(err)
	}
	var got [][16]byte
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(outboxMsgs).ForEach(func(k, v []byte) error {
			m, err := decodeOutMsg(k, v)
			if err != nil {
				return err
			}
			got = append(got, m.ID)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("stored order %x, want the order of Add", got[:3])
	}
}

func FuzzOutboxRecord(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(encodeOutMsg(&OutMsg{State: StateSent, Seq: 1, Frame: []byte("x"), Created: now}))
	f.Add(encodeOutMsg(&OutMsg{State: StateFailed, Reason: "expired"}))
	f.Add([]byte{2, 1})
	f.Fuzz(func(t *testing.T, v []byte) {
		k := []byte{0, 0, 0, 0, 0, 0, 0, 1}
		m, err := decodeOutMsg(k, v)
		if err != nil {
			if !errors.Is(err, ErrOutboxCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := decodeOutMsg(k, encodeOutMsg(m))
		if err != nil || again.Seq != m.Seq || again.State != m.State || string(again.Frame) != string(m.Frame) || again.Reason != m.Reason {
			t.Fatalf("round trip of %+v: %+v %v", m, again, err)
		}
	})
}

// When the oldest message to a destination fails, the ones it held out of
// the window are due at once, not at their deferred retry.
func TestOutboxFailureOpensTheWindow(t *testing.T) {
	o, _ := OpenOutbox(nil, OutboxLimits{Window: 2, RetryBase: time.Minute})
	now := time.Unix(1_800_000_000, 0)
	to := [16]byte{9}
	first := addMsg(t, o, to, now, 5*time.Second)
	second := addMsg(t, o, to, now, time.Hour)
	third := addMsg(t, o, to, now, time.Hour)
	for _, m := range []*OutMsg{first, second, third} {
		if !o.Transmit(m, now) {
			o.Defer(m, now)
		}
	}
	if third.Attempts != 0 {
		t.Fatal("the third went out past the window")
	}
	due, failed := o.Due(now.Add(5 * time.Second))
	if len(failed) != 1 || failed[0] != first {
		t.Fatalf("failed %v", failed)
	}
	if len(due) != 1 || due[0] != third {
		t.Fatalf("due %v, want the third", due)
	}
	if !o.Transmit(third, now.Add(5*time.Second)) {
		t.Fatal("the third is still outside the window")
	}
}
