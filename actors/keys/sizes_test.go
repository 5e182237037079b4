package keys

import "testing"

// The sizes qpc sizes prints are real encodings; the ones the groups issue
// has targets for hold them, and the envelope rows are the MLS objects
// plus the envelope's fixed overhead.
func TestGroupSizes(t *testing.T) {
	rows, err := Sizes()
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]int{}
	for _, r := range rows {
		if r.Bytes <= 0 {
			t.Errorf("%s: %d bytes", r.Name, r.Bytes)
		}
		by[r.Name] = r.Bytes
	}
	if n := by["mls-lite-32"]; n == 0 || n > 100 {
		t.Errorf("MLS-Lite 32-byte text without signature: %d bytes, target at most 100", n)
	}
	if n := by["mls-lite-signed-32"]; n == 0 || n > 170 {
		t.Errorf("MLS-Lite 32-byte text with signature: %d bytes, target at most 170", n)
	}
	if kp := by["mls-keypackage"]; kp < 200 || kp > 400 {
		t.Errorf("KeyPackage %d bytes", kp)
	}
	if env, app := by["group-envelope-application-32"], by["mls-application-32"]; env <= app+48 {
		t.Errorf("an application message of %d bytes in an envelope of %d: sealing alone adds 48", app, env)
	}
	if n := by["mls-pq-psk-overhead"]; n < SealedPSKSize+19+32 || n > SealedPSKSize+19+32+16 {
		t.Errorf("PQ PSK overhead %d bytes: the sealed PSK (%d), the proposal's id and nonce (51) and a few bytes of framing", n, SealedPSKSize)
	}
	if by["mls-welcome-10"] <= by["mls-welcome-2"] {
		t.Errorf("Welcome for 10 (%d) not larger than for 2 (%d)", by["mls-welcome-10"], by["mls-welcome-2"])
	}
}
