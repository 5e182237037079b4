package mlslite

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/quicprochat/qpc/crypto"
)

// Replay window sizes.
const (
	// WindowSize is how many counters below a sender's highest a window
	// tracks (a bitmap of 128 bytes): frames of one sender reordered by
	// less than that are accepted, each once; older ones are ErrReplay.
	WindowSize = 1024
	// MaxWindowSenders bounds the windows Windows holds: the senders of
	// the current epochs of all groups together. LoRa groups are small.
	MaxWindowSenders = 256
)

const (
	windowWords      = WindowSize / 64
	windowsVersion   = 1
	windowsHeader    = 1 + 2                           // version, count
	windowRecordSize = 16 + 8 + 16 + 4 + windowWords*8 // group, epoch, sender, highest, bitmap: 172
)

// windowKey names one sender's window in one epoch of one group.
type windowKey struct {
	group  [16]byte
	epoch  uint64
	sender crypto.Address
}

// window is the sliding window of RFC 6479 over 32-bit counters: the
// highest counter accepted and a circular bitmap of the WindowSize
// counters up to it (bit c%WindowSize set: c accepted).
type window struct {
	highest uint32
	bits    [windowWords]uint64
}

func (w *window) has(c uint32) bool {
	i := c % WindowSize
	return w.bits[i/64]&(1<<(i%64)) != 0
}

func (w *window) set(c uint32) {
	i := c % WindowSize
	w.bits[i/64] |= 1 << (i % 64)
}

// advance moves the window up to c > highest: the bits of the counters in
// between, which stood for counters WindowSize lower, are cleared.
func (w *window) advance(c uint32) {
	if c-w.highest >= WindowSize {
		clear(w.bits[:])
	} else {
		for x := w.highest + 1; x != c; x++ {
			i := x % WindowSize
			w.bits[i/64] &^= 1 << (i % 64)
		}
	}
	w.highest = c
	w.set(c)
}

// Windows are the replay windows of a member: for every (group, epoch,
// sender) the highest counter accepted and which of the WindowSize below
// it were. A window is created by the first frame of a sender that
// authenticated. When a frame of a newer epoch of a group is accepted,
// the windows of the group's older epochs are dropped (their keys are
// refused from then on, and Windows refuses those epochs itself with
// ErrWrongEpoch, so dropping them lets nothing in again). At most
// MaxWindowSenders windows are held (about 200 bytes each, 50 KiB in all);
// a frame from one more sender is ErrTooManySenders rather than evicting a
// window whose replays would then be accepted.
//
// The zero value is empty and ready. Windows are safe for concurrent use.
// Persist them with MarshalBinary after accepted frames (or batches) and
// restore them with UnmarshalBinary: windows lost in a crash let the
// frames accepted since the last save be accepted once more.
type Windows struct {
	mu     sync.Mutex
	m      map[windowKey]*window
	newest map[[16]byte]uint64 // per group, the epoch of its windows
}

// NewWindows returns empty Windows.
func NewWindows() *Windows { return &Windows{} }

func (ws *Windows) init() {
	if ws.m == nil {
		ws.m = make(map[windowKey]*window)
		ws.newest = make(map[[16]byte]uint64)
	}
}

// Len is the number of sender windows held.
func (ws *Windows) Len() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.m)
}

// accept records counter c from sender in (group, epoch) as seen, or
// refuses it: ErrWrongEpoch for an epoch older than the group's newest,
// ErrReplay for a counter seen before or below the window,
// ErrTooManySenders for a new sender when full.
func (ws *Windows) accept(group [16]byte, epoch uint64, sender crypto.Address, c uint32) error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.init()
	if n, ok := ws.newest[group]; ok && epoch < n {
		return fmt.Errorf("%w: epoch %d, the replay windows are at epoch %d", ErrWrongEpoch, epoch, n)
	}
	key := windowKey{group, epoch, sender}
	if w := ws.m[key]; w != nil {
		switch {
		case c > w.highest:
			w.advance(c)
		case w.highest-c >= WindowSize:
			return fmt.Errorf("%w: counter %d from %s is below the window (highest %d)", ErrReplay, c, sender.Short(), w.highest)
		case w.has(c):
			return fmt.Errorf("%w: counter %d from %s", ErrReplay, c, sender.Short())
		default:
			w.set(c)
		}
		return nil
	}
	if n, ok := ws.newest[group]; ok && epoch > n {
		// Count what a move to the new epoch would free before deciding.
		for k := range ws.m {
			if k.group == group && k.epoch < epoch {
				delete(ws.m, k)
			}
		}
	}
	if len(ws.m) >= MaxWindowSenders {
		return fmt.Errorf("%w: %d windows held", ErrTooManySenders, len(ws.m))
	}
	w := &window{highest: c}
	w.set(c)
	ws.m[key] = w
	ws.newest[group] = epoch
	return nil
}

// MarshalBinary encodes the windows for persistence: a version byte
// (1), the number of windows (2 bytes, big-endian), and per window, in
// order of (group, epoch, sender), the group id (16), the epoch (8), the
// sender (16), the highest counter (4) and the bitmap (128): 172 bytes.
func (ws *Windows) MarshalBinary() ([]byte, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	keys := make([]windowKey, 0, len(ws.m))
	for k := range ws.m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	out := make([]byte, 0, windowsHeader+len(keys)*windowRecordSize)
	out = append(out, windowsVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(keys)))
	for _, k := range keys {
		w := ws.m[k]
		out = append(out, k.group[:]...)
		out = binary.BigEndian.AppendUint64(out, k.epoch)
		out = append(out, k.sender[:]...)
		out = binary.BigEndian.AppendUint32(out, w.highest)
		for _, x := range w.bits {
			out = binary.BigEndian.AppendUint64(out, x)
		}
	}
	return out, nil
}

func compareKeys(a, b windowKey) int {
	if c := bytes.Compare(a.group[:], b.group[:]); c != 0 {
		return c
	}
	if a.epoch != b.epoch {
		if a.epoch < b.epoch {
			return -1
		}
		return 1
	}
	return bytes.Compare(a.sender[:], b.sender[:])
}

// UnmarshalBinary replaces the windows with those encoded by
// MarshalBinary. It refuses, with ErrWindowsCorrupt and changing nothing:
// another version, a length that is not exactly that of the count, more
// than MaxWindowSenders windows, windows not in strictly increasing order
// (so no duplicates), two epochs of one group, and a window whose highest
// counter's bit is not set.
func (ws *Windows) UnmarshalBinary(data []byte) error {
	if len(data) < windowsHeader {
		return fmt.Errorf("%w: %d bytes", ErrWindowsCorrupt, len(data))
	}
	if data[0] != windowsVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrWindowsCorrupt, data[0], windowsVersion)
	}
	n := int(binary.BigEndian.Uint16(data[1:3]))
	if n > MaxWindowSenders {
		return fmt.Errorf("%w: %d windows, limit %d", ErrWindowsCorrupt, n, MaxWindowSenders)
	}
	if len(data) != windowsHeader+n*windowRecordSize {
		return fmt.Errorf("%w: %d bytes for %d windows, want %d", ErrWindowsCorrupt, len(data), n, windowsHeader+n*windowRecordSize)
	}
	m := make(map[windowKey]*window, n)
	newest := make(map[[16]byte]uint64)
	var prev windowKey
	for i := range n {
		r := data[windowsHeader+i*windowRecordSize:][:windowRecordSize]
		var k windowKey
		copy(k.group[:], r[0:16])
		k.epoch = binary.BigEndian.Uint64(r[16:24])
		copy(k.sender[:], r[24:40])
		w := &window{highest: binary.BigEndian.Uint32(r[40:44])}
		for j := range w.bits {
			w.bits[j] = binary.BigEndian.Uint64(r[44+8*j:])
		}
		if i > 0 && compareKeys(prev, k) >= 0 {
			return fmt.Errorf("%w: window %d out of order", ErrWindowsCorrupt, i)
		}
		if e, ok := newest[k.group]; ok && e != k.epoch {
			return fmt.Errorf("%w: window %d: group %x at epochs %d and %d", ErrWindowsCorrupt, i, k.group[:4], e, k.epoch)
		}
		if !w.has(w.highest) {
			return fmt.Errorf("%w: window %d: highest counter %d not marked", ErrWindowsCorrupt, i, w.highest)
		}
		prev = k
		m[k] = w
		newest[k.group] = k.epoch
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.m, ws.newest = m, newest
	return nil
}
