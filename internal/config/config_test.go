package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func TestDefaultsAndProfilesValidate(t *testing.T) {
	for _, name := range []string{"", ProfileDefault, ProfileConstrained} {
		c, err := ForProfile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("profile %q: %v", name, err)
		}
	}
	d, c := Default(), Constrained()
	if c.Routing.MaxRoutes >= d.Routing.MaxRoutes || c.Announce.Interval <= d.Announce.Interval ||
		c.Transports.QueueFrames >= d.Transports.QueueFrames {
		t.Fatal("constrained profile is not smaller / slower than the default")
	}
	if _, err := ForProfile("huge"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown profile: %v", err)
	}
}

func TestValidateNamesFieldValueAndAllowed(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		field  string
		want   string
	}{
		{"negative interval", func(c *Config) { c.Announce.Interval = Duration(-5 * time.Minute) }, "announce.interval", "-5m0s"},
		{"unknown scheme", func(c *Config) { c.Transports.Listen = []string{"tcp://127.0.0.1:1", "udp://1.2.3.4:5"} }, "transports.listen[1]", `"udp://1.2.3.4:5"`},
		{"peer without port", func(c *Config) { c.Transports.Peers = []string{"quic://example.org"} }, "transports.peers[0]", "quic://host:port"},
		{"hops", func(c *Config) { c.Announce.MaxHops = 0 }, "announce.max_hops", "1 to 64"},
		{"log level", func(c *Config) { c.Logging.Level = "loud" }, "logging.level", "debug, info, warn or error"},
		{"store caps", func(c *Config) { c.Store.MaxTotal = 1 }, "store.max_total", "at least store.max_per_destination"},
		{"api without token", func(c *Config) { c.API.Addr = "0.0.0.0:7780" }, "api.token", "not a loopback address"},
		{"api addr", func(c *Config) { c.API.Addr = "7780" }, "api.addr", "host:port"},
		{"lora region", func(c *Config) { c.Transports.LoRa.Region = "AS923" }, "transports.lora.region", "EU868 or US915"},
		{"lora share", func(c *Config) { c.Transports.LoRa.DataShare = 1.5 }, "transports.lora.data_share", "0 to 1"},
		{"announce share zero", func(c *Config) { c.Transports.LoRa.AnnounceShare = 0 }, "transports.lora.announce_share", "above 0 and at most 1"},
		{"announce share above 1", func(c *Config) { c.Transports.LoRa.AnnounceShare = 1.5 }, "transports.lora.announce_share", "above 0 and at most 1"},
		{"frame size", func(c *Config) { c.Transports.MaxFrameSize = 10 }, "transports.max_frame_size", "256 to 16777216"},
		{"inbound links", func(c *Config) { c.Transports.MaxInboundLinks = 0 }, "transports.max_inbound_links", "1 to 65536"},
		{"accept timeout", func(c *Config) { c.Transports.AcceptTimeout = Duration(time.Hour) }, "transports.accept_timeout", "100ms to 1m"},
		{"frame timeout", func(c *Config) { c.Transports.FrameTimeout = Duration(time.Millisecond) }, "transports.frame_timeout", "1s to 1h"},
		{"frame buffer under a frame", func(c *Config) { c.Transports.FrameBufferBytes = 1000 }, "transports.frame_buffer_bytes", "transports.max_frame_size (1048576)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("first field error = %+v, want field %s (all: %v)", fe, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("message %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Announce.MaxHops = 0
	c.Logging.Format = "xml"
	err := c.Validate()
	if !strings.Contains(err.Error(), "announce.max_hops") || !strings.Contains(err.Error(), "logging.format") {
		t.Fatalf("not every problem reported: %v", err)
	}
}

func TestAPITokenAllowsNonLoopback(t *testing.T) {
	c := Default()
	c.API.Addr = "0.0.0.0:7780"
	c.API.Token = "s3cret"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"} {
		if !IsLoopbackHost(h) {
			t.Errorf("%s not loopback", h)
		}
	}
	for _, h := range []string{"", "0.0.0.0", "10.0.0.1", "example.org"} {
		if IsLoopbackHost(h) {
			t.Errorf("%q taken for loopback", h)
		}
	}
}

func TestGenconfRoundTrips(t *testing.T) {
	for _, c := range []Config{Default(), Constrained()} {
		b, err := c.TOML()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "# How often to announce") {
			t.Fatal("genconf output has no comments")
		}
		var back Config
		if err := toml.Unmarshal(b, &back); err != nil {
			t.Fatalf("genconf output does not parse: %v\n%s", err, b)
		}
		if back.Announce.Interval != c.Announce.Interval || back.Profile != c.Profile ||
			strings.Join(back.Transports.Listen, ",") != strings.Join(c.Transports.Listen, ",") ||
			back.Store.TTL != c.Store.TTL || back.RateLimit != c.RateLimit {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", back, c)
		}
	}
}

func TestKeyPath(t *testing.T) {
	c := Default()
	c.DataDir = "/var/lib/qpc"
	if got := c.KeyPath(); got != "/var/lib/qpc/identity.pem" {
		t.Fatal(got)
	}
	c.Identity.KeyFile = "/etc/qpc/key.pem"
	if got := c.KeyPath(); got != "/etc/qpc/key.pem" {
		t.Fatal(got)
	}
}

func TestConfigSetDurationNeedsUnit(t *testing.T) {
	c := Default()
	for _, raw := range []any{int64(600), float64(600), "600", " 600 "} {
		err := c.SetFrom("announce.interval", raw, "QPC_ANNOUNCE_INTERVAL")
		var ve *ValueError
		if !errors.As(err, &ve) || ve.Field != "announce.interval" || !errors.Is(err, ErrInvalid) ||
			!strings.Contains(err.Error(), "a duration with a unit, e.g. 600s or 10m") {
			t.Errorf("%#v: %v", raw, err)
		}
	}
	if err := c.Set("announce.interval", "90s"); err != nil || c.Announce.Interval.D() != 90*time.Second {
		t.Fatalf("90s: %v %v", err, c.Announce.Interval.D())
	}
	var d Duration
	if err := d.UnmarshalText([]byte("600")); err == nil || !strings.Contains(err.Error(), "with a unit") {
		t.Fatalf("UnmarshalText(600) = %v, want an error asking for a unit", err)
	}
	if err := d.UnmarshalText([]byte("5m")); err != nil || d.D() != 5*time.Minute {
		t.Fatalf("UnmarshalText(5m): %v", err)
	}
}

func TestConfigSetTypeErrorsInOurWords(t *testing.T) {
	c := Default()
	cases := []struct {
		key  string
		raw  any
		want string
	}{
		{"announce.max_hops", "eight", `config: announce.max_hops: "eight" is not a whole number`},
		{"announce.max_hops", 2.5, "announce.max_hops: 2.5 is not a whole number"},
		{"store.enabled", "perhaps", `store.enabled: "perhaps" is not true or false`},
		{"transports.lora.data_share", "half", `transports.lora.data_share: "half" is not a number`},
		{"api.addr", int64(7780), "api.addr: 7780 is not text"},
		{"transports.listen", []any{"tcp://a:1", int64(2)}, "is not a list of quoted strings"},
	}
	for _, tc := range cases {
		err := c.Set(tc.key, tc.raw)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%s, %#v) = %v, want %q", tc.key, tc.raw, err, tc.want)
		}
	}
	for key, raw := range map[string]any{"announce.max_hops": "6", "store.enabled": "false", "transports.peers": "tcp://a:1, quic://b:2", "ratelimit.envelopes_per_sec": int64(5)} {
		if err := c.Set(key, raw); err != nil {
			t.Errorf("Set(%s, %#v): %v", key, raw, err)
		}
	}
	if c.Announce.MaxHops != 6 || c.Store.Enabled || len(c.Transports.Peers) != 2 || c.RateLimit.EnvelopesPerSec != 5 {
		t.Fatalf("set values: %+v", c)
	}
}

func TestConfigParseTOML(t *testing.T) {
	vals, err := ParseTOML("f.toml", []byte("profile = 'constrained'\n[transports]\nqueue_frames = 9\n[transports.lora]\nmtu = 100\n"))
	if err != nil {
		t.Fatal(err)
	}
	if vals["profile"] != "constrained" || vals["transports.queue_frames"] != int64(9) || vals["transports.lora.mtu"] != int64(100) || len(vals) != 3 {
		t.Fatalf("values %v", vals)
	}
	for body, want := range map[string]string{
		"[announce]\ninterval = \"10m\n": "f.toml: line 2, column",
		"a = \n":                         "f.toml: line 1, column 5",
		"[announce]\nintervall = '5m'\n": "unknown key announce.intervall in f.toml (did you mean announce.interval?)",
		"[anounce]\ninterval = '5m'\n":   "unknown section [anounce] in f.toml (did you mean [announce]?)",
		"[frobnicate]\nx = 1\n":          "unknown section [frobnicate] in f.toml",
		"routing = 3\n":                  "routing is a section",
		"[api]\naddr = { host = 'x' }\n": "api.addr is a value, not a section",
	} {
		_, err := ParseTOML("f.toml", []byte(body))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	if s := Suggest("QPC_ANNOUNCE_INTERVALL", []string{"QPC_ANNOUNCE_INTERVAL", "QPC_API_ADDR"}); s != "QPC_ANNOUNCE_INTERVAL" {
		t.Errorf("Suggest = %q", s)
	}
	if s := Suggest("QPC_FROBNICATE", []string{"QPC_ANNOUNCE_INTERVAL", "QPC_API_ADDR"}); s != "" {
		t.Errorf("Suggest far = %q", s)
	}
}

func TestConfigKeysCoverEveryField(t *testing.T) {
	names := KeyNames()
	b, _ := toml.Marshal(Default())
	vals, err := ParseTOML("genconf", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != len(names) {
		t.Fatalf("%d keys, genconf writes %d", len(names), len(vals))
	}
	c := Config{}
	for _, n := range names {
		if err := c.Set(n, vals[n]); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	d := Default()
	if strings.Join(c.Transports.Listen, ",") != strings.Join(d.Transports.Listen, ",") || c.Store.TTL != d.Store.TTL || c.RateLimit != d.RateLimit {
		t.Fatalf("genconf values through Set: %+v", c)
	}
}
