package config

import (
	"errors"
	"strings"
	"testing"
)

// api.allowed_hosts takes host names and IP addresses, with or without a
// port, or "*"; anything else is bad configuration naming the entry.
func TestAllowedHostsValidated(t *testing.T) {
	for _, ok := range []string{"relay.example.org", "relay.example.org:8443", "Relay.Example.Org.", "localhost", "192.0.2.7", "192.0.2.7:7780", "[2001:db8::1]:7780", "[2001:db8::1]", "2001:db8::1", "node-1", "*"} {
		if err := CheckAllowedHost(ok); err != nil {
			t.Errorf("CheckAllowedHost(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "http://relay.example.org", "relay.example.org:0", "relay.example.org:99999", "relay.example.org:http", "relay example", "*.example.org", "-relay.example", "relay..example", "[relay.example]:80", "[192.0.2.7]", "relay.example/path", ":7780"} {
		c := Default()
		c.API.AllowedHosts = []string{"localhost", bad}
		err := c.Validate()
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != "api.allowed_hosts[1]" || !strings.Contains(err.Error(), "host name or IP address") {
			t.Errorf("allowed_hosts %q: %v", bad, err)
		}
	}
	// genconf shows the key, empty by default.
	b, err := func() ([]byte, error) { c := Default(); return c.TOML() }()
	if err != nil || !strings.Contains(string(b), "allowed_hosts = []") || !strings.Contains(string(b), "DNS rebinding") {
		t.Fatalf("genconf: %v\n%s", err, b)
	}
}
