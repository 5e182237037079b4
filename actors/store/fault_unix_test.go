//go:build unix

package store

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/messages"
)

const diskFullChild = "QPC_STORE_DISK_FULL_CHILD"

// A write that fails at commit, after its transaction had done its work
// (the file cannot grow: RLIMIT_FSIZE stands for a full disk, a real
// bbolt commit failure), stores nothing and changes no count; once the
// fault clears, the same store on the same database stores the senders'
// retransmissions and hands everything back exactly once. No restart.
//
// RLIMIT_FSIZE is the whole process's, and `go test` writes its own log
// file while tests run: the test runs in a child process of its own (the
// test binary again, with only this test and no log file), so that no
// other file of the run meets the limit.
func TestActorDiskFullWriteFailsAndRecoversWhenItClears(t *testing.T) {
	if os.Getenv(diskFullChild) != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestActorDiskFullWriteFailsAndRecoversWhenItClears$", "-test.v")
		cmd.Env = append(os.Environ(), diskFullChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the disk-full test in its own process: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "--- SKIP") {
			t.Skipf("skipped in its own process:\n%s", out)
		}
		if !strings.Contains(string(out), "--- PASS: TestActorDiskFullWriteFailsAndRecoversWhenItClears") {
			t.Fatalf("the child did not run the test:\n%s", out)
		}
		return
	}
	d := dest(9)
	h := newHarness(t, Limits{PerDest: 100}, fillN(t, d, 3))
	h.fromProbe(&messages.Drain{}) // started: the queue is open
	h.next()
	fi, err := os.Stat(h.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip("no RLIMIT_FSIZE here:", err)
	}
	lift := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(lift)
	// The file may not grow past its size now: a 60 KiB frame needs it to.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: uint64(fi.Size()), Max: old.Max}); err != nil {
		t.Skip("cannot lower RLIMIT_FSIZE:", err)
	}
	var big []any
	for i := 3; i < 6; i++ {
		it := numbered(d, i)
		it.Frame = append(it.Frame, make([]byte, 60<<10)...)
		big = append(big, storeMsg(it))
	}
	h.fromProbe(append(big, &messages.Persist{})...)
	p := h.next().(*messages.Persisted)
	if p.Err == nil || !strings.Contains(p.Err.Error(), "file too large") {
		t.Fatalf("Persisted.Err = %v, want the commit's file resize error", p.Err)
	}
	if put, failed := h.count("put"), h.count("write_failed"); put != 0 || failed != 3 {
		t.Fatalf("put %v write_failed %v; want 0 and 3", put, failed)
	}
	if got := testutil.ToFloat64(h.mesh.Stored); got != 3 {
		t.Fatalf("Stored %v after the failed commit, want 3", got)
	}

	lift()
	h.fromProbe(append(big, &messages.Persist{})...) // the retransmissions
	if p := h.next().(*messages.Persisted); p.Err != nil {
		t.Fatalf("Persist after the fault cleared: %v", p.Err)
	}
	h.fromProbe(&messages.RouteUp{Dest: d})
	if got := slices.Concat(h.batchesOf(d, 6)...); !slices.Equal(got, seq(0, 6)) {
		t.Fatalf("handed back %v, want 0..5 once", got)
	}
	h.quiet(d)
	if put, stored := h.count("put"), testutil.ToFloat64(h.mesh.Stored); put != 3 || stored != 6 {
		t.Fatalf("put %v Stored %v; want 3 and 6", put, stored)
	}
}
