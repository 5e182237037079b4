package lora

import (
	"bytes"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
)

// Caps of the reassembler under fuzzing: small, so the fuzzer reaches
// them.
const (
	fuzzMaxActive = 3
	fuzzMaxBytes  = 300
	fuzzMaxPacket = 40
	fuzzMaxFrame  = 200 // below 8 fragments of 35 bytes: reachable
)

// FuzzReassemble feeds the reassembler an arbitrary sequence of
// operations decoded from the input: fragments built from fuzzed fields
// (few senders and ids, so they clash), raw packets, clock steps and
// Missing queries. It checks that nothing panics, that the caps on
// concurrent reassemblies and buffered bytes always hold, that the
// byte accounting matches what is held, and that every returned frame
// respects MaxFrame.
func FuzzReassemble(f *testing.F) {
	// Seeds: a clean two-fragment message, duplicates, a count change, a
	// timeout, raw junk, many senders.
	f.Add([]byte{0, 0, 1, 0, 1, 10, 0, 0, 1, 1, 1, 4})
	f.Add([]byte{0, 0, 1, 0, 1, 10, 0, 0, 1, 0, 1, 10, 0, 0, 1, 1, 1, 4, 3, 0, 1})
	f.Add([]byte{0, 0, 1, 0, 2, 10, 0, 0, 1, 1, 3, 10})
	f.Add([]byte{0, 0, 1, 0, 2, 10, 2, 200, 0, 0, 1, 1, 2, 10})
	f.Add([]byte{1, 8, 3, 0, 1, 2, 0, 'x', 'y', 'z'})
	f.Add([]byte{0, 0, 1, 0, 7, 35, 0, 1, 2, 0, 7, 35, 0, 2, 3, 0, 7, 35, 0, 3, 4, 0, 7, 35})
	f.Fuzz(func(t *testing.T, ops []byte) {
		clk := clock.NewManual(t0)
		r, err := NewReassembler(ReassemblerOptions{
			Clock:            clk,
			Timeout:          time.Minute,
			MaxReassemblies:  fuzzMaxActive,
			MaxBufferedBytes: fuzzMaxBytes,
			MaxPacket:        fuzzMaxPacket,
			MaxFrame:         fuzzMaxFrame,
		})
		if err != nil {
			t.Fatal(err)
		}
		senders := []string{"", "a", "b", "c"}
		next := func() (byte, bool) {
			if len(ops) == 0 {
				return 0, false
			}
			b := ops[0]
			ops = ops[1:]
			return b, true
		}
		for len(ops) > 0 {
			op, _ := next()
			var pkt []byte
			from := ""
			switch op % 4 {
			case 0: // structured fragment: sender, id, index, last, length
				var h [5]byte
				for i := range h {
					h[i], _ = next()
				}
				from = senders[h[0]%4]
				n := int(h[4]) % (fuzzMaxPacket + 4)
				payload := make([]byte, n)
				for i := range payload {
					payload[i] = byte(i) ^ h[1] // same bytes for the same id and length
				}
				pkt = AppendFragment(nil, Fragment{ID: uint16(h[1] % 4), Index: int(h[2] % 8), Last: int(h[3] % 8), Payload: payload})
				if h[2]&0x80 != 0 {
					pkt[0] ^= h[3] & 0xF0 // sometimes another version
				}
				if h[3]&0x80 != 0 {
					pkt = pkt[:int(h[2])%len(pkt)] // sometimes truncated
				}
			case 1: // raw packet
				n, _ := next()
				from = senders[n%4]
				n = n % 64
				for i := 0; i < int(n); i++ {
					b, ok := next()
					if !ok {
						break
					}
					pkt = append(pkt, b)
				}
			case 2: // time passes
				s, _ := next()
				clk.Advance(time.Duration(s) * time.Second)
				r.Expire()
				checkReassembler(t, r)
				continue
			case 3: // a status query
				s, _ := next()
				miss, known := r.Missing(senders[s%4], uint16(s>>2%4))
				if !known && miss != nil {
					t.Fatal("unknown message with missing indices")
				}
				for _, i := range miss {
					if i < 0 || i >= MaxFragments {
						t.Fatalf("missing index %d", i)
					}
				}
				continue
			}
			frame, err := r.Add(from, pkt)
			if err != nil && frame != nil {
				t.Fatal("frame and error together")
			}
			if len(frame) > fuzzMaxFrame {
				t.Fatalf("frame of %d bytes, limit %d", len(frame), fuzzMaxFrame)
			}
			checkReassembler(t, r)
		}
	})
}

// checkReassembler asserts the caps and recomputes the byte accounting
// from what the reassembler holds.
func checkReassembler(t *testing.T, r *Reassembler) {
	t.Helper()
	s := r.Stats()
	if s.Active > fuzzMaxActive || len(r.active) > fuzzMaxActive {
		t.Fatalf("%d reassemblies, cap %d", s.Active, fuzzMaxActive)
	}
	if s.Buffered > fuzzMaxBytes || s.Buffered < 0 {
		t.Fatalf("%d bytes buffered, cap %d", s.Buffered, fuzzMaxBytes)
	}
	total := 0
	for k, a := range r.active {
		held, have := 0, 0
		for _, p := range a.parts {
			if p != nil {
				held += len(p)
				have++
			}
		}
		if held != a.bytes || have != a.have || have == 0 || have >= len(a.parts) {
			t.Fatalf("reassembly %v: %d bytes in %d parts, books say %d in %d of %d", k, held, have, a.bytes, a.have, len(a.parts))
		}
		total += held
	}
	if total != s.Buffered {
		t.Fatalf("held %d bytes, books say %d", total, s.Buffered)
	}
}

// FuzzFragmentRoundTrip splits a fuzzed frame at a fuzzed MTU and feeds
// the fragments back in a fuzzed order, with duplicates: the frame comes
// back whole, exactly once.
func FuzzFragmentRoundTrip(f *testing.F) {
	f.Add([]byte("hello, fragmented world"), uint8(10), uint64(1))
	f.Add(bytes.Repeat([]byte{0x82}, 1000), uint8(51), uint64(7))
	f.Add([]byte{3, 0, 0, 0, 0}, uint8(255), uint64(0))
	f.Fuzz(func(t *testing.T, frame []byte, mtu uint8, order uint64) {
		m := max(int(mtu), MinMTU)
		fr, err := NewFragmenter(FragmenterOptions{MTU: m, FirstID: uint16(order)})
		if err != nil {
			t.Fatal(err)
		}
		o, err := fr.Split(frame)
		if len(frame) == 0 || len(frame) > fr.MaxFrame() {
			if err == nil {
				t.Fatalf("Split accepted %d bytes", len(frame))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		pkts := o.Packets()
		if !o.Fragmented() {
			if len(pkts) != 1 || !bytes.Equal(pkts[0], frame) || IsFragment(frame) {
				t.Fatal("whole frame altered or ambiguous")
			}
			return
		}
		// A fuzzed permutation with some packets twice.
		seqn := make([]int, 0, 2*len(pkts))
		for i := range pkts {
			seqn = append(seqn, i)
		}
		x := order | 1
		for i := len(seqn) - 1; i > 0; i-- {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			j := int(x % uint64(i+1))
			seqn[i], seqn[j] = seqn[j], seqn[i]
		}
		seqn = append(seqn, seqn[:int(order%uint64(len(seqn)+1))]...)
		r, err := NewReassembler(ReassemblerOptions{Clock: clock.NewManual(t0), MaxPacket: m})
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for _, i := range seqn {
			if len(pkts[i]) > m {
				t.Fatalf("packet of %d bytes at MTU %d", len(pkts[i]), m)
			}
			out, err := r.Add("peer", pkts[i])
			if err != nil {
				t.Fatal(err)
			}
			if out != nil {
				if got != nil {
					t.Fatal("frame returned twice")
				}
				got = out
			}
		}
		if !bytes.Equal(got, frame) {
			t.Fatalf("got %d bytes back for %d", len(got), len(frame))
		}
	})
}
