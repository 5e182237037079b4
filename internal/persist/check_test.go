package persist_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/internal/persist/persisttest"
)

const messages = 1000

// sound is a data dir with 1,000 inbox messages, built once per test
// binary and copied by every test that damages it.
var sound string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qpc-persist-")
	if err != nil {
		panic(err)
	}
	sound = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// soundDir builds the shared data dir on first use.
func soundDir(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(sound, "qpc.db")); err != nil {
		persisttest.DataDir(t, sound, messages)
	}
	return sound
}

// damaged copies the sound data dir, damages its qpc.db with f and
// returns the path and the SHA-256 of the damaged file.
func damaged(t *testing.T, f func(path string)) (string, [32]byte) {
	t.Helper()
	path := filepath.Join(persisttest.Copy(t, soundDir(t)), "qpc.db")
	f(path)
	return path, persisttest.Sum(t, path)
}

func placeInbox(k, v []byte) [][]byte {
	if inbox.LooksLikeEntry(k, v) {
		return [][]byte{inbox.Bucket}
	}
	return nil
}

// keepInbox leaves out inbox entries that no longer decode.
func keepInbox(path [][]byte, k, v []byte) bool {
	return len(path) != 1 || string(path[0]) != string(inbox.Bucket) || inbox.LooksLikeEntry(k, v)
}

// inboxOf opens a database and lists its inbox.
func inboxOf(t *testing.T, path string) []inbox.Entry {
	t.Helper()
	db, err := persist.Open(path, time.Second)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	box, err := inbox.Open(db.DB)
	if err != nil {
		t.Fatal(err)
	}
	es, _, err := box.List(0, 10*messages)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestCheckSoundDatabase(t *testing.T) {
	rep, err := persist.Check(filepath.Join(soundDir(t), "qpc.db"), persist.CheckOptions{})
	if err != nil || !rep.OK() || !rep.Complete || rep.BboltCheck != "passed" {
		t.Fatalf("check of a sound file: %v %+v", err, rep)
	}
	if rep.Keys < messages || rep.Owner == "" {
		t.Fatalf("keys %d (want at least %d), owner %q", rep.Keys, messages, rep.Owner)
	}
	if es := inboxOf(t, filepath.Join(persisttest.Copy(t, soundDir(t)), "qpc.db")); len(es) != messages {
		t.Fatalf("inbox has %d messages, want %d", len(es), messages)
	}
}

// TestOpenRefusesDamagedDatabase is the regression test for issue 10
// item 4: each damage is refused at open with a *DamagedError naming the
// file and what to do, without a panic, and the file is left unchanged.
// Today bbolt panics on the truncated file and opens the others.
func TestOpenRefusesDamagedDatabase(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"truncated to half", func(t *testing.T, p string) { persisttest.Truncate(t, p) }, "cut short"},
		{"200 flipped bytes", func(t *testing.T, p string) { persisttest.Flip(t, p, 200, 1, 4096) }, "bucket"},
		{"zeroed page", func(t *testing.T, p string) { persisttest.ZeroPageHolding(t, p, persisttest.Text(500), 4096) }, "zeroed"},
		{"0 bytes", func(t *testing.T, p string) { persisttest.Empty(t, p) }, "empty (0 bytes)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path, sum := damaged(t, func(p string) { c.damage(t, p) })
			db, err := persist.Open(path, time.Second)
			if err == nil {
				db.Close()
				t.Fatal("a damaged database was opened")
			}
			var de *persist.DamagedError
			if !errors.Is(err, persist.ErrDamaged) || !errors.As(err, &de) || de.Path != path {
				t.Fatalf("err = %v, want a *DamagedError for %s", err, path)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Fatalf("message %q: want one line naming %s and %q", msg, path, c.want)
			}
			if c.name != "0 bytes" && !strings.Contains(msg, "qpc db salvage --data-dir "+filepath.Dir(path)) {
				t.Fatalf("message %q does not say what to do", msg)
			}
			if persisttest.Sum(t, path) != sum {
				t.Fatal("the damaged file was changed")
			}
		})
	}
}

// TestSalvageZeroedPage: salvage copies every message but those of the
// zeroed page into a new file that opens and checks sound; the damaged
// file is unchanged.
func TestSalvageZeroedPage(t *testing.T) {
	path, sum := damaged(t, func(p string) { persisttest.ZeroPageHolding(t, p, persisttest.Text(500), 4096) })
	out := path + ".salvaged"
	rep, err := persist.Salvage(path, out, persist.SalvageOptions{Place: placeInbox})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0], "zeroed") {
		t.Fatalf("salvage met no damage: %+v", rep)
	}
	if persisttest.Sum(t, path) != sum {
		t.Fatal("salvage changed the damaged file")
	}
	es := inboxOf(t, out)
	assertEntries(t, es, messages-20, messages-1)
	for _, e := range es {
		if e.Seq == 500 {
			t.Fatal("message 500 was on the zeroed page and came back")
		}
	}
	if es[0].Seq != 1 || es[len(es)-1].Seq != messages {
		t.Fatalf("first and last salvaged: %d %d", es[0].Seq, es[len(es)-1].Seq)
	}
	// A second salvage into the same file is refused: nothing is overwritten.
	if _, err := persist.Salvage(path, out, persist.SalvageOptions{}); !errors.Is(err, persist.ErrSalvageTarget) {
		t.Fatalf("salvage over an existing file: %v", err)
	}
}

// TestSalvageTruncated: a file cut in half lost its root and freelist
// (bbolt writes them last); the inbox pages in the first half go back
// into the inbox.
func TestSalvageTruncated(t *testing.T) {
	path, sum := damaged(t, func(p string) { persisttest.Truncate(t, p) })
	out := path + ".salvaged"
	rep, err := persist.Salvage(path, out, persist.SalvageOptions{Place: placeInbox})
	if err != nil {
		t.Fatal(err)
	}
	if persisttest.Sum(t, path) != sum {
		t.Fatal("salvage changed the damaged file")
	}
	if rep.FromOrphans == 0 {
		t.Fatalf("nothing placed from pages outside the tree: %+v", rep)
	}
	assertEntries(t, inboxOf(t, out), messages*9/10, messages)
}

// TestSalvageFlippedBytes: what salvage writes opens and checks sound.
// (Values are copied as they are: bbolt keeps no checksum of them, so a
// text with a flipped byte comes back with it.)
func TestSalvageFlippedBytes(t *testing.T) {
	path, sum := damaged(t, func(p string) { persisttest.Flip(t, p, 200, 1, 4096) })
	out := path + ".salvaged"
	srep, err := persist.Salvage(path, out, persist.SalvageOptions{Place: placeInbox, Keep: keepInbox})
	if err != nil {
		t.Fatal(err)
	}
	if srep.LeftOut == 0 {
		t.Fatalf("no damaged entry left out: %+v", srep)
	}
	if persisttest.Sum(t, path) != sum {
		t.Fatal("salvage changed the damaged file")
	}
	rep, err := persist.Check(out, persist.CheckOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("check of the salvaged file: %v %v", err, rep.Problems)
	}
	if es := inboxOf(t, out); len(es) < messages*9/10 {
		t.Fatalf("%d messages salvaged of %d", len(es), messages)
	}
}

// assertEntries: between lo and hi entries, each exactly as stored.
func assertEntries(t *testing.T, es []inbox.Entry, lo, hi int) {
	t.Helper()
	if len(es) < lo || len(es) > hi {
		t.Fatalf("%d messages salvaged, want %d to %d", len(es), lo, hi)
	}
	for _, e := range es {
		if e.Text != persisttest.Text(int(e.Seq)) {
			t.Fatalf("message %d salvaged as %q", e.Seq, e.Text)
		}
	}
}

// TestCheckBounds: the check at open stops at its time limit (the report
// says so, and it is not damage), and bbolt's check, which cannot be
// stopped, is left out above its page bound.
func TestCheckBounds(t *testing.T) {
	path := filepath.Join(soundDir(t), "qpc.db")
	rep, err := persist.Check(path, persist.CheckOptions{TimeLimit: time.Nanosecond})
	if err != nil || !rep.OK() || rep.Complete || !strings.HasPrefix(rep.BboltCheck, "not run") || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "time limit") {
		t.Fatalf("check with a time limit of 1ns: %v %+v", err, rep)
	}
	rep, err = persist.Check(path, persist.CheckOptions{BboltCheckMaxPages: 10})
	if err != nil || !rep.OK() || !rep.Complete || !strings.Contains(rep.BboltCheck, "over the bound of 10") {
		t.Fatalf("check with a page bound of 10: %v %+v", err, rep)
	}
}

// TestCheckStaleMetaIsANote: a damaged meta page is what a crash during a
// commit leaves; bbolt uses the other one, and the check says so without
// refusing the file.
func TestCheckStaleMetaIsANote(t *testing.T) {
	path, _ := damaged(t, func(p string) {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// Meta page 1's checksum (the pages alternate by transaction).
		if _, err := f.WriteAt([]byte{0xde, 0xad}, 4096+16+56); err != nil {
			t.Fatal(err)
		}
	})
	rep, err := persist.Check(path, persist.CheckOptions{})
	if err != nil || !rep.OK() || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "meta page 1 is not valid") {
		t.Fatalf("check with one damaged meta page: %v %+v", err, rep)
	}
}

// TestCheckLockedDatabase: a file a running node holds is not read.
func TestCheckLockedDatabase(t *testing.T) {
	path := filepath.Join(persisttest.Copy(t, soundDir(t)), "qpc.db")
	db, err := persist.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := persist.Check(path, persist.CheckOptions{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, persist.ErrLocked) {
		t.Fatalf("check of a locked file: %v", err)
	}
}
