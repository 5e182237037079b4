package lora

import (
	"errors"
	"fmt"
)

const prefix = "transports/lora"

// Errors of the LoRa package. They are wrapped with detail, so test them
// with errors.Is (and errors.As for *ParamError), never with ==.
var (
	// ErrBadParams: radio parameters out of range (SF, bandwidth, coding
	// rate, preamble, payload length). The concrete error is a *ParamError
	// naming the field.
	ErrBadParams = errors.New("invalid LoRa parameters")

	// ErrOutOfBand: a frequency lies outside every sub-band of the region,
	// or a channel straddles two sub-bands.
	ErrOutOfBand = errors.New("frequency outside the region's sub-bands")

	// ErrRestrictedBand: the frequency lies in a band reserved for alarms
	// (EU868 868.6–868.7, 869.2–869.4, 869.65–869.7 MHz); we never
	// transmit there.
	ErrRestrictedBand = errors.New("frequency reserved for alarm systems")

	// ErrNeverFits: a transmission is longer than its class may ever use in
	// one hour, or longer than the region's dwell time. Waiting does not
	// help: shorten the frame or pick faster parameters.
	ErrNeverFits = errors.New("transmission exceeds the airtime limit")

	// ErrBadFragment: a packet is not a well-formed fragment (short header,
	// wrong tag, index beyond the count, empty payload).
	ErrBadFragment = errors.New("malformed fragment")

	// ErrFragmentVersion: a fragment of a version this node does not speak.
	// It also matches messages.ErrUnsupportedVersion.
	ErrFragmentVersion = errors.New("unsupported fragment version")

	// ErrInconsistentFragment: a fragment disagrees with earlier fragments
	// of the same message (another count, another chunk size, other bytes
	// at the same index) or would make the message larger than allowed.
	// The whole reassembly is discarded.
	ErrInconsistentFragment = errors.New("inconsistent fragment")

	// ErrTooManyReassemblies: the cap on concurrent reassemblies is reached;
	// the fragment that would start another one is dropped.
	ErrTooManyReassemblies = errors.New("too many concurrent reassemblies")

	// ErrBufferFull: the cap on buffered fragment bytes is reached; the
	// fragment is dropped before anything is allocated for it.
	ErrBufferFull = errors.New("reassembly buffer full")

	// ErrGaveUp: an outgoing fragmented message used up its retry rounds.
	ErrGaveUp = errors.New("fragmented message not acknowledged")

	// ErrQueueFull: a radio's transmit queue is full.
	ErrQueueFull = errors.New("radio transmit queue full")

	// ErrNameInUse: a radio with that name is already attached.
	ErrNameInUse = errors.New("radio name already attached")

	// ErrTxPowerTooHigh: a transmit power above what the region allows in
	// the channel's sub-band (*PowerError).
	ErrTxPowerTooHigh = errors.New("transmit power above the sub-band's limit")
)

// PowerError reports a transmit power above the limit of its sub-band
// (Region.CheckTxPower). It matches ErrTxPowerTooHigh.
type PowerError struct {
	Region  string
	SubBand SubBand
	TxPower int // dBm asked
	Limit   int // dBm allowed, SubBand.MaxPower
}

func (e *PowerError) Error() string {
	return fmt.Sprintf("%s: txp %d dBm is above the %d dBm limit of the %s sub-band %s MHz", prefix, e.TxPower, e.Limit, e.Region, e.SubBand.Name)
}

// Is makes errors.Is(err, ErrTxPowerTooHigh) true.
func (e *PowerError) Is(target error) bool { return target == ErrTxPowerTooHigh }

// ParamError reports one invalid field of Params (or of the payload
// length). It matches ErrBadParams under errors.Is. Field is the Go field
// name ("SF", "Bandwidth", "CR", "Preamble", "PayloadLen", "LDRO"), so a
// command line can map it to its flag.
type ParamError struct {
	Field   string
	Value   any
	Allowed string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("%s: %s %v, want %s", prefix, e.Field, e.Value, e.Allowed)
}

// Is makes errors.Is(err, ErrBadParams) true.
func (e *ParamError) Is(target error) bool { return target == ErrBadParams }
