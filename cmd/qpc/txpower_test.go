package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/api"
)

// A transmit power above the sub-band's limit ends qpc node with exit 2
// and a message naming the limit (issue 12 acceptance 5), before any port
// is opened: in the URI (txp=) or in the config (transports.lora.tx_power).
func TestTxPowerAboveLimitExits2(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  []string
		msg  []string
	}{
		{"txp in the URI", []string{"--listen", "lora+serial:///dev/qpc-no-such-modem?freq=868100000&sf=9&txp=20"}, nil,
			[]string{"transports.listen[0]", "at most 14 dBm", "EU868 sub-band 868.0-868.6 MHz", "got 20"}},
		{"txp in the 10 % band", []string{"--listen", "lora+serial:///dev/qpc-no-such-modem?freq=869525000&txp=28"}, nil,
			[]string{"at most 27 dBm", "869.4-869.65 MHz"}},
		{"tx_power in the config", []string{"--listen", "lora+serial:///dev/qpc-no-such-modem?freq=868100000"}, []string{"QPC_TRANSPORTS_LORA_TX_POWER=17"},
			[]string{"transports.lora.tx_power", "at most 14 dBm", "868.0-868.6 MHz"}},
		{"US915", []string{"--listen", "lora+serial:///dev/qpc-no-such-modem?freq=915000000&bw=500000&region=us915&txp=30"}, []string{"QPC_TRANSPORTS_LORA_TX_POWER=31"},
			[]string{"transports.lora.tx_power", "dBm from 0 (the region's limit) to 30"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"node", "--data-dir", t.TempDir(), "--api", ""}, tc.args...)
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb, tc.env); code != 2 {
				t.Fatalf("exit %d, stderr %q; want 2", code, errb.String())
			}
			for _, m := range tc.msg {
				if !strings.Contains(errb.String(), m) {
					t.Errorf("stderr %q does not name %q", errb.String(), m)
				}
			}
		})
	}
}

// qpc status shows each radio's state, settings and transmit power
// against the limit, and while a modem is away why and when it is tried
// again.
func TestStatusRadioLine(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	next := now.Add(1500 * time.Millisecond)
	r := api.Radio{Channel: "/dev/serial/by-id/usb-rnode", Transport: "lora+serial", State: "up", Since: now.Add(-time.Hour),
		Frequency: 869_525_000, Bandwidth: 125_000, SF: 9, CR: "4/5", TxPower: 17, TxPowerLimit: 27, SubBand: "869.4-869.65", Region: "EU868"}
	want := "lora+serial /dev/serial/by-id/usb-rnode up since 2025-01-02T02:04:05Z, 869.525 MHz SF9 125 kHz CR 4/5, 17 dBm (limit 27 in EU868 869.4-869.65 MHz)"
	if got := radioLine(r, now); got != want {
		t.Errorf("up:\n got %q\nwant %q", got, want)
	}
	r.State, r.Since, r.Reopens, r.NextAttempt, r.LastError = "down", now.Add(-time.Minute), 2, &next, "read: modem disconnected: \x1b[31mEIO"
	want = "lora+serial /dev/serial/by-id/usb-rnode down since 2025-01-02T03:03:05Z, 869.525 MHz SF9 125 kHz CR 4/5, 17 dBm (limit 27 in EU868 869.4-869.65 MHz), re-opened 2 times, next attempt in 1.5s, last error: read: modem disconnected: \\x1b[31mEIO"
	if got := radioLine(r, now); got != want {
		t.Errorf("down:\n got %q\nwant %q", got, want)
	}
}
