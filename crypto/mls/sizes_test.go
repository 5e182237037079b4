package mls

import (
	"strings"
	"testing"
)

func TestSizes(t *testing.T) {
	s1, err := Sizes()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Sizes()
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != len(s2) || len(s1) < 8 {
		t.Fatalf("%d and %d sizes", len(s1), len(s2))
	}
	byName := map[string]int{}
	for i, s := range s1 {
		t.Logf("%-42s %7d  %s", s.Name, s.Bytes, s.Note)
		if s.Bytes <= 0 || s.Name != s2[i].Name {
			t.Fatalf("size %+v", s)
		}
		// Only the state may vary between runs (and it says so).
		if s.Bytes != s2[i].Bytes && !strings.Contains(s.Note, "varies") {
			t.Fatalf("%s: %d then %d bytes, and the note does not say it varies", s.Name, s.Bytes, s2[i].Bytes)
		}
		byName[s.Name] = s.Bytes
	}
	kp := byName["KeyPackage"]
	if kp < 200 || kp > 400 {
		t.Fatalf("KeyPackage %d bytes, want 200..400", kp)
	}
	if w2, w10 := byName["Welcome, 2 members"], byName["Welcome, 10 members"]; w2 < kp || w10 <= w2 || w10 > MaxMessageSize {
		t.Fatalf("Welcomes %d, %d", w2, w10)
	}
	if app := byName["Application message, 32-byte text"]; app < 32+64+16 || app > 400 {
		t.Fatalf("application message %d bytes (32-byte text + 64-byte signature + AEAD tags)", app)
	}
	if add := byName["Commit, add 1 to a 2-member group"]; add < kp {
		t.Fatalf("add commit %d bytes is smaller than the KeyPackage it carries", add)
	}
	if st := byName["Group state, 3 members"]; st < 1000 || st > MaxStateSize {
		t.Fatalf("state %d bytes", st)
	}
}
