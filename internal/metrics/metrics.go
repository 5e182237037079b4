// Package metrics owns a node's Prometheus registry. Each node has its own
// registry (the simulator runs hundreds of nodes in one process), with the
// node-wide metrics defined here; subsystems register theirs on Registry.
package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// Namespace prefixes every metric name.
const Namespace = "qpc"

// Node holds the registry and the node-wide metrics.
type Node struct {
	Registry *prometheus.Registry

	ActorRestarts   *prometheus.CounterVec // actor
	ActorFailures   *prometheus.CounterVec // actor
	ActorsRunning   prometheus.Gauge
	ShutdownPhase   prometheus.Gauge
	StartTime       prometheus.Gauge
	APIRequests     *prometheus.CounterVec // path, code
	FramesInjected  prometheus.Counter
	FramesDelivered prometheus.Counter
	FramesRefused   *prometheus.CounterVec // reason
	Links           *Links
	Mesh            *Mesh
	FAPP            *FAPP
	Groups          *Groups
}

// Options for New.
type Options struct {
	// Process adds the Go runtime and process collectors (for a real
	// process; the simulator leaves them off).
	Process bool
	Version string
}

// New creates a registry with the node-wide metrics registered.
func New(o Options) *Node {
	r := prometheus.NewRegistry()
	m := &Node{
		Registry: r,
		ActorRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "actor_restarts_total",
			Help: "Actors restarted by their supervisor after a failure.",
		}, []string{"actor"}),
		ActorFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "actor_failures_total",
			Help: "Actor failures (panics) seen by a supervisor, restarted or not.",
		}, []string{"actor"}),
		ActorsRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "actors_running",
			Help: "Top-level actors of the node currently running.",
		}),
		ShutdownPhase: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "shutdown_phase",
			Help: "Shutdown phase: 0 Running, 1 Draining, 2 Persisting, 3 Cleanup, 4 Complete.",
		}),
		StartTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "start_time_seconds",
			Help: "Unix time the node started.",
		}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "api_requests_total",
			Help: "Admin API requests by path and status code.",
		}, []string{"path", "code"}),
		FramesInjected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "frames_injected_total",
			Help: "Frames handed to the node through its Go API.",
		}),
		FramesDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "frames_delivered_total",
			Help: "Delivered messages the Go API's Deliveries channel handed to its reader (read from the inbox).",
		}),
		FramesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "frames_refused_total",
			Help: "Inbound frames refused before routing, by reason.",
		}, []string{"reason"}),
	}
	r.MustRegister(m.ActorRestarts, m.ActorFailures, m.ActorsRunning, m.ShutdownPhase,
		m.StartTime, m.APIRequests, m.FramesInjected, m.FramesDelivered, m.FramesRefused)
	m.Links = newLinks(r)
	m.Mesh = newMesh(r)
	m.FAPP = newFAPP(r)
	m.Groups = newGroups(r)
	bi := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; the version label names the build.",
		ConstLabels: prometheus.Labels{"version": o.Version},
	})
	bi.Set(1)
	r.MustRegister(bi)
	if o.Process {
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Sample is one time series in a snapshot.
type Sample struct {
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
	// Count and Sum are set for histograms and summaries.
	Count uint64  `json:"count,omitempty"`
	Sum   float64 `json:"sum,omitempty"`
}

// Family is one metric with its samples.
type Family struct {
	Name    string   `json:"name"`
	Help    string   `json:"help"`
	Type    string   `json:"type"`
	Samples []Sample `json:"samples"`
}

// Snapshot gathers the registry into plain values (the /v1/stats JSON).
// Families are sorted by name.
func Snapshot(g prometheus.Gatherer) ([]Family, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	out := make([]Family, 0, len(mfs))
	for _, mf := range mfs {
		f := Family{Name: mf.GetName(), Help: mf.GetHelp(), Type: mf.GetType().String()}
		for _, m := range mf.GetMetric() {
			s := Sample{}
			if lp := m.GetLabel(); len(lp) > 0 {
				s.Labels = make(map[string]string, len(lp))
				for _, l := range lp {
					s.Labels[l.GetName()] = l.GetValue()
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				s.Value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.Value = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				s.Value = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.Count, s.Sum = m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			case dto.MetricType_SUMMARY:
				s.Count, s.Sum = m.GetSummary().GetSampleCount(), m.GetSummary().GetSampleSum()
			}
			f.Samples = append(f.Samples, s)
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
