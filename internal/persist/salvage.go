package persist

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SalvageOptions tune Salvage.
type SalvageOptions struct {
	// Place names the bucket a key and value found on a page outside the
	// tree belong to, or nil when it cannot tell. It lets salvage put
	// back what the file still holds when the pages above it are gone
	// (a file cut short loses the root, which bbolt writes last).
	Place func(k, v []byte) [][]byte
	// Keep, when set, says whether an entry that was read is sound enough
	// to copy (an inbox entry must still decode): what it refuses is
	// left out and counted.
	Keep func(path [][]byte, k, v []byte) bool
	// LockTimeout: how long to wait for a running node's lock.
	LockTimeout time.Duration
}

// SalvageReport says what Salvage copied and what it could not.
type SalvageReport struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Buckets int    `json:"buckets"`
	// Keys were copied: FromTree reached from the root, FromOrphans
	// found on pages outside the tree and placed.
	Keys        int `json:"keys"`
	FromTree    int `json:"keys_from_tree"`
	FromOrphans int `json:"keys_from_orphan_pages"`
	// OrphanKeysUnplaced were on pages outside the tree with no known
	// bucket: not copied.
	OrphanKeysUnplaced int `json:"orphan_keys_unplaced"`
	// LeftOut were read but refused by SalvageOptions.Keep.
	LeftOut int `json:"left_out"`
	// Problems is the damage met on the way (as Check lists it).
	Problems     []string `json:"problems"`
	MoreProblems int      `json:"more_problems,omitempty"`
	Notes        []string `json:"notes"`
}

func (r *SalvageReport) addProblem(s string) {
	if len(r.Problems) < maxListed {
		r.Problems = append(r.Problems, s)
		return
	}
	r.MoreProblems++
}

// ErrSalvageTarget: the file to salvage into already exists.
var ErrSalvageTarget = errors.New("persist: salvage target exists")

// lostRange is a subtree of a bucket that could not be read.
type lostRange struct {
	path   [][]byte
	lo, hi []byte
}

// Salvage copies every key and value of the bbolt file at from that can
// still be read into a new file at to, leaving from unchanged. It goes
// through the file with the defensive reader of Check: it skips pages it
// cannot read, and then looks at the pages the tree no longer reaches
// (below a page it could not read, or the whole file when the root is
// gone): a leaf page whose keys fall into the range of a lost subtree
// goes back into that bucket; one that o.Place can place goes there.
// What it copies is only as right as the bytes are: bbolt keeps no
// checksum of values, so a value with a flipped byte is copied as it is.
func Salvage(from, to string, o SalvageOptions) (*SalvageReport, error) {
	rep := &SalvageReport{From: from, To: to, Problems: []string{}, Notes: []string{}}
	if _, err := os.Stat(to); err == nil {
		return rep, fmt.Errorf("%w: %s (remove it or choose another --out)", ErrSalvageTarget, to)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return rep, err
	}
	f, err := os.Open(from)
	if err != nil {
		return rep, fmt.Errorf("persist: open %s: %w", from, err)
	}
	defer f.Close()
	if err := lockShared(f, lockTimeout(CheckOptions{LockTimeout: o.LockTimeout})); err != nil {
		return rep, fmt.Errorf("%w: %s (stop the node that uses it first)", ErrLocked, from)
	}
	r, err := openRaw(f)
	if r.size == 0 {
		return rep, fmt.Errorf("persist: %s is empty (0 bytes): there is nothing to salvage", from)
	}
	if err != nil && !errors.Is(err, errNoMeta) {
		return rep, fmt.Errorf("persist: read %s: %w", from, err)
	}
	filePages := uint64(r.size) / 4096
	hwm := filePages
	var root uint64
	if r.meta != nil {
		filePages = uint64(r.size) / uint64(r.pageSize)
		hwm, root = r.meta.hwm, r.meta.root
	} else {
		// Without a meta page there is no root; the page size is a guess.
		r.pageSize = 4096
		rep.addProblem("neither meta page is valid: no root to start from; looking at every page")
	}

	out, err := newSalvageWriter(to)
	if err != nil {
		return rep, err
	}
	defer out.abort()

	var lost []lostRange
	w := &walker{r: r, hwm: hwm, seen: newBitset(hwm), free: newBitset(hwm), salvage: true, problem: rep.addProblem}
	w.seen.set(0)
	w.seen.set(1)
	w.onBucket = func(path [][]byte, seq uint64) { out.bucket(path, seq) }
	keep := func(path [][]byte, k, v []byte) bool {
		if o.Keep == nil || o.Keep(path, k, v) {
			return true
		}
		rep.LeftOut++
		return false
	}
	w.visit = func(path [][]byte, k, v []byte) {
		if keep(path, k, v) && out.put(path, k, v) {
			rep.FromTree++
		}
	}
	w.lost = func(path [][]byte, lo, hi []byte) {
		lost = append(lost, lostRange{path: clonePath(path), lo: clone(lo), hi: clone(hi)})
	}
	freelistRead := false
	if r.meta != nil {
		before := len(rep.Problems) + rep.MoreProblems
		w.readFreelist()
		freelistRead = len(rep.Problems)+rep.MoreProblems == before
		w.walkTree(nil, root, nil, nil, 0)
	}
	if out.err != nil {
		return rep, out.err
	}

	// The pages the tree did not reach and the freelist does not name.
	limit := min(hwm, filePages)
	if !freelistRead {
		rep.Notes = append(rep.Notes, "the freelist could not be read: pages outside the tree may be old copies, so entries deleted shortly before the damage may come back")
	}
	for p := uint64(2); p < limit; p++ {
		if w.seen.has(p) || w.free.has(p) {
			continue
		}
		buf, err := r.readPage(p, limit)
		if err != nil || ne.Uint16(buf[8:])&flagLeaf == 0 {
			continue
		}
		for i := uint64(0); i < uint64(len(buf)/r.pageSize); i++ {
			w.seen.set(p + i)
		}
		kvs := leafEntries(buf)
		if len(kvs) == 0 {
			continue
		}
		path := placeOrphan(kvs, lost, o.Place)
		if path == nil {
			rep.OrphanKeysUnplaced += len(kvs)
			continue
		}
		for _, kv := range kvs {
			if keep(path, kv.k, kv.v) && out.put(path, kv.k, kv.v) {
				rep.FromOrphans++
			}
		}
	}
	if out.err != nil {
		return rep, out.err
	}
	if err := out.commit(); err != nil {
		return rep, err
	}
	rep.Buckets, rep.Keys = len(out.made), rep.FromTree+rep.FromOrphans
	if out.skipped > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d entries were left out: a damaged key, or a key where a bucket is", out.skipped))
	}
	if rep.LeftOut > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d entries were read but are damaged (an inbox entry that no longer decodes); they were left out", rep.LeftOut))
	}
	if rep.OrphanKeysUnplaced > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d keys on pages outside the tree belong to no bucket salvage could tell; they were not copied", rep.OrphanKeysUnplaced))
	}
	return rep, nil
}

type kv struct{ k, v []byte }

// leafEntries are the plain keys and values of a leaf page that are in
// order and inside the page (nested buckets are left out: their pages
// are found on their own).
func leafEntries(buf []byte) []kv {
	count := int(ne.Uint16(buf[10:]))
	count = min(count, (len(buf)-pageHeaderSize)/elemSize)
	var out []kv
	var prev []byte
	for i := 0; i < count; i++ {
		e := pageHeaderSize + i*elemSize
		flags := ne.Uint32(buf[e:])
		pos, ksize, vsize := int(ne.Uint32(buf[e+4:])), int(ne.Uint32(buf[e+8:])), int(ne.Uint32(buf[e+12:]))
		start := e + pos
		end := start + ksize + vsize
		if flags != 0 || pos < 0 || ksize <= 0 || vsize < 0 || start < pageHeaderSize || end > len(buf) || end < start {
			continue
		}
		k := buf[start : start+ksize]
		if prev != nil && bytes.Compare(k, prev) <= 0 {
			continue
		}
		prev = k
		out = append(out, kv{k, buf[start+ksize : end]})
	}
	return out
}

// placeOrphan finds the bucket of an orphan leaf page: the one lost
// subtree (below the root) whose range holds all its keys, else the one
// bucket o.Place names for every entry.
func placeOrphan(kvs []kv, lost []lostRange, place func(k, v []byte) [][]byte) [][]byte {
	first, last := kvs[0].k, kvs[len(kvs)-1].k
	var found [][]byte
	n := 0
	for _, l := range lost {
		if len(l.path) == 0 {
			continue // the root holds only buckets
		}
		if (l.lo == nil || bytes.Compare(first, l.lo) >= 0) && (l.hi == nil || bytes.Compare(last, l.hi) < 0) {
			if n == 0 || !samePath(found, l.path) {
				n++
			}
			found = l.path
		}
	}
	if n == 1 {
		return found
	}
	if place == nil {
		return nil
	}
	var path [][]byte
	for i, e := range kvs {
		p := place(e.k, e.v)
		if p == nil || (i > 0 && !samePath(p, path)) {
			return nil
		}
		path = p
	}
	return path
}

func samePath(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func clonePath(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = clone(p[i])
	}
	return out
}

// salvageWriter writes into a new file next to its final name and
// renames it there on commit, so a salvage that fails leaves nothing
// that looks like a database.
type salvageWriter struct {
	to, tmp string
	db      *bolt.DB
	tx      *bolt.Tx
	n       int
	made    map[string]uint64 // bucket path → sequence
	skipped int               // entries bbolt refused (damaged keys)
	err     error
}

const salvageBatch = 10000

func newSalvageWriter(to string) (*salvageWriter, error) {
	tmp := to + ".partial"
	_ = os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return nil, fmt.Errorf("persist: create %s: %w", tmp, err)
	}
	w := &salvageWriter{to: to, tmp: tmp, db: db, made: map[string]uint64{}}
	if w.tx, err = db.Begin(true); err != nil {
		db.Close()
		os.Remove(tmp)
		return nil, err
	}
	return w, nil
}

func pathKey(path [][]byte) string {
	return string(bytes.Join(path, []byte{0})) + fmt.Sprint(len(path))
}

// bucketFor opens (creating) the bucket at path in the current
// transaction.
func (w *salvageWriter) bucketFor(path [][]byte) *bolt.Bucket {
	b, err := w.tx.CreateBucketIfNotExists(path[0])
	for i := 1; err == nil && i < len(path); i++ {
		b, err = b.CreateBucketIfNotExists(path[i])
	}
	if err != nil {
		// A damaged name (a key where a bucket should be): skipped.
		w.skipped++
		return nil
	}
	if _, ok := w.made[pathKey(path)]; !ok {
		w.made[pathKey(path)] = 0
	}
	return b
}

func (w *salvageWriter) bucket(path [][]byte, seq uint64) {
	if w.err != nil {
		return
	}
	if b := w.bucketFor(path); b != nil && seq > 0 {
		if err := b.SetSequence(seq); err != nil {
			w.err = err
		}
	}
}

// put copies one key unless the bucket already has it (what the tree
// holds wins over a page found outside it). It reports whether it wrote.
func (w *salvageWriter) put(path [][]byte, k, v []byte) bool {
	if w.err != nil || len(path) == 0 {
		return false
	}
	b := w.bucketFor(path)
	if b == nil {
		return false
	}
	if b.Get(k) != nil || b.Bucket(k) != nil {
		return false
	}
	if err := b.Put(clone(k), clone(v)); err != nil {
		// A key or value bbolt would not have written (too large): damage.
		w.skipped++
		return false
	}
	if w.n++; w.n%salvageBatch == 0 {
		if err := w.tx.Commit(); err != nil {
			w.err = err
			return true
		}
		if w.tx, w.err = w.db.Begin(true); w.err != nil {
			w.tx = nil
		}
	}
	return true
}

func (w *salvageWriter) commit() error {
	if err := w.tx.Commit(); err != nil {
		return err
	}
	w.tx = nil
	if err := w.db.Sync(); err != nil {
		return err
	}
	if err := w.db.Close(); err != nil {
		return err
	}
	w.db = nil
	if _, err := os.Stat(w.to); err == nil {
		return fmt.Errorf("%w: %s appeared while salvaging", ErrSalvageTarget, w.to)
	}
	return os.Rename(w.tmp, w.to)
}

func (w *salvageWriter) abort() {
	if w.tx != nil {
		_ = w.tx.Rollback()
	}
	if w.db != nil {
		_ = w.db.Close()
		_ = os.Remove(w.tmp)
	}
}
