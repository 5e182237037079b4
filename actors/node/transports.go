package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quicprochat/qpc/actors/links"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/discovery"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
	"github.com/quicprochat/qpc/transports/lora/rnode"
	"github.com/quicprochat/qpc/transports/mem"
	"github.com/quicprochat/qpc/transports/quic"
	"github.com/quicprochat/qpc/transports/tcp"
)

// ErrTransport wraps failures to set up a transport.
var ErrTransport = errors.New("node: transport")

// openTransports builds one transport per scheme the config uses and binds
// every listen URI, before the actor tree starts: a port in use fails the
// start with a clear error, and an actor restart never loses a bound port.
func (n *Node) openTransports(ctx context.Context) error {
	cfg := n.cfg.Transports
	n.transports = make(map[string]transports.Transport)
	onHS := func(name string) func(string, error) {
		return func(remote string, err error) {
			reason := "handshake"
			if errors.Is(err, transports.ErrListenerBusy) {
				reason = "handshake_refused" // closed before its handshake: too many pending from its source, or in all
			}
			n.metrics.Links.Errors.WithLabelValues(name, reason).Inc()
		}
	}
	// One budget for the large frames being read on every stream link; it
	// must hold the largest frame (validation says so; a Config built by
	// hand may leave it zero).
	budgetSize := cfg.FrameBufferBytes
	if budgetSize <= 0 {
		budgetSize = config.Default().Transports.FrameBufferBytes
	}
	if limit, err := transports.FrameLimit(cfg.MaxFrameSize); err == nil {
		budgetSize = max(budgetSize, limit)
	}
	budget := transports.NewFrameBudget(int64(budgetSize))
	n.metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "qpc", Subsystem: "link", Name: "frame_buffer_bytes",
			Help: "Bytes reserved by frames above 64 KiB still being read, on all links (at most transports.frame_buffer_bytes)."},
			func() float64 { return float64(budget.InUse()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "qpc", Subsystem: "link", Name: "frame_buffer_waits_total",
			Help: "Frames that waited for room in transports.frame_buffer_bytes before their body was read."},
			func() float64 { return float64(budget.Waits()) }),
	)
	need := map[string]bool{"tcp": true, "quic": true} // always able to dial IP peers
	if n.opts.memNet != nil {
		need["mem"] = true
	}
	for _, uri := range append(append([]string{}, cfg.Listen...), cfg.Peers...) {
		scheme, _, err := transports.ParseURI(uri)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrTransport, uri, err)
		}
		if scheme == transports.SchemeLoRaMock || scheme == transports.SchemeLoRaSerial {
			continue // one transport per radio, made with its listener below
		}
		need[scheme] = true
	}
	log := n.log.With("component", "transports")
	for scheme := range need {
		var t transports.Transport
		var err error
		switch scheme {
		case "tcp":
			t, err = tcp.New(tcp.Options{Identity: n.id, MaxFrameSize: cfg.MaxFrameSize, OnHandshakeError: onHS("tcp"), Logger: log,
				AcceptTimeout: cfg.AcceptTimeout.D(), FrameTimeout: cfg.FrameTimeout.D(), FrameBudget: budget})
		case "quic":
			t, err = quic.New(quic.Options{Identity: n.id, MaxFrameSize: cfg.MaxFrameSize, OnHandshakeError: onHS("quic"), Logger: log,
				AcceptTimeout: cfg.AcceptTimeout.D(), FrameTimeout: cfg.FrameTimeout.D(), FrameBudget: budget})
		case "mem":
			if n.opts.memNet == nil {
				return fmt.Errorf("%w: mem:// needs an in-process network (node.WithMemNetwork)", ErrTransport)
			}
			t, err = n.opts.memNet.NewTransport(mem.Options{Identity: n.id, Name: n.id.Address().String(), MaxFrameSize: cfg.MaxFrameSize})
		default:
			return fmt.Errorf("%w: the %s transport is not available in this build yet", ErrTransport, scheme)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrTransport, scheme, err)
		}
		n.transports[scheme] = t
	}
	for _, uri := range cfg.Listen {
		scheme, addr, _ := transports.ParseURI(uri)
		t := n.transports[scheme]
		if scheme == transports.SchemeLoRaMock || scheme == transports.SchemeLoRaSerial {
			lt, err := n.openRadio(uri, scheme, addr)
			if err != nil {
				return err
			}
			t, addr = lt, ""
		}
		ln, err := t.Listen(ctx, addr)
		if err != nil {
			return fmt.Errorf("%w: listen %s: %w", ErrTransport, uri, err)
		}
		n.listeners = append(n.listeners, links.Bound{URI: uri, Listener: ln})
		n.log.Info("listening", "transport", scheme, "addr", ln.Addr())
	}
	return nil
}

// rnodeMaxPacket is the largest packet an RNode sends in one LoRa frame
// (it adds a 1-byte header on air).
const rnodeMaxPacket = 254

// openRadio makes the transport of one LoRa radio. A radio is a shared
// channel: it is listened on, and its peers are found by their HELLOs.
func (n *Node) openRadio(uri, scheme, addr string) (*link.Transport, error) {
	lc := n.cfg.Transports.LoRa
	a, err := link.ParseAddr(addr, link.RadioParams{})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTransport, uri, err)
	}
	region, err := lora.RegionByName(lc.Region)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTransport, uri, err)
	}
	if a.Region != "" {
		if region, err = lora.RegionByName(a.Region); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTransport, uri, err)
		}
	}
	mtu := lc.MTU
	if a.MTU != 0 {
		mtu = a.MTU
	}
	// The transmit power: txp= in the URI, else transports.lora.tx_power,
	// else the highest the region allows on the channel; never above the
	// sub-band's limit (config validation says so first, with exit 2).
	txp, err := link.TxPowerFor(a, region, lc.TxPower)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w: %w", ErrTransport, uri, config.ErrInvalid, err)
	}
	_, band, _ := region.MaxTxPower(cmp.Or(a.Radio.Frequency, uint32(link.DefaultFrequency)), cmp.Or(a.Radio.Bandwidth, link.DefaultBandwidth))
	radio := &loraRadio{channel: a.Channel, scheme: scheme, region: region, band: band, txp: txp, since: n.clock.Now()}
	opts := link.Options{
		Identity: n.id, Channel: a.Channel, Radio: a.Radio,
		Region: region, DataShare: lc.DataShare, MTU: mtu, Clock: n.clock, AnnounceShare: lc.AnnounceShare,
		Logger: n.log.With("component", "lora", "channel", a.Channel),
	}
	if n.opts.linkOptions != nil {
		n.opts.linkOptions(&opts)
	}
	var t *link.Transport
	switch scheme {
	case transports.SchemeLoRaSerial:
		// A real RNode: detect it, configure it and check every echoed
		// setting before the node starts (a mismatch refuses to run).
		p := a.Radio
		cr := link.DefaultCR
		if p.CR != 0 {
			cr = p.CR
		}
		// A modem that goes away later is re-opened by the rnode.Device,
		// under the same transport (link.RNodeDeviceRadio).
		rc := rnode.Config{
			Frequency: cmp.Or(p.Frequency, uint32(link.DefaultFrequency)), Bandwidth: cmp.Or(p.Bandwidth, link.DefaultBandwidth),
			SF: cmp.Or(p.SF, link.DefaultSF), CR: cr.Denominator(), Logger: opts.Logger, Clock: n.clock,
			// The default power is the region's limit, which a board may not
			// reach (SX1276: 17 dBm): it may take less. A txp the user set
			// must be echoed exactly.
			TxPower: txp, TxPowerCeiling: a.TxPower == nil && lc.TxPower == 0,
		}
		if n.opts.rnodeConfig != nil {
			n.opts.rnodeConfig(&rc)
		}
		d, err := rnode.OpenDevice(a.Channel, rc)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTransport, uri, err)
		}
		if opts.MTU > rnodeMaxPacket {
			opts.MTU = 0 // the modem's own limit: an RNode packet holds 254 bytes
		}
		if t, err = link.New(link.NewRNodeDeviceRadio(d), opts); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTransport, uri, err) // New closed d
		}
		radio.dev = d
	default:
		if n.opts.loraMock == nil {
			return nil, fmt.Errorf("%w: %s: lora+mock:// needs a simulated LoRa network (node.WithLoRaMock)", ErrTransport, uri)
		}
		opts.Medium = n.opts.loraMock.Medium(a.Channel)
		if t, err = link.NewMock(opts); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTransport, uri, err)
		}
	}
	n.radios = append(n.radios, t)
	radio.t = t
	n.loraRadios = append(n.loraRadios, radio)
	n.registerRadioMetrics(radio)
	n.metrics.Links.InitTransport(t.Info().Name)
	labels := prometheus.Labels{"radio": a.Channel}
	n.metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "qpc", Subsystem: "lora", Name: "airtime_used_seconds",
			Help: "Airtime used in the last hour in the radio's duty-cycle sub-band.", ConstLabels: labels},
			func() float64 { return t.Stats().SubBand.Used.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "qpc", Subsystem: "lora", Name: "airtime_remaining_seconds",
			Help: "Airtime left in the rolling hour of the radio's sub-band.", ConstLabels: labels},
			func() float64 { return t.Stats().SubBand.Remaining.Seconds() }),
	)
	// Frames the link gave up after its last round, by reason (issue
	// 12): dropped alone while the peer is heard (the end-to-end
	// retransmission recovers them), failed with the link when the peer
	// was silent for the window.
	for _, g := range []struct {
		reason string
		of     func(link.Stats) uint64
	}{
		{"dropped", func(s link.Stats) uint64 { return s.FramesDropped }},
		{"peer_lost", func(s link.Stats) uint64 { return s.FramesFailed }},
	} {
		n.metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "qpc", Subsystem: "lora", Name: "frames_given_up_total",
			Help:        "Frames not acknowledged after the link's last round, by reason: dropped (the peer is heard, the Conn stays; the end-to-end retransmission recovers them), peer_lost (the peer was silent for the window: the link failed).",
			ConstLabels: prometheus.Labels{"radio": a.Channel, "reason": g.reason}},
			func() float64 { return float64(g.of(t.Stats())) }))
	}
	// Airtime by kind of packet since the start (issue 12 item 1).
	for _, k := range []struct {
		kind string
		of   func(link.AirtimeByKind) time.Duration
	}{
		{"announce", func(a link.AirtimeByKind) time.Duration { return a.Announce }},
		{"hello", func(a link.AirtimeByKind) time.Duration { return a.Hello }},
		{"data", func(a link.AirtimeByKind) time.Duration { return a.Data }},
		{"control", func(a link.AirtimeByKind) time.Duration { return a.Control }},
	} {
		n.metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "qpc", Subsystem: "lora", Name: "airtime_seconds_total",
			Help:        "Airtime the radio used since the start, by kind: announce (their data packets), hello, data (other frames), control (ACK, NACK, BYE).",
			ConstLabels: prometheus.Labels{"radio": a.Channel, "kind": k.kind}},
			func() float64 { return k.of(t.Stats().Airtime).Seconds() }))
	}
	return t, nil
}

func (n *Node) closeListeners() error {
	var errs []error
	defer func() {
		for _, r := range n.radios {
			if err := r.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		n.radios = nil
	}()
	for _, b := range n.listeners {
		if err := b.Listener.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: close listener %s: %w", b.URI, err))
		}
	}
	n.listeners = nil
	return errors.Join(errs...)
}

func (n *Node) childPID(name string) *actor.PID {
	return actor.NewPID(n.rootPID.Address, n.rootPID.Id+"/"+name)
}

// Send queues a frame for a directly connected peer on the best link for
// its size. It is dropped (and counted) when no link reaches the peer, or
// shed by priority when the link's queue is full.
func (n *Node) Send(peer crypto.Address, frame []byte, prio messages.Priority) error {
	if !n.running.Load() {
		return ErrNotRunning
	}
	n.system.Root.Send(n.childPID(links.Name), &messages.SendFrame{Peer: peer, Data: frame, Priority: prio})
	return nil
}

// Links lists the node's connected links.
func (n *Node) Links(ctx context.Context) ([]messages.LinkInfo, error) {
	r, err := n.linksReply(ctx)
	if err != nil {
		return nil, err
	}
	return r.Links, nil
}

// Peers lists the configured peers (transports.peers) with their state:
// up, dialling, backing off until the next attempt, given up; attempts
// and the last error.
func (n *Node) Peers(ctx context.Context) ([]messages.PeerStatus, error) {
	r, err := n.linksReply(ctx)
	if err != nil {
		return nil, err
	}
	return r.Peers, nil
}

func (n *Node) linksReply(ctx context.Context) (*messages.LinksReply, error) {
	if !n.running.Load() {
		return nil, ErrNotRunning
	}
	timeout := 2 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	res, err := n.system.Root.RequestFuture(n.childPID(links.Name), &messages.LinksRequest{}, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("node: ask transports for links: %w", err)
	}
	r, ok := res.(*messages.LinksReply)
	if !ok {
		return nil, fmt.Errorf("node: unexpected links reply %T", res)
	}
	return r, nil
}

// ListenAddrs are the bound listen addresses as URIs (useful with port 0).
func (n *Node) ListenAddrs() []string {
	out := make([]string, 0, len(n.listeners))
	for _, b := range n.listeners {
		scheme, _, _ := transports.ParseURI(b.URI)
		out = append(out, scheme+"://"+b.Listener.Addr())
	}
	return out
}

func (n *Node) statusLinks(ctx context.Context) ([]api.Listener, []api.Link, []api.Peer, error) {
	ls := make([]api.Listener, 0, len(n.listeners))
	for _, b := range n.listeners {
		scheme, _, _ := transports.ParseURI(b.URI)
		ls = append(ls, api.Listener{Transport: scheme, Addr: b.Listener.Addr()})
	}
	r, err := n.linksReply(ctx)
	if err != nil {
		return ls, []api.Link{}, []api.Peer{}, err
	}
	peers := make([]api.Peer, 0, len(r.Peers))
	for _, p := range r.Peers {
		peers = append(peers, apiPeer(p))
	}
	out := make([]api.Link, 0, len(r.Links))
	for _, l := range r.Links {
		dir := "inbound"
		if l.Outbound {
			dir = "outbound"
		}
		out = append(out, api.Link{
			Peer: crypto.Address(l.Peer).String(), Transport: l.Transport, Remote: l.Remote,
			Direction: dir, Since: l.Since, Class: l.Class,
		})
	}
	return ls, out, peers, nil
}

// apiPeer is a configured peer's status as /v1/status shows it.
func apiPeer(p messages.PeerStatus) api.Peer {
	out := api.Peer{URI: p.URI, State: p.State, Since: p.Since, Attempts: p.Attempts, Failures: p.Failures, LastError: p.LastError}
	if p.Peer != ([16]byte{}) {
		out.Peer = crypto.Address(p.Peer).String()
	}
	if !p.LastErrorAt.IsZero() {
		at := p.LastErrorAt
		out.LastErrorAt = &at
	}
	if !p.NextAttempt.IsZero() {
		next := p.NextAttempt
		out.NextAttempt = &next
	}
	return out
}

// linksConfig wires the transports subtree.
func (n *Node) linksConfig(ratelimit *actor.PID) links.Config {
	cfg := n.cfg.Transports
	b := links.DefaultBackoff
	b.Max = cfg.DialBackoff.D()
	if n.opts.backoff != nil {
		b = *n.opts.backoff
	}
	lc := links.Config{
		Identity: n.id, Transports: n.transports, Listeners: n.listeners, Peers: cfg.Peers,
		Ratelimit: ratelimit, Metrics: n.metrics.Links, Log: n.log.With("component", "transports"),
		Clock: n.clock, Backoff: b, QueueFrames: cfg.QueueFrames, QueueBytes: cfg.QueueBytes,
		MaxInboundLinks: cfg.MaxInboundLinks, NoBroadcast: n.opts.perPeerFanout,
	}
	switch {
	case n.opts.discovery != nil:
		lc.Discovery = n.opts.discovery
	case cfg.Discovery:
		lc.Discovery = &discovery.Options{}
	}
	return lc
}
