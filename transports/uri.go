package transports

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// URI schemes, one per transport.
const (
	SchemeTCP        = "tcp"         // tcp://host:port
	SchemeQUIC       = "quic"        // quic://host:port
	SchemeMem        = "mem"         // mem://name (in-process, tests and the simulator)
	SchemeLoRaSerial = "lora+serial" // lora+serial:///dev/ttyUSB0?freq=869525000&sf=9
	SchemeLoRaMock   = "lora+mock"   // lora+mock://channel-name
)

// Schemes lists the known schemes.
var Schemes = []string{SchemeTCP, SchemeQUIC, SchemeMem, SchemeLoRaSerial, SchemeLoRaMock}

// ParseURI splits a transport URI into its scheme and the addr that the
// transport's Listen and Dial take:
//
//	tcp://127.0.0.1:7701                        -> "tcp", "127.0.0.1:7701"
//	quic://[::1]:7702                           -> "quic", "[::1]:7702"
//	mem://node-3                                -> "mem", "node-3"
//	lora+mock://channel-a                       -> "lora+mock", "channel-a"
//	lora+serial:///dev/ttyUSB0?freq=869525000   -> "lora+serial", "/dev/ttyUSB0?freq=869525000"
//
// The lora addresses keep their query for the lora transport to parse. An
// unknown scheme returns an error matching ErrUnknownScheme; a malformed
// URI of a known scheme one matching ErrBadURI.
func ParseURI(s string) (scheme, addr string, err error) {
	i := strings.Index(s, "://")
	if i <= 0 {
		return "", "", fmt.Errorf("transports: %q: %w: want scheme://address, e.g. tcp://127.0.0.1:7701", s, ErrBadURI)
	}
	scheme = strings.ToLower(s[:i])
	known := false
	for _, k := range Schemes {
		known = known || k == scheme
	}
	if !known {
		return "", "", fmt.Errorf("transports: %q: %w %q (known: %s)", s, ErrUnknownScheme, scheme, strings.Join(Schemes, ", "))
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("transports: %q: %w: %v", s, ErrBadURI, err)
	}
	bad := func(want string) (string, string, error) {
		return "", "", fmt.Errorf("transports: %q: %w: want %s", s, ErrBadURI, want)
	}
	switch scheme {
	case SchemeTCP, SchemeQUIC:
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return bad(scheme + "://host:port and nothing after it")
		}
		_, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			return bad(scheme + "://host:port")
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return bad("a port from 0 to 65535")
		}
		return scheme, u.Host, nil
	case SchemeMem, SchemeLoRaMock:
		if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
			return bad(scheme + "://name")
		}
		addr = u.Host
	case SchemeLoRaSerial:
		if u.Host != "" || u.Path == "" {
			return bad("lora+serial:///dev/ttyXXX?freq=...&sf=... (three slashes)")
		}
		addr = u.Path
	}
	if u.RawQuery != "" {
		addr += "?" + u.RawQuery
	}
	return scheme, addr, nil
}
