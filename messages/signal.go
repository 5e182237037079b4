package messages

import "time"

// Signal is how a frame was received when it came over a radio (LoRa):
// what a managed flood weighs its re-broadcast delay by (issue 12). The
// zero Signal means the frame did not come over a radio.
type Signal struct {
	// Radio: the frame came over a radio link.
	Radio bool
	// HasSNR: the radio measured the signal; SNR and RSSI are set.
	HasSNR bool
	// SNR is the signal-to-noise ratio of the frame's last packet in dB;
	// RSSI its received power in dBm.
	SNR  float64
	RSSI int
	// Airtime is how long the frame lasted on air (all its packets, sent
	// once): the unit of a radio's re-broadcast delays.
	Airtime time.Duration
	// Broadcast: the frame was sent to every node in range at once, not
	// addressed to this node.
	Broadcast bool
}
