package link

import (
	"context"
	"time"

	"github.com/quicprochat/qpc/transports/lora/rnode"
)

// RNodeRadio is an RNode modem (transports/lora/rnode) as a Radio, for
// lora+serial: New(NewRNodeRadio(modem), opts).
//
// A Modem is finished once its serial stream fails (rnode.Keep hands out
// a new one): the transport then fails its connections with ErrRadio, and
// the owner makes a new transport on the next modem.
type RNodeRadio struct{ m *rnode.Modem }

var (
	_ Radio         = (*RNodeRadio)(nil)
	_ Airtimer      = (*RNodeRadio)(nil)
	_ PacketLimiter = (*RNodeRadio)(nil)
)

// NewRNodeRadio wraps m; the transport made on it owns it (closes it).
func NewRNodeRadio(m *rnode.Modem) *RNodeRadio { return &RNodeRadio{m: m} }

// Send hands the packet to the modem (waiting while its queue is full).
func (r *RNodeRadio) Send(packet []byte) error { return r.m.Send(packet) }

// Recv returns the next packet the modem received (RSSI and SNR dropped).
func (r *RNodeRadio) Recv(ctx context.Context) ([]byte, error) {
	p, err := r.m.Recv(ctx)
	return p.Data, err
}

// Params are the modem's settings, with its frequency.
func (r *RNodeRadio) Params() RadioParams {
	return RadioParams{Params: r.m.Params(), Frequency: r.m.Config().Frequency}
}

// Airtime counts the RNode's 1-byte header and its preamble.
func (r *RNodeRadio) Airtime(n int) (time.Duration, error) { return r.m.Airtime(n) }

// MaxPacket is 254: with its header, a longer packet would go as two
// LoRa frames.
func (r *RNodeRadio) MaxPacket() int { return rnodeMaxPacket }

const rnodeMaxPacket = 254

// Close switches the radio off and releases the port.
func (r *RNodeRadio) Close() error { return r.m.Close() }

// Modem is the wrapped modem, for its Stats and Info.
func (r *RNodeRadio) Modem() *rnode.Modem { return r.m }
