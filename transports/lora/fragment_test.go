package lora

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestFragmentTag(t *testing.T) {
	if FragmentTag != messages.MakeTag(messages.FrameFragment, 0) || byte(FragmentTag) != 0x03 {
		t.Fatalf("FragmentTag = %#x", byte(FragmentTag))
	}
	// Every qpc frame is a CBOR array: none looks like a fragment.
	for b := 0x80; b <= 0x9F; b++ {
		if IsFragment([]byte{byte(b), 1}) {
			t.Errorf("%#x (CBOR array head) taken for a fragment", b)
		}
	}
	for _, b := range []byte{0x03, 0x13, 0x73} {
		if !IsFragment([]byte{b}) {
			t.Errorf("%#x (fragment v%d) not recognised", b, b>>4)
		}
	}
}

func mustFragmenter(t testing.TB, mtu int, id uint16) *Fragmenter {
	t.Helper()
	f, err := NewFragmenter(FragmenterOptions{MTU: mtu, FirstID: id})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustReassembler(t testing.TB, o ReassemblerOptions) *Reassembler {
	t.Helper()
	r, err := NewReassembler(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// The golden vector pins the byte layout documented in fragment.go.
func TestFragmentGolden(t *testing.T) {
	var out strings.Builder
	out.WriteString("# Fragments, version 0, one packet per line in hex (see fragment.go).\n")
	emit := func(title string, mtu int, id uint16, frame []byte) {
		o, err := mustFragmenter(t, mtu, id).Split(frame)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "# %s\n", title)
		for _, p := range o.Packets() {
			fmt.Fprintf(&out, "%s\n", hex.EncodeToString(p))
		}
	}
	emit("300-byte frame (bytes i mod 251), MTU 255, id 0x1234: 250 + 50 bytes", 255, 0x1234, seq(300))
	emit(`"qpc fragments over LoRa!" (24 bytes), MTU 16, id 0xBEEF: 11 + 11 + 2 bytes`, 16, 0xBEEF, []byte("qpc fragments over LoRa!"))
	emit("3-byte frame 03 01 02 that fits but looks like a fragment, MTU 255, id 7: one fragment", 255, 7, []byte{3, 1, 2})
	emit("3-byte CBOR frame 82 01 02 that fits: sent whole", 255, 9, []byte{0x82, 1, 2})

	path := filepath.Join("testdata", "fragments-v0.hex")
	if *update {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("fragments differ from %s (run with -update if the change is intended):\n%s", path, out.String())
	}
	// Spot-check the header against the documented layout.
	if !strings.Contains(string(want), "\n0312340001") || !strings.Contains(string(want), "\n0312340101") {
		t.Error("golden file lacks the documented headers 03 1234 00 01 / 03 1234 01 01")
	}
}

func TestParseFragmentErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		pkt  []byte
		err  error
	}{
		{"empty", nil, ErrBadFragment},
		{"CBOR frame", []byte{0x83, 1, 2, 3, 4, 5}, ErrBadFragment},
		{"other tag", []byte{0x01, 0, 0, 0, 0, 1}, ErrBadFragment},
		{"header only", []byte{0x03, 0, 1, 0, 1}, ErrBadFragment},
		{"short header", []byte{0x03, 0, 1}, ErrBadFragment},
		{"index beyond last", []byte{0x03, 0, 1, 2, 1, 'x'}, ErrBadFragment},
		{"version 1", []byte{0x13, 0, 1, 0, 1, 'x'}, ErrFragmentVersion},
		{"version 1 (messages error)", []byte{0x13, 0, 1, 0, 1, 'x'}, messages.ErrUnsupportedVersion},
	} {
		_, err := ParseFragment(c.pkt)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.err)
		}
	}
	f, err := ParseFragment([]byte{0x03, 0xAB, 0xCD, 2, 255, 'x', 'y'})
	if err != nil || f.ID != 0xABCD || f.Index != 2 || f.Last != 255 || f.Count() != 256 || string(f.Payload) != "xy" {
		t.Errorf("ParseFragment = %+v, %v", f, err)
	}
}

func TestSplitLimits(t *testing.T) {
	for _, mtu := range []int{MinMTU, LoRaWANMTU, DefaultMTU} {
		f := mustFragmenter(t, mtu, 0)
		if f.MaxFrame() != 256*(mtu-5) {
			t.Errorf("MTU %d: MaxFrame %d", mtu, f.MaxFrame())
		}
		o, err := f.Split(seq(f.MaxFrame()))
		if err != nil || len(o.Packets()) != MaxFragments {
			t.Errorf("MTU %d: largest frame: %d packets, %v", mtu, len(o.Packets()), err)
		}
		for _, p := range o.Packets() {
			if len(p) > mtu {
				t.Fatalf("MTU %d: packet of %d bytes", mtu, len(p))
			}
		}
		_, err = f.Split(seq(f.MaxFrame() + 1))
		var tl *transports.FrameTooLargeError
		if !errors.Is(err, transports.ErrFrameTooLarge) || !errors.As(err, &tl) || tl.Limit != f.MaxFrame() {
			t.Errorf("MTU %d: frame over MaxFrame: %v", mtu, err)
		}
	}
	if _, err := mustFragmenter(t, 0, 0).Split(nil); !errors.Is(err, ErrBadParams) {
		t.Errorf("empty frame: %v", err)
	}
	for _, mtu := range []int{-1, 5, 256, 508} {
		if _, err := NewFragmenter(FragmenterOptions{MTU: mtu}); !errors.Is(err, ErrBadParams) {
			t.Errorf("MTU %d: %v", mtu, err)
		}
	}
	if got := mustFragmenter(t, 0, 0).MTU(); got != DefaultMTU {
		t.Errorf("default MTU %d", got)
	}
	if MTUFor(params(12, 125000, CR45)) != 51 || MTUFor(params(11, 125000, CR45)) != 255 {
		t.Error("MTUFor")
	}
}

func TestSplitIDs(t *testing.T) {
	f := mustFragmenter(t, 51, 0xFFFF)
	a, _ := f.Split(seq(100))
	b, _ := f.Split([]byte{0x81, 0}) // whole: uses no id
	c, _ := f.Split(seq(100))
	if a.ID != 0xFFFF || c.ID != 0 || !a.Fragmented() || b.Fragmented() || !c.Fragmented() {
		t.Errorf("ids %d %d, fragmented %v %v %v", a.ID, c.ID, a.Fragmented(), b.Fragmented(), c.Fragmented())
	}
}

// Random frames, fragments shuffled and duplicated: the frame comes back.
func TestFragmentRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, mtu := range []int{MinMTU, 16, LoRaWANMTU, 200, DefaultMTU} {
		f := mustFragmenter(t, mtu, uint16(rng.Uint32()))
		r := mustReassembler(t, ReassemblerOptions{Clock: clock.NewManual(t0), MaxPacket: mtu})
		for range 50 {
			frame := make([]byte, 1+rng.IntN(min(f.MaxFrame(), 5000)))
			for i := range frame {
				frame[i] = byte(rng.Uint32())
			}
			frame[0] = 0x80 | frame[0]&0x1F // a CBOR array, as qpc frames are
			o, err := f.Split(frame)
			if err != nil {
				t.Fatal(err)
			}
			if !o.Fragmented() {
				if !bytes.Equal(o.Packets()[0], frame) {
					t.Fatal("whole frame altered")
				}
				continue
			}
			pkts := append([][]byte(nil), o.Packets()...)
			pkts = append(pkts, pkts[rng.IntN(len(pkts))]) // a duplicate
			rng.Shuffle(len(pkts), func(i, j int) { pkts[i], pkts[j] = pkts[j], pkts[i] })
			var got []byte
			for _, p := range pkts {
				out, err := r.Add("a", p)
				if err != nil {
					t.Fatalf("MTU %d, %d B: %v", mtu, len(frame), err)
				}
				if out != nil {
					if got != nil {
						t.Fatal("frame returned twice")
					}
					got = out
				}
			}
			if !bytes.Equal(got, frame) {
				t.Fatalf("MTU %d: %d B frame came back as %d B", mtu, len(frame), len(got))
			}
		}
		if s := r.Stats(); s.Active != 0 || s.Buffered != 0 {
			t.Errorf("MTU %d: left over %+v", mtu, s)
		}
	}
}

// A small frame that starts like a fragment travels as one fragment.
func TestSplitFrameThatLooksLikeAFragment(t *testing.T) {
	f := mustFragmenter(t, 255, 5)
	frame := []byte{0x03, 0, 5, 0, 0, 'x'}
	o, _ := f.Split(frame)
	if !o.Fragmented() || len(o.Packets()) != 1 {
		t.Fatalf("fragmented %v, %d packets", o.Fragmented(), len(o.Packets()))
	}
	r := mustReassembler(t, ReassemblerOptions{Clock: clock.NewManual(t0)})
	got, err := r.Add("", o.Packets()[0])
	if err != nil || !bytes.Equal(got, frame) {
		t.Errorf("got %x, %v", got, err)
	}
}

func frag(id uint16, index, last int, payload string) []byte {
	return AppendFragment(nil, Fragment{ID: id, Index: index, Last: last, Payload: []byte(payload)})
}

func TestReassemblerInconsistent(t *testing.T) {
	type step struct {
		pkt []byte
		err error
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"count changes", []step{{frag(1, 0, 2, "aaaa"), nil}, {frag(1, 1, 3, "aaaa"), ErrInconsistentFragment}}},
		{"chunk size differs", []step{{frag(1, 0, 2, "aaaa"), nil}, {frag(1, 1, 2, "aaa"), ErrInconsistentFragment}}},
		{"last longer than chunk", []step{{frag(1, 0, 2, "aaaa"), nil}, {frag(1, 2, 2, "aaaaa"), ErrInconsistentFragment}}},
		{"chunk shorter than last seen", []step{{frag(1, 2, 2, "aaaaa"), nil}, {frag(1, 0, 2, "aaaa"), ErrInconsistentFragment}}},
		{"same index, other bytes", []step{{frag(1, 0, 2, "aaaa"), nil}, {frag(1, 0, 2, "bbbb"), ErrInconsistentFragment}}},
		{"index beyond count", []step{{frag(1, 0, 2, "aaaa"), nil}, {[]byte{3, 0, 1, 3, 2, 'a'}, ErrBadFragment}}},
		{"oversize from the first fragment", []step{{frag(1, 0, 255, strings.Repeat("a", 250)), transports.ErrFrameTooLarge}}},
		{"oversize last fragment", []step{{frag(1, 200, 200, strings.Repeat("a", 250)), transports.ErrFrameTooLarge}}},
		{"single oversize fragment", []step{{frag(1, 0, 0, strings.Repeat("a", 250)), transports.ErrFrameTooLarge}}},
		{"packet over MaxPacket", []step{{frag(1, 0, 1, strings.Repeat("a", 251)), transports.ErrFrameTooLarge}}},
		// 18 chunks of 11 and a last fragment of at least 1 byte fit in
		// 200; a 3-byte last fragment makes 201.
		{"oversize once the last size is known", []step{{frag(1, 0, 18, strings.Repeat("a", 11)), nil}, {frag(1, 18, 18, "aaa"), transports.ErrFrameTooLarge}}},
		{"exactly MaxFrame", []step{{frag(1, 0, 18, strings.Repeat("a", 11)), nil}, {frag(1, 18, 18, "aa"), nil}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mustReassembler(t, ReassemblerOptions{Clock: clock.NewManual(t0), MaxFrame: 200})
			for i, s := range c.steps {
				out, err := r.Add("x", s.pkt)
				if !errors.Is(err, s.err) || (s.err == nil && err != nil) || out != nil {
					t.Fatalf("step %d: %x, %v; want %v", i, out, err, s.err)
				}
			}
			// An inconsistency discards the whole reassembly.
			if s := r.Stats(); s.Active != 0 && c.steps[len(c.steps)-1].err == ErrInconsistentFragment {
				t.Errorf("reassembly kept after inconsistency: %+v", s)
			}
			if s := r.Stats(); s.Buffered != 0 && s.Active == 0 {
				t.Errorf("bytes leaked: %+v", s)
			}
		})
	}
}

func TestReassemblerCaps(t *testing.T) {
	r := mustReassembler(t, ReassemblerOptions{Clock: clock.NewManual(t0), MaxReassemblies: 2, MaxBufferedBytes: 10})
	if _, err := r.Add("a", frag(1, 0, 1, "aaaa")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add("b", frag(1, 0, 1, "bbbb")); err != nil { // other sender, same id
		t.Fatal(err)
	}
	if _, err := r.Add("a", frag(2, 0, 1, "cccc")); !errors.Is(err, ErrTooManyReassemblies) {
		t.Fatalf("third reassembly: %v", err)
	}
	if _, err := r.Add("a", frag(1, 1, 1, "aaa")); err != nil { // 4+4+3 = 11 > 10
		if !errors.Is(err, ErrBufferFull) {
			t.Fatal(err)
		}
	} else {
		t.Fatal("buffer cap not enforced")
	}
	if s := r.Stats(); s.Active != 2 || s.Buffered != 8 || s.Rejected != 2 {
		t.Fatalf("stats %+v", s)
	}
	got, err := r.Add("a", frag(1, 1, 1, "aa")) // 10: fits exactly
	if err != nil || string(got) != "aaaaaa" {
		t.Fatalf("got %q, %v", got, err)
	}
	if s := r.Stats(); s.Active != 1 || s.Buffered != 4 || s.Completed != 1 {
		t.Fatalf("after completion %+v", s)
	}
	// A fragment that alone exceeds the buffer does not create a reassembly.
	r2 := mustReassembler(t, ReassemblerOptions{Clock: clock.NewManual(t0), MaxBufferedBytes: 3})
	if _, err := r2.Add("a", frag(1, 0, 1, "aaaa")); !errors.Is(err, ErrBufferFull) || r2.Stats().Active != 0 {
		t.Fatalf("%v %+v", err, r2.Stats())
	}
}

func TestReassemblerTimeout(t *testing.T) {
	clk := clock.NewManual(t0)
	r := mustReassembler(t, ReassemblerOptions{Clock: clk, Timeout: time.Minute})
	r.Add("a", frag(1, 0, 2, "aa"))
	clk.Advance(59 * time.Second)
	r.Add("a", frag(1, 1, 2, "aa")) // progress restarts the timeout
	clk.Advance(59 * time.Second)
	if n := r.Expire(); n != 0 {
		t.Fatalf("expired %d while progressing", n)
	}
	if miss, known := r.Missing("a", 1); !known || len(miss) != 1 || miss[0] != 2 {
		t.Fatalf("Missing = %v %v", miss, known)
	}
	clk.Advance(time.Second)
	if n := r.Expire(); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	if s := r.Stats(); s.Active != 0 || s.Buffered != 0 || s.Expired != 1 {
		t.Fatalf("stats %+v", s)
	}
	if _, known := r.Missing("a", 1); known {
		t.Fatal("expired message still known")
	}
	// The last fragment alone now starts over.
	if out, err := r.Add("a", frag(1, 2, 2, "a")); out != nil || err != nil || r.Stats().Active != 1 {
		t.Fatalf("%q %v", out, err)
	}
}

func TestReassemblerDuplicatesAfterCompletion(t *testing.T) {
	clk := clock.NewManual(t0)
	r := mustReassembler(t, ReassemblerOptions{Clock: clk, Timeout: time.Minute})
	r.Add("a", frag(9, 0, 1, "ab"))
	if out, _ := r.Add("a", frag(9, 1, 1, "c")); string(out) != "abc" {
		t.Fatalf("got %q", out)
	}
	for range 3 {
		if out, err := r.Add("a", frag(9, 0, 1, "ab")); out != nil || err != nil {
			t.Fatalf("late duplicate: %q %v", out, err)
		}
	}
	if miss, known := r.Missing("a", 9); !known || len(miss) != 0 {
		t.Fatalf("Missing after completion = %v %v", miss, known)
	}
	if s := r.Stats(); s.Active != 0 || s.Duplicates != 3 {
		t.Fatalf("stats %+v", s)
	}
	clk.Advance(time.Minute)
	r.Expire()
	if _, known := r.Missing("a", 9); known {
		t.Fatal("completion remembered past the timeout")
	}
}

func TestNewReassemblerRefuses(t *testing.T) {
	for _, o := range []ReassemblerOptions{
		{Timeout: -1}, {MaxReassemblies: -1}, {MaxBufferedBytes: -5},
		{MaxPacket: 5}, {MaxFrame: 64001}, {MaxFrame: -1},
	} {
		if _, err := NewReassembler(o); !errors.Is(err, ErrBadParams) {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

func TestOutgoingRounds(t *testing.T) {
	f, _ := NewFragmenter(FragmenterOptions{MTU: 16, MaxRounds: 3})
	o, _ := f.Split(seq(50)) // 5 fragments of 11 bytes
	if len(o.Packets()) != 5 || o.Rounds() != 1 {
		t.Fatalf("%d packets, round %d", len(o.Packets()), o.Rounds())
	}
	got, err := o.Resend([]int{3, 1, 3})
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], o.Packets()[1]) || !bytes.Equal(got[1], o.Packets()[3]) {
		t.Fatalf("Resend = %d packets, %v", len(got), err)
	}
	if got, err := o.Resend(nil); got != nil || err != nil || o.Rounds() != 2 {
		t.Fatalf("Resend(nil) = %v %v, round %d", got, err, o.Rounds())
	}
	if _, err := o.Resend([]int{5}); !errors.Is(err, ErrBadFragment) {
		t.Fatalf("index out of range: %v", err)
	}
	if _, err := o.ResendAll(); err != nil || o.Rounds() != 3 {
		t.Fatal(err)
	}
	if _, err := o.ResendAll(); !errors.Is(err, ErrGaveUp) {
		t.Fatalf("fourth round: %v", err)
	}
}

// nack is the test's stand-in for the status report a receiver sends
// back: 'N', id, then a 32-byte bitmap of missing fragments, or 'U', id
// when it holds nothing of the message. (The real carrier is the link
// actor's to choose.)
func nack(r *Reassembler, from string, id uint16) []byte {
	miss, known := r.Missing(from, id)
	if !known {
		return []byte{'U', byte(id >> 8), byte(id)}
	}
	b := append([]byte{'N', byte(id >> 8), byte(id)}, make([]byte, 32)...)
	for _, i := range miss {
		b[3+i/8] |= 1 << (i % 8)
	}
	return b
}

func parseNack(b []byte) (missing []int, known bool) {
	if b[0] == 'U' {
		return nil, false
	}
	for i := range 256 {
		if b[3+i/8]&(1<<(i%8)) != 0 {
			missing = append(missing, i)
		}
	}
	return missing, true
}

type srResult struct {
	frame      []byte
	rounds     int
	sent       int
	err        error
	simulation time.Duration
}

// selectiveRepeat sends payload from radio a to radio b over a medium
// with the given loss both ways, with SF7/125 kHz, MTU 51 fragments and
// status reports after each round, until b has the frame or a gives up.
func selectiveRepeat(t *testing.T, payload []byte, loss float64, seed uint64, maxRounds int) srResult {
	t.Helper()
	clk := clock.NewManual(t0)
	m := NewMedium(MediumOptions{Clock: clk, Rand: rand.New(rand.NewPCG(seed, 99)), RxQueue: 512})
	p := params(7, 125000, CR45)
	a, _ := m.Attach("a", p)
	b, _ := m.Attach("b", p)
	if err := m.SetLoss("a", "b", loss); err != nil {
		t.Fatal(err)
	}
	f, _ := NewFragmenter(FragmenterOptions{MTU: LoRaWANMTU, FirstID: 0x4242, MaxRounds: maxRounds})
	r := mustReassembler(t, ReassemblerOptions{Clock: clk})
	o, err := f.Split(payload)
	if err != nil {
		t.Fatal(err)
	}
	var res srResult
	round := o.Packets()
	for {
		res.rounds = o.Rounds()
		// a transmits the round, pacing itself on its transmit queue.
		for _, pkt := range round {
			for {
				err := a.Send(pkt)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrQueueFull) {
					t.Fatal(err)
				}
				clk.Advance(10 * time.Millisecond)
			}
			res.sent++
		}
		for a.Transmitting() {
			clk.Advance(10 * time.Millisecond)
		}
		// b takes in what arrived and answers with a status report.
		for {
			pkt, ok := b.TryRecv()
			if !ok {
				break
			}
			out, err := r.Add(pkt.From, pkt.Data)
			if err != nil {
				t.Fatalf("reassembly: %v", err)
			}
			if out != nil {
				res.frame = out
			}
		}
		if err := b.Send(nack(r, "a", o.ID)); err != nil {
			t.Fatal(err)
		}
		for b.Transmitting() {
			clk.Advance(10 * time.Millisecond)
		}
		st, heard := a.TryRecv()
		var missing []int
		known := false
		if heard {
			missing, known = parseNack(st.Data)
		}
		switch {
		case !heard:
			// No report: probe with the last fragment, which makes b
			// report again.
			round, err = o.Resend([]int{len(o.Packets()) - 1})
		case !known:
			round, err = o.ResendAll() // b holds nothing: everything again
		case len(missing) == 0:
			res.simulation = clk.Now().Sub(t0)
			return res // complete
		default:
			round, err = o.Resend(missing)
		}
		if err != nil {
			res.err = err
			res.simulation = clk.Now().Sub(t0)
			return res
		}
	}
}

// A 2 KB payload over a link that loses 10 % of the packets, each way:
// selective repeat completes it, resending only what was missing.
func TestSelectiveRepeatOverLossyLink(t *testing.T) {
	payload := seq(2048)
	payload[0] = 0x82
	for seed := range uint64(10) {
		res := selectiveRepeat(t, payload, 0.10, seed, DefaultMaxRounds)
		if res.err != nil {
			t.Fatalf("seed %d: %v after %d rounds", seed, res.err, res.rounds)
		}
		if !bytes.Equal(res.frame, payload) {
			t.Fatalf("seed %d: frame differs", seed)
		}
		// 45 fragments of 46 bytes; with 10 % loss about 50 sends, far
		// fewer than resending everything each round.
		if res.sent < 45 || res.sent > 65 || res.rounds > 5 {
			t.Errorf("seed %d: %d packets in %d rounds", seed, res.sent, res.rounds)
		}
		t.Logf("seed %d: 2048 B as 45 fragments: %d packets sent in %d rounds, %v simulated", seed, res.sent, res.rounds, res.simulation)
	}
}

// A link that loses everything fails clearly after MaxRounds rounds.
func TestSelectiveRepeatGivesUp(t *testing.T) {
	res := selectiveRepeat(t, seq(2048), 1.0, 1, 4)
	if !errors.Is(res.err, ErrGaveUp) || res.rounds != 4 || res.frame != nil {
		t.Fatalf("err %v after %d rounds, frame %d B", res.err, res.rounds, len(res.frame))
	}
	if res.sent != 45+3 {
		t.Errorf("%d packets sent, want 45 and three probes", res.sent)
	}
}
