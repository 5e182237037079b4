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

// goldenPeer is the destination of the golden vector: seed 20 21 .. 3f.
func goldenPeer(t testing.TB) *crypto.Identity {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(0x20 + i)
	}
	id, err := crypto.IdentityFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// goldenKeys are the MAC keys of goldenID towards goldenPeer (tx) and
// back (rx).
func goldenKeys(t testing.TB) pairKeys {
	id, peer := goldenID(t), goldenPeer(t)
	twin, err := id.X25519Private()
	if err != nil {
		t.Fatal(err)
	}
	k, err := derivePairKeys(twin, id.Address(), peer.PublicKey(), peer.Address())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// goldenPackets are the packets of testdata/link-v1.hex, with comments.
func goldenPackets(t testing.TB) []struct {
	comment string
	pkts    [][]byte
} {
	id := goldenID(t)
	src := HintOf(id.Address())
	dst := HintOf(goldenPeer(t).Address())
	mac := goldenKeys(t).tx.seal
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
		for i := range out {
			out[i] = mac(out[i])
		}
		return out
	}
	const unix = 1_750_000_000 // 2025-06-15T15:06:40Z
	return []struct {
		comment string
		pkts    [][]byte
	}{
		{fmt.Sprintf("HELLO, broadcast, listening and asking for replies, time %d, from the identity with seed 00..1f (hint %s); no MAC", unix, src),
			[][]byte{helloPacket(id, Broadcast, unix, true, true)}},
		{fmt.Sprintf("HELLO to %s, the identity with seed 20..3f (a Dial's), not listening; no MAC", dst), [][]byte{helloPacket(id, dst, unix, false, false)}},
		{fmt.Sprintf(`"qpc" (3 bytes) to %s, message 7: one packet, poll; every packet from here on ends in the 4-byte MAC under the key from %s to %s`, dst, src, dst),
			split([]byte("qpc"), 255, 7)},
		{fmt.Sprintf("300-byte frame (bytes i mod 251) to %s at MTU 255, message 0x1234: 241 + 59 bytes, poll on the last", dst), split(frame, 255, 0x1234)},
		{"the same frame at MTU 51, message 0x1235: 8 packets of 37 bytes and one of 4", split(frame, 51, 0x1235)},
		{fmt.Sprintf("ACK of message 0x1234 to %s", dst), [][]byte{mac(ackPacket(dst, src, 0x1234))}},
		{fmt.Sprintf("NACK of message 0x1235 to %s: fragments 1 and 8 missing", dst), [][]byte{mac(nackPacket(dst, src, 0x1235, []int{1, 8}))}},
		{fmt.Sprintf("NACK of message 0x1235 to %s: unknown, resend everything", dst), [][]byte{mac(nackPacket(dst, src, 0x1235, nil))}},
		{fmt.Sprintf("BYE to %s", dst), [][]byte{mac(byePacket(dst, src))}},
	}
}

// The golden vector pins the on-air layout documented in doc.go.
func TestGoldenVector(t *testing.T) {
	var out strings.Builder
	out.WriteString("# qpc LoRa link packets, version 1, one per line in hex (see doc.go).\n")
	for _, g := range goldenPackets(t) {
		fmt.Fprintf(&out, "# %s\n", g.comment)
		for _, p := range g.pkts {
			fmt.Fprintf(&out, "%s\n", hex.EncodeToString(p))
		}
	}
	path := filepath.Join("testdata", "link-v1.hex")
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
	// The documented first bytes, and every packet after the HELLOs
	// checks under the pair's key (and not under the reverse one).
	dst := HintOf(goldenPeer(t).Address()).String()
	for _, start := range []string{"\nd2ffff", "\nd2" + dst, "\nd9" + dst, "\nd1" + dst, "\nd3" + dst, "\nd4" + dst, "\nd5" + dst} {
		if !strings.Contains(string(want), start) {
			t.Errorf("golden file lacks a packet starting %s", start[1:])
		}
	}
	keys := goldenKeys(t)
	for _, g := range goldenPackets(t) {
		for _, p := range g.pkts {
			if h, _, err := parseHeader(p); err != nil || macked(h.kind) != keys.tx.verify(p) || keys.rx.verify(p) {
				t.Errorf("%s: header %v; MAC checks under the sender's key: %v, under the reverse key: %v", g.comment, err, keys.tx.verify(p), keys.rx.verify(p))
			}
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
	mac := goldenKeys(t).tx.seal
	for _, missing := range [][]int{nil, {0}, {7}, {8}, {1, 8, 9}, {255}, {0, 100, 200, 255}} {
		pkt := mac(nackPacket(dst, src, 0xBEEF, missing))
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
	h, body, _ = parseHeader(mac(ackPacket(dst, src, 9)))
	if r, err := parseReport(h.kind, body); err != nil || !r.ack || r.id != 9 || len(mac(ackPacket(dst, src, 9))) != AckSize {
		t.Errorf("ACK: %+v, %v", r, err)
	}
	if h, body, err := parseHeader(mac(byePacket(dst, src))); err != nil || h.kind != KindBye || len(body) != 0 || len(mac(byePacket(dst, src))) != ByeSize {
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
		{"version 0 (no MAC)", []byte{0xC5, 1, 2, 3, 4}, ErrVersion},
		{"version 0 HELLO", func() []byte { p := bytes.Clone(hello); p[0] = 0xC2; return p }(), ErrVersion},
		{"family 111", []byte{0xF1, 1, 2, 3, 4, 0, 0, 0, 0}, ErrNotLink},
		{"short header", []byte{0xD1, 0xAB}, ErrMalformed},
		{"kind 0", []byte{0xD0, 1, 2, 3, 4}, ErrMalformed},
		{"kind 7", []byte{0xD7, 1, 2, 3, 4}, ErrMalformed},
		{"poll on a BYE", []byte{0xDD, 1, 2, 3, 4, 0, 0, 0, 0}, ErrMalformed},
		{"BYE without its MAC", []byte{0xD5, 1, 2, 3, 4}, ErrMalformed},
		{"DATA shorter than a MAC", []byte{0xD1, 1, 2, 3, 4, 0, 0, 0}, ErrMalformed},
		{"HELLO one byte short", hello[:len(hello)-1], ErrMalformed},
		{"HELLO with unknown flags", func() []byte { p := bytes.Clone(hello); p[HeaderSize] |= 0x80; return p }(), ErrMalformed},
		{"HELLO, bad signature", func() []byte { p := bytes.Clone(hello); p[len(p)-1] ^= 1; return p }(), ErrBadHello},
		{"HELLO, wrong hint", func() []byte { p := bytes.Clone(hello); p[3] ^= 1; return p }(), ErrBadHello},
		{"ACK without id", []byte{0xD3, 1, 2, 3, 4, 0, 9, 9, 9, 9}, ErrMalformed},
		{"ACK with a bitmap", []byte{0xD3, 1, 2, 3, 4, 0, 1, 1, 9, 9, 9, 9}, ErrMalformed},
		{"NACK, bitmap ending in zero", []byte{0xD4, 1, 2, 3, 4, 0, 1, 1, 0, 9, 9, 9, 9}, ErrMalformed},
		{"NACK, bitmap of 33 bytes", append(append([]byte{0xD4, 1, 2, 3, 4, 0, 1}, bytes.Repeat([]byte{1}, 33)...), 9, 9, 9, 9), ErrMalformed},
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
	if HeaderSize != 5 || MACSize != 4 || DataOverhead != 14 || HelloSize != 106 || AckSize != 11 || MaxNackSize != 43 || ByeSize != 9 || MinMTU != 15 {
		t.Errorf("sizes: header %d MAC %d data %d hello %d ack %d nack %d bye %d min MTU %d", HeaderSize, MACSize, DataOverhead, HelloSize, AckSize, MaxNackSize, ByeSize, MinMTU)
	}
	if FrameLimit(255) != 61696 || FrameLimit(51) != 9472 {
		t.Errorf("FrameLimit 255: %d, 51: %d", FrameLimit(255), FrameLimit(51))
	}
	for _, tc := range []struct{ frame, mtu, packets, bytes int }{
		{192, 255, 1, 14}, // an envelope
		{192, 51, 6, 84},
		{241, 255, 1, 14},
		{242, 255, 2, 28},
		{2048, 255, 9, 126},
		{61696, 255, 256, 3584},
	} {
		if p, b := Overhead(tc.frame, tc.mtu); p != tc.packets || b != tc.bytes {
			t.Errorf("Overhead(%d, %d) = %d packets %d bytes, want %d and %d", tc.frame, tc.mtu, p, b, tc.packets, tc.bytes)
		}
	}
}
