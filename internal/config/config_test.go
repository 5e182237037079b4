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
		{"crypto mode", func(c *Config) { c.Crypto.Mode = "rot13" }, "crypto.mode", "mls-lite"},
		{"store caps", func(c *Config) { c.Store.MaxTotal = 1 }, "store.max_total", "at least store.max_per_destination"},
		{"api without token", func(c *Config) { c.API.Addr = "0.0.0.0:7780" }, "api.token", "not a loopback address"},
		{"api addr", func(c *Config) { c.API.Addr = "7780" }, "api.addr", "host:port"},
		{"lora region", func(c *Config) { c.Transports.LoRa.Region = "AS923" }, "transports.lora.region", "EU868 or US915"},
		{"lora share", func(c *Config) { c.Transports.LoRa.DataShare = 1.5 }, "transports.lora.data_share", "0 to 1"},
		{"frame size", func(c *Config) { c.Transports.MaxFrameSize = 10 }, "transports.max_frame_size", "256 to 16777216"},
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
