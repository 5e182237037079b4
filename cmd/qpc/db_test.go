package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/internal/persist/persisttest"
)

// TestDBCheck: 0 for a sound data dir, 3 with the problems and what to
// do for a damaged one (a zeroed page, a missing identity), 2 for usage.
func TestDBCheck(t *testing.T) {
	dir := t.TempDir()
	persisttest.DataDir(t, dir, 200)
	out, errs, code := runQPC(t, "db", "check", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, ": ok: ") || !strings.Contains(out, "bbolt check passed") {
		t.Fatalf("sound: %d %q %q", code, out, errs)
	}

	zeroed := persisttest.Copy(t, dir)
	persisttest.ZeroPageHolding(t, filepath.Join(zeroed, "qpc.db"), persisttest.Text(100), 4096)
	out, _, code = runQPC(t, "db", "check", "--data-dir", zeroed)
	if code != exitDataDir || !strings.Contains(out, "DAMAGED") || !strings.Contains(out, "zeroed") || !strings.Contains(out, "qpc db salvage --data-dir "+zeroed) {
		t.Fatalf("zeroed page: %d %q", code, out)
	}
	out, _, code = runQPC(t, "db", "check", "--data-dir", zeroed, "--json")
	var rep dataDirReport
	if code != exitDataDir || json.Unmarshal([]byte(out), &rep) != nil || rep.OK || len(rep.Problems) == 0 || rep.Database == nil {
		t.Fatalf("--json: %d %q", code, out)
	}

	noKey := persisttest.Copy(t, dir)
	os.Remove(filepath.Join(noKey, "identity.pem"))
	out, _, code = runQPC(t, "db", "check", "--data-dir", noKey)
	if code != exitDataDir || !strings.Contains(out, "identity.pem is missing") || !strings.Contains(out, "--new-identity") {
		t.Fatalf("identity missing: %d %q", code, out)
	}

	if _, _, code := runQPC(t, "db", "check", "--data-dir", t.TempDir()); code != exitFailure {
		t.Fatalf("no database: exit %d, want 1", code)
	}
	if _, _, code := runQPC(t, "db"); code != exitUsage {
		t.Fatalf("qpc db: exit %d, want 2", code)
	}
	if _, _, code := runQPC(t, "db", "check", "extra"); code != exitUsage {
		t.Fatalf("qpc db check extra: exit %d, want 2", code)
	}
}

// TestDBSalvage: salvage writes qpc.db.salvaged beside the damaged file,
// which it leaves unchanged; the new file checks sound in place of the
// old one; a second salvage does not overwrite the first.
func TestDBSalvage(t *testing.T) {
	dir := t.TempDir()
	path := persisttest.DataDir(t, dir, 200)
	persisttest.ZeroPageHolding(t, path, persisttest.Text(100), 4096)
	sum := persisttest.Sum(t, path)
	out, errs, code := runQPC(t, "db", "salvage", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "copied ") || !strings.Contains(out, "is unchanged") || !strings.Contains(out, "mv ") {
		t.Fatalf("salvage: %d %q %q", code, out, errs)
	}
	if persisttest.Sum(t, path) != sum {
		t.Fatal("salvage changed qpc.db")
	}
	if _, errs, code := runQPC(t, "db", "salvage", "--data-dir", dir); code != exitFailure || !strings.Contains(errs, "exists") {
		t.Fatalf("second salvage: %d %q", code, errs)
	}
	if err := os.Rename(path, path+".damaged"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".salvaged", path); err != nil {
		t.Fatal(err)
	}
	if out, _, code := runQPC(t, "db", "check", "--data-dir", dir); code != 0 {
		t.Fatalf("check of the salvaged file: %d %q", code, out)
	}
	if _, errs, code := runQPC(t, "db", "salvage", "--data-dir", t.TempDir()); code != exitFailure || !strings.Contains(errs, "nothing to salvage") {
		t.Fatalf("salvage of nothing: %d %q", code, errs)
	}
}

// TestNodeExitsDataDirCode: qpc node on an empty qpc.db (bbolt would
// make a new database of it) exits 3 with one line naming the file.
func TestNodeExitsDataDirCode(t *testing.T) {
	dir := t.TempDir()
	path := persisttest.DataDir(t, dir, 10)
	persisttest.Empty(t, path)
	_, errs, code := runQPC(t, "node", "--data-dir", dir, "--api", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:0", "--log-level", "error")
	if code != exitDataDir || !strings.Contains(errs, path) || !strings.Contains(errs, "empty (0 bytes)") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Fatalf("node on an empty qpc.db: exit %d\n%s", code, errs)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("the empty file was replaced: %v %v", st, err)
	}
}
