package metrics

import "github.com/prometheus/client_golang/prometheus"

// Mesh are the metrics of announcer, router, store and ratelimit.
type Mesh struct {
	AnnouncesSent     prometheus.Counter
	AnnouncesAccepted prometheus.Counter
	AnnouncesRefused  *prometheus.CounterVec // reason: malformed, bad_signature, too_old, future, hops, stale, own
	Rebroadcasts      prometheus.Counter
	// RebroadcastsSuppressed: announce re-broadcasts not sent on a radio
	// because a neighbour was heard re-broadcasting the same announce
	// first (the managed flood, issue 12).
	RebroadcastsSuppressed prometheus.Counter
	Envelopes              *prometheus.CounterVec // result: delivered, forwarded, stored, broadcast
	EnvelopesDropped       *prometheus.CounterVec // reason: malformed, unknown_sender, bad_signature, expired, duplicate, replay, hop_limit, open_failed, no_route
	Routes                 prometheus.Gauge
	Lookups                prometheus.Counter
	LookupMisses           prometheus.Counter
	Stored                 prometheus.Gauge
	Held                   prometheus.Gauge       // envelopes waiting for their sender's announce
	StoreEvents            *prometheus.CounterVec // event: put, delivered, expired, refused, write_failed, read_failed
	RateLimited            *prometheus.CounterVec // class: envelope, announce, keypackage, fapp
	Receipts               prometheus.Counter
	// The outbox of this node's own messages.
	OutboxPending prometheus.Gauge
	Messages      *prometheus.CounterVec // state: accepted, delivered, failed
	Retransmits   prometheus.Counter
	OutboxFull    prometheus.Counter
	Commits       prometheus.Counter // group-commit transactions of the router
	CommitOps     prometheus.Counter // envelopes and sends those transactions covered
	// CompactSent: own messages sealed as compact envelopes (the first
	// hop was over constrained links only; issue 12).
	CompactSent prometheus.Counter
}

func newMesh(r *prometheus.Registry) *Mesh {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "mesh", Name: name, Help: help})
	}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "mesh", Name: name, Help: help}, labels)
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "mesh", Name: name, Help: help})
	}
	m := &Mesh{
		AnnouncesSent:     c("announces_sent_total", "Own announces sent: each broadcast (periodic, on a capability change) and each one to a neighbour that came up."),
		AnnouncesAccepted: c("announces_accepted_total", "Received announces that updated the routing table."),
		AnnouncesRefused:  cv("announces_refused_total", "Received announces refused, by reason.", "reason"),
		Rebroadcasts:      c("announces_rebroadcast_total", "Announces re-broadcast for others."),
		RebroadcastsSuppressed: c("rebroadcasts_suppressed_total",
			"Announce re-broadcasts left off the radio because a neighbour was heard re-broadcasting the same announce (destination and sequence) during the delay."),
		Envelopes:        cv("envelopes_total", "Envelopes handled, by result.", "result"),
		EnvelopesDropped: cv("envelopes_dropped_total", "Envelopes dropped, by reason.", "reason"),
		Routes:           g("routes", "Destinations in the routing table."),
		Lookups:          c("route_lookups_total", "Routing table lookups."),
		LookupMisses:     c("route_misses_total", "Routing table lookups without a route."),
		Stored:           g("stored", "Envelopes held for unreachable destinations."),
		Held:             g("held_envelopes", "Envelopes from senders whose announce has not arrived yet, held until it does (or for 30 s)."),
		StoreEvents:      cv("store_events_total", "Store-and-forward events: put, delivered, expired, refused, write_failed, read_failed.", "event"),
		RateLimited:      cv("ratelimited_total", "Inbound frames over a peer's rate, dropped, by class.", "class"),
		Receipts:         c("receipts_total", "Delivery receipts received for our own messages."),
		OutboxPending:    g("outbox_pending", "Own messages accepted and waiting for a receipt or their expiry."),
		Messages:         cv("messages_total", "Own messages by outcome: accepted, delivered (receipt verified), failed (expired).", "state"),
		Retransmits:      c("retransmits_total", "Retransmissions of own messages that had no receipt yet."),
		CompactSent:      c("compact_sent_total", "Own messages accepted as compact sealed envelopes (HPKE auth mode, no signature) because the first hop was over constrained links only."),
		OutboxFull:       c("outbox_full_total", "Sends refused because the outbox was full (the API answered 429)."),
		Commits:          c("commits_total", "Router group-commit transactions (one fsync each)."),
		CommitOps:        c("commit_ops_total", "Envelopes and sends covered by the router's group commits; divided by commits_total, the mean batch."),
	}
	r.MustRegister(m.AnnouncesSent, m.AnnouncesAccepted, m.AnnouncesRefused, m.Rebroadcasts, m.RebroadcastsSuppressed, m.Envelopes,
		m.EnvelopesDropped, m.Routes, m.Lookups, m.LookupMisses, m.Stored, m.Held, m.StoreEvents, m.RateLimited, m.Receipts,
		m.OutboxPending, m.Messages, m.Retransmits, m.OutboxFull, m.Commits, m.CommitOps, m.CompactSent)
	return m
}
