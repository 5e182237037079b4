package transports

import "testing"

func TestClassOf(t *testing.T) {
	tests := []struct {
		name    string
		mtu     int
		bitrate int64
		want    Class
	}{
		{"tcp default", DefaultMaxFrameSize, DefaultBitrate, Unconstrained},
		{"exactly unconstrained", 64 << 10, 1_000_000, Unconstrained},
		{"fast but small frames", 64<<10 - 1, 1_000_000_000, Medium},
		{"big frames but slow", 1 << 20, 999_999, Medium},
		{"exactly medium", 1024, 64_000, Medium},
		{"BLE-ish", 244, 1_000_000, Constrained},
		{"slow IP", 1 << 20, 63_999, Constrained},
		{"LoRa SF7/125kHz", 222, 5_470, Constrained},
		{"LoRa SF9/125kHz", 222, 1_760, Constrained},
		{"exactly constrained", 128, 1_000, Constrained},
		{"LoRa SF10/125kHz", 222, 980, SeverelyConstrained},
		{"LoRa SF12/125kHz", 51, 250, SeverelyConstrained},
		{"fast, tiny MTU", 127, 1_000_000, SeverelyConstrained},
		{"unknown bitrate", 1 << 20, 0, SeverelyConstrained},
		{"unknown MTU", 0, DefaultBitrate, SeverelyConstrained},
		{"zero Info", 0, 0, SeverelyConstrained},
	}
	for _, tc := range tests {
		got := ClassOf(Info{MTU: tc.mtu, Bitrate: tc.bitrate, Class: Unconstrained /* ignored */})
		if got != tc.want {
			t.Errorf("%s (mtu %d, %d bit/s): %v, want %v", tc.name, tc.mtu, tc.bitrate, got, tc.want)
		}
	}
}

func TestRecommendedCryptoMode(t *testing.T) {
	tests := []struct {
		class Class
		want  CryptoMode
		name  string
	}{
		{Unconstrained, CryptoMLSHybridPQ, "mls-hybrid-pq"},
		{Medium, CryptoMLS, "mls"},
		{Constrained, CryptoMLSLite, "mls-lite"},
		{SeverelyConstrained, CryptoMLSLiteCompact, "mls-lite-compact"},
		{0, CryptoMLSLiteCompact, "mls-lite-compact"},   // unset
		{200, CryptoMLSLiteCompact, "mls-lite-compact"}, // unknown
	}
	for _, tc := range tests {
		if got := tc.class.RecommendedCryptoMode(); got != tc.want || got.String() != tc.name {
			t.Errorf("%v: %v, want %v", tc.class, got, tc.name)
		}
	}
	if s := Class(200).String(); s != "class(200)" {
		t.Errorf("unknown class prints %q", s)
	}
	if s := SeverelyConstrained.String(); s != "severely-constrained" {
		t.Errorf("SeverelyConstrained prints %q", s)
	}
}

func TestSelectForSize(t *testing.T) {
	tcp := Info{Name: "tcp", MTU: 1 << 20, Bitrate: 100_000_000}
	quic := Info{Name: "quic", MTU: 1 << 20, Bitrate: 100_000_000}
	slow := Info{Name: "slow", MTU: 4096, Bitrate: 64_000}
	loraFast := Info{Name: "lora7", MTU: 222, MaxFrame: 4000, Bitrate: 5_470}
	loraSlow := Info{Name: "lora12", MTU: 51, MaxFrame: 4000, Bitrate: 250}
	tests := []struct {
		name   string
		links  []Info
		size   int
		want   int
		wantOK bool
	}{
		{"no links", nil, 10, -1, false},
		{"fastest that fits", []Info{slow, tcp}, 100, 1, true},
		{"tie keeps the caller's order", []Info{tcp, quic}, 100, 0, true},
		{"tie keeps the caller's order, reversed", []Info{quic, tcp}, 100, 0, true},
		{"too big for slow", []Info{slow, loraFast}, 5000, -1, false},
		{"whole beats fragmented, even if slower", []Info{loraFast, loraSlow}, 50, 0, true},
		{"whole on a slow link beats fragments on a fast one", []Info{loraFast, loraSlow}, 51, 0, true},
		{"MTU-sized frame fits whole", []Info{loraSlow, loraFast}, 222, 1, true},
		{"fragment when nothing fits whole", []Info{loraSlow, loraFast}, 223, 1, true},
		{"fragmenting picks the faster radio", []Info{loraSlow, loraFast}, 3000, 1, true},
		{"IP fits whole over LoRa fragments", []Info{loraFast, slow}, 300, 1, true},
		{"exactly the limit", []Info{loraFast}, 4000, 0, true},
		{"over every limit", []Info{loraFast, loraSlow}, 4001, -1, false},
		{"empty frame fits anywhere", []Info{loraSlow, tcp}, 0, 1, true},
	}
	for _, tc := range tests {
		got, ok := SelectForSize(tc.links, tc.size)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: SelectForSize(%d) = %d, %v; want %d, %v", tc.name, tc.size, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestInfoLimit(t *testing.T) {
	if got := (Info{MTU: 222}).Limit(); got != 222 {
		t.Errorf("no MaxFrame: %d", got)
	}
	if got := (Info{MTU: 222, MaxFrame: 4000}).Limit(); got != 4000 {
		t.Errorf("fragmenting: %d", got)
	}
	if got := (Info{MTU: 100, Bitrate: 2000}).WithClass().Class; got != SeverelyConstrained {
		t.Errorf("WithClass: %v", got)
	}
}
