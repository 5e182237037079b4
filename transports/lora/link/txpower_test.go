package link

import (
	"errors"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
)

// txp in a lora URI (issue 12 item 4): parsed, range-checked, and checked
// against the region's limit for the channel's sub-band, with the
// region's limit as the default.
func TestTxPowerFor(t *testing.T) {
	for _, c := range []struct {
		addr     string
		region   lora.Region
		fallback int
		want     int
		limit    int // > 0: refused, naming this limit
	}{
		{"/dev/ttyUSB0?freq=869525000&sf=9", lora.EU868, 0, 27, 0},      // the default: the sub-band's limit
		{"/dev/ttyUSB0", lora.EU868, 0, 27, 0},                          // 869.525 MHz by default
		{"/dev/ttyUSB0?freq=868100000", lora.EU868, 0, 14, 0},           // most of EU868
		{"/dev/ttyUSB0?freq=868100000&txp=7", lora.EU868, 0, 7, 0},      // as asked
		{"/dev/ttyUSB0?freq=868100000&txp=0", lora.EU868, 10, 0, 0},     // 0 dBm is a power too
		{"/dev/ttyUSB0?freq=868100000", lora.EU868, 10, 10, 0},          // the config's tx_power
		{"/dev/ttyUSB0?freq=915000000&bw=500000", lora.US915, 0, 30, 0}, // US915
		{"/dev/ttyUSB0?freq=915000000&bw=500000&region=us915", lora.EU868, 0, 30, 0},
		{"/dev/ttyUSB0?freq=868100000&txp=20", lora.EU868, 0, 0, 14},
		{"/dev/ttyUSB0?freq=869525000&txp=28", lora.EU868, 0, 0, 27},
		{"/dev/ttyUSB0?freq=868100000", lora.EU868, 17, 0, 14}, // a config tx_power too high for this radio
	} {
		a, err := ParseAddr(c.addr, RadioParams{})
		if err != nil {
			t.Fatalf("%s: %v", c.addr, err)
		}
		got, err := TxPowerFor(a, c.region, c.fallback)
		if c.limit > 0 {
			var pe *lora.PowerError
			if !errors.As(err, &pe) || pe.Limit != c.limit || !strings.Contains(err.Error(), "limit") {
				t.Errorf("%s: %d, %v; want a *lora.PowerError with limit %d", c.addr, got, err, c.limit)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s (fallback %d): %d, %v; want %d", c.addr, c.fallback, got, err, c.want)
		}
	}
	for _, bad := range []string{"c?txp=-1", "c?txp=31", "c?txp=high", "c?txp=1&txp=2"} {
		if _, err := ParseAddr(bad, RadioParams{}); !errors.Is(err, transports.ErrBadURI) || !strings.Contains(err.Error(), "txp") {
			t.Errorf("ParseAddr(%q) = %v, want ErrBadURI naming txp", bad, err)
		}
	}
}
