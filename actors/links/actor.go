package links

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/discovery"
)

// Name is the manager's name under the node root.
const Name = "transports"

// Bound is a listener the node has bound.
type Bound struct {
	URI      string
	Listener transports.Listener
}

// Config wires the transports subtree.
type Config struct {
	Identity *crypto.Identity
	// Transports by URI scheme ("tcp", "quic", "mem").
	Transports map[string]transports.Transport
	Listeners  []Bound
	// Peers are URIs to keep connected.
	Peers []string
	// Discovery, when non-nil, runs LAN discovery with these options
	// (Identity, Listen and OnDiscovered are filled in here).
	Discovery *discovery.Options
	Ratelimit *actor.PID
	Metrics   *metrics.Links
	Log       *slog.Logger
	Clock     clock.Clock
	Backoff   Backoff
	// QueueFrames and QueueBytes bound each link's outbound mailbox.
	QueueFrames, QueueBytes int
	// MaxInboundLinks caps the links accepted from other nodes, across all
	// listeners; 0 means DefaultMaxInboundLinks. Links the node dials and
	// LoRa radio peers are not capped.
	MaxInboundLinks int
	// NoBroadcast, while it returns true, sends BroadcastFrames
	// (announces, their re-broadcasts) once per peer also over transports
	// that broadcast (LoRa): the fan-out before issue 12, kept so that
	// tests can measure what broadcasting saves. (Link-up announces,
	// SendFrame.Broadcastable, still go as broadcasts.) Nil: never.
	NoBroadcast func() bool
}

// quiesce tells listeners to stop accepting and dialers to stop dialing;
// their links stay up until the tree stops.
type quiesce struct{}

// discovered is a peer reported by LAN discovery.
type discovered struct{ d discovery.Discovered }

type manager struct {
	cfg      Config
	deps     *deps
	table    *Table[*actor.PID]
	peers    *Peers                // the configured peers, for qpc status
	dialers  map[string]*actor.PID // by URI
	byPeer   map[crypto.Address]*actor.PID
	children []*actor.PID // listeners and dialers
	disc     *discovery.Service
	draining bool
	linking  bool // StartLinks received
	carry    *managerCarry
	bcast    map[uint64]radio // the links whose transport broadcasts, by link id
}

// radio is a transport that broadcasts, as the manager knows it.
type radio struct {
	b    transports.Broadcaster
	name string // its transport name, for metrics
}

// managerCarry is what a failing manager leaves the next instance (New's
// producer gives all instances the same one): whether the node had told
// it to link, and whether it drains. Without it a restarted manager would
// wait for a StartLinks that never comes again: no listener, no dialer.
type managerCarry struct{ linking, draining bool }

// New returns the manager's Props.
func New(cfg Config) *actor.Props {
	ids := &atomic.Uint64{} // link ids stay unique across manager restarts
	carry := &managerCarry{}
	return actor.PropsFromProducer(func() actor.Actor {
		return &manager{cfg: cfg, deps: &deps{linkIDs: ids}, carry: carry}
	}, actor.WithSupervisor(actor.NewOneForOneStrategy(10, 0, actor.DefaultDecider)))
}

func (m *manager) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		m.start(ctx)
		if c := m.carry; c != nil && c.linking {
			// A restart: listen, dial and discover again as before.
			m.linking, m.draining = true, c.draining
			if !m.draining {
				m.startLinks(ctx)
			}
		}
	case *messages.StartLinks:
		if !m.linking && !m.draining {
			m.linking = true
			m.startLinks(ctx)
		}
	case *linkUp:
		m.table.Add(msg.info, msg.pid)
		if msg.bcast != nil {
			m.bcast[msg.info.ID] = radio{b: msg.bcast, name: msg.info.Transport}
		}
		m.gauge()
		ctx.ActorSystem().EventStream.Publish(&messages.PeerUp{Node: m.deps.self, Link: msg.info})
	case *linkDown:
		m.peers.LinkDown(msg.info.ID, msg.reason, m.deps.clock.Now())
		delete(m.bcast, msg.info.ID)
		if info, ok := m.table.Remove(msg.info.ID); ok {
			m.gauge()
			ctx.ActorSystem().EventStream.Publish(&messages.PeerDown{Node: m.deps.self, Link: info, Reason: msg.reason})
		}
	case *messages.SendFrame:
		pid, info, ok := m.table.Pick(msg.Peer, len(msg.Data))
		if !ok {
			m.cfg.Metrics.NoLink.Inc()
			return
		}
		if r, ok := m.bcast[info.ID]; ok && msg.Broadcastable {
			m.broadcast(r, msg.Data, msg.Priority)
			return
		}
		ctx.Send(pid, &messages.OutboundFrame{Data: msg.Data, Prio: msg.Priority})
	case *messages.BroadcastFrame:
		via := func(id uint64) (radio, bool) {
			r, ok := m.bcast[id]
			return r, ok
		}
		if m.cfg.NoBroadcast != nil && m.cfg.NoBroadcast() {
			via = nil // once per peer, as before issue 12
		}
		plan := PlanBroadcast(m.table, msg.Except, len(msg.Data), via, msg.SkipBroadcast)
		for _, r := range plan.Broadcasts {
			m.broadcast(r, msg.Data, msg.Priority)
		}
		for _, pid := range plan.Unicast {
			ctx.Send(pid, &messages.OutboundFrame{Data: msg.Data, Prio: msg.Priority})
		}
	case *peerEvent:
		m.peers.Apply(*msg)
	case *discovered:
		m.onDiscovered(ctx, msg.d)
	case *actor.Terminated:
		for uri, pid := range m.dialers {
			if pid.Equal(msg.Who) {
				delete(m.dialers, uri)
			}
		}
		for a, pid := range m.byPeer {
			if pid.Equal(msg.Who) {
				delete(m.byPeer, a)
			}
		}
	case *messages.LinksRequest:
		ctx.Respond(&messages.LinksReply{Links: m.table.List(), Peers: m.peers.List()})
	case *messages.Drain:
		// No new links: stop accepting, dialing and discovering. The links
		// themselves keep sending until the tree stops.
		m.draining = true
		m.peers.Stopped(m.deps.clock.Now())
		m.closeDiscovery()
		for _, pid := range m.children {
			ctx.Send(pid, &quiesce{})
		}
		ctx.Respond(&messages.Drained{Actor: Name})
	case *messages.Persist:
		ctx.Respond(&messages.Persisted{Actor: Name})
	case *actor.Stopping:
		m.closeDiscovery()
	case *actor.Restarting:
		// The links, listeners and dialers stop with this instance: tell
		// the router and the announcer those links are gone (the next
		// instance does not know them), and leave it the linking state.
		m.closeDiscovery()
		for _, info := range m.table.List() {
			m.table.Remove(info.ID)
			ctx.ActorSystem().EventStream.Publish(&messages.PeerDown{Node: m.deps.self, Link: info, Reason: "transports manager restarted"})
		}
		m.gauge()
		if m.carry != nil {
			*m.carry = managerCarry{linking: m.linking, draining: m.draining}
		}
	case *failForTest:
		panic("links: manager test fault")
	}
}

func (m *manager) start(ctx actor.Context) {
	c := m.cfg
	m.deps.self = c.Identity.Address()
	m.deps.manager = ctx.Self()
	m.deps.ratelimit = c.Ratelimit
	m.deps.metrics = c.Metrics
	m.deps.log = c.Log
	m.deps.clock = c.Clock
	m.deps.backoff = c.Backoff
	m.deps.inbound = newInboundLimit(c.MaxInboundLinks, c.Metrics.Refused, c.Log, c.Clock)
	m.deps.mailboxes = make(map[string]actor.MailboxProducer)
	for name := range c.Transports {
		m.deps.mailboxes[name] = mailboxFor(name, c.QueueFrames, c.QueueBytes, c.Metrics)
		c.Metrics.InitTransport(name)
	}
	m.table = NewTable[*actor.PID]()
	m.bcast = make(map[uint64]radio)
	m.peers = NewPeers(c.Peers, c.Clock.Now())
	m.dialers = make(map[string]*actor.PID)
	m.byPeer = make(map[crypto.Address]*actor.PID)
}

// broadcast hands a frame for every neighbour to a radio. It does not
// block (a full radio queue refuses it, counted).
func (m *manager) broadcast(r radio, data []byte, prio messages.Priority) {
	if err := r.b.Broadcast(data, prio); err != nil {
		m.cfg.Metrics.Broadcasts.WithLabelValues(r.name, "dropped").Inc()
		m.deps.log.Debug("broadcast dropped", "transport", r.name, "err", err)
		return
	}
	m.cfg.Metrics.Broadcasts.WithLabelValues(r.name, "sent").Inc()
}

// startLinks starts accepting, dialing and discovering. It waits for
// StartLinks so that no link comes up (and no PeerUp is published) before
// the announcer and router listen for it.
func (m *manager) startLinks(ctx actor.Context) {
	c := m.cfg
	for _, b := range c.Listeners {
		// A fresh instance per (re)start: a restarted listener must not
		// share the failed one's state or accept loop.
		deps, ln, name := m.deps, b.Listener, b.URI
		pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &listenerActor{deps: deps, ln: ln, name: name} },
			actor.WithSupervisor(stopLinks)), "listen-"+sanitize(b.URI))
		if err != nil {
			panic(fmt.Sprintf("links: spawn listener %s: %v", b.URI, err))
		}
		m.children = append(m.children, pid)
	}
	for _, uri := range c.Peers {
		m.spawnDialer(ctx, uri, crypto.Address{}, false)
	}
	if c.Discovery != nil {
		m.startDiscovery(ctx)
	}
}

// spawnDialer starts a dialer for uri unless one runs already.
func (m *manager) spawnDialer(ctx actor.Context, uri string, want crypto.Address, once bool) *actor.PID {
	if _, ok := m.dialers[uri]; ok {
		return nil
	}
	scheme, addr, err := transports.ParseURI(uri)
	if err != nil {
		m.deps.log.Error("bad peer URI", "uri", uri, "err", err)
		m.peers.GaveUp(uri, "bad peer URI: "+err.Error(), m.deps.clock.Now())
		return nil
	}
	t, ok := m.cfg.Transports[scheme]
	if !ok {
		m.deps.log.Error("no transport for peer URI", "uri", uri)
		m.peers.GaveUp(uri, "no "+scheme+" transport on this node", m.deps.clock.Now())
		return nil
	}
	deps := m.deps
	pid := ctx.Spawn(actor.PropsFromProducer(func() actor.Actor {
		// A fresh instance per (re)start, dialling from its first attempt.
		return &dialerActor{deps: deps, uri: uri, transport: t, addr: addr, want: want, once: once}
	}, actor.WithSupervisor(stopLinks)))
	ctx.Watch(pid)
	m.dialers[uri] = pid
	m.children = append(m.children, pid)
	return pid
}

func (m *manager) startDiscovery(ctx actor.Context) {
	o := *m.cfg.Discovery
	o.Identity = m.cfg.Identity
	for _, b := range m.cfg.Listeners {
		scheme, _, _ := transports.ParseURI(b.URI)
		o.Listen = append(o.Listen, scheme+"://"+b.Listener.Addr())
	}
	sys, self := ctx.ActorSystem(), ctx.Self()
	o.OnDiscovered = func(d discovery.Discovered) { sys.Root.Send(self, &discovered{d: d}) }
	if o.Clock == nil {
		o.Clock = m.cfg.Clock
	}
	if o.Logger == nil {
		o.Logger = m.deps.log.With("component", "discovery")
	}
	svc, err := discovery.New(o)
	if err == nil {
		err = svc.Start()
	}
	if err != nil {
		m.deps.log.Error("LAN discovery not started", "err", err)
		return
	}
	m.disc = svc
	m.deps.log.Info("LAN discovery on", "listen", o.Listen)
}

// onDiscovered dials a peer heard on the LAN, unless it is connected or
// being dialed. Of two nodes that hear each other only the one with the
// smaller address dials, so they do not open two links.
func (m *manager) onDiscovered(ctx actor.Context, d discovery.Discovered) {
	if m.draining || m.table.Connected(d.Address) || m.byPeer[d.Address] != nil {
		return
	}
	if strings.Compare(m.deps.self.String(), d.Address.String()) > 0 {
		return
	}
	uri := preferredURI(d.URIs, m.cfg.Transports)
	if uri == "" {
		return
	}
	m.deps.log.Info("peer discovered on the LAN", "peer", d.Address.Short(), "uri", uri)
	if pid := m.spawnDialer(ctx, uri, d.Address, true); pid != nil {
		m.byPeer[d.Address] = pid
	}
}

// preferredURI picks QUIC over TCP among URIs we have a transport for.
func preferredURI(uris []string, ts map[string]transports.Transport) string {
	best := ""
	for _, u := range uris {
		scheme, _, err := transports.ParseURI(u)
		if err != nil || ts[scheme] == nil {
			continue
		}
		if scheme == "quic" || best == "" {
			best = u
		}
	}
	return best
}

func (m *manager) closeDiscovery() {
	if m.disc != nil {
		m.disc.Close()
		m.disc = nil
	}
}

func (m *manager) gauge() {
	counts := m.table.CountByTransport()
	for name := range m.cfg.Transports {
		m.cfg.Metrics.Peers.WithLabelValues(name).Set(float64(counts[name]))
	}
}

// sanitize makes a URI usable in an actor name.
func sanitize(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return strings.NewReplacer("/", "_", ":", "_").Replace(uri)
	}
	return u.Scheme + "-" + strings.NewReplacer("/", "_", ":", "_").Replace(u.Host+u.Path)
}
