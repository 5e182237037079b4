package link

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports/lora"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenID is the identity of the golden vector: seed 00 01 .. 1f.
func goldenID(t testing.TB) *crypto.Identity {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	id, err := crypto.IdentityFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// goldenPackets are the packets of testdata/link-v0.hex, with comments.
func goldenPackets(t testing.TB) []struct {
	comment string
	pkts    [][]byte
} {
	id := goldenID(t)
	src := HintOf(id.Address())
	dst := Hint{0xAB, 0xCD}
	frame := make([]byte, 300)
	for i := range frame {
		frame[i] = byte(i % 251)
	}
	split := func(frame []byte, mtu int, msgID uint16) [][]byte {
		chunk := mtu - DataOverhead
		n := (len(frame) + chunk - 1) / chunk
		var out [][]byte
		for i := range n {
			out = append(out, dataPacket(dst, src, lora.Fragment{ID: msgID, Index: i, Last: n - 1, Payload: frame[i*chunk : min((i+1)*chunk, len(frame))]}))
		}
		out[n-1][0] |= pollFlag
		return out
	}
	const unix = 1_750_000_000 // 2025-06-15T15:06:40Z
	return []struct {
		comment string
		pkts    [][]byte
	}{
		{fmt.Sprintf("HELLO, broadcast, listening and asking for replies, time %d, from the identity with seed 00..1f (hint %s)", unix, src),
			[][]byte{helloPacket(id, Broadcast, unix, true, true)}},
		{"HELLO to abcd (a Dial's), not listening", [][]byte{helloPacket(id, dst, unix, false, false)}},
		{`"qpc" (3 bytes) to abcd, message 7: one packet, poll`, split([]byte("qpc"), 255, 7)},
		{"300-byte frame (bytes i mod 251) to abcd at MTU 255, message 0x1234: 245 + 55 bytes, poll on the last", split(frame, 255, 0x1234)},
		{"the same frame at MTU 51, message 0x1235: 7 packets of 41 bytes and one of 13", split(frame, 51, 0x1235)},
		{"ACK of message 0x1234 to abcd", [][]byte{ackPacket(dst, src, 0x1234)}},
		{"NACK of message 0x1235 to abcd: fragments 1 and 8 missing", [][]byte{nackPacket(dst, src, 0x1235, []int{1, 8})}},
		{"NACK of message 0x1235 to abcd: unknown, resend everything", [][]byte{nackPacket(dst, src, 0x1235, nil)}},
		{"BYE to abcd", [][]byte{byePacket(dst, src)}},
	}
}

// The golden vector pins the on-air layout documented in doc.go.
func TestGoldenVector(t *testing.T) {
	var out strings.Builder
	out.WriteString("# qpc LoRa link packets, version 0, one per line in hex (see doc.go).\n")
	for _, g := range goldenPackets(t) {
		fmt.Fprintf(&out, "# %s\n", g.comment)
		for _, p := range g.pkts {
			fmt.Fprintf(&out, "%s\n", hex.EncodeToString(p))
		}
	}
	path := filepath.Join("testdata", "link-v0.hex")
	if *update {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != out.String() {
		t.Errorf("packets differ from %s (run with -update if the change is intended):\n%s", path, out.String())
	}
	// The documented first bytes.
	for _, start := range []string{"\nc2ffff", "\nc2abcd", "\nc9abcd", "\nc1abcd", "\nc3abcd", "\nc4abcd", "\nc5abcd"} {
		if !strings.Contains(string(want), start) {
			t.Errorf("golden file lacks a packet starting %s", start[1:])
		}
	}
}

func TestPacketsRoundTrip(t *testing.T) {
	id := goldenID(t)
	src, dst := HintOf(id.Address()), Hint{1, 2}
	h, body, err := parseHeader(helloPacket(id, Broadcast, 42, true, false))
	if err != nil || h.kind != KindHello || h.dst != Broadcast || h.src != src || len(body) != HelloSize-HeaderSize {
		t.Fatalf("hello header %+v, %d, %v", h, len(body), err)
	}
	hl, err := parseHello(h, helloPacket(id, Broadcast, 42, true, false))
	if err != nil || hl.addr != id.Address() || hl.time != 42 || !hl.listening || hl.solicit {
		t.Fatalf("hello %+v, %v", hl, err)
	}
	for _, missing := range [][]int{nil, {0}, {7}, {8}, {1, 8, 9}, {255}, {0, 100, 200, 255}} {
		pkt := nackPacket(dst, src, 0xBEEF, missing)
		if len(pkt) > MaxNackSize {
			t.Errorf("NACK of %v is %d bytes, over MaxNackSize", missing, len(pkt))
		}
		h, body, err := parseHeader(pkt)
		if err != nil {
			t.Fatal(err)
		}
		r, err := parseReport(h.kind, body)
		if err != nil || r.id != 0xBEEF || r.ack || !slices.Equal(r.missing, missing) {
			t.Errorf("NACK %v: parsed %+v, %v", missing, r, err)
		}
	}
	h, body, _ = parseHeader(ackPacket(dst, src, 9))
	if r, err := parseReport(h.kind, body); err != nil || !r.ack || r.id != 9 || len(ackPacket(dst, src, 9)) != AckSize {
		t.Errorf("ACK: %+v, %v", r, err)
	}
	if h, body, err := parseHeader(byePacket(dst, src)); err != nil || h.kind != KindBye || len(body) != 0 {
		t.Errorf("BYE: %+v %v", h, err)
	}
}

func TestParseErrors(t *testing.T) {
	id := goldenID(t)
	hello := helloPacket(id, Broadcast, 42, true, false)
	for _, tc := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrNotLink},
		{"CBOR frame", []byte{0x82, 1, 2}, ErrNotLink},
		{"lora fragment", []byte{0x03, 0, 1, 0, 0, 'x'}, ErrNotLink},
		{"short header", []byte{0xC1, 0xAB}, ErrMalformed},
		{"kind 0", []byte{0xC0, 1, 2, 3, 4}, ErrMalformed},
		{"kind 6", []byte{0xC6, 1, 2, 3, 4}, ErrMalformed},
		{"poll on a BYE", []byte{0xCD, 1, 2, 3, 4}, ErrMalformed},
		{"HELLO one byte short", hello[:len(hello)-1], ErrMalformed},
		{"HELLO with unknown flags", func() []byte { p := bytes.Clone(hello); p[HeaderSize] |= 0x80; return p }(), ErrMalformed},
		{"HELLO, bad signature", func() []byte { p := bytes.Clone(hello); p[len(p)-1] ^= 1; return p }(), ErrBadHello},
		{"HELLO, wrong hint", func() []byte { p := bytes.Clone(hello); p[3] ^= 1; return p }(), ErrBadHello},
		{"ACK without id", []byte{0xC3, 1, 2, 3, 4, 0}, ErrMalformed},
		{"ACK with a bitmap", []byte{0xC3, 1, 2, 3, 4, 0, 1, 1}, ErrMalformed},
		{"NACK, bitmap ending in zero", []byte{0xC4, 1, 2, 3, 4, 0, 1, 1, 0}, ErrMalformed},
		{"NACK, bitmap of 33 bytes", append([]byte{0xC4, 1, 2, 3, 4, 0, 1}, bytes.Repeat([]byte{1}, 33)...), ErrMalformed},
	} {
		h, body, err := parseHeader(tc.pkt)
		if err == nil {
			switch h.kind {
			case KindHello:
				_, err = parseHello(h, tc.pkt)
			case KindAck, KindNack:
				_, err = parseReport(h.kind, body)
			}
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// The sizes quoted in doc.go.
func TestSizes(t *testing.T) {
	if HeaderSize != 5 || DataOverhead != 10 || HelloSize != 106 || AckSize != 7 || MaxNackSize != 39 || ByeSize != 5 || MinMTU != 11 {
		t.Errorf("sizes: header %d data %d hello %d ack %d nack %d bye %d min MTU %d", HeaderSize, DataOverhead, HelloSize, AckSize, MaxNackSize, ByeSize, MinMTU)
	}
	if FrameLimit(255) != 62720 || FrameLimit(51) != 10496 {
		t.Errorf("FrameLimit 255: %d, 51: %d", FrameLimit(255), FrameLimit(51))
	}
	for _, tc := range []struct{ frame, mtu, packets, bytes int }{
		{192, 255, 1, 10}, // an envelope
		{192, 51, 5, 50},
		{245, 255, 1, 10},
		{246, 255, 2, 20},
		{2048, 255, 9, 90},
		{62720, 255, 256, 2560},
	} {
		if p, b := Overhead(tc.frame, tc.mtu); p != tc.packets || b != tc.bytes {
			t.Errorf("Overhead(%d, %d) = %d packets %d bytes, want %d and %d", tc.frame, tc.mtu, p, b, tc.packets, tc.bytes)
		}
	}
}
