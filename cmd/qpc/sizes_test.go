package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestSizesCompact (issue 12, acceptance 4): qpc sizes lists both forms of
// a sealed 32-byte text, with bytes and airtime at SF7 and SF12; the
// compact one is at most 150 bytes, also on the air with the LoRa link's
// own overhead, and cheaper than the signed one at both spreading factors.
func TestSizesCompact(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"sizes", "--json"}, &out, &errb, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var body struct {
		Sizes []struct {
			Name  string `json:"name"`
			Bytes int    `json:"bytes"`
		} `json:"sizes"`
		LoRa []airRow `json:"lora"`
	}
	if err := json.Unmarshal(out.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int{}
	for _, r := range body.Sizes {
		sizes[r.Name] = r.Bytes
	}
	air := map[string]airRow{}
	for _, r := range body.LoRa {
		air[r.Name] = r
	}
	full, compact := air["envelope-sealed-32"], air["compact-sealed-32"]
	if sizes["compact-sealed-32"] == 0 || sizes["compact-sealed-32"] > 150 || compact.Frame != sizes["compact-sealed-32"] || full.Frame != sizes["envelope-sealed-32"] {
		t.Fatalf("sizes %v, lora %+v", sizes, air)
	}
	if len(full.At) != 2 || len(compact.At) != 2 || compact.At[0].SF != 7 || compact.At[1].SF != 12 {
		t.Fatalf("lora rows %+v", air)
	}
	// SF7: one 255-byte packet, at most 150 bytes with the link's header
	// and MAC.
	if c := compact.At[0]; c.Packets != 1 || c.OnAir > 150 || c.OnAir <= compact.Frame {
		t.Fatalf("compact on the air at SF7: %+v", c)
	}
	for i := range 2 {
		f, c := full.At[i], compact.At[i]
		if !(c.AirtimeMS > 0 && c.AirtimeMS < f.AirtimeMS && c.OnAir < f.OnAir && c.Packets <= f.Packets) {
			t.Fatalf("SF%d: full %+v, compact %+v", f.SF, f, c)
		}
		t.Logf("SF%d (MTU %d): full %d B, %d on air in %d packets, %.1f ms; compact %d B, %d on air in %d packets, %.1f ms",
			f.SF, f.MTU, full.Frame, f.OnAir, f.Packets, f.AirtimeMS, compact.Frame, c.OnAir, c.Packets, c.AirtimeMS)
	}

	out.Reset()
	if code := run([]string{"sizes"}, &out, &errb, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"compact-sealed-32", "126 B", "envelope-sealed-32", "SF7", "SF12"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("qpc sizes does not show %q:\n%s", want, out.String())
		}
	}
}
