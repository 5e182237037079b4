package persist

// A defensive reader of bbolt's file format. bbolt itself reads its file
// through a memory map and trusts every page number and offset it finds:
// a damaged file makes it panic (a page that names another page id) or
// fault on memory past the end of the file, which no recover catches. This
// reader goes through the file with ReadAt and checks every number before
// it uses one, so the consistency check can run before bbolt touches the
// file at all, and salvage can copy what is still readable.
//
// The format, as bbolt v1.x writes it (go.etcd.io/bbolt/internal/common),
// in the machine's byte order:
//
//	page header (16 B): id u64, flags u16, count u16, overflow u32
//	meta (at 16):       magic u32, version u32, page size u32, flags u32,
//	                    root bucket {root page u64, sequence u64},
//	                    freelist page u64, high-water page u64, txid u64,
//	                    checksum u64 (FNV-64a of the 56 bytes before it)
//	branch element:     pos u32, key size u32, child page u64
//	leaf element:       flags u32, pos u32, key size u32, value size u32
//	                    (pos counts from the element itself; the value
//	                    follows the key; flag 1 marks a nested bucket,
//	                    whose value is {root page u64, sequence u64} and,
//	                    with root 0, an inline leaf page after it)
//	freelist page:      count page ids u64 (count 0xFFFF: the first u64
//	                    holds the count)

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strconv"
	"time"
)

const (
	pageHeaderSize = 16
	elemSize       = 16
	flagBranch     = 0x01
	flagLeaf       = 0x02
	flagMeta       = 0x04
	flagFreelist   = 0x10
	leafBucketFlag = 0x01
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	metaChecksumAt = pageHeaderSize + 56
	noFreelist     = ^uint64(0)
	// maxTreeDepth is deeper than any B+tree of a file bbolt can address
	// (and than any nesting of buckets qpc uses): past it is a cycle.
	maxTreeDepth = 64
	// maxPageSpan bounds one page with its overflow pages; a larger
	// overflow count is damage, not a value qpc stored.
	maxPageSpan = 256 << 20
)

var ne = binary.NativeEndian

// metaInfo is one of the two meta pages.
type metaInfo struct {
	err      error // why it is not valid; nil when it is
	pageSize uint32
	root     uint64
	rootSeq  uint64
	freelist uint64
	hwm      uint64 // pages in use: ids below it
	txid     uint64
}

func parseMeta(buf []byte) metaInfo {
	if len(buf) < metaChecksumAt+8 {
		return metaInfo{err: errors.New("shorter than a meta page")}
	}
	m := buf[pageHeaderSize:]
	mi := metaInfo{
		pageSize: ne.Uint32(m[8:]),
		root:     ne.Uint64(m[16:]),
		rootSeq:  ne.Uint64(m[24:]),
		freelist: ne.Uint64(m[32:]),
		hwm:      ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}
	h := fnv.New64a()
	h.Write(m[:56])
	switch {
	case ne.Uint32(m[0:]) != boltMagic:
		mi.err = errors.New("no bbolt magic number")
	case ne.Uint32(m[4:]) != boltVersion:
		mi.err = fmt.Errorf("format version %d, want %d", ne.Uint32(m[4:]), boltVersion)
	case ne.Uint64(m[56:]) != h.Sum64():
		mi.err = errors.New("checksum mismatch")
	case mi.pageSize < 512 || mi.pageSize > 1<<20 || mi.pageSize&(mi.pageSize-1) != 0:
		mi.err = fmt.Errorf("page size %d", mi.pageSize)
	case mi.hwm < 2:
		mi.err = fmt.Errorf("high-water mark %d", mi.hwm)
	}
	return mi
}

// rawFile is an open bbolt file read with ReadAt.
type rawFile struct {
	f        *os.File
	size     int64
	pageSize int
	metas    [2]metaInfo
	meta     *metaInfo // the valid one with the higher txid, as bbolt picks
}

// errNoMeta: neither meta page is valid; nothing in the file can be found.
var errNoMeta = errors.New("neither meta page is valid")

func openRaw(f *os.File) (*rawFile, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	r := &rawFile{f: f, size: st.Size()}
	buf := make([]byte, 4096)
	n, _ := f.ReadAt(buf, 0)
	r.metas[0] = parseMeta(buf[:n])
	// The second meta page sits one page in; its size is in the first
	// meta or, when that is damaged, one of the sizes bbolt writes.
	sizes := []int{os.Getpagesize(), 4096}
	if r.metas[0].err == nil {
		sizes = []int{int(r.metas[0].pageSize)}
	} else {
		for s := 1024; s <= 64<<10; s <<= 1 {
			sizes = append(sizes, s)
		}
	}
	r.metas[1] = metaInfo{err: errors.New("not found")}
	for _, s := range sizes {
		n, _ := f.ReadAt(buf, int64(s))
		if m := parseMeta(buf[:n]); m.err == nil && int(m.pageSize) == s {
			r.metas[1] = m
			break
		} else if s == sizes[0] {
			r.metas[1] = m
		}
	}
	for i := range r.metas {
		if r.metas[i].err == nil && (r.meta == nil || r.metas[i].txid > r.meta.txid) {
			r.meta = &r.metas[i]
		}
	}
	if r.meta == nil {
		return r, errNoMeta
	}
	r.pageSize = int(r.meta.pageSize)
	return r, nil
}

// other is the meta page not in use, as an index.
func (r *rawFile) metaIndex(m *metaInfo) int {
	if m == &r.metas[1] {
		return 1
	}
	return 0
}

// readPage reads page id with its overflow pages, checking that it lies
// below the high-water mark and inside the file and names itself id.
func (r *rawFile) readPage(id uint64, hwm uint64) ([]byte, error) {
	if id < 2 || id >= hwm {
		return nil, fmt.Errorf("page %d is outside the %d pages in use", id, hwm)
	}
	off := int64(id) * int64(r.pageSize)
	if off+pageHeaderSize > r.size {
		return nil, fmt.Errorf("page %d lies past the end of the file", id)
	}
	var hdr [pageHeaderSize]byte
	if _, err := r.f.ReadAt(hdr[:], off); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	if got := ne.Uint64(hdr[0:]); got != id {
		return nil, fmt.Errorf("page %d names itself page %d (overwritten or zeroed)", id, got)
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	span := (overflow + 1) * uint64(r.pageSize)
	if id+overflow >= hwm || span > maxPageSpan {
		return nil, fmt.Errorf("page %d: overflow of %d pages runs past the pages in use", id, overflow)
	}
	if off+int64(span) > r.size {
		return nil, fmt.Errorf("page %d (with %d overflow pages) runs past the end of the file", id, overflow)
	}
	buf := make([]byte, span)
	if _, err := r.f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

// bitset marks page ids.
type bitset []uint64

func newBitset(n uint64) bitset { return make(bitset, (n+63)/64) }
func (b bitset) has(i uint64) bool {
	return i/64 < uint64(len(b)) && b[i/64]&(1<<(i%64)) != 0
}
func (b bitset) set(i uint64) {
	if i/64 < uint64(len(b)) {
		b[i/64] |= 1 << (i % 64)
	}
}

// walker goes through the tree of one meta page. In check mode it
// reports every problem; in salvage mode it also hands every readable
// key and value to visit and skips what it cannot read.
type walker struct {
	r        *rawFile
	hwm      uint64
	seen     bitset // pages reached from the root (and the freelist page)
	free     bitset // pages the freelist names
	deadline time.Time
	salvage  bool

	problem  func(string)
	visit    func(path [][]byte, k, v []byte)
	onBucket func(path [][]byte, seq uint64)
	// lost is told of every subtree that could not be read: the bucket
	// and the key range it held.
	lost func(path [][]byte, lo, hi []byte)

	stopped   bool // the deadline passed: the walk is incomplete
	ticks     int
	pagesRead int
	buckets   int
	keys      int
}

func (w *walker) timeUp() bool {
	if w.stopped {
		return true
	}
	// The clock is read on the first page and every 64th after it.
	w.ticks++
	if !w.deadline.IsZero() && w.ticks%64 == 1 && time.Now().After(w.deadline) {
		w.stopped = true
	}
	return w.stopped
}

// walkTree reads the subtree rooted at page id of the bucket at path;
// its keys must lie in [lo, hi) (nil: unbounded).
func (w *walker) walkTree(path [][]byte, id uint64, lo, hi []byte, depth int) {
	if w.timeUp() {
		return
	}
	where := bucketName(path)
	if depth > maxTreeDepth {
		w.problem(fmt.Sprintf("%s: the tree is deeper than %d levels at page %d (a cycle)", where, maxTreeDepth, id))
		return
	}
	if w.seen.has(id) {
		w.problem(fmt.Sprintf("%s: page %d is referenced twice", where, id))
		return
	}
	buf, err := w.r.readPage(id, w.hwm)
	w.pagesRead++
	if err != nil {
		w.problem(fmt.Sprintf("%s: %v", where, err))
		if w.lost != nil {
			w.lost(path, lo, hi)
		}
		return
	}
	for i := uint64(0); i < uint64(len(buf)/w.r.pageSize); i++ {
		w.seen.set(id + i)
	}
	if w.free.has(id) {
		w.problem(fmt.Sprintf("%s: page %d is in use and also in the freelist", where, id))
	}
	flags, count := ne.Uint16(buf[8:]), int(ne.Uint16(buf[10:]))
	switch {
	case flags&flagBranch != 0:
		if pageHeaderSize+count*elemSize > len(buf) || count == 0 {
			w.problem(fmt.Sprintf("%s: branch page %d claims %d elements", where, id, count))
			if w.lost != nil {
				w.lost(path, lo, hi)
			}
			return
		}
		type child struct {
			key []byte
			id  uint64
		}
		var kids []child
		prev, bad := lo, false
		for i := 0; i < count; i++ {
			e := pageHeaderSize + i*elemSize
			pos, ksize := int(ne.Uint32(buf[e:])), int(ne.Uint32(buf[e+4:]))
			start := e + pos
			if pos < 0 || ksize < 0 || start < pageHeaderSize || start+ksize > len(buf) || start+ksize < start {
				w.problem(fmt.Sprintf("%s: branch page %d element %d points outside the page", where, id, i))
				bad = true
				continue
			}
			key := buf[start : start+ksize]
			if !inOrder(prev, key, hi, i == 0) {
				w.problem(fmt.Sprintf("%s: branch page %d element %d: key %s out of order", where, id, i, keyString(key)))
				bad = true
				continue
			}
			prev = key
			kids = append(kids, child{key, ne.Uint64(buf[e+8:])})
		}
		if bad && w.lost != nil {
			// The subtrees of the bad elements are somewhere in the range.
			w.lost(path, lo, hi)
		}
		for i, c := range kids {
			end := hi
			if i+1 < len(kids) {
				end = kids[i+1].key
			}
			// A child's keys start at its branch key (bbolt keeps the
			// branch key at or below the child's first key).
			w.walkTree(path, c.id, c.key, end, depth+1)
		}
	case flags&flagLeaf != 0:
		w.walkLeaf(path, buf, fmt.Sprintf("leaf page %d", id), lo, hi, depth)
	default:
		w.problem(fmt.Sprintf("%s: page %d is neither a branch nor a leaf (flags %#x)", where, id, flags))
		if w.lost != nil {
			w.lost(path, lo, hi)
		}
	}
}

// walkLeaf reads one leaf page (or an inline bucket's page).
func (w *walker) walkLeaf(path [][]byte, buf []byte, what string, lo, hi []byte, depth int) {
	where := bucketName(path)
	count := int(ne.Uint16(buf[10:]))
	if pageHeaderSize+count*elemSize > len(buf) {
		w.problem(fmt.Sprintf("%s: %s claims %d elements, more than fit", where, what, count))
		if !w.salvage {
			return
		}
		count = (len(buf) - pageHeaderSize) / elemSize
	}
	prev := lo
	for i := 0; i < count; i++ {
		e := pageHeaderSize + i*elemSize
		flags := ne.Uint32(buf[e:])
		pos, ksize, vsize := int(ne.Uint32(buf[e+4:])), int(ne.Uint32(buf[e+8:])), int(ne.Uint32(buf[e+12:]))
		start := e + pos
		end := start + ksize + vsize
		if pos < 0 || ksize < 0 || vsize < 0 || start < pageHeaderSize || end > len(buf) || end < start || ksize == 0 {
			w.problem(fmt.Sprintf("%s: %s element %d points outside the page", where, what, i))
			continue
		}
		key, val := buf[start:start+ksize], buf[start+ksize:end]
		if !inOrder(prev, key, hi, i == 0) {
			w.problem(fmt.Sprintf("%s: %s element %d: key %s out of order", where, what, i, keyString(key)))
			continue
		}
		prev = key
		if flags&leafBucketFlag == 0 {
			if len(path) == 0 {
				w.problem(fmt.Sprintf("%s: %s holds a value outside any bucket (key %s)", where, what, keyString(key)))
				continue
			}
			w.keys++
			if w.visit != nil {
				w.visit(path, key, val)
			}
			continue
		}
		if flags != leafBucketFlag || len(val) < 16 {
			w.problem(fmt.Sprintf("%s: %s element %d: bucket %s has a damaged header", where, what, i, keyString(key)))
			continue
		}
		child := append(append([][]byte(nil), path...), key)
		w.buckets++
		if w.onBucket != nil {
			w.onBucket(child, ne.Uint64(val[8:]))
		}
		root := ne.Uint64(val[0:])
		if root != 0 {
			w.walkTree(child, root, nil, nil, depth+1)
			continue
		}
		inline := val[16:]
		if len(inline) < pageHeaderSize || ne.Uint16(inline[8:])&flagLeaf == 0 {
			w.problem(fmt.Sprintf("%s: inline bucket %s is damaged", where, keyString(key)))
			continue
		}
		if depth+1 > maxTreeDepth {
			w.problem(fmt.Sprintf("%s: buckets nested deeper than %d", where, maxTreeDepth))
			continue
		}
		w.walkLeaf(child, inline, "inline bucket", nil, nil, depth+1)
	}
}

// inOrder: key comes after prev (or equals it for the first key of a
// page, which starts at its parent's key) and before hi.
func inOrder(prev, key, hi []byte, first bool) bool {
	if prev != nil {
		c := bytes.Compare(key, prev)
		if c < 0 || (c == 0 && !first) {
			return false
		}
	}
	return hi == nil || bytes.Compare(key, hi) < 0
}

// readFreelist marks the pages the freelist names as free.
func (w *walker) readFreelist() {
	id := w.r.meta.freelist
	if id == noFreelist {
		w.problem("the meta page names no freelist (qpc always writes one)")
		return
	}
	buf, err := w.r.readPage(id, w.hwm)
	w.pagesRead++
	if err != nil {
		w.problem(fmt.Sprintf("freelist: %v", err))
		return
	}
	for i := uint64(0); i < uint64(len(buf)/w.r.pageSize); i++ {
		w.seen.set(id + i)
	}
	if ne.Uint16(buf[8:])&flagFreelist == 0 {
		w.problem(fmt.Sprintf("freelist: page %d is not a freelist page (flags %#x)", id, ne.Uint16(buf[8:])))
		return
	}
	at, count := pageHeaderSize, uint64(ne.Uint16(buf[10:]))
	if count == 0xFFFF {
		if len(buf) < pageHeaderSize+8 {
			w.problem(fmt.Sprintf("freelist: page %d is cut short", id))
			return
		}
		count, at = ne.Uint64(buf[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > uint64(len(buf)-at)/8 {
		w.problem(fmt.Sprintf("freelist: page %d claims %d free pages, more than fit", id, count))
		return
	}
	for i := uint64(0); i < count; i++ {
		p := ne.Uint64(buf[at+int(i)*8:])
		switch {
		case p < 2 || p >= w.hwm:
			w.problem(fmt.Sprintf("freelist: names page %d, outside the %d pages in use", p, w.hwm))
		case w.free.has(p):
			w.problem(fmt.Sprintf("freelist: names page %d twice", p))
		default:
			w.free.set(p)
		}
	}
}

func bucketName(path [][]byte) string {
	if len(path) == 0 {
		return "root"
	}
	var b bytes.Buffer
	b.WriteString("bucket ")
	for i, p := range path {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(keyString(p))
	}
	return b.String()
}

// keyString shows a key as text when it is printable, else in hex.
func keyString(k []byte) string {
	if len(k) > 64 {
		return keyString(k[:64]) + "…"
	}
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return "0x" + fmt.Sprintf("%x", k)
		}
	}
	return strconv.Quote(string(k))
}
