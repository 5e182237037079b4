package persist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged: the database file cannot be trusted. The error is a
// *DamagedError naming the file and what was found.
var ErrDamaged = errors.New("persist: database is damaged")

// DamagedError is a database refused because its file is damaged.
type DamagedError struct {
	Path   string
	Report *Report
}

func (e *DamagedError) Error() string {
	dir := filepath.Dir(e.Path)
	first, more := "damaged", 0
	if e.Report != nil && len(e.Report.Problems) > 0 {
		first = e.Report.Problems[0]
		more = len(e.Report.Problems) - 1 + e.Report.MoreProblems
	}
	var b strings.Builder
	fmt.Fprintf(&b, "database %s is damaged: %s", e.Path, first)
	if more > 0 {
		fmt.Fprintf(&b, " (and %d more problems)", more)
	}
	if e.Report != nil && e.Report.Size == 0 {
		fmt.Fprintf(&b, "; nothing in it can be read: move it away (mv %s %s.empty) and restore a backup, or start with a new, empty database", e.Path, e.Path)
		return b.String()
	}
	fmt.Fprintf(&b, "; the file was left as it is: 'qpc db check --data-dir %s' reports what is damaged, 'qpc db salvage --data-dir %s' copies what can still be read into a new file", dir, dir)
	return b.String()
}

func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// CheckOptions bound a consistency check.
type CheckOptions struct {
	// TimeLimit stops the walk through the file's pages after this long
	// (0: no limit); the report says the check was incomplete.
	TimeLimit time.Duration
	// BboltCheckMaxPages: bbolt's own check (tx.Check), which cannot be
	// stopped once it runs, runs only on files with at most this many
	// pages in use (0: on every file).
	BboltCheckMaxPages uint64
	// LockTimeout: how long to wait for a running node's lock.
	LockTimeout time.Duration
}

// StartCheck is the check Open runs: at most 10 s of walking (about
// 70,000 pages a second on a 2-core machine), and bbolt's check up to
// 65,536 pages (256 MiB with 4 KiB pages; 40,000 pages took 0.25 s).
var StartCheck = CheckOptions{TimeLimit: 10 * time.Second, BboltCheckMaxPages: 1 << 16, LockTimeout: time.Second}

// maxListed problems are listed in a report; the rest are counted.
const maxListed = 50

// Report is what a check found.
type Report struct {
	Path      string `json:"path"`
	Size      int64  `json:"size_bytes"`
	PageSize  int    `json:"page_size"`
	Pages     uint64 `json:"pages_in_use"`
	TxID      uint64 `json:"txid"`
	PagesRead int    `json:"pages_read"`
	Buckets   int    `json:"buckets"`
	Keys      int    `json:"keys"`
	// Problems is the damage found: any one makes the file untrusted.
	Problems     []string `json:"problems"`
	MoreProblems int      `json:"more_problems,omitempty"`
	// Notes are worth knowing and are not damage (a meta page bbolt does
	// not use, a bound that cut the check short).
	Notes []string `json:"notes"`
	// Complete: every page in use was reached or found in the freelist
	// (no time limit cut the walk short).
	Complete bool `json:"complete"`
	// BboltCheck is "passed", "failed", or why it did not run.
	BboltCheck string `json:"bbolt_check"`
	// Owner is the address of the node that wrote the file, when the
	// check could read it (hex; "" when none is recorded).
	Owner      string        `json:"owner,omitempty"`
	Elapsed    time.Duration `json:"-"`
	ElapsedSec float64       `json:"elapsed_seconds"`
}

// OK reports whether the check found no damage.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) addProblem(s string) {
	if len(r.Problems) < maxListed {
		r.Problems = append(r.Problems, s)
		return
	}
	r.MoreProblems++
}

// Check reads the database at path without changing it and reports
// what is damaged: both meta pages, the file's length against the pages
// in use, every page reached from the root (its id, type, element
// bounds, key order, no page used twice, nested buckets), the freelist,
// and that every page in use is either reached or free; then bbolt's own
// tx.Check when the file is within o.BboltCheckMaxPages. It never
// memory-maps a file before the walk found it sound. The error is for a
// file that cannot be checked (missing, locked by a running node).
func Check(path string, o CheckOptions) (*Report, error) {
	start := time.Now()
	rep, err := walkCheck(path, o)
	if err != nil || !rep.OK() || rep.BboltCheck != "" {
		return rep, err
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout(o)})
	if err != nil {
		return rep, openError(path, err)
	}
	defer b.Close()
	err = b.View(func(tx *bolt.Tx) error {
		runBboltCheck(tx, rep)
		if m := tx.Bucket(metaBucket); m != nil && rep.OK() {
			rep.Owner = fmt.Sprintf("%x", m.Get(ownerKey))
		}
		return nil
	})
	rep.Elapsed = time.Since(start)
	rep.ElapsedSec = rep.Elapsed.Seconds()
	return rep, err
}

func lockTimeout(o CheckOptions) time.Duration {
	if o.LockTimeout <= 0 {
		return time.Second
	}
	return o.LockTimeout
}

// walkCheck is the walk of Check. It sets rep.BboltCheck when bbolt's
// check should not run.
func walkCheck(path string, o CheckOptions) (*Report, error) {
	start := time.Now()
	rep := &Report{Path: path, Problems: []string{}, Notes: []string{}}
	defer func() {
		rep.Elapsed = time.Since(start)
		rep.ElapsedSec = rep.Elapsed.Seconds()
	}()
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("persist: %s: %w", path, err)
		}
		return rep, fmt.Errorf("persist: open %s: %w", path, err)
	}
	defer f.Close()
	if err := lockShared(f, lockTimeout(o)); err != nil {
		return rep, fmt.Errorf("%w: %s (stop the node that uses it first)", ErrLocked, path)
	}
	r, err := openRaw(f)
	rep.Size = r.size
	if rep.Size == 0 {
		rep.addProblem("the file is empty (0 bytes); a database qpc wrote never is")
		rep.BboltCheck = "not run: damage found"
		return rep, nil
	}
	if errors.Is(err, errNoMeta) {
		rep.addProblem(fmt.Sprintf("neither meta page is valid (page 0: %v; page 1: %v): the start of the file is overwritten or it is not a bbolt file",
			r.metas[0].err, r.metas[1].err))
		rep.BboltCheck = "not run: damage found"
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("persist: read %s: %w", path, err)
	}
	used := r.metaIndex(r.meta)
	if m := r.metas[1-used]; m.err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("meta page %d is not valid (%v); bbolt uses meta page %d (transaction %d). After a crash during a commit this is expected; otherwise the last commit may be lost",
			1-used, m.err, used, r.meta.txid))
	}
	rep.PageSize, rep.Pages, rep.TxID = r.pageSize, r.meta.hwm, r.meta.txid
	if need := int64(r.meta.hwm) * int64(r.pageSize); r.size < need {
		rep.addProblem(fmt.Sprintf("the file is %d bytes but its %d pages in use need %d: it was cut short (truncated)", r.size, r.meta.hwm, need))
	}
	if r.meta.root < 2 || r.meta.root >= r.meta.hwm {
		rep.addProblem(fmt.Sprintf("the root page %d is outside the %d pages in use", r.meta.root, r.meta.hwm))
		rep.BboltCheck = "not run: damage found"
		return rep, nil
	}
	w := &walker{r: r, hwm: r.meta.hwm, seen: newBitset(r.meta.hwm), free: newBitset(r.meta.hwm), problem: rep.addProblem}
	if o.TimeLimit > 0 {
		w.deadline = start.Add(o.TimeLimit)
	}
	w.seen.set(0)
	w.seen.set(1)
	w.readFreelist()
	w.walkTree(nil, r.meta.root, nil, nil, 0)
	rep.PagesRead, rep.Buckets, rep.Keys = w.pagesRead, w.buckets, w.keys
	if w.stopped {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the check stopped at its time limit of %v after %d of %d pages; the rest was not checked (run 'qpc db check' with the node stopped for a full check)",
			o.TimeLimit, w.pagesRead, r.meta.hwm))
		rep.BboltCheck = "not run: the walk was incomplete"
		return rep, nil
	}
	if rep.OK() {
		var n, first uint64
		for p := uint64(2); p < r.meta.hwm; p++ {
			if !w.seen.has(p) && !w.free.has(p) {
				if n == 0 {
					first = p
				}
				n++
			}
		}
		if n > 0 {
			rep.addProblem(fmt.Sprintf("%d pages are neither in use nor free (the first is page %d): the tree lost them", n, first))
		}
	}
	rep.Complete = true
	switch {
	case !rep.OK():
		rep.BboltCheck = "not run: damage found"
	case o.BboltCheckMaxPages > 0 && r.meta.hwm > o.BboltCheckMaxPages:
		rep.BboltCheck = fmt.Sprintf("not run: %d pages in use, over the bound of %d (run 'qpc db check' for it)", r.meta.hwm, o.BboltCheckMaxPages)
		rep.Notes = append(rep.Notes, "bbolt's own check was left out: "+strings.TrimPrefix(rep.BboltCheck, "not run: "))
	}
	return rep, nil
}

// runBboltCheck runs tx.Check and records what it says. Run it only on a
// file the walk found sound: bbolt reads through its memory map.
func runBboltCheck(tx *bolt.Tx, rep *Report) {
	failed := false
	for err := range tx.Check() {
		failed = true
		rep.addProblem("bbolt check: " + err.Error())
	}
	if failed {
		rep.BboltCheck = "failed"
		return
	}
	rep.BboltCheck = "passed"
}

func openError(path string, err error) error {
	if errors.Is(err, errTimeout) {
		return fmt.Errorf("%w: %s (stop the other node or use another --data-dir)", ErrLocked, path)
	}
	return fmt.Errorf("persist: open %s: %w", path, err)
}
