package config

import (
	"errors"
	"strings"
	"testing"
)

// Issue 9.6: crypto.mode was validated and read by nothing, so it is gone
// until the groups work brings it back. An old file that still has it is
// refused with an error naming the key and why, not "unknown key" with a
// guess at another one; genconf no longer writes it.
func TestRemovedKeyCryptoMode(t *testing.T) {
	_, err := ParseTOML("old.toml", []byte("[crypto]\nmode = 'auto'\n\n[announce]\nmax_hops = 4\n"))
	var re *RemovedKeyError
	if !errors.As(err, &re) || re.Key != "crypto.mode" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("old file with crypto.mode: %v", err)
	}
	for _, s := range []string{"crypto.mode in old.toml is no longer a key", "groups", "delete it"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	// Anything else in the old section is an unknown key as usual.
	_, err = ParseTOML("old.toml", []byte("[crypto]\nmodes = 'auto'\n"))
	var ue *UnknownKeyError
	if !errors.As(err, &ue) || ue.Key != "crypto.modes" {
		t.Fatalf("crypto.modes: %v", err)
	}
	// An empty [crypto] left behind does no harm.
	if _, err := ParseTOML("old.toml", []byte("[crypto]\n")); err != nil {
		t.Fatalf("empty [crypto]: %v", err)
	}
	if _, ok := LookupKey("crypto.mode"); ok {
		t.Fatal("crypto.mode is still a key")
	}
	if key, _, ok := Removed("QPC_CRYPTO_MODE"); !ok || key != "crypto.mode" {
		t.Fatalf("Removed(QPC_CRYPTO_MODE) = %q %v", key, ok)
	}
	c := Default()
	b, err := c.TOML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "[crypto]") || strings.Contains(string(b), "mode =") {
		t.Fatalf("genconf still writes the crypto section:\n%s", b)
	}
}
