package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/fapp"
)

// qpc sizes lists every FAPP message (issue 13) with its size measured
// from a real encoding and its airtime at SF9 and SF12: a frame above a
// packet's room is cut into more packets at SF12's 51-byte MTU, and every
// row costs more time at SF12 than at SF9.
func TestSizesFAPP(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"sizes", "--json"}, &out, &errb, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var body struct {
		FAPP []airRow `json:"fapp"`
	}
	if err := json.Unmarshal(out.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	want := fapp.Sizes()
	if len(body.FAPP) != len(want) {
		t.Fatalf("%d FAPP rows, want %d (fapp.Sizes)", len(body.FAPP), len(want))
	}
	for i, r := range body.FAPP {
		if r.Name != want[i].Name || r.Frame != want[i].Bytes {
			t.Fatalf("row %d: %s %d B, want %s %d B", i, r.Name, r.Frame, want[i].Name, want[i].Bytes)
		}
		if len(r.At) != 2 || r.At[0].SF != 9 || r.At[1].SF != 12 {
			t.Fatalf("%s: spreading factors %+v, want SF9 and SF12", r.Name, r.At)
		}
		sf9, sf12 := r.At[0], r.At[1]
		if sf9.AirtimeMS <= 0 || sf12.AirtimeMS <= sf9.AirtimeMS || sf12.Packets < sf9.Packets || sf9.OnAir <= r.Frame {
			t.Fatalf("%s: SF9 %+v, SF12 %+v", r.Name, sf9, sf12)
		}
	}
	out.Reset()
	if code := run([]string{"sizes"}, &out, &errb, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, s := range []string{"FAPP messages on a LoRa link", "SF9 airtime", "fapp-query", "fapp-reserve", "fapp-confirm"} {
		if !strings.Contains(out.String(), s) {
			t.Fatalf("qpc sizes does not show %q:\n%s", s, out.String())
		}
	}
}
