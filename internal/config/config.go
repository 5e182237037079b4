// Package config is the node's typed configuration: defaults, the
// constrained profile, validation and the commented TOML that `qpc genconf`
// prints. It knows nothing of viper or flags; cmd/qpc fills a Config from
// file, environment and flags and hands it to the node.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
)

// Duration is a time.Duration that reads and writes as "10m", "1h30m".
// A number without a unit is refused (see Config.Set), never read as
// nanoseconds.
type Duration time.Duration

// D converts to time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText writes the Go duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads the Go duration syntax ("90s", "10m"); a bare
// number ("600") is an error asking for a unit.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := convertDuration("duration", string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config is everything a node needs to start. The field tags are the TOML
// keys; environment variables are QPC_<SECTION>_<KEY> in upper case.
type Config struct {
	// Profile names the preset the defaults came from: "default" or "constrained".
	Profile string `toml:"profile" comment:"Preset the defaults came from: \"default\" or \"constrained\" (small caches, long intervals)." mapstructure:"profile"`
	// DataDir holds the identity, the database and anything else persisted.
	DataDir    string          `toml:"data_dir" comment:"Directory for the identity key, the database and other state." mapstructure:"data_dir"`
	Identity   IdentityConfig  `toml:"identity" comment:"Node identity (Ed25519)." mapstructure:"identity"`
	Announce   AnnounceConfig  `toml:"announce" comment:"Signed announces that tell the mesh where this node is." mapstructure:"announce"`
	Routing    RoutingConfig   `toml:"routing" comment:"Routing table." mapstructure:"routing"`
	Store      StoreConfig     `toml:"store" comment:"Store-and-forward queue for peers that are offline." mapstructure:"store"`
	Outbox     OutboxConfig    `toml:"outbox" comment:"This node's own messages, kept until the destination's receipt arrives and retransmitted meanwhile." mapstructure:"outbox"`
	Inbox      InboxConfig     `toml:"inbox" comment:"Messages delivered to this node, kept in the database." mapstructure:"inbox"`
	Transports TransportConfig `toml:"transports" comment:"Links to other nodes. URIs: tcp://host:port, quic://host:port, mem://name, lora+mock://channel, lora+serial:///dev/ttyUSB0?freq=869525000&sf=9." mapstructure:"transports"`
	RateLimit  RateLimitConfig `toml:"ratelimit" comment:"Per-peer limits on what a peer can make this node do." mapstructure:"ratelimit"`
	Logging    LoggingConfig   `toml:"logging" comment:"Logs go to standard error." mapstructure:"logging"`
	API        APIConfig       `toml:"api" comment:"Admin HTTP API: /healthz, /readyz, /metrics, /v1/..." mapstructure:"api"`
	Shutdown   ShutdownConfig  `toml:"shutdown" comment:"Graceful shutdown on SIGINT/SIGTERM." mapstructure:"shutdown"`
	FAPP       FAPPConfig      `toml:"fapp" comment:"FAPP, finding free psychotherapy appointments (docs/fapp.md): the roles this node takes and, for a therapist, the practice's data." mapstructure:"fapp"`
	Groups     GroupsConfig    `toml:"groups" comment:"MLS group chats (docs/crypto.md): this node's KeyPackages, its groups, and the KeyPackages it holds for others." mapstructure:"groups"`
}

// GroupsConfig is the node's part in MLS groups.
type GroupsConfig struct {
	Enabled            bool     `toml:"enabled" comment:"Publish a KeyPackage (its hash in the announce), join groups, answer and cache KeyPackage requests. Off: none of that, and group messages wait unread." mapstructure:"enabled"`
	KeyPackageLifetime Duration `toml:"keypackage_lifetime" comment:"How long a KeyPackage of this node is valid; it is replaced when a quarter is left, and after each use." mapstructure:"keypackage_lifetime"`
	PQ                 bool     `toml:"pq" comment:"Post-quantum hybrid (X-Wing): announce it, open 1:1 messages sealed with it, and seal to nodes that announce it when the first link of the route is unconstrained (never over LoRa). Costs 1,136 bytes per message. In groups this node creates, each commit then injects a post-quantum PSK when every member is in PQ reach (1,246 bytes per member and commit)." mapstructure:"pq"`
}

// IdentityConfig locates the Ed25519 key file.
type IdentityConfig struct {
	// KeyFile is relative to DataDir unless absolute.
	KeyFile string `toml:"key_file" comment:"Identity key file, relative to data_dir unless absolute. Created on first start with mode 0600." mapstructure:"key_file"`
}

// AnnounceConfig governs signed announces.
type AnnounceConfig struct {
	Interval Duration `toml:"interval" comment:"How often to announce (jittered). At least 1s." mapstructure:"interval"`
	MaxAge   Duration `toml:"max_age" comment:"Announces older than this are refused." mapstructure:"max_age"`
	MaxHops  int      `toml:"max_hops" comment:"How far announces are re-broadcast (1..64)." mapstructure:"max_hops"`
}

// RoutingConfig sizes the routing table.
type RoutingConfig struct {
	MaxRoutes  int      `toml:"max_routes" comment:"Routes kept at most; the stalest are evicted beyond this." mapstructure:"max_routes"`
	RouteTTL   Duration `toml:"route_ttl" comment:"A route not refreshed within this expires." mapstructure:"route_ttl"`
	DedupCache int      `toml:"dedup_cache" comment:"Message ids remembered for duplicate suppression." mapstructure:"dedup_cache"`
}

// StoreConfig sizes the store-and-forward queue.
type StoreConfig struct {
	Enabled        bool     `toml:"enabled" comment:"Keep messages for destinations without a route." mapstructure:"enabled"`
	MaxPerDest     int      `toml:"max_per_destination" comment:"Messages held per destination at most." mapstructure:"max_per_destination"`
	MaxTotal       int      `toml:"max_total" comment:"Messages held in all at most." mapstructure:"max_total"`
	TTL            Duration `toml:"ttl" comment:"Held messages expire after this." mapstructure:"ttl"`
	GCInterval     Duration `toml:"gc_interval" comment:"How often expired entries are collected." mapstructure:"gc_interval"`
	RelayForOthers bool     `toml:"relay" comment:"Also hold other nodes' messages for destinations without a route (act as a store relay). Off: such a message is dropped, counted as store_relay_off, and its sender retransmits it; forwarding is unaffected and this node's own receipts are still held." mapstructure:"relay"`
}

// InboxConfig bounds the inbox: the oldest messages go first.
type InboxConfig struct {
	MaxMessages int      `toml:"max_messages" comment:"Delivered messages kept at most; the oldest go first." mapstructure:"max_messages"`
	MaxAge      Duration `toml:"max_age" comment:"Delivered messages older than this are deleted." mapstructure:"max_age"`
}

// OutboxConfig governs end-to-end delivery of this node's own messages.
type OutboxConfig struct {
	MaxPending int      `toml:"max_pending" comment:"Messages waiting for receipts at most; past it sends are refused (API 429) until receipts come back." mapstructure:"max_pending"`
	RetryBase  Duration `toml:"retry_base" comment:"Wait before the first retransmission; doubled for each further one." mapstructure:"retry_base"`
	RetryMax   Duration `toml:"retry_max" comment:"Longest wait between retransmissions." mapstructure:"retry_max"`
}

// TransportConfig lists listeners and peers as URIs.
type TransportConfig struct {
	Listen       []string   `toml:"listen" comment:"Where to accept connections." mapstructure:"listen"`
	Peers        []string   `toml:"peers" comment:"Peers to dial and keep connected (re-dialled with capped back-off)." mapstructure:"peers"`
	MaxFrameSize int        `toml:"max_frame_size" comment:"Largest frame accepted from a peer, in bytes; larger frames disconnect the peer." mapstructure:"max_frame_size"`
	Discovery    bool       `toml:"discovery" comment:"Find peers on the LAN with signed UDP multicast beacons." mapstructure:"discovery"`
	QueueBytes   int        `toml:"queue_bytes" comment:"Outbound bytes queued per link, at least max_frame_size." mapstructure:"queue_bytes"`
	QueueFrames  int        `toml:"queue_frames" comment:"Outbound frames queued per link before the lowest priority is shed." mapstructure:"queue_frames"`
	LoRa         LoRaConfig `toml:"lora" comment:"LoRa radios (lora+serial:// and lora+mock:// URIs carry the modem settings)." mapstructure:"lora"`
	DialBackoff  Duration   `toml:"dial_backoff_max" comment:"Upper bound of the re-dial back-off." mapstructure:"dial_backoff_max"`
	// Limits on what other nodes can hold of this one (issue 10).
	MaxInboundLinks  int      `toml:"max_inbound_links" comment:"Links accepted from other nodes at most, over all listeners; a connection beyond it is closed after its handshake (qpc_link_refused_total). Links to transports.peers and discovered peers, and LoRa radio peers, are not capped." mapstructure:"max_inbound_links"`
	AcceptTimeout    Duration `toml:"accept_timeout" comment:"An inbound TCP connection must finish its handshake within this (QUIC: open its stream after TLS); until then it holds one of the listener's handshake slots." mapstructure:"accept_timeout"`
	FrameTimeout     Duration `toml:"frame_timeout" comment:"A frame that has started arriving must be complete within this, or its link is closed (reason frame_timeout)." mapstructure:"frame_timeout"`
	FrameBufferBytes int      `toml:"frame_buffer_bytes" comment:"Bytes that frames above 64 KiB still being read may hold in all links together, at least max_frame_size; a frame waits for room (within frame_timeout) while they are used up." mapstructure:"frame_buffer_bytes"`
}

// LoRaConfig governs every LoRa radio of the node.
type LoRaConfig struct {
	Region    string  `toml:"region" comment:"Radio rules: EU868 (duty cycle per sub-band) or US915 (400 ms dwell time)." mapstructure:"region"`
	DataShare float64 `toml:"data_share" comment:"Share of the airtime budget reserved for user data; announces may use only the rest (0..1)." mapstructure:"data_share"`
	MTU       int     `toml:"mtu" comment:"Largest radio frame in bytes (51..255); bigger frames are fragmented." mapstructure:"mtu"`
	TxPower   int     `toml:"tx_power" comment:"Transmit power in dBm of every radio whose URI has no txp=; 0 means the highest the region allows on the radio's frequency (EU868: 14, 27 in 869.4-869.65 MHz; US915: 30). Above the sub-band's limit is refused." mapstructure:"tx_power"`
	// Compact lets own messages go out as compact sealed envelopes when
	// their first hop is a radio (issue 12).
	Compact bool `toml:"compact" comment:"Seal own 1:1 messages as compact envelopes (126 B for a 32-byte text instead of 193: HPKE auth mode, no signature) when the first hop is over radios only. Relays cannot verify a compact envelope's sender (docs/wire-format.md); false: always the signed envelope." mapstructure:"compact"`
	// AnnounceShare caps the airtime of announces per radio.
	AnnounceShare float64 `toml:"announce_share" comment:"Share of each radio's time that announces may use (above 0, at most 1; Reticulum's cap is 0.02): announces wait for it, and a queued announce is replaced by a newer one of its destination." mapstructure:"announce_share"`
}

// RateLimitConfig bounds what one peer may make this node do.
type RateLimitConfig struct {
	EnvelopesPerSec  float64 `toml:"envelopes_per_sec" comment:"Envelopes admitted per peer per second (token bucket rate)." mapstructure:"envelopes_per_sec"`
	EnvelopeBurst    int     `toml:"envelope_burst" comment:"Token bucket depth for envelopes." mapstructure:"envelope_burst"`
	AnnouncesPerMin  float64 `toml:"announces_per_min" comment:"Announces admitted per peer per minute." mapstructure:"announces_per_min"`
	KeyPackagesPerMn float64 `toml:"keypackages_per_min" comment:"KeyPackage requests admitted per peer per minute." mapstructure:"keypackages_per_min"`
}

// LoggingConfig selects the slog handler.
type LoggingConfig struct {
	Level  string `toml:"level" comment:"debug, info, warn or error." mapstructure:"level"`
	Format string `toml:"format" comment:"text or json." mapstructure:"format"`
}

// APIConfig is the admin HTTP listener.
type APIConfig struct {
	Addr  string `toml:"addr" comment:"Listen address; empty disables it. A non-loopback address requires token." mapstructure:"addr"`
	Token string `toml:"token" comment:"Bearer token required on every request when set." mapstructure:"token"`
	// AllowedHosts are Host headers served besides the listen address and
	// the loopback names on its port (see CheckAllowedHost).
	AllowedHosts []string `toml:"allowed_hosts" comment:"Host names the API answers besides its listen address and localhost, 127.0.0.1, [::1] on its port (listening on 0.0.0.0 or [::], also any IP address with that port); a request naming another Host is refused (403), so a web page cannot reach the API through a name of its own (DNS rebinding). \"name\" is served on any port (behind a reverse proxy), \"name:port\" on that port, \"*\" turns the check off." mapstructure:"allowed_hosts"`
}

// ShutdownConfig bounds the shutdown cascade.
type ShutdownConfig struct {
	Timeout Duration `toml:"timeout" comment:"Deadline for draining and persisting before the node stops anyway." mapstructure:"timeout"`
}

// FAPPConfig is the node's part in FAPP. Role empty: the node neither
// caches, answers nor forwards FAPP frames (they are refused and counted
// as unknown_type, as by a node that does not speak FAPP).
type FAPPConfig struct {
	Role          []string `toml:"role" comment:"FAPP roles: any of therapist (announces its free slots, answers reservations), relay (caches announces, answers and forwards queries), patient (searches, reserves). Empty: FAPP off." mapstructure:"role"`
	Name          string   `toml:"name" comment:"Therapist: the practice's name, sent to a patient with a confirmation." mapstructure:"name"`
	PLZ           string   `toml:"plz" comment:"Therapist: the practice's postcode (five digits), the only location FAPP carries." mapstructure:"plz"`
	Approbation   string   `toml:"approbation" comment:"Therapist: the licence id (Approbation); only its salted Argon2id hash leaves the node." mapstructure:"approbation"`
	Fachrichtung  []string `toml:"fachrichtung" comment:"Therapist: what the practice offers, any of verhaltenstherapie, tiefenpsychologisch, analytisch, systemisch (+kjp for Kinder- und Jugendlichenpsychotherapie); a slot without its own takes the first." mapstructure:"fachrichtung"`
	Kostentraeger []string `toml:"kostentraeger" comment:"Therapist: who pays, any of gkv, pkv, selbstzahler, beihilfe; the default of a slot without its own." mapstructure:"kostentraeger"`
	AnnounceTTL   Duration `toml:"announce_ttl" comment:"Therapist: how long a published set of slots is valid (re-announced before it expires); at most 7 days." mapstructure:"announce_ttl"`
	QueryHops     int      `toml:"query_hops" comment:"Patient: how many hops a search travels (1..16)." mapstructure:"query_hops"`
	MaxSlots      int      `toml:"max_slots" comment:"Relay: slots cached at most, shared fairly among therapists." mapstructure:"max_slots"`
}

// FAPP roles, the values of fapp.role.
const (
	FAPPTherapist = "therapist"
	FAPPRelay     = "relay"
	FAPPPatient   = "patient"
)

// HasRole reports whether role is one of the node's FAPP roles.
func (f FAPPConfig) HasRole(role string) bool { return slices.Contains(f.Role, role) }

// Profiles known to Profile.
const (
	ProfileDefault     = "default"
	ProfileConstrained = "constrained"
)

// Default is the embedded configuration `qpc node` runs with when given
// nothing: identity in ./qpc-data, TCP and QUIC on loopback, admin API on
// 127.0.0.1:7780.
func Default() Config {
	return Config{
		Profile:  ProfileDefault,
		DataDir:  "./qpc-data",
		Identity: IdentityConfig{KeyFile: "identity.pem"},
		Announce: AnnounceConfig{
			Interval: Duration(10 * time.Minute),
			MaxAge:   Duration(30 * time.Minute),
			MaxHops:  8,
		},
		Routing: RoutingConfig{MaxRoutes: 10000, RouteTTL: Duration(30 * time.Minute), DedupCache: 65536},
		Store: StoreConfig{
			Enabled: true, MaxPerDest: 1000, MaxTotal: 100000,
			TTL: Duration(7 * 24 * time.Hour), GCInterval: Duration(time.Minute), RelayForOthers: true,
		},
		Outbox: OutboxConfig{MaxPending: 16384, RetryBase: Duration(5 * time.Second), RetryMax: Duration(5 * time.Minute)},
		Inbox:  InboxConfig{MaxMessages: 100000, MaxAge: Duration(30 * 24 * time.Hour)},
		Transports: TransportConfig{
			Listen:       []string{"tcp://127.0.0.1:7701", "quic://127.0.0.1:7702"},
			Peers:        []string{},
			MaxFrameSize: 1 << 20,
			Discovery:    false,
			QueueFrames:  1024,
			QueueBytes:   8 << 20,
			DialBackoff:  Duration(30 * time.Second),
			LoRa:         LoRaConfig{Region: "EU868", DataShare: 0.5, MTU: 255, AnnounceShare: 0.02, Compact: true},

			MaxInboundLinks:  256,
			AcceptTimeout:    Duration(transports.DefaultAcceptTimeout),
			FrameTimeout:     Duration(transports.DefaultFrameTimeout),
			FrameBufferBytes: 16 << 20,
		},
		RateLimit: RateLimitConfig{EnvelopesPerSec: 200, EnvelopeBurst: 400, AnnouncesPerMin: 1200, KeyPackagesPerMn: 30},
		Logging:   LoggingConfig{Level: "info", Format: "text"},
		API:       APIConfig{Addr: "127.0.0.1:7780", AllowedHosts: []string{}},
		Shutdown:  ShutdownConfig{Timeout: Duration(4 * time.Second)},
		FAPP: FAPPConfig{
			Role: []string{}, Fachrichtung: []string{}, Kostentraeger: []string{},
			AnnounceTTL: Duration(24 * time.Hour), QueryHops: fapp.DefaultQueryHops, MaxSlots: fapp.DefaultLimits.MaxSlots,
		},
		Groups: GroupsConfig{Enabled: true, KeyPackageLifetime: Duration(28 * 24 * time.Hour)},
	}
}

// Constrained is the profile for low-resource devices (a Raspberry Pi Zero,
// a router): small caches, long intervals, small frames and queues.
func Constrained() Config {
	c := Default()
	c.Profile = ProfileConstrained
	c.Announce.Interval = Duration(60 * time.Minute)
	c.Announce.MaxAge = Duration(3 * time.Hour)
	c.Announce.MaxHops = 4
	c.Routing.MaxRoutes = 256
	c.Routing.DedupCache = 2048
	c.Store.MaxPerDest = 50
	c.Store.MaxTotal = 1000
	c.Store.GCInterval = Duration(10 * time.Minute)
	c.Transports.MaxFrameSize = 64 << 10
	c.Transports.QueueFrames = 64
	c.Inbox.MaxMessages = 1000
	c.Transports.QueueBytes = 256 << 10
	c.Transports.MaxInboundLinks = 32
	c.Transports.FrameBufferBytes = 1 << 20
	c.RateLimit.EnvelopesPerSec = 20
	c.RateLimit.EnvelopeBurst = 40
	c.RateLimit.AnnouncesPerMin = 120
	return c
}

// ForProfile returns the defaults of a named profile.
func ForProfile(name string) (Config, error) {
	switch name {
	case "", ProfileDefault:
		return Default(), nil
	case ProfileConstrained:
		return Constrained(), nil
	}
	return Config{}, &FieldError{Field: "profile", Value: name, Allowed: "default or constrained"}
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid configuration")

// FieldError names the field, the bad value and what is allowed.
type FieldError struct {
	Field   string
	Value   any
	Allowed string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("config: %s = %v is invalid: want %s", e.Field, quote(e.Value), e.Allowed)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func quote(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case Duration:
		return x.D().String()
	}
	return fmt.Sprint(v)
}

// Validate checks every field and returns all problems joined (each a
// *FieldError), or nil.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field string, v any, allowed string) {
		errs = append(errs, &FieldError{Field: field, Value: v, Allowed: allowed})
	}
	if c.Profile != ProfileDefault && c.Profile != ProfileConstrained {
		bad("profile", c.Profile, "default or constrained")
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", c.DataDir, "a directory path")
	}
	if strings.TrimSpace(c.Identity.KeyFile) == "" {
		bad("identity.key_file", c.Identity.KeyFile, "a file path")
	}
	positiveDur := func(field string, d Duration, min time.Duration) {
		if d.D() < min {
			bad(field, d, fmt.Sprintf("a duration of at least %s", min))
		}
	}
	positiveDur("announce.interval", c.Announce.Interval, time.Second)
	positiveDur("announce.max_age", c.Announce.MaxAge, time.Second)
	if c.Announce.MaxHops < 1 || c.Announce.MaxHops > 64 {
		bad("announce.max_hops", c.Announce.MaxHops, "an integer from 1 to 64")
	}
	if c.Routing.MaxRoutes < 1 {
		bad("routing.max_routes", c.Routing.MaxRoutes, "a positive integer")
	}
	positiveDur("routing.route_ttl", c.Routing.RouteTTL, time.Second)
	if c.Routing.DedupCache < 16 {
		bad("routing.dedup_cache", c.Routing.DedupCache, "an integer of at least 16")
	}
	if c.Store.MaxPerDest < 1 {
		bad("store.max_per_destination", c.Store.MaxPerDest, "a positive integer")
	}
	if c.Store.MaxTotal < c.Store.MaxPerDest {
		bad("store.max_total", c.Store.MaxTotal, fmt.Sprintf("an integer of at least store.max_per_destination (%d)", c.Store.MaxPerDest))
	}
	positiveDur("store.ttl", c.Store.TTL, time.Second)
	positiveDur("store.gc_interval", c.Store.GCInterval, time.Second)
	for i, u := range c.Transports.Listen {
		if err := CheckURI(u); err != nil {
			bad(fmt.Sprintf("transports.listen[%d]", i), u, err.Error())
		}
	}
	for i, u := range c.Transports.Peers {
		if err := CheckURI(u); err != nil {
			bad(fmt.Sprintf("transports.peers[%d]", i), u, err.Error())
		}
	}
	if c.Transports.MaxFrameSize < 256 || c.Transports.MaxFrameSize > 16<<20 {
		bad("transports.max_frame_size", c.Transports.MaxFrameSize, "bytes from 256 to 16777216")
	}
	if c.Transports.QueueBytes < c.Transports.MaxFrameSize {
		bad("transports.queue_bytes", c.Transports.QueueBytes, fmt.Sprintf("bytes of at least transports.max_frame_size (%d)", c.Transports.MaxFrameSize))
	}
	if c.Transports.QueueFrames < 4 {
		bad("transports.queue_frames", c.Transports.QueueFrames, "an integer of at least 4")
	}
	switch c.Transports.LoRa.Region {
	case "EU868", "US915":
	default:
		bad("transports.lora.region", c.Transports.LoRa.Region, "EU868 or US915")
	}
	if d := c.Transports.LoRa.DataShare; d < 0 || d > 1 {
		bad("transports.lora.data_share", d, "a fraction from 0 to 1")
	}
	if a := c.Transports.LoRa.AnnounceShare; !(a > 0 && a <= 1) {
		bad("transports.lora.announce_share", a, "a fraction above 0 and at most 1 (0.02: announces use at most 2 % of the radio's time)")
	}
	if m := c.Transports.LoRa.MTU; m < 51 || m > 255 {
		bad("transports.lora.mtu", m, "bytes from 51 to 255")
	}
	if p := c.Transports.LoRa.TxPower; p < 0 || p > link.MaxTxPower {
		bad("transports.lora.tx_power", p, fmt.Sprintf("dBm from 0 (the region's limit) to %d", link.MaxTxPower))
	} else if region, err := lora.RegionByName(c.Transports.LoRa.Region); err == nil {
		for i, u := range c.Transports.Listen {
			c.checkRadio(fmt.Sprintf("transports.listen[%d]", i), u, region, bad)
		}
	}
	positiveDur("transports.dial_backoff_max", c.Transports.DialBackoff, 100*time.Millisecond)
	if n := c.Transports.MaxInboundLinks; n < 1 || n > 65536 {
		bad("transports.max_inbound_links", n, "an integer from 1 to 65536")
	}
	if d := c.Transports.AcceptTimeout; d.D() < 100*time.Millisecond || d.D() > time.Minute {
		bad("transports.accept_timeout", d, "a duration from 100ms to 1m")
	}
	if d := c.Transports.FrameTimeout; d.D() < time.Second || d.D() > time.Hour {
		bad("transports.frame_timeout", d, "a duration from 1s to 1h")
	}
	if n := c.Transports.FrameBufferBytes; n < c.Transports.MaxFrameSize || n > 1<<30 {
		bad("transports.frame_buffer_bytes", n, fmt.Sprintf("bytes from transports.max_frame_size (%d) to 1073741824", c.Transports.MaxFrameSize))
	}
	if c.Inbox.MaxMessages < 1 {
		bad("inbox.max_messages", c.Inbox.MaxMessages, "a positive integer")
	}
	positiveDur("inbox.max_age", c.Inbox.MaxAge, time.Minute)
	if c.Outbox.MaxPending < 1 {
		bad("outbox.max_pending", c.Outbox.MaxPending, "a positive integer")
	}
	positiveDur("outbox.retry_base", c.Outbox.RetryBase, 10*time.Millisecond)
	positiveDur("outbox.retry_max", c.Outbox.RetryMax, 10*time.Millisecond)
	if c.Outbox.RetryMax < c.Outbox.RetryBase {
		bad("outbox.retry_max", c.Outbox.RetryMax, "a duration of at least outbox.retry_base ("+c.Outbox.RetryBase.D().String()+")")
	}
	if c.RateLimit.EnvelopesPerSec <= 0 {
		bad("ratelimit.envelopes_per_sec", c.RateLimit.EnvelopesPerSec, "a positive number")
	}
	if c.RateLimit.EnvelopeBurst < 1 {
		bad("ratelimit.envelope_burst", c.RateLimit.EnvelopeBurst, "a positive integer")
	}
	if c.RateLimit.AnnouncesPerMin <= 0 {
		bad("ratelimit.announces_per_min", c.RateLimit.AnnouncesPerMin, "a positive number")
	}
	if c.RateLimit.KeyPackagesPerMn <= 0 {
		bad("ratelimit.keypackages_per_min", c.RateLimit.KeyPackagesPerMn, "a positive number")
	}
	switch strings.ToLower(c.Logging.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("logging.level", c.Logging.Level, "debug, info, warn or error")
	}
	switch c.Logging.Format {
	case "text", "json":
	default:
		bad("logging.format", c.Logging.Format, "text or json")
	}
	if c.API.Addr != "" {
		host, port, err := net.SplitHostPort(c.API.Addr)
		if n, perr := strconv.Atoi(port); err != nil || port == "" || perr != nil || n < 0 || n > 65535 {
			bad("api.addr", c.API.Addr, "host:port with a port from 0 to 65535, e.g. 127.0.0.1:7780 (empty disables the API)")
		} else if !IsLoopbackHost(host) && c.API.Token == "" {
			bad("api.token", "", fmt.Sprintf("a bearer token, because api.addr %s is not a loopback address", c.API.Addr))
		}
	}
	for i, h := range c.API.AllowedHosts {
		if err := CheckAllowedHost(h); err != nil {
			bad(fmt.Sprintf("api.allowed_hosts[%d]", i), h, err.Error())
		}
	}
	positiveDur("shutdown.timeout", c.Shutdown.Timeout, 100*time.Millisecond)
	c.checkFAPP(bad)
	if c.Groups.Enabled && (c.Groups.KeyPackageLifetime.D() < time.Hour || c.Groups.KeyPackageLifetime.D() > 365*24*time.Hour) {
		bad("groups.keypackage_lifetime", c.Groups.KeyPackageLifetime, "between 1h and 8760h (a year)")
	}
	return errors.Join(errs...)
}

// checkFAPP checks the [fapp] section: known roles, and for a therapist
// the data its announces need.
func (c *Config) checkFAPP(bad func(string, any, string)) {
	f := c.FAPP
	for _, r := range f.Role {
		if r != FAPPTherapist && r != FAPPRelay && r != FAPPPatient {
			bad("fapp.role", r, "therapist, relay or patient")
		}
	}
	for _, v := range f.Fachrichtung {
		if _, err := fapp.ParseFachrichtung(v); err != nil {
			bad("fapp.fachrichtung", v, strings.Join(fapp.FachrichtungNames(), ", ")+" (each may end in +kjp)")
		}
	}
	if _, err := fapp.ParseKostentraeger(f.Kostentraeger...); len(f.Kostentraeger) > 0 && err != nil {
		bad("fapp.kostentraeger", f.Kostentraeger, "any of "+strings.Join(fapp.KostentraegerNames(), ", "))
	}
	if d := f.AnnounceTTL.D(); d < time.Minute || d > fapp.DefaultLimits.MaxTTL {
		bad("fapp.announce_ttl", f.AnnounceTTL, fmt.Sprintf("a duration from 1m to %s", fapp.DefaultLimits.MaxTTL))
	}
	if f.QueryHops < 1 || f.QueryHops > fapp.MaxHopLimit {
		bad("fapp.query_hops", f.QueryHops, fmt.Sprintf("1 to %d", fapp.MaxHopLimit))
	}
	if f.MaxSlots < fapp.MaxSlotsPerAnnounce {
		bad("fapp.max_slots", f.MaxSlots, fmt.Sprintf("at least %d", fapp.MaxSlotsPerAnnounce))
	}
	if !f.HasRole(FAPPTherapist) {
		return
	}
	if _, err := fapp.ParsePLZ(f.PLZ); err != nil {
		bad("fapp.plz", f.PLZ, "five digits (a therapist needs its postcode)")
	}
	if strings.TrimSpace(f.Approbation) == "" {
		bad("fapp.approbation", f.Approbation, "the licence id (a therapist's announces are bound to it)")
	}
	if len(f.Fachrichtung) == 0 {
		bad("fapp.fachrichtung", f.Fachrichtung, "at least one of "+strings.Join(fapp.FachrichtungNames(), ", ")+" for a therapist")
	}
	if len(f.Kostentraeger) == 0 {
		bad("fapp.kostentraeger", f.Kostentraeger, "at least one of "+strings.Join(fapp.KostentraegerNames(), ", ")+" for a therapist")
	}
}

// checkRadio checks what CheckURI cannot for a LoRa URI: that its
// channel lies in one allowed sub-band of the region and that its
// transmit power (txp=, else transports.lora.tx_power, else the
// sub-band's limit) is within the sub-band's limit.
func (c *Config) checkRadio(field, uri string, region lora.Region, bad func(string, any, string)) {
	scheme, addr, err := transports.ParseURI(uri)
	if err != nil || (scheme != transports.SchemeLoRaMock && scheme != transports.SchemeLoRaSerial) {
		return
	}
	a, err := link.ParseAddr(addr, link.RadioParams{})
	if err != nil {
		return // CheckURI reports it
	}
	_, err = link.TxPowerFor(a, region, c.Transports.LoRa.TxPower)
	var pe *lora.PowerError
	switch {
	case err == nil:
	case errors.As(err, &pe) && a.TxPower == nil:
		bad("transports.lora.tx_power", pe.TxPower, fmt.Sprintf("at most %d dBm for %s: the limit of the %s sub-band %s MHz (or txp= in its URI)", pe.Limit, uri, pe.Region, pe.SubBand.Name))
	case errors.As(err, &pe):
		bad(field, uri, fmt.Sprintf("txp of at most %d dBm: the limit of the %s sub-band %s MHz (got %d)", pe.Limit, pe.Region, pe.SubBand.Name, pe.TxPower))
	case errors.Is(err, lora.ErrRestrictedBand), errors.Is(err, lora.ErrOutOfBand):
		bad(field, uri, fmt.Sprintf("a channel inside one allowed sub-band of the region (%v)", err))
	}
}

// CheckURI validates a transport URI with transports.ParseURI, the parser
// the node itself uses, and phrases the error as what is allowed.
func CheckURI(s string) error {
	scheme, addr, err := transports.ParseURI(s)
	if err == nil && (scheme == transports.SchemeLoRaMock || scheme == transports.SchemeLoRaSerial) {
		// The radio's parameters too (sf=14 is not a spreading factor).
		_, err = link.ParseAddr(addr, link.RadioParams{})
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, transports.ErrUnknownScheme):
		return fmt.Errorf("a scheme of %s", strings.Join(transports.Schemes, ", "))
	}
	// A radio parameter: `…: malformed transport URI: sf="14", want 5 to 12`.
	if _, kv, ok := strings.Cut(err.Error(), transports.ErrBadURI.Error()+": "); ok {
		if got, want, ok := strings.Cut(kv, ", want "); ok {
			key, _, _ := strings.Cut(got, "=")
			return fmt.Errorf("%s for %s (got %s)", want, key, got)
		}
	}
	if _, want, ok := strings.Cut(err.Error(), "want "); ok {
		return errors.New(want)
	}
	return err
}

// CheckAllowedHost validates an entry of api.allowed_hosts: a host name
// or an IP address, with or without a port ("relay.example.org",
// "relay.example.org:8443", "192.0.2.7", "[2001:db8::1]:7780"), or "*".
func CheckAllowedHost(s string) error {
	want := errors.New(`a host name or IP address, optionally with :port (e.g. relay.example.org or relay.example.org:8443), or "*"`)
	if s == "*" {
		return nil
	}
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return want
		}
		host = h
	} else if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") {
			return want
		}
		host = s[1 : len(s)-1]
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if strings.HasPrefix(s, "[") && !ip.Is6() {
			return want
		}
		return nil
	}
	if strings.HasPrefix(s, "[") {
		return want
	}
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > 253 {
		return want
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return want
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return want
			}
		}
	}
	return nil
}

// IsLoopbackHost reports whether host (an IP or "localhost") is loopback.
// An empty host means all interfaces, which is not loopback.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// KeyPath is the identity file path, resolved against DataDir.
func (c *Config) KeyPath() string {
	if filepath.IsAbs(c.Identity.KeyFile) {
		return c.Identity.KeyFile
	}
	return filepath.Join(c.DataDir, c.Identity.KeyFile)
}

// DBPath is the bbolt database path.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, "qpc.db") }

// TOML renders c as a commented TOML file, what `qpc genconf` prints.
func (c *Config) TOML() ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# qpc node configuration, written by `qpc genconf` for profile %q.\n", c.Profile)
	b.WriteString("# Precedence: the profile's defaults < this file < QPC_* environment < flags.\n")
	fmt.Fprintf(&b, "# The file is read as changes to profile %q: a value left equal to that profile's\n", c.Profile)
	b.WriteString("# default is not a change, so it follows the profile the node runs with (--profile,\n")
	b.WriteString("# QPC_PROFILE); change a value and it is yours. `qpc config show` prints what applies.\n")
	b.WriteString("# Durations need a unit (\"90s\", \"10m\", \"1h30m\"). Environment variables name a key by\n")
	b.WriteString("# section and key, e.g. QPC_API_ADDR, QPC_ANNOUNCE_INTERVAL.\n\n")
	enc := toml.NewEncoder(&b)
	enc.SetIndentTables(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	return []byte(b.String()), nil
}
