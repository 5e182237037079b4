package transports

import (
	"errors"
	"testing"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		in           string
		scheme, addr string
		err          error
	}{
		{"tcp://127.0.0.1:7701", "tcp", "127.0.0.1:7701", nil},
		{"quic://127.0.0.1:7702", "quic", "127.0.0.1:7702", nil},
		{"quic://[::1]:7702", "quic", "[::1]:7702", nil},
		{"tcp://relay.example.org:7701", "tcp", "relay.example.org:7701", nil},
		{"tcp://:7701", "tcp", ":7701", nil},
		{"tcp://127.0.0.1:0", "tcp", "127.0.0.1:0", nil},
		{"TCP://127.0.0.1:7701", "tcp", "127.0.0.1:7701", nil},
		{"mem://node-3", "mem", "node-3", nil},
		{"lora+mock://channel-name", "lora+mock", "channel-name", nil},
		{"lora+mock://ch?loss=0.1", "lora+mock", "ch?loss=0.1", nil},
		{"lora+serial:///dev/ttyUSB0?freq=869525000&sf=9", "lora+serial", "/dev/ttyUSB0?freq=869525000&sf=9", nil},
		{"lora+serial:///dev/ttyACM1", "lora+serial", "/dev/ttyACM1", nil},

		{"udp://127.0.0.1:1", "", "", ErrUnknownScheme},
		{"http://x:80", "", "", ErrUnknownScheme},
		{"lora://x", "", "", ErrUnknownScheme},
		{"127.0.0.1:7701", "", "", ErrBadURI},
		{"", "", "", ErrBadURI},
		{"://x", "", "", ErrBadURI},
		{"tcp://127.0.0.1", "", "", ErrBadURI},
		{"tcp://127.0.0.1:", "", "", ErrBadURI},
		{"tcp://127.0.0.1:99999", "", "", ErrBadURI},
		{"tcp://127.0.0.1:http", "", "", ErrBadURI},
		{"tcp://127.0.0.1:7701/path", "", "", ErrBadURI},
		{"tcp://127.0.0.1:7701?x=1", "", "", ErrBadURI},
		{"quic://user@127.0.0.1:7701", "", "", ErrBadURI},
		{"mem://", "", "", ErrBadURI},
		{"lora+mock:///path", "", "", ErrBadURI},
		{"lora+serial://host/dev/tty", "", "", ErrBadURI},
		{"lora+serial://", "", "", ErrBadURI},
		{"tcp://[::1:7701", "", "", ErrBadURI},
	}
	for _, tc := range tests {
		scheme, addr, err := ParseURI(tc.in)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("ParseURI(%q): error %v, want %v", tc.in, err, tc.err)
			continue
		}
		if scheme != tc.scheme || addr != tc.addr {
			t.Errorf("ParseURI(%q) = %q, %q; want %q, %q", tc.in, scheme, addr, tc.scheme, tc.addr)
		}
	}
}
