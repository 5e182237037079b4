package lora

import (
	"fmt"

	"github.com/quicprochat/qpc/transports"
)

// InfoName is the transports.Info Name of LoRa links.
const InfoName = "lora"

// LinkInfo describes a LoRa link with modulation p and packet size mtu
// (0 for MTUFor(p)): MTU is one packet, MaxFrame what fragmentation can
// carry (MaxFrameFor), Bitrate the modulation's effective rate (Bitrate),
// Class derived from those. SF7–SF9 at 125 kHz come out Constrained,
// SF10–SF12 SeverelyConstrained, as transports.ClassOf documents.
func LinkInfo(p Params, mtu int) (transports.Info, error) {
	if err := p.Validate(); err != nil {
		return transports.Info{}, err
	}
	if mtu == 0 {
		mtu = MTUFor(p)
	}
	if mtu < MinMTU || mtu > MaxPayload {
		return transports.Info{}, &ParamError{Field: "MTU", Value: mtu, Allowed: fmt.Sprintf("%d to %d bytes (0 for the default)", MinMTU, MaxPayload)}
	}
	return transports.Info{
		Name:     InfoName,
		MTU:      mtu,
		MaxFrame: MaxFrameFor(mtu),
		Bitrate:  Bitrate(p),
	}.WithClass(), nil
}
