package metrics

import "github.com/prometheus/client_golang/prometheus"

// Groups are the metrics of the keys actor (actors/keys): MLS and
// MLS-Lite groups and KeyPackages (docs/crypto.md).
type Groups struct {
	// Encryptions and Decryptions count group messages sealed and opened,
	// by mode (mls, mls-lite) and kind (application, commit, welcome).
	Encryptions *prometheus.CounterVec // mode, kind
	Decryptions *prometheus.CounterVec // mode, kind
	// Failures counts group messages refused, by mode and reason:
	// replay, wrong_epoch, tampered, not_member, unknown_group, malformed,
	// pending_dropped, error.
	Failures *prometheus.CounterVec // mode, reason
	// Pending is the number of group messages waiting for an earlier
	// commit.
	Pending prometheus.Gauge
	// Groups is the number of groups this node is in.
	Groups prometheus.Gauge
	// KeyPackages counts KeyPackage events: requests_received, requests_malformed,
	// requests_answered, requests_limited, answered_from_cache,
	// forwarded, responses_received, responses_refused, unavailable_sent,
	// unavailable_received, fetch_timeouts, rotated.
	KeyPackages *prometheus.CounterVec // event
	// CacheEntries is the number of others' KeyPackages held.
	CacheEntries prometheus.Gauge
}

func newGroups(r *prometheus.Registry) *Groups {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "groups", Name: name, Help: help}, labels)
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "groups", Name: name, Help: help})
	}
	m := &Groups{
		Encryptions:  cv("encryptions_total", "Group messages this node sealed, by mode (mls, mls-lite) and kind (application, commit, welcome).", "mode", "kind"),
		Decryptions:  cv("decryptions_total", "Group messages this node opened, by mode and kind.", "mode", "kind"),
		Failures:     cv("failures_total", "Group messages refused, by mode and reason (replay, wrong_epoch, tampered, not_member, unknown_group, malformed, pending_dropped, error).", "mode", "reason"),
		Pending:      g("pending_messages", "Group messages waiting for an earlier commit."),
		Groups:       g("groups", "Groups this node is a member of."),
		KeyPackages:  cv("keypackages_total", "KeyPackage events (requests_received, requests_malformed, requests_answered, requests_limited, answered_from_cache, forwarded, responses_received, responses_refused, unavailable_sent, unavailable_received, fetch_timeouts, rotated).", "event"),
		CacheEntries: g("keypackage_cache_entries", "Other nodes' KeyPackages held in the cache."),
	}
	r.MustRegister(m.Encryptions, m.Decryptions, m.Failures, m.Pending, m.Groups, m.KeyPackages, m.CacheEntries)
	return m
}
