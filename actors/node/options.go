package node

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/actors/announcer"
	fappactor "github.com/quicprochat/qpc/actors/fapp"
	"github.com/quicprochat/qpc/actors/links"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports/discovery"
	"github.com/quicprochat/qpc/transports/lora/link"
	"github.com/quicprochat/qpc/transports/lora/rnode"
	"github.com/quicprochat/qpc/transports/mem"
)

// Option configures a Node.
type Option func(*options)

type options struct {
	cfg            config.Config
	identity       *crypto.Identity
	log            *slog.Logger
	clock          clock.Clock
	system         *actor.ActorSystem
	caps           messages.Capabilities
	capsSet        bool // by WithCapabilities
	restart        RestartPolicy
	faults         bool
	version        string
	processMetrics bool
	inboxSize      int
	lockTimeout    time.Duration
	memNet         *mem.Network
	discovery      *discovery.Options
	backoff        *links.Backoff
	tap            func(*messages.InboundFrame) bool
	loraMock       *link.MockNetwork
	perPeerFanout  func() bool // links.Config.NoBroadcast
	newIdentity    bool
	dbOpts         []persist.Option
	rnodeConfig    func(*rnode.Config)           // tests: adjust each serial modem's settings (re-open back-off)
	linkOptions    func(*link.Options)           // tests: adjust each LoRa link's options (the silence window)
	fappEngine     func(*fappactor.EngineConfig) // tests: adjust the FAPP engine's bounds
}

func defaultOptions() options {
	return options{
		cfg:         config.Default(),
		clock:       clock.Real{},
		caps:        messages.CapRelay | messages.CapStore,
		restart:     DefaultRestartPolicy,
		version:     "dev",
		inboxSize:   deliveriesReadAhead,
		lockTimeout: time.Second,
	}
}

// withRNodeConfig lets a test adjust the rnode.Config of each lora+serial
// radio before it is opened (shorter re-open back-off).
func withRNodeConfig(f func(*rnode.Config)) Option { return func(o *options) { o.rnodeConfig = f } }

// withLinkOptions lets a test adjust the link.Options of each LoRa radio
// before it starts (a shorter PeerSilence than two HELLO intervals).
func withLinkOptions(f func(*link.Options)) Option { return func(o *options) { o.linkOptions = f } }

// withFAPPEngine lets a test adjust the FAPP engine's bounds (the
// per-therapist rate).
func withFAPPEngine(f func(*fappactor.EngineConfig)) Option {
	return func(o *options) { o.fappEngine = f }
}

// withDBCheck bounds the database check at start (tests).
func withDBCheck(c persist.CheckOptions) Option {
	return func(o *options) { o.dbOpts = append(o.dbOpts, persist.WithCheck(c)) }
}

// WithConfig sets the typed configuration (default: DefaultConfig()).
func WithConfig(c config.Config) Option { return func(o *options) { o.cfg = c } }

// WithIdentity uses id instead of loading or creating the key file.
func WithIdentity(id *crypto.Identity) Option { return func(o *options) { o.identity = id } }

// WithLogger sets the logger (default: stderr per the logging config).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock injects the clock (tests, the simulator).
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithActorSystem runs the node's tree in a shared actor system (the
// simulator runs all its nodes in one). The node does not shut it down.
func WithActorSystem(s *actor.ActorSystem) Option { return func(o *options) { o.system = s } }

// WithCapabilities sets what the node announces it can do (default relay
// and store; not store when store.enabled or store.relay is off): FAPP
// therapist / relay / patient, store, relay, gateway.
func WithCapabilities(c messages.Capabilities) Option {
	return func(o *options) { o.caps, o.capsSet = c, true }
}

// WithRestartPolicy overrides how failed actors are restarted.
func WithRestartPolicy(p RestartPolicy) Option { return func(o *options) { o.restart = p } }

// WithFaultInjection makes actors panic on messages.InjectFault (tests,
// chaos runs). Off by default.
func WithFaultInjection() Option { return func(o *options) { o.faults = true } }

// WithVersion stamps the version shown in status and build_info.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithProcessMetrics adds the Go runtime and process collectors (a real
// process; not the simulator).
func WithProcessMetrics() Option { return func(o *options) { o.processMetrics = true } }

// WithInboxSize sets how many delivered messages Deliveries reads from the
// inbox ahead of its reader (default 8). Nothing is read before
// Deliveries is first called.
func WithInboxSize(n int) Option { return func(o *options) { o.inboxSize = max(n, 1) } }

// WithMemNetwork attaches the node to an in-process network, for mem://
// listen and peer URIs (tests, the simulator).
func WithMemNetwork(net *mem.Network) Option { return func(o *options) { o.memNet = net } }

// withPerPeerFanout sends announces and their re-broadcasts once per
// peer also over LoRa radios while on returns true
// (links.Config.NoBroadcast): the fan-out before issue 12, for tests that
// measure what broadcasting saves.
func withPerPeerFanout(on func() bool) Option { return func(o *options) { o.perPeerFanout = on } }

// WithLoRaMock attaches the node's lora+mock:// radios to simulated
// channels of net (tests, the simulator, the demo).
func WithLoRaMock(net *link.MockNetwork) Option { return func(o *options) { o.loraMock = net } }

// WithDiscovery overrides LAN discovery's options (a test's injected
// socket, loopback); it turns discovery on whatever the config says.
func WithDiscovery(d discovery.Options) Option { return func(o *options) { o.discovery = &d } }

// WithDialBackoff overrides the re-dial back-off (its Max otherwise comes
// from transports.dial_backoff_max).
func WithDialBackoff(b links.Backoff) Option { return func(o *options) { o.backoff = &b } }

// WithInboundTap lets f see every admitted inbound frame before routing and
// take it by returning true (link-level tests and benchmarks).
func WithInboundTap(f func(*messages.InboundFrame) bool) Option {
	return func(o *options) { o.tap = f }
}

// Capabilities is what the node announces.
func (n *Node) Capabilities() messages.Capabilities {
	n.capsMu.Lock()
	defer n.capsMu.Unlock()
	return n.opts.caps
}

// SetCapabilities changes what the node announces (a relay that starts
// serving FAPP, a store that fills up) and announces it at once.
func (n *Node) SetCapabilities(c messages.Capabilities) error {
	if !n.running.Load() {
		return ErrNotRunning
	}
	n.capsMu.Lock()
	n.opts.caps = c
	n.capsMu.Unlock()
	n.system.Root.Send(n.childPID(announcer.Name), &messages.SetCapabilities{Caps: c})
	return nil
}

// Config is a node's whole configuration, as `qpc genconf` prints it and
// `qpc node` builds it from defaults, file, environment and flags. It is
// the internal config package's type under a name an embedder outside
// this module can use: start from DefaultConfig (or ConstrainedConfig),
// change the fields, and pass it to WithConfig. Validate runs in New.
type Config = config.Config

// Duration is the configuration's duration type (text form "10m", "30s").
type Duration = config.Duration

// DefaultConfig is the embedded default configuration (`qpc genconf`).
func DefaultConfig() Config { return config.Default() }

// ConstrainedConfig is the "constrained" profile: small caches, long
// intervals, for low-resource devices.
func ConstrainedConfig() Config { return config.Constrained() }
