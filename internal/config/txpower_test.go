package config

import (
	"errors"
	"strings"
	"testing"
)

// A radio's transmit power is checked against the region's limit for its
// channel (issue 12 item 4): txp= in the URI, else
// transports.lora.tx_power, else the limit itself. Too high names the
// sub-band and the limit; within it passes.
func TestValidateTxPower(t *testing.T) {
	cases := []struct {
		name    string
		listen  string
		txPower int
		region  string
		field   string // "" when valid
		want    []string
	}{
		{"default power", "lora+serial:///dev/ttyUSB0?freq=868100000", 0, "EU868", "", nil},
		{"at the limit", "lora+serial:///dev/ttyUSB0?freq=868100000&txp=14", 0, "EU868", "", nil},
		{"the 10 % band", "lora+serial:///dev/ttyUSB0?freq=869525000&txp=27", 0, "EU868", "", nil},
		{"US915", "lora+serial:///dev/ttyUSB0?freq=915000000&bw=500000&txp=30", 0, "US915", "", nil},
		{"mock radio", "lora+mock://demo?freq=868100000&txp=14", 0, "EU868", "", nil},
		{"over the limit", "lora+serial:///dev/ttyUSB0?freq=868100000&txp=20", 0, "EU868", "transports.listen[0]",
			[]string{"at most 14 dBm", "868.0-868.6 MHz", "EU868", "got 20"}},
		{"over the 10 % band's limit", "lora+serial:///dev/ttyUSB0?freq=869525000&txp=28", 0, "EU868", "transports.listen[0]",
			[]string{"at most 27 dBm", "869.4-869.65 MHz"}},
		{"config power over the limit", "lora+serial:///dev/ttyUSB0?freq=868100000", 20, "EU868", "transports.lora.tx_power",
			[]string{"at most 14 dBm", "868.0-868.6 MHz"}},
		{"URI txp wins over the config's", "lora+serial:///dev/ttyUSB0?freq=868100000&txp=10", 20, "EU868", "", nil},
		{"config power out of range", "tcp://127.0.0.1:1", 31, "EU868", "transports.lora.tx_power", []string{"0 (the region's limit) to 30"}},
		{"alarm band", "lora+serial:///dev/ttyUSB0?freq=869300000", 0, "EU868", "transports.listen[0]", []string{"alarm"}},
		{"txp syntax", "lora+serial:///dev/ttyUSB0?txp=loud", 0, "EU868", "transports.listen[0]", []string{"0 to 30 (dBm) for txp"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Transports.Listen = []string{tc.listen}
			c.Transports.LoRa.TxPower = tc.txPower
			c.Transports.LoRa.Region = tc.region
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want a FieldError for %s", err, tc.field)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not contain %q", err, w)
				}
			}
		})
	}
}
