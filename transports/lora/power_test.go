package lora

import (
	"errors"
	"strings"
	"testing"
)

// The transmit power limit of each sub-band (issue 12 item 4): 14 dBm in
// most of EU868, 27 dBm in 869.4–869.65 MHz, 30 dBm in US915; above it a
// *PowerError naming the sub-band and the limit.
func TestTxPowerLimits(t *testing.T) {
	cases := []struct {
		r     Region
		freq  uint32
		bw    int
		limit int
		band  string
	}{
		{EU868, 863_500_000, 125_000, 14, "863.0-865.0"},
		{EU868, 868_100_000, 125_000, 14, "868.0-868.6"},
		{EU868, 869_000_000, 125_000, 14, "868.7-869.2"},
		{EU868, 869_525_000, 125_000, 27, "869.4-869.65"},
		{EU868, 869_850_000, 125_000, 14, "869.7-870.0"},
		{US915, 915_000_000, 500_000, 30, "902.0-928.0"},
	}
	for _, c := range cases {
		limit, b, err := c.r.MaxTxPower(c.freq, c.bw)
		if err != nil || limit != c.limit || b.Name != c.band {
			t.Errorf("%s %d Hz: limit %d in %q, %v; want %d in %q", c.r, c.freq, limit, b.Name, err, c.limit, c.band)
		}
		if err := c.r.CheckTxPower(c.freq, c.bw, c.limit); err != nil {
			t.Errorf("%s %d Hz: txp at the limit refused: %v", c.r, c.freq, err)
		}
		if err := c.r.CheckTxPower(c.freq, c.bw, 0); err != nil {
			t.Errorf("%s %d Hz: txp 0 refused: %v", c.r, c.freq, err)
		}
		err = c.r.CheckTxPower(c.freq, c.bw, c.limit+1)
		var pe *PowerError
		if !errors.Is(err, ErrTxPowerTooHigh) || !errors.As(err, &pe) || pe.Limit != c.limit {
			t.Fatalf("%s %d Hz txp %d: %v, want a *PowerError with limit %d", c.r, c.freq, c.limit+1, err, c.limit)
		}
		for _, want := range []string{c.band, "limit", "dBm"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	}
	if err := EU868.CheckTxPower(868_100_000, 125_000, -1); !errors.Is(err, ErrBadParams) {
		t.Errorf("txp -1: %v, want ErrBadParams", err)
	}
	if err := EU868.CheckTxPower(869_300_000, 125_000, 0); !errors.Is(err, ErrRestrictedBand) {
		t.Errorf("alarm band: %v, want ErrRestrictedBand", err)
	}
	for _, b := range EU868.SubBands() {
		if b.Restricted != (b.MaxPower == 0) {
			t.Errorf("%s: restricted %v with MaxPower %d", b.Name, b.Restricted, b.MaxPower)
		}
	}
}
