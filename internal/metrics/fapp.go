package metrics

import "github.com/prometheus/client_golang/prometheus"

// FAPP are the metrics of the FAPP actor (actors/fapp, docs/fapp.md).
type FAPP struct {
	// Received counts FAPP frames handed to the actor, by kind.
	Received *prometheus.CounterVec // kind: announce, query, response, reserve, answer, malformed
	// Announces counts received announces by what became of them.
	Announces *prometheus.CounterVec // outcome: added, replaced, duplicate, stale, conflict, bad_signature, unbound, expired, ttl_too_long, full, malformed, therapist_rate, not_relay, error
	// Forwarded counts frames sent on for others, by kind.
	Forwarded *prometheus.CounterVec // kind
	// Dropped counts frames not acted on, by kind and reason.
	Dropped *prometheus.CounterVec // kind, reason: duplicate, hop_limit, no_path, loop, malformed, not_ours, role, error
	// Answered counts queries this node answered (from its store or its
	// own practice), and the announces those responses carried.
	Answered          prometheus.Counter
	AnsweredAnnounces prometheus.Counter
	// Own counts this node's own FAPP actions.
	Own *prometheus.CounterVec // event: published, announced, searches, responses, reservations, answers_received, requests_received, answers_sent
	// Paths is the number of reverse-path entries held (queries and
	// reservations); Announces and slots held by the relay store.
	Paths      prometheus.Gauge
	StoreSets  prometheus.Gauge
	StoreSlots prometheus.Gauge
}

func newFAPP(r *prometheus.Registry) *FAPP {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "fapp", Name: name, Help: help}, labels)
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "fapp", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "fapp", Name: name, Help: help})
	}
	m := &FAPP{
		Received:          cv("frames_received_total", "FAPP frames handed to the FAPP actor, by kind.", "kind"),
		Announces:         cv("announces_total", "Received FAPP slot announces by outcome (added, replaced, duplicate, stale, conflict, bad_signature, unbound, expired, ttl_too_long, full, malformed, therapist_rate, not_relay, error).", "outcome"),
		Forwarded:         cv("forwarded_total", "FAPP frames sent on for others, by kind.", "kind"),
		Dropped:           cv("dropped_total", "FAPP frames dropped, by kind and reason (duplicate, hop_limit, no_path, loop, malformed, not_ours, role, error).", "kind", "reason"),
		Answered:          c("queries_answered_total", "FAPP queries this node answered with a response (from its relay store or its own practice)."),
		AnsweredAnnounces: c("answered_announces_total", "Announces carried by the responses this node made."),
		Own:               cv("own_total", "This node's own FAPP actions, by event (published, announced, searches, responses, reservations, answers_received, requests_received, answers_sent).", "event"),
		Paths:             g("reverse_paths", "Reverse-path entries held for queries and reservations of others."),
		StoreSets:         g("store_announces", "Therapists' announces held in the relay store."),
		StoreSlots:        g("store_slots", "Slots held in the relay store."),
	}
	r.MustRegister(m.Received, m.Announces, m.Forwarded, m.Dropped, m.Answered, m.AnsweredAnnounces, m.Own, m.Paths, m.StoreSets, m.StoreSlots)
	return m
}
