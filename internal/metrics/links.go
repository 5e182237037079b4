package metrics

import "github.com/prometheus/client_golang/prometheus"

// Links are the per-transport metrics of the transports subtree.
type Links struct {
	FramesSent     *prometheus.CounterVec // transport
	BytesSent      *prometheus.CounterVec // transport
	FramesReceived *prometheus.CounterVec // transport
	BytesReceived  *prometheus.CounterVec // transport
	Errors         *prometheus.CounterVec // transport, reason
	Shed           *prometheus.CounterVec // transport, priority
	Backpressure   *prometheus.CounterVec // transport: reads held back for lack of credit
	Peers          *prometheus.GaugeVec   // transport
	Dials          *prometheus.CounterVec // transport, result
	Refused        *prometheus.CounterVec // transport, reason: inbound links refused after the handshake
	NoLink         prometheus.Counter
	Broadcasts     *prometheus.CounterVec // transport, result (sent, dropped): frames for every neighbour sent once per radio
}

func newLinks(r *prometheus.Registry) *Links {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "link", Name: name, Help: help}, labels)
	}
	l := &Links{
		FramesSent:     cv("frames_sent_total", "Frames written to links.", "transport"),
		BytesSent:      cv("bytes_sent_total", "Frame bytes written to links.", "transport"),
		FramesReceived: cv("frames_received_total", "Frames read from links.", "transport"),
		BytesReceived:  cv("bytes_received_total", "Frame bytes read from links.", "transport"),
		Errors:         cv("errors_total", "Links closed on an error, by reason (frame_too_large, bad_frame, read, write, handshake).", "transport", "reason"),
		Shed:           cv("frames_shed_total", "Outbound frames shed by a full link queue, by priority.", "transport", "priority"),
		Backpressure:   cv("backpressure_total", "Times a link's reader waited for credit (the node was busy with that peer's frames): the peer is slowed, nothing is dropped.", "transport"),
		Dials:          cv("dials_total", "Outbound dial attempts by result (ok, error, self).", "transport", "result"),
		Refused:        cv("refused_total", "Inbound links refused after the handshake, by reason (max_inbound_links).", "transport", "reason"),
		Broadcasts:     cv("broadcasts_total", "Frames for every neighbour sent as one broadcast of a radio instead of one frame per peer, by result (sent, dropped: the radio's queue was full).", "transport", "result"),
		Peers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "link", Name: "peers_connected", Help: "Connected links by transport.",
		}, []string{"transport"}),
		NoLink: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "link", Name: "no_route_total", Help: "Frames for a peer with no connected link, dropped.",
		}),
	}
	r.MustRegister(l.FramesSent, l.BytesSent, l.FramesReceived, l.BytesReceived, l.Errors, l.Shed, l.Backpressure, l.Dials, l.Refused, l.Peers, l.NoLink, l.Broadcasts)
	return l
}

// InitTransport makes a transport's series exist at zero.
func (l *Links) InitTransport(name string) {
	l.FramesSent.WithLabelValues(name)
	l.BytesSent.WithLabelValues(name)
	l.FramesReceived.WithLabelValues(name)
	l.BytesReceived.WithLabelValues(name)
	l.Peers.WithLabelValues(name)
}
