package links

import (
	"testing"
	"time"

	"github.com/quicprochat/qpc/messages"
)

func TestTablePickPrefersWholeFrameThenSpeedThenAge(t *testing.T) {
	peer := [16]byte{1}
	other := [16]byte{2}
	t0 := time.Unix(100, 0)
	tab := NewTable[string]()
	tab.Add(messages.LinkInfo{ID: 1, Peer: peer, Transport: "lora", MTU: 255, Bitrate: 5000, Since: t0}, "lora")
	tab.Add(messages.LinkInfo{ID: 2, Peer: peer, Transport: "tcp", MTU: 1 << 20, Bitrate: 1e8, Since: t0.Add(time.Second)}, "tcp")
	tab.Add(messages.LinkInfo{ID: 3, Peer: peer, Transport: "quic", MTU: 1 << 20, Bitrate: 1e8, Since: t0.Add(2 * time.Second)}, "quic")
	tab.Add(messages.LinkInfo{ID: 4, Peer: other, Transport: "tcp", MTU: 1 << 20, Bitrate: 1e8, Since: t0}, "other")

	if h, _, ok := tab.Pick(peer, 1000); !ok || h != "tcp" {
		t.Fatalf("pick 1000 B = %q %v, want the older of the two fast links", h, ok)
	}
	tab.Remove(2)
	if h, _, _ := tab.Pick(peer, 100); h != "quic" {
		t.Fatalf("after tcp went: %q", h)
	}
	tab.Remove(3)
	if h, _, ok := tab.Pick(peer, 100); !ok || h != "lora" {
		t.Fatalf("only lora left: %q %v", h, ok)
	}
	if _, _, ok := tab.Pick([16]byte{9}, 10); ok {
		t.Fatal("picked a link to an unknown peer")
	}
	if !tab.Connected(other) || tab.Connected([16]byte{9}) {
		t.Fatal("Connected wrong")
	}
	if got := tab.CountByTransport(); got["lora"] != 1 || got["tcp"] != 1 || len(got) != 2 {
		t.Fatalf("counts %v", got)
	}
	if ps := tab.Peers(); len(ps) != 2 || ps[0] != peer || ps[1] != other {
		t.Fatalf("peers %v", ps)
	}
	if l := tab.List(); len(l) != 2 || l[0].ID != 1 {
		t.Fatalf("list %+v", l)
	}
}

func TestBackoffBoundsAndGrowth(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5, Rand: func() float64 { return 0 }}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Delay(i); got != w*time.Millisecond {
			t.Fatalf("attempt %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Rand = func() float64 { return 0.999 }
	for i := range 50 {
		d := b.Delay(i)
		full := Backoff{Min: b.Min, Max: b.Max, Rand: func() float64 { return 0 }}.Delay(i)
		if d > b.Max || d < full/2 {
			t.Fatalf("attempt %d: %v outside [%v, %v]", i, d, full/2, full)
		}
	}
	if got := b.Delay(1000); got > b.Max {
		t.Fatalf("huge attempt: %v", got)
	}
}

// A radio fragments what its MTU does not hold: a frame above the MTU and
// within the link's MaxFrame goes over it. Before, Pick compared with the
// MTU alone (the table kept no MaxFrame), so any frame over 255 bytes to a
// LoRa-only neighbour was dropped as no_link and its message failed at
// expiry.
func TestTablePickFragmentsOverARadio(t *testing.T) {
	peer := [16]byte{1}
	tab := NewTable[string]()
	tab.Add(messages.LinkInfo{ID: 1, Peer: peer, Transport: "lora", MTU: 255, MaxFrame: 62720, Bitrate: 5000, Since: time.Unix(100, 0)}, "lora")
	for _, size := range []int{200, 256, 1000, 62720} {
		if h, _, ok := tab.Pick(peer, size); !ok || h != "lora" {
			t.Fatalf("pick %d B = %q %v, want the radio", size, h, ok)
		}
	}
	if _, _, ok := tab.Pick(peer, 62721); ok {
		t.Fatal("picked the radio for a frame over its MaxFrame")
	}
}
