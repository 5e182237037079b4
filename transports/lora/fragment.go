package lora

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// Fragment layout. A frame longer than the link MTU travels as up to 256
// fragments, one per LoRa packet:
//
//	offset  size  field
//	0       1     tag 03: messages.MakeTag(messages.FrameFragment, 0)
//	1       2     message id, big-endian: the sender's counter (random
//	              start, wraps); with the link's sender it names the frame
//	3       1     index of this fragment, 0..last
//	4       1     last: index of the last fragment (count - 1), 0..255
//	5       n     payload: bytes index*chunk ... of the frame
//
// chunk is the sender's MTU minus the 5-byte header. Every fragment but
// the last carries exactly chunk bytes, the last 1..chunk; the receiver
// learns chunk from the first non-last fragment it sees and rejects any
// fragment that disagrees. A frame of 300 bytes at MTU 255 (chunk 250) is
//
//	03 12 34 00 01 <250 bytes>     03 12 34 01 01 <50 bytes>
//
// On a LoRa link a packet is either a whole frame or a fragment, told
// apart by the first byte: qpc frames are CBOR arrays (first byte
// 80..9F), while a fragment starts with its tag, which as CBOR would be
// the small unsigned integer 3 (IsFragment). Fragment versions 0..7 keep
// the tag below 80; a version 8 would need another rule. A frame that
// fits the MTU but happens to start like a fragment is still sent as one
// fragment (count 1), so the rule never misreads a frame.
const (
	// FragmentHeaderSize is the bytes before a fragment's payload.
	FragmentHeaderSize = 5
	// MaxFragments is the most fragments one frame can be split into.
	MaxFragments = 256

	// DefaultMTU is one full LoRa packet.
	DefaultMTU = MaxPayload
	// LoRaWANMTU is the LoRaWAN EU868 DR0 (SF12/125 kHz) payload limit,
	// which the original QuicProChat sized its fragments to: a 255-byte
	// packet at SF12 is 9 s on air, a quarter of an hour's 1 % budget.
	LoRaWANMTU = 51
	// MinMTU leaves room for the header and one byte of payload.
	MinMTU = FragmentHeaderSize + 1
)

// FragmentTag is the first byte of every fragment (version 0).
const FragmentTag messages.Tag = messages.Tag(messages.FrameFragment)

// MTUFor is the default MTU for params p: LoRaWANMTU at SF12, DefaultMTU
// otherwise.
func MTUFor(p Params) int {
	if p.SF >= 12 {
		return LoRaWANMTU
	}
	return DefaultMTU
}

// MaxFrameFor is the largest frame a sender with this MTU can fragment:
// MaxFragments chunks of mtu - FragmentHeaderSize bytes (64000 at 255,
// 11776 at 51).
func MaxFrameFor(mtu int) int { return MaxFragments * (mtu - FragmentHeaderSize) }

// IsFragment reports whether a received LoRa packet is a fragment (of any
// version) rather than a whole frame.
func IsFragment(pkt []byte) bool {
	return len(pkt) > 0 && pkt[0] < 0x80 && messages.Tag(pkt[0]).Type() == messages.FrameFragment
}

// Fragment is one parsed fragment. Payload aliases the packet.
type Fragment struct {
	ID      uint16
	Index   int // 0..Last
	Last    int // count - 1, 0..255
	Payload []byte
}

// Count is the number of fragments of the frame.
func (f Fragment) Count() int { return f.Last + 1 }

// AppendFragment appends the encoding of f to dst.
func AppendFragment(dst []byte, f Fragment) []byte {
	dst = append(dst, byte(FragmentTag), byte(f.ID>>8), byte(f.ID), byte(f.Index), byte(f.Last))
	return append(dst, f.Payload...)
}

// ParseFragment parses a fragment. It never allocates: Payload aliases
// pkt. Errors: ErrBadFragment (too short, not a fragment, index beyond
// last, no payload), ErrFragmentVersion (also matching
// messages.ErrUnsupportedVersion).
func ParseFragment(pkt []byte) (Fragment, error) {
	if !IsFragment(pkt) {
		return Fragment{}, fmt.Errorf("%s: %w: does not start with a fragment tag", prefix, ErrBadFragment)
	}
	if v := messages.Tag(pkt[0]).Version(); v != FragmentTag.Version() {
		return Fragment{}, fmt.Errorf("%s: %w: %w: version %d, this node speaks %d",
			prefix, ErrFragmentVersion, messages.ErrUnsupportedVersion, v, FragmentTag.Version())
	}
	if len(pkt) <= FragmentHeaderSize {
		return Fragment{}, fmt.Errorf("%s: %w: %d bytes, want a %d-byte header and a payload", prefix, ErrBadFragment, len(pkt), FragmentHeaderSize)
	}
	f := Fragment{
		ID:      uint16(pkt[1])<<8 | uint16(pkt[2]),
		Index:   int(pkt[3]),
		Last:    int(pkt[4]),
		Payload: pkt[FragmentHeaderSize:],
	}
	if f.Index > f.Last {
		return Fragment{}, fmt.Errorf("%s: %w: index %d of %d fragments", prefix, ErrBadFragment, f.Index, f.Count())
	}
	return f, nil
}

// Fragmenter splits outgoing frames for one link. It is plain state for
// one owner (the link actor), not safe for concurrent use.
type Fragmenter struct {
	mtu       int
	maxRounds int
	next      uint16
}

// FragmenterOptions configure a Fragmenter.
type FragmenterOptions struct {
	// MTU is the largest packet, MinMTU..MaxPayload; 0 means DefaultMTU.
	MTU int
	// FirstID is the first message id. Pick it at random, so that a
	// restarted node and different nodes do not reuse each other's ids.
	FirstID uint16
	// MaxRounds is how many times a fragmented frame may be sent in all
	// (the first send included) before Outgoing gives up; 0 means
	// DefaultMaxRounds.
	MaxRounds int
}

// DefaultMaxRounds is the default number of send rounds per frame.
const DefaultMaxRounds = 8

// NewFragmenter returns a fragmenter; errors are *ParamError.
func NewFragmenter(o FragmenterOptions) (*Fragmenter, error) {
	if o.MTU == 0 {
		o.MTU = DefaultMTU
	}
	if o.MTU < MinMTU || o.MTU > MaxPayload {
		return nil, &ParamError{Field: "MTU", Value: o.MTU, Allowed: fmt.Sprintf("%d to %d bytes (0 for %d)", MinMTU, MaxPayload, DefaultMTU)}
	}
	if o.MaxRounds == 0 {
		o.MaxRounds = DefaultMaxRounds
	}
	if o.MaxRounds < 1 {
		return nil, &ParamError{Field: "MaxRounds", Value: o.MaxRounds, Allowed: "1 or more (0 for the default)"}
	}
	return &Fragmenter{mtu: o.MTU, maxRounds: o.MaxRounds, next: o.FirstID}, nil
}

// MTU is the largest packet the fragmenter makes.
func (f *Fragmenter) MTU() int { return f.mtu }

// MaxFrame is the largest frame Split accepts.
func (f *Fragmenter) MaxFrame() int { return MaxFrameFor(f.mtu) }

// Split prepares a frame for sending. A frame that fits the MTU (and does
// not start like a fragment) becomes one packet, itself; a longer one
// becomes fragments under the next message id. The frame is copied.
// An empty frame is a *ParamError, one over MaxFrame a
// *transports.FrameTooLargeError (matching transports.ErrFrameTooLarge).
func (f *Fragmenter) Split(frame []byte) (*Outgoing, error) {
	if len(frame) == 0 {
		return nil, &ParamError{Field: "frame", Value: 0, Allowed: fmt.Sprintf("1 to %d bytes", f.MaxFrame())}
	}
	if len(frame) > f.MaxFrame() {
		return nil, fmt.Errorf("%s: split: %w", prefix, &transports.FrameTooLargeError{Size: uint64(len(frame)), Limit: f.MaxFrame()})
	}
	o := &Outgoing{rounds: 1, maxRounds: f.maxRounds}
	if len(frame) <= f.mtu && !IsFragment(frame) {
		o.packets = [][]byte{bytes.Clone(frame)}
		return o, nil
	}
	chunk := f.mtu - FragmentHeaderSize
	n := (len(frame) + chunk - 1) / chunk
	o.ID, o.fragmented = f.next, true
	f.next++
	o.packets = make([][]byte, n)
	for i := range n {
		part := frame[i*chunk : min((i+1)*chunk, len(frame))]
		o.packets[i] = AppendFragment(make([]byte, 0, FragmentHeaderSize+len(part)),
			Fragment{ID: o.ID, Index: i, Last: n - 1, Payload: part})
	}
	return o, nil
}

// Outgoing is one frame on its way out: its packets, and the rounds of
// selective repeat. After each round the receiver reports its state of
// the message (Reassembler.Missing) and the sender answers:
//
//	report                      sender
//	missing indices             Resend(missing)
//	complete (known, none)      done
//	unknown (nothing held)      ResendAll()
//	no report heard             Resend([]int{last}): a probe that makes
//	                            the receiver report again
//
// until the receiver is complete or MaxRounds rounds were sent
// (ErrGaveUp). The report's wire form is the link's to define.
type Outgoing struct {
	// ID is the message id of a fragmented frame (0 if not fragmented).
	ID         uint16
	packets    [][]byte
	fragmented bool
	rounds     int
	maxRounds  int
}

// Fragmented reports whether the frame was split into fragments.
func (o *Outgoing) Fragmented() bool { return o.fragmented }

// Packets are all the packets of the frame, in order: the first round.
// The caller must not modify them.
func (o *Outgoing) Packets() [][]byte { return o.packets }

// Rounds is how many rounds were handed out so far (1 after Split).
func (o *Outgoing) Rounds() int { return o.rounds }

func (o *Outgoing) nextRound() error {
	if o.rounds >= o.maxRounds {
		return fmt.Errorf("%s: message %d: %w after %d rounds", prefix, o.ID, ErrGaveUp, o.rounds)
	}
	o.rounds++
	return nil
}

// Resend returns the packets at the missing indices (sorted, duplicates
// once) as a new round. An empty list means the receiver is complete:
// nil, nil, and no round is used. An index out of range is ErrBadFragment
// (a confused or hostile report); after MaxRounds rounds, ErrGaveUp.
func (o *Outgoing) Resend(missing []int) ([][]byte, error) {
	if len(missing) == 0 {
		return nil, nil
	}
	idx := slices.Clone(missing)
	slices.Sort(idx)
	idx = slices.Compact(idx)
	if idx[0] < 0 || idx[len(idx)-1] >= len(o.packets) {
		return nil, fmt.Errorf("%s: message %d: %w: missing index out of range 0..%d", prefix, o.ID, ErrBadFragment, len(o.packets)-1)
	}
	if err := o.nextRound(); err != nil {
		return nil, err
	}
	out := make([][]byte, len(idx))
	for i, j := range idx {
		out[i] = o.packets[j]
	}
	return out, nil
}

// ResendAll returns every packet as a new round (the receiver's state is
// unknown); after MaxRounds rounds, ErrGaveUp.
func (o *Outgoing) ResendAll() ([][]byte, error) {
	if err := o.nextRound(); err != nil {
		return nil, err
	}
	return o.packets, nil
}

// Reassembler defaults.
const (
	// DefaultReassemblyTimeout: a reassembly that gets no new fragment for
	// this long is dropped.
	DefaultReassemblyTimeout = 5 * time.Minute
	// DefaultMaxReassemblies bounds concurrent reassemblies.
	DefaultMaxReassemblies = 16
	// DefaultMaxBufferedBytes bounds the fragment payload held: four
	// largest frames at MTU 255.
	DefaultMaxBufferedBytes = 256 << 10
	// DefaultMaxPacket is the largest fragment packet accepted: one LoRa
	// packet. (An RNode host interface carries up to 508 bytes.)
	DefaultMaxPacket = MaxPayload
	// recentCompleted is how many completed messages are remembered, so
	// that late duplicates do not start a new reassembly.
	recentCompleted = 64
)

// ReassemblerOptions configure a Reassembler. Zero fields take the
// defaults.
type ReassemblerOptions struct {
	Clock            clock.Clock   // default clock.Real{}
	Timeout          time.Duration // default DefaultReassemblyTimeout
	MaxReassemblies  int           // default DefaultMaxReassemblies
	MaxBufferedBytes int           // default DefaultMaxBufferedBytes
	MaxPacket        int           // default DefaultMaxPacket
	// MaxFrame is the largest reassembled frame; default
	// MaxFrameFor(MaxPacket), at most MaxFragments * (MaxPacket - 5).
	MaxFrame int
}

// ReassemblyStats are a reassembler's gauges and counters.
type ReassemblyStats struct {
	Active     int    // reassemblies in progress
	Buffered   int    // payload bytes held
	Completed  uint64 // frames returned
	Expired    uint64 // reassemblies dropped by the timeout
	Duplicates uint64 // fragments ignored as duplicates
	Rejected   uint64 // fragments refused with an error
}

// Reassembler puts fragments back together, keyed by (sender, message id).
// The sender is whatever the link knows about where a packet came from
// (the mock medium's radio name; "" on a real channel, which carries no
// source address below the fragment).
//
// Every input is hostile: caps on concurrent reassemblies and buffered
// bytes are checked before anything is allocated; a fragment that
// contradicts its message discards the whole reassembly; nothing panics.
// It starts no goroutine: timed-out reassemblies are dropped on every
// Add, and by Expire, with the injected clock. It is plain state for one
// owner (the link actor), not safe for concurrent use.
type Reassembler struct {
	clk        clock.Clock
	timeout    time.Duration
	maxActive  int
	maxBytes   int
	maxPacket  int
	maxFrame   int
	active     map[reasmKey]*reassembly
	buffered   int
	recent     [recentCompleted]recentEntry
	recentNext int
	stats      ReassemblyStats
}

type reasmKey struct {
	from string
	id   uint16
}

type recentEntry struct {
	key reasmKey
	at  time.Time
	set bool
}

type reassembly struct {
	last     int
	chunk    int // payload of a non-last fragment; 0 until one is seen
	lastLen  int // payload of the last fragment; 0 until it is seen
	parts    [][]byte
	have     int
	bytes    int
	deadline time.Time
}

// NewReassembler returns a reassembler; errors are *ParamError.
func NewReassembler(o ReassemblerOptions) (*Reassembler, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultReassemblyTimeout
	}
	def(&o.MaxReassemblies, DefaultMaxReassemblies)
	def(&o.MaxBufferedBytes, DefaultMaxBufferedBytes)
	def(&o.MaxPacket, DefaultMaxPacket)
	if o.MaxPacket < MinMTU || o.MaxPacket > 1<<16 {
		return nil, &ParamError{Field: "MaxPacket", Value: o.MaxPacket, Allowed: fmt.Sprintf("%d to %d bytes", MinMTU, 1<<16)}
	}
	def(&o.MaxFrame, MaxFrameFor(o.MaxPacket))
	switch {
	case o.Timeout < 0:
		return nil, &ParamError{Field: "Timeout", Value: o.Timeout, Allowed: "> 0"}
	case o.MaxReassemblies < 1:
		return nil, &ParamError{Field: "MaxReassemblies", Value: o.MaxReassemblies, Allowed: ">= 1"}
	case o.MaxBufferedBytes < 1:
		return nil, &ParamError{Field: "MaxBufferedBytes", Value: o.MaxBufferedBytes, Allowed: ">= 1"}
	case o.MaxFrame < 1 || o.MaxFrame > MaxFrameFor(o.MaxPacket):
		return nil, &ParamError{Field: "MaxFrame", Value: o.MaxFrame, Allowed: fmt.Sprintf("1 to %d bytes", MaxFrameFor(o.MaxPacket))}
	}
	return &Reassembler{
		clk:       o.Clock,
		timeout:   o.Timeout,
		maxActive: o.MaxReassemblies,
		maxBytes:  o.MaxBufferedBytes,
		maxPacket: o.MaxPacket,
		maxFrame:  o.MaxFrame,
		active:    map[reasmKey]*reassembly{},
	}, nil
}

// Stats returns the current gauges and counters.
func (r *Reassembler) Stats() ReassemblyStats {
	s := r.stats
	s.Active, s.Buffered = len(r.active), r.buffered
	return s
}

// Expire drops reassemblies that got no new fragment within the timeout,
// and forgets old completions; it returns how many reassemblies it
// dropped. Add calls it; a link actor may also call it on a timer to free
// memory sooner.
func (r *Reassembler) Expire() int {
	now := r.clk.Now()
	n := 0
	for k, a := range r.active {
		if !now.Before(a.deadline) {
			r.drop(k, a)
			n++
		}
	}
	r.stats.Expired += uint64(n)
	for i := range r.recent {
		if e := &r.recent[i]; e.set && !now.Before(e.at.Add(r.timeout)) {
			*e = recentEntry{}
		}
	}
	return n
}

func (r *Reassembler) drop(k reasmKey, a *reassembly) {
	r.buffered -= a.bytes
	delete(r.active, k)
}

func (r *Reassembler) completed(k reasmKey) bool {
	for _, e := range r.recent {
		if e.set && e.key == k {
			return true
		}
	}
	return false
}

func (r *Reassembler) remember(k reasmKey) {
	r.recent[r.recentNext] = recentEntry{key: k, at: r.clk.Now(), set: true}
	r.recentNext = (r.recentNext + 1) % recentCompleted
}

func (r *Reassembler) reject(err error) ([]byte, error) {
	r.stats.Rejected++
	return nil, err
}

// Add takes one received fragment from sender from. It returns the whole
// frame when this fragment completes it (the caller owns it), nil and nil
// while more are needed or when the fragment is a duplicate, and an error
// when the fragment is refused:
//
//   - ErrBadFragment, ErrFragmentVersion: the packet itself is malformed;
//     a packet over MaxPacket is *transports.FrameTooLargeError.
//   - ErrInconsistentFragment: it contradicts earlier fragments of its
//     message (count, chunk size, bytes at an index); the reassembly is
//     discarded.
//   - transports.ErrFrameTooLarge: the message would exceed MaxFrame; the
//     reassembly is discarded.
//   - ErrTooManyReassemblies, ErrBufferFull: a cap is reached; only this
//     fragment is dropped (the sender's next round may bring it again).
func (r *Reassembler) Add(from string, pkt []byte) ([]byte, error) {
	r.Expire()
	if len(pkt) > r.maxPacket {
		return r.reject(fmt.Errorf("%s: fragment: %w", prefix, &transports.FrameTooLargeError{Size: uint64(len(pkt)), Limit: r.maxPacket}))
	}
	f, err := ParseFragment(pkt)
	if err != nil {
		return r.reject(err)
	}
	k := reasmKey{from, f.ID}
	if r.completed(k) {
		r.stats.Duplicates++
		return nil, nil
	}
	n := len(f.Payload)
	a := r.active[k]
	if a == nil {
		if f.Last == 0 { // a single fragment: no buffering
			if n > r.maxFrame {
				return r.reject(r.tooLarge(k, uint64(n)))
			}
			r.remember(k)
			r.stats.Completed++
			return bytes.Clone(f.Payload), nil
		}
		if sz := minFrameSize(&reassembly{last: f.Last}, f); sz > uint64(r.maxFrame) {
			return r.reject(r.tooLarge(k, sz))
		}
		if len(r.active) >= r.maxActive {
			return r.reject(fmt.Errorf("%s: message %d from %q: %w (%d)", prefix, f.ID, from, ErrTooManyReassemblies, r.maxActive))
		}
		if r.buffered+n > r.maxBytes {
			return r.reject(r.bufferFull(k, n))
		}
		a = &reassembly{last: f.Last, parts: make([][]byte, f.Count())}
		r.active[k] = a
	} else {
		if err := r.check(k, a, f); err != nil {
			if err != errDuplicate {
				r.drop(k, a)
				return r.reject(err)
			}
			r.stats.Duplicates++
			return nil, nil
		}
		if r.buffered+n > r.maxBytes {
			return r.reject(r.bufferFull(k, n))
		}
	}
	if f.Index < f.Last {
		a.chunk = n
	} else {
		a.lastLen = n
	}
	a.parts[f.Index] = bytes.Clone(f.Payload)
	a.have++
	a.bytes += n
	r.buffered += n
	a.deadline = r.clk.Now().Add(r.timeout)
	if a.have < len(a.parts) {
		return nil, nil
	}
	frame := make([]byte, 0, a.chunk*a.last+a.lastLen)
	for _, p := range a.parts {
		frame = append(frame, p...)
	}
	r.drop(k, a)
	r.remember(k)
	r.stats.Completed++
	return frame, nil
}

// errDuplicate marks an exact duplicate inside check; never returned.
var errDuplicate = errors.New("duplicate")

// check compares fragment f with what reassembly a already holds.
func (r *Reassembler) check(k reasmKey, a *reassembly, f Fragment) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: message %d from %q: %w: "+format, append([]any{prefix, k.id, k.from, ErrInconsistentFragment}, args...)...)
	}
	if f.Last != a.last {
		return bad("%d fragments, earlier ones said %d", f.Count(), a.last+1)
	}
	if p := a.parts[f.Index]; p != nil {
		if bytes.Equal(p, f.Payload) {
			return errDuplicate
		}
		return bad("fragment %d repeated with other bytes", f.Index)
	}
	n := len(f.Payload)
	if f.Index < f.Last {
		if a.chunk != 0 && n != a.chunk {
			return bad("fragment %d has %d bytes, the others %d", f.Index, n, a.chunk)
		}
		if a.lastLen > n {
			return bad("last fragment has %d bytes, more than the %d of fragment %d", a.lastLen, n, f.Index)
		}
	} else if a.chunk != 0 && n > a.chunk {
		return bad("last fragment has %d bytes, more than the %d of the others", n, a.chunk)
	}
	if sz := minFrameSize(a, f); sz > uint64(r.maxFrame) {
		return r.tooLarge(k, sz)
	}
	return nil
}

// minFrameSize is the smallest frame that reassembly a, with fragment f
// added, can complete to: last non-last fragments of the chunk size and
// the last fragment, each at least 1 byte and the chunk at least as long
// as the last fragment. Once both sizes are known it is the exact size.
func minFrameSize(a *reassembly, f Fragment) uint64 {
	chunk, lastLen := uint64(a.chunk), uint64(a.lastLen)
	if n := uint64(len(f.Payload)); f.Index < f.Last {
		chunk = n
	} else {
		lastLen = n
	}
	last := uint64(a.last)
	if chunk == 0 { // only the last fragment known so far
		return lastLen * (last + 1)
	}
	return chunk*last + max(lastLen, 1)
}

func (r *Reassembler) tooLarge(k reasmKey, size uint64) error {
	return fmt.Errorf("%s: message %d from %q: %w", prefix, k.id, k.from, &transports.FrameTooLargeError{Size: size, Limit: r.maxFrame})
}

func (r *Reassembler) bufferFull(k reasmKey, n int) error {
	return fmt.Errorf("%s: message %d from %q: %w: %d + %d bytes, limit %d", prefix, k.id, k.from, ErrBufferFull, r.buffered, n, r.maxBytes)
}

// Missing reports the fragment indices of message id from sender from
// that have not arrived, for the sender's selective repeat. known is false
// when nothing of the message is held (no fragment arrived, or it timed
// out or was discarded): the sender should resend everything. A message
// completed within the timeout is known with nothing missing.
func (r *Reassembler) Missing(from string, id uint16) (missing []int, known bool) {
	k := reasmKey{from, id}
	a := r.active[k]
	if a == nil {
		return nil, r.completed(k)
	}
	missing = make([]int, 0, len(a.parts)-a.have)
	for i, p := range a.parts {
		if p == nil {
			missing = append(missing, i)
		}
	}
	return missing, true
}
