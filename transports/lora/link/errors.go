package link

import "errors"

const prefix = "transports/lora/link"

// Errors of the LoRa link. They are wrapped with detail ("transports/lora/
// link: 869525000 Hz: ...: %w"), so test them with errors.Is, never with ==.
// Contract errors (net.ErrClosed, io.EOF, transports.ErrFrameTooLarge,
// transports.ErrBadOptions, transports.ErrBadURI) are the transports
// package's.
var (
	// ErrNotLink: a received packet is not a qpc LoRa link packet (the high
	// three bits of its first byte are not 110). Other protocols share LoRa
	// channels (Reticulum and Meshtastic use 869.525 MHz too); such packets
	// are counted (Stats.Foreign) and dropped.
	ErrNotLink = errors.New("not a qpc LoRa link packet")

	// ErrVersion: a qpc link packet of another version (0xC_: version 0,
	// without MACs; this link speaks version 1, 0xD_). Counted
	// (Stats.OtherVersion) and dropped.
	ErrVersion = errors.New("unsupported LoRa link version")

	// ErrBadMAC: a unicast link packet whose MAC does not verify under the
	// key of any known peer with its source hint towards us: forged,
	// altered, or for another node with our hint. Counted (Stats.BadMAC)
	// and dropped before it changes anything.
	ErrBadMAC = errors.New("LoRa link packet with a bad MAC")

	// ErrMalformed: a qpc link packet that does not parse (short, unknown
	// kind, wrong length for its kind, poll flag on a kind that has none).
	ErrMalformed = errors.New("malformed LoRa link packet")

	// ErrBadHello: a HELLO that does not prove its sender: bad signature,
	// a source hint that is not its key's address, not broadcast, its
	// timestamp too far from our clock or older than one already seen,
	// our own key, or a key no link MAC key can be agreed with (no X25519
	// twin, or a low-order one). Counted (Stats.HellosRejected) and
	// ignored.
	ErrBadHello = errors.New("invalid HELLO")

	// ErrWrongChannel: Listen or Dial named a channel, or radio settings,
	// other than the ones this transport's radio is on. One radio is one
	// channel; make one transport per radio.
	ErrWrongChannel = errors.New("not this radio's channel")

	// ErrAddrInUse: the transport already has a listener.
	ErrAddrInUse = errors.New("already listening on this radio")

	// ErrPeerLost: a frame was not acknowledged after the last retry round
	// and nothing of the peer was heard for Options.PeerSilence (it also
	// matches lora.ErrGaveUp). The connection to that peer has failed; a
	// HELLO or a frame from the peer makes a new one.
	ErrPeerLost = errors.New("peer stopped acknowledging")

	// ErrRadio: the radio failed for good (a mock radio closed underneath,
	// a bare RNodeRadio whose modem was unplugged; an RNodeDeviceRadio
	// re-opens its modem instead, see Reviver). Every connection of the
	// transport fails with it.
	ErrRadio = errors.New("radio failed")

	// ErrRadioDown: the radio went away for a while (a serial modem
	// unplugged, being re-opened; see Reviver). Every connection of the
	// transport ends with it; the transport stays, and its peers link
	// again when the radio is back.
	ErrRadioDown = errors.New("radio is down")

	// ErrEmptyFrame: WriteFrame was given no bytes. Every LoRa packet
	// carries at least one byte of its frame, and qpc frames are never
	// empty.
	ErrEmptyFrame = errors.New("empty frame")
)
