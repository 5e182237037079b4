package node

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
	"github.com/quicprochat/qpc/transports/lora/rnode"
)

// loraRadio is one LoRa radio of the node as status and metrics see it.
type loraRadio struct {
	channel string
	scheme  string
	region  lora.Region
	band    lora.SubBand
	t       *link.Transport
	dev     *rnode.Device // nil for lora+mock
	txp     int           // asked, dBm
	since   time.Time     // when a mock radio started
}

// up reports whether the radio runs: a serial modem until it goes away,
// a mock radio always.
func (r *loraRadio) up() bool { return r.dev == nil || r.dev.Up() }

// status is the radio as /v1/status shows it.
func (r *loraRadio) status() api.Radio {
	p := r.t.Params()
	out := api.Radio{
		Channel: r.channel, Transport: r.scheme, State: "up", Since: r.since,
		Frequency: p.Frequency, Bandwidth: p.Bandwidth, SF: p.SF, CR: p.CR.String(),
		TxPower: r.txp, TxPowerLimit: r.band.MaxPower, SubBand: r.band.Name, Region: r.region.Name(),
	}
	if r.dev == nil {
		return out
	}
	st := r.dev.State()
	out.Since, out.Reopens, out.Failures, out.LastError = st.Since, st.Reopens, st.Failures, st.LastError
	out.TxPower, out.Firmware = st.Info.TxPower, st.Info.Firmware
	if !st.Up {
		out.State = "down"
		if !st.NextAttempt.IsZero() {
			next := st.NextAttempt
			out.NextAttempt = &next
		}
	}
	return out
}

// txPower is what the radio transmits at: the modem's echo, or for a
// mock radio the power asked.
func (r *loraRadio) txPower() int {
	if r.dev != nil {
		return r.dev.Info().TxPower
	}
	return r.txp
}

// registerRadioMetrics adds the gauges of one radio (labelled radio=its
// channel) to the node's registry.
func (n *Node) registerRadioMetrics(r *loraRadio) {
	labels := prometheus.Labels{"radio": r.channel}
	n.metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "qpc", Subsystem: "lora", Name: "radio_up",
			Help: "1 while the radio runs, 0 while its serial modem is away and being re-opened.", ConstLabels: labels},
			func() float64 {
				if r.up() {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "qpc", Subsystem: "lora", Name: "radio_reopens_total",
			Help: "Times the radio's serial modem was started again after it went away.", ConstLabels: labels},
			func() float64 {
				if r.dev == nil {
					return 0
				}
				return float64(r.dev.State().Reopens)
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "qpc", Subsystem: "lora", Name: "radio_reopen_failures_total",
			Help: "Attempts to re-open the radio's serial modem that failed (port missing, no answer, a setting not taken).", ConstLabels: labels},
			func() float64 {
				if r.dev == nil {
					return 0
				}
				return float64(r.dev.State().Failures)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "qpc", Subsystem: "lora", Name: "tx_power_dbm",
			Help: "Transmit power of the radio in dBm (what the modem echoed).", ConstLabels: labels},
			func() float64 { return float64(r.txPower()) }),
	)
}

// radioStatus lists the node's LoRa radios for /v1/status.
func (n *Node) radioStatus() []api.Radio {
	out := make([]api.Radio, 0, len(n.loraRadios))
	for _, r := range n.loraRadios {
		out = append(out, r.status())
	}
	return out
}

// ReadyDetail names, for /readyz, each LoRa radio that is down. A radio
// down does not make the node unready: its other links and the radio's
// peers, once the modem is back, still work.
func (n *Node) ReadyDetail(context.Context) []string {
	var out []string
	for _, r := range n.loraRadios {
		if r.up() {
			continue
		}
		st := r.dev.State()
		line := fmt.Sprintf("degraded: lora radio %s down since %s, re-opening", r.channel, st.Since.UTC().Format(time.RFC3339))
		if st.LastError != "" {
			line += ": " + st.LastError
		}
		out = append(out, line)
	}
	return out
}
