package rnode

import (
	"errors"
	"fmt"
	"net"

	"github.com/quicprochat/qpc/transports/lora"
)

const prefix = "transports/lora/rnode"

// Errors of the RNode driver. They are wrapped with detail, so test them
// with errors.Is (and errors.As for *MismatchError, *ModemError,
// *FrameError and *lora.ParamError), never with ==.
var (
	// ErrNotRNode: the device did not answer DETECT with 0x46 within
	// Config.DetectTimeout, or answered something else.
	ErrNotRNode = errors.New("device is not an RNode")

	// ErrParamMismatch: the modem echoed a radio setting other than the
	// one asked for, or did not echo it within Config.ConfigTimeout. The
	// concrete error is a *MismatchError naming the parameter.
	ErrParamMismatch = errors.New("modem did not take the radio settings")

	// ErrDisconnected: the serial stream failed or ended (the modem was
	// unplugged or reset). The Modem is finished; open it again (Keep does).
	ErrDisconnected = errors.New("modem disconnected")

	// ErrClosed is returned by Send and Recv after Close. It is
	// net.ErrClosed, as for every qpc transport.
	ErrClosed = net.ErrClosed

	// ErrModem matches every ERROR frame of the modem (*ModemError); the
	// sentinels below tell the codes apart.
	ErrModem = errors.New("modem error")

	// ErrRadioInit: ERROR 0x01, the radio chip failed to initialise.
	ErrRadioInit = errors.New("modem radio init failed")
	// ErrTxFailed: ERROR 0x02, a transmission failed.
	ErrTxFailed = errors.New("modem transmission failed")
	// ErrEEPROMLocked: ERROR 0x03, the modem's EEPROM is locked.
	ErrEEPROMLocked = errors.New("modem EEPROM locked")
	// ErrQueueFull: ERROR 0x04, or READY stayed 0x00 for
	// Config.ReadyTimeout. It is lora.ErrQueueFull, so a link can test for
	// a full radio queue the same way whatever drives the radio.
	ErrQueueFull = lora.ErrQueueFull
	// ErrMemoryLow: ERROR 0x05, the modem is short of memory.
	ErrMemoryLow = errors.New("modem memory low")
	// ErrModemTimeout: ERROR 0x06, the modem timed out talking to its
	// radio.
	ErrModemTimeout = errors.New("modem timeout")

	// ErrFrameTooLong: a KISS frame longer than the decoder's limit was
	// discarded (*FrameError).
	ErrFrameTooLong = errors.New("KISS frame too long")
	// ErrBadEscape: a KISS frame with FESC followed by something other
	// than TFEND or TFESC was discarded (*FrameError).
	ErrBadEscape = errors.New("invalid KISS escape")
)

// ERROR codes of the RNode protocol.
const (
	ErrorRadioInit    byte = 0x01
	ErrorTxFailed     byte = 0x02
	ErrorEEPROMLocked byte = 0x03
	ErrorQueueFull    byte = 0x04
	ErrorMemoryLow    byte = 0x05
	ErrorModemTimeout byte = 0x06
)

var errorSentinels = map[byte]error{
	ErrorRadioInit:    ErrRadioInit,
	ErrorTxFailed:     ErrTxFailed,
	ErrorEEPROMLocked: ErrEEPROMLocked,
	ErrorQueueFull:    ErrQueueFull,
	ErrorMemoryLow:    ErrMemoryLow,
	ErrorModemTimeout: ErrModemTimeout,
}

// ModemError is an ERROR frame the modem sent. It matches ErrModem and
// the sentinel of its code (ErrTxFailed for 0x02, ...) under errors.Is;
// an unknown code matches only ErrModem.
type ModemError struct {
	Code byte
}

func (e *ModemError) Error() string {
	if s, ok := errorSentinels[e.Code]; ok {
		return fmt.Sprintf("%s: modem reported error 0x%02x: %v", prefix, e.Code, s)
	}
	return fmt.Sprintf("%s: modem reported unknown error 0x%02x", prefix, e.Code)
}

// Is matches ErrModem and the code's sentinel.
func (e *ModemError) Is(target error) bool {
	if target == ErrModem {
		return true
	}
	s, ok := errorSentinels[e.Code]
	return ok && s == target
}

// MismatchError names a radio setting the modem did not take: Param is
// the Config field ("Frequency", "Bandwidth", "TxPower", "SF", "CR",
// "STALock", "LTALock") or "RadioState"; Asked is what the driver sent
// and Echoed what the modem answered, nil when it did not answer. It
// matches ErrParamMismatch.
type MismatchError struct {
	Param  string
	Asked  any
	Echoed any
}

func (e *MismatchError) Error() string {
	if e.Echoed == nil {
		return fmt.Sprintf("%s: %s: asked %v, modem did not echo it", prefix, e.Param, e.Asked)
	}
	return fmt.Sprintf("%s: %s: asked %v, modem echoed %v", prefix, e.Param, e.Asked, e.Echoed)
}

// Is makes errors.Is(err, ErrParamMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrParamMismatch }
