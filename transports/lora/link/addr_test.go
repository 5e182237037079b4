package link

import (
	"errors"
	"testing"

	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
)

func TestParseAddr(t *testing.T) {
	base := RadioParams{}.withDefaults()
	a, err := ParseAddr("channel-a?sf=9&bw=250000&cr=4/6&freq=868100000&preamble=12&mtu=51&region=EU868", base)
	if err != nil {
		t.Fatal(err)
	}
	want := Addr{Channel: "channel-a", MTU: 51, Region: "EU868",
		Radio: RadioParams{Params: lora.Params{SF: 9, Bandwidth: 250000, CR: lora.CR46, Preamble: 12}, Frequency: 868_100_000}}
	if a != want {
		t.Errorf("ParseAddr = %+v, want %+v", a, want)
	}
	if a, err := ParseAddr("/dev/ttyUSB0", base); err != nil || a.Channel != "/dev/ttyUSB0" || a.Radio != base {
		t.Errorf("no query: %+v %v", a, err)
	}
	for _, addr := range []string{
		"c?sf=13", "c?sf=seven", "c?bw=100000", "c?cr=9", "c?freq=-1", "c?freq=99999999999",
		"c?preamble=0", "c?mtu=10", "c?mtu=256", "c?region=mars", "c?sf=7&sf=8", "c?color=red", "c?%zz",
	} {
		if _, err := ParseAddr(addr, base); !errors.Is(err, transports.ErrBadURI) {
			t.Errorf("ParseAddr(%q) = %v, want ErrBadURI", addr, err)
		}
	}
	// From a URI, as the node will do it.
	scheme, addr, err := transports.ParseURI("lora+mock://channel?sf=7&bw=125000&freq=869525000")
	if err != nil || scheme != transports.SchemeLoRaMock {
		t.Fatal(scheme, err)
	}
	if a, err := ParseAddr(addr, base); err != nil || a.Channel != "channel" || a.Radio != base {
		t.Errorf("%q: %+v %v", addr, a, err)
	}
}
