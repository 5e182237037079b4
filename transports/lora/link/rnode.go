package link

import (
	"context"
	"time"

	"github.com/quicprochat/qpc/transports/lora/rnode"
)

// RNodeRadio is an RNode modem (transports/lora/rnode) as a Radio, for
// lora+serial: New(NewRNodeRadio(modem), opts).
//
// A Modem is finished once its serial stream fails: the transport then
// fails its connections with ErrRadio. For a modem that may go away and
// come back, use NewRNodeDeviceRadio on an rnode.Device instead.
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

// RNodeDeviceRadio is an rnode.Device as a Radio: the RNode the node runs
// on for lora+serial. When the modem goes away the Device re-opens it;
// meanwhile its connections end with ErrRadioDown, Send fails with
// rnode.ErrDown (a lost packet) and Recv waits, so the transport outlives
// the modem, and when it is back (Reviver) the transport greets its peers
// and links with them again.
type RNodeDeviceRadio struct{ d *rnode.Device }

var (
	_ Radio         = (*RNodeDeviceRadio)(nil)
	_ Airtimer      = (*RNodeDeviceRadio)(nil)
	_ PacketLimiter = (*RNodeDeviceRadio)(nil)
	_ Reviver       = (*RNodeDeviceRadio)(nil)
)

// NewRNodeDeviceRadio wraps d; the transport made on it owns it.
func NewRNodeDeviceRadio(d *rnode.Device) *RNodeDeviceRadio { return &RNodeDeviceRadio{d: d} }

// Send hands the packet to the modem; rnode.ErrDown while it is away.
func (r *RNodeDeviceRadio) Send(packet []byte) error { return r.d.Send(packet) }

// Recv returns the next packet received, waiting while the modem is away.
func (r *RNodeDeviceRadio) Recv(ctx context.Context) ([]byte, error) {
	p, err := r.d.Recv(ctx)
	return p.Data, err
}

// Params are the modem's settings, with its frequency.
func (r *RNodeDeviceRadio) Params() RadioParams {
	return RadioParams{Params: r.d.Params(), Frequency: r.d.Config().Frequency}
}

// Airtime counts the RNode's 1-byte header and its preamble.
func (r *RNodeDeviceRadio) Airtime(n int) (time.Duration, error) { return r.d.Airtime(n) }

// MaxPacket is 254, as for RNodeRadio.
func (r *RNodeDeviceRadio) MaxPacket() int { return rnodeMaxPacket }

// OnUp is the Device's: f runs each time the modem is back.
func (r *RNodeDeviceRadio) OnUp(f func()) { r.d.OnUp(f) }

// OnDown is the Device's: f runs each time the modem has gone away.
func (r *RNodeDeviceRadio) OnDown(f func()) { r.d.OnDown(f) }

// Close stops re-opening, switches the radio off and releases the port.
func (r *RNodeDeviceRadio) Close() error { return r.d.Close() }

// Device is the wrapped device, for its State.
func (r *RNodeDeviceRadio) Device() *rnode.Device { return r.d }
