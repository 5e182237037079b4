package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/messages"
)

// qpc sizes lists the groups issue's objects (acceptance 6) from real
// encodings, and a group's text on LoRa in each mode: MLS-Lite is one
// packet at SF7 and costs a fraction of the MLS envelope's airtime.
func TestSizesGroups(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"sizes", "--json"}, &out, &errb, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var body struct {
		Groups []messages.SizeRow `json:"groups"`
		Air    []airRow           `json:"groups_lora"`
	}
	if err := json.Unmarshal(out.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	have := map[string]int{}
	for _, r := range body.Groups {
		have[r.Name] = r.Bytes
	}
	for _, n := range []string{"mls-keypackage", "mls-welcome-2", "mls-welcome-10", "mls-commit-add", "mls-application-32", "mls-lite-32", "mls-lite-signed-32", "group-envelope-application-32"} {
		if have[n] <= 0 {
			t.Errorf("no row %s", n)
		}
	}
	if len(body.Air) != 3 {
		t.Fatalf("groups_lora rows: %+v", body.Air)
	}
	mlsEnv, lite := body.Air[0], body.Air[2]
	if lite.At[0].Packets != 1 || lite.At[1].AirtimeMS >= mlsEnv.At[1].AirtimeMS/2 {
		t.Fatalf("MLS-Lite on air %+v against the MLS envelope %+v", lite.At, mlsEnv.At)
	}
	out.Reset()
	if code := run([]string{"sizes"}, &out, &errb, nil); code != 0 || !strings.Contains(out.String(), "mls-lite-32") {
		t.Fatalf("text form without the groups: exit %d\n%s", code, out.String())
	}
}
