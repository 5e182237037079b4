package test

import (
	"strings"
	"testing"
)

// A transmit power above the sub-band's limit ends the qpc process with
// exit 2 and a message naming the limit, before any serial port is
// opened (issue 12 acceptance 5).
func TestNodeTxPowerAboveLimitExits2(t *testing.T) {
	_, errOut, code := qpc(t, "node", "--data-dir", t.TempDir(), "--api", "",
		"--listen", "lora+serial:///dev/qpc-no-such-modem?freq=868100000&sf=9&txp=20")
	if code != 2 || !strings.Contains(errOut, "at most 14 dBm") || !strings.Contains(errOut, "868.0-868.6 MHz") {
		t.Fatalf("exit %d, stderr %q; want 2 naming the 14 dBm limit of 868.0-868.6 MHz", code, errOut)
	}
}
