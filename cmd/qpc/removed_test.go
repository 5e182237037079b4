package main

import (
	"bytes"
	"strings"
	"testing"
)

// A config file or environment from before crypto.mode was removed is bad
// configuration: exit 2, naming the key and saying it is gone.
func TestRemovedKeyExits2(t *testing.T) {
	for name, tc := range map[string]struct {
		file string
		env  []string
		want string
	}{
		"file": {"[crypto]\nmode = \"auto\"\n", nil, "crypto.mode in "},
		"env":  {"", []string{"QPC_CRYPTO_MODE=mls"}, "QPC_CRYPTO_MODE (crypto.mode) is no longer a key"},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string{"node", "--data-dir", t.TempDir()}
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			var out, errb bytes.Buffer
			code := run(args, &out, &errb, tc.env)
			if code != 2 || !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), "returns with the groups work") {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
		})
	}
}
