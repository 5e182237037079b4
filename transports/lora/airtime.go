package lora

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits of the LoRa modulation as the airtime calculator accepts it.
const (
	MinSF = 5  // SX126x; SX127x starts at 6 (7 without implicit header)
	MaxSF = 12 // every Semtech LoRa chip

	// MaxPayload is the largest PHY payload of one LoRa packet.
	MaxPayload = 255

	// DefaultPreamble is the usual programmed preamble length in symbols
	// (the chip adds 4.25 symbols of sync word and start-of-frame).
	DefaultPreamble = 8
	MinPreamble     = 1
	MaxPreamble     = 65535

	// LDROThreshold: low-data-rate optimisation is required (and switched
	// on by LDROAuto) when a symbol lasts longer than this.
	LDROThreshold = 16 * time.Millisecond
)

// CodingRate is the forward error correction rate 4/(4+CR): CR45 (1) is
// 4/5, CR48 (4) is 4/8. The zero value is invalid. Command lines and the
// RNode protocol name a rate by its denominator (5..8): convert with
// CodingRateFromDenominator or ParseCodingRate, never by casting.
type CodingRate uint8

// Coding rates.
const (
	CR45 CodingRate = iota + 1
	CR46
	CR47
	CR48
)

// Valid reports whether c is one of CR45..CR48.
func (c CodingRate) Valid() bool { return c >= CR45 && c <= CR48 }

// Denominator is 5..8 for 4/5..4/8: the value of the --cr flag and of the
// RNode CR command.
func (c CodingRate) Denominator() int { return int(c) + 4 }

func (c CodingRate) String() string {
	if c.Valid() {
		return "4/" + strconv.Itoa(c.Denominator())
	}
	return fmt.Sprintf("CodingRate(%d)", uint8(c))
}

// CodingRateFromDenominator converts 5..8 (4/5..4/8) to a CodingRate.
func CodingRateFromDenominator(d int) (CodingRate, error) {
	if d < 5 || d > 8 {
		return 0, &ParamError{Field: "CR", Value: d, Allowed: "5 to 8 (coding rate 4/5 to 4/8)"}
	}
	return CodingRate(d - 4), nil
}

// ParseCodingRate parses a coding rate as a command line gives it: "5".."8"
// (the denominator, as --cr 5 meaning 4/5) or "4/5".."4/8".
func ParseCodingRate(s string) (CodingRate, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(t, "4/")
	d, err := strconv.Atoi(t)
	if err != nil {
		return 0, &ParamError{Field: "CR", Value: strconv.Quote(s), Allowed: "5 to 8 or 4/5 to 4/8"}
	}
	return CodingRateFromDenominator(d)
}

// LowDataRate chooses low-data-rate optimisation (LDRO, "DE" in the
// formula). The zero value, LDROAuto, switches it on exactly when the
// symbol time exceeds LDROThreshold (16 ms): SF11 and SF12 at 125 kHz,
// SF12 at 250 kHz, and the slower narrow-band settings. Both ends of a
// link must agree, so override it only to match a peer that does.
type LowDataRate uint8

// LowDataRate settings.
const (
	LDROAuto LowDataRate = iota
	LDROOn
	LDROOff
)

func (l LowDataRate) String() string {
	switch l {
	case LDROAuto:
		return "auto"
	case LDROOn:
		return "on"
	case LDROOff:
		return "off"
	}
	return fmt.Sprintf("LowDataRate(%d)", uint8(l))
}

// Params are the modulation settings of a LoRa radio that decide how long
// a packet is on the air. The zero value is not valid: SF, Bandwidth, CR
// and Preamble must be set (DefaultPreamble is 8). The zero values of the
// other fields are the common case: explicit header, CRC on, LDRO auto.
type Params struct {
	// SF is the spreading factor, 5..12 (MinSF..MaxSF).
	SF int
	// Bandwidth in Hz: 7800, 10400, 15600, 20800, 31250, 41700, 62500,
	// 125000, 250000 or 500000. Values within 1 % of one of these (the
	// SX126x spellings 7810, 10420, 41670, the exact 7812.5 Hz rounded to
	// 7813, ...) are accepted as it; the calculation uses the exact
	// bandwidth, 500 kHz divided by 1, 2, 4, 8, 12, 16, 24, 32, 48 or 64.
	Bandwidth int
	// CR is the coding rate, CR45..CR48.
	CR CodingRate
	// Preamble is the programmed preamble length in symbols, 1..65535.
	Preamble int
	// ImplicitHeader leaves out the PHY header (both ends must know the
	// length, coding rate and CRC setting in advance).
	ImplicitHeader bool
	// NoCRC switches the 16-bit payload CRC off.
	NoCRC bool
	// LDRO is the low-data-rate optimisation setting; LDROAuto by default.
	LDRO LowDataRate
}

// bandwidthDivisors lists the LoRa bandwidths as divisors of 500 kHz,
// with the nominal Hz value an RNode echoes back.
var bandwidthDivisors = []struct {
	nominal int
	div     int64
}{
	{7800, 64}, {10400, 48}, {15600, 32}, {20800, 24}, {31250, 16},
	{41700, 12}, {62500, 8}, {125000, 4}, {250000, 2}, {500000, 1},
}

const bandwidthsAllowed = "one of 7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000 (Hz)"

// bandwidthDivisor returns k such that hz is within 1 % of 500 kHz / k.
func bandwidthDivisor(hz int) (int64, bool) {
	if hz <= 0 {
		return 0, false
	}
	for _, b := range bandwidthDivisors {
		// |hz - 500000/k| <= 1% of 500000/k, multiplied through by k.
		d := int64(hz)*b.div - 500_000
		if d < 0 {
			d = -d
		}
		if d*100 <= 500_000 {
			return b.div, true
		}
	}
	return 0, false
}

// NominalBandwidth returns the nominal spelling (7800, ..., 500000) of a
// bandwidth that Params accepts, and false for an unknown one.
func NominalBandwidth(hz int) (int, bool) {
	k, ok := bandwidthDivisor(hz)
	if !ok {
		return 0, false
	}
	for _, b := range bandwidthDivisors {
		if b.div == k {
			return b.nominal, true
		}
	}
	return 0, false
}

// Bandwidths lists the nominal bandwidths in Hz, narrowest first.
func Bandwidths() []int {
	out := make([]int, len(bandwidthDivisors))
	for i, b := range bandwidthDivisors {
		out[i] = b.nominal
	}
	return out
}

// Validate checks every field and returns a *ParamError (matching
// ErrBadParams) naming the first one that is out of range.
func (p Params) Validate() error {
	_, err := p.symbolNanos()
	return err
}

// symbolNanos validates p and returns the symbol time in nanoseconds. It
// is exact: 2^SF / (500 kHz / k) = 2^SF * k * 2 µs.
func (p Params) symbolNanos() (int64, error) {
	if p.SF < MinSF || p.SF > MaxSF {
		return 0, &ParamError{Field: "SF", Value: p.SF, Allowed: fmt.Sprintf("%d to %d", MinSF, MaxSF)}
	}
	k, ok := bandwidthDivisor(p.Bandwidth)
	if !ok {
		return 0, &ParamError{Field: "Bandwidth", Value: p.Bandwidth, Allowed: bandwidthsAllowed}
	}
	if !p.CR.Valid() {
		return 0, &ParamError{Field: "CR", Value: uint8(p.CR), Allowed: "CR45 to CR48 (1 to 4; use CodingRateFromDenominator for 5 to 8)"}
	}
	if p.Preamble < MinPreamble || p.Preamble > MaxPreamble {
		return 0, &ParamError{Field: "Preamble", Value: p.Preamble,
			Allowed: fmt.Sprintf("%d to %d symbols (%d is usual)", MinPreamble, MaxPreamble, DefaultPreamble)}
	}
	if p.LDRO > LDROOff {
		return 0, &ParamError{Field: "LDRO", Value: uint8(p.LDRO), Allowed: "LDROAuto, LDROOn or LDROOff"}
	}
	return (int64(1) << p.SF) * k * 2000, nil
}

// lowDataRate reports whether LDRO is in effect, given the symbol time.
func (p Params) lowDataRate(tsym int64) bool {
	switch p.LDRO {
	case LDROOn:
		return true
	case LDROOff:
		return false
	}
	return tsym > int64(LDROThreshold)
}

func (p Params) String() string {
	s := fmt.Sprintf("SF%d BW%d CR%s preamble %d", p.SF, p.Bandwidth, p.CR, p.Preamble)
	if p.ImplicitHeader {
		s += " implicit"
	}
	if p.NoCRC {
		s += " no-crc"
	}
	if p.LDRO != LDROAuto {
		s += " ldro-" + p.LDRO.String()
	}
	return s
}

// Breakdown is how long a packet of the given parameters takes on air,
// broken down the way the Semtech formula computes it (for the
// `qpc lora airtime` command; its JSON form is its --json output).
type Breakdown struct {
	PayloadLen int `json:"payload_len"`
	// SymbolTime is 2^SF / BW.
	SymbolTime time.Duration `json:"symbol_time"`
	// LowDataRate is whether LDRO was in effect (DE = 1).
	LowDataRate bool `json:"low_data_rate"`
	// PreambleSymbols4 is four times the preamble symbol count (the
	// programmed preamble plus 4.25, or plus 6.25 at SF5 and SF6), so that
	// it stays an integer: 49 means 12.25 symbols.
	PreambleSymbols4 int `json:"preamble_symbols_x4"`
	// PayloadSymbols is Npayload: the header and payload symbols.
	PayloadSymbols int `json:"payload_symbols"`
	// Preamble, Payload and Total are the durations (Total = ToA).
	Preamble time.Duration `json:"preamble"`
	Payload  time.Duration `json:"payload"`
	Total    time.Duration `json:"total"`
}

// Calculate computes the time on air of one packet of payloadLen bytes
// with the Semtech formula (AN1200.13, SX127x/SX126x datasheets):
//
//	Tsym      = 2^SF / BW
//	Tpreamble = (Npreamble + 4.25) * Tsym
//	Npayload  = 8 + max(ceil((8*PL - 4*SF + 28 + 16*CRC - 20*IH) / (4*(SF - 2*DE))) * (CR + 4), 0)
//	ToA       = Tpreamble + Npayload * Tsym
//
// and, at SF5 and SF6, the SX126x count
//
//	Npreamble + 6.25 + 8 + ceil(max(8*PL + 16*CRC - 4*SF + 20*(1-IH), 0) / (4*SF)) * (CR + 4)
//
// which has no DE term (LDRO is never needed there and is ignored). The
// result is exact to the nanosecond: every LoRa symbol time is a whole
// number of 2 µs steps. Errors are *ParamError (ErrBadParams), naming the
// field; payloadLen must be 0..255.
func Calculate(p Params, payloadLen int) (Breakdown, error) {
	tsym, err := p.symbolNanos()
	if err != nil {
		return Breakdown{}, err
	}
	if payloadLen < 0 || payloadLen > MaxPayload {
		return Breakdown{}, &ParamError{Field: "PayloadLen", Value: payloadLen, Allowed: fmt.Sprintf("0 to %d bytes", MaxPayload)}
	}
	var (
		pl  = int64(payloadLen)
		sf  = int64(p.SF)
		cr  = int64(p.CR)
		crc = int64(1)
		ih  = int64(0)
		de  = int64(0)
	)
	if p.NoCRC {
		crc = 0
	}
	if p.ImplicitHeader {
		ih = 1
	}
	ldro := p.lowDataRate(tsym)
	if ldro {
		de = 1
	}
	var num, den, pre4 int64
	if p.SF >= 7 {
		num = 8*pl - 4*sf + 28 + 16*crc - 20*ih
		den = 4 * (sf - 2*de)
		pre4 = 4*int64(p.Preamble) + 17 // + 4.25
	} else {
		ldro = false // the SX126x SF5/SF6 count has no DE term
		num = 8*pl + 16*crc - 4*sf + 20*(1-ih)
		den = 4 * sf
		pre4 = 4*int64(p.Preamble) + 25 // + 6.25
	}
	blocks := int64(0)
	if num > 0 {
		blocks = (num + den - 1) / den
	}
	npayload := 8 + blocks*(cr+4)
	a := Breakdown{
		PayloadLen:       payloadLen,
		SymbolTime:       time.Duration(tsym),
		LowDataRate:      ldro,
		PreambleSymbols4: int(pre4),
		PayloadSymbols:   int(npayload),
		Preamble:         time.Duration(pre4 * tsym / 4), // tsym is a multiple of 4 ns
		Payload:          time.Duration(npayload * tsym),
	}
	a.Total = a.Preamble + a.Payload
	return a, nil
}

// Airtime is the time on air of a packet of payloadLen bytes: the Total of
// Calculate, which documents the formula. Errors are *ParamError
// (matching ErrBadParams) naming the field.
func Airtime(p Params, payloadLen int) (time.Duration, error) {
	a, err := Calculate(p, payloadLen)
	return a.Total, err
}

// SymbolTime is 2^SF / BW, exact to the nanosecond.
func SymbolTime(p Params) (time.Duration, error) {
	tsym, err := p.symbolNanos()
	return time.Duration(tsym), err
}

// LowDataRateOn reports whether low-data-rate optimisation is in effect
// for p (LDROAuto resolved against the symbol time). The RNode driver
// does not send it (the modem decides the same way); the mock medium and
// the airtime command show it.
func LowDataRateOn(p Params) (bool, error) {
	tsym, err := p.symbolNanos()
	if err != nil {
		return false, err
	}
	return p.SF >= 7 && p.lowDataRate(tsym), nil
}

// Bitrate is the effective (equivalent) bit rate of the modulation in
// bit/s, rounded down:
//
//	Rb = bits per symbol * 4/(4+CR) / Tsym,  bits per symbol = SF - 2*DE
//
// (Semtech's Rb = SF * BW/2^SF * 4/(4+CR), reduced by LDRO, which carries
// two bits fewer per symbol). SF7/125 kHz/4/5 gives 5468, SF12/125 kHz/4/5
// (LDRO on) 244. It ignores preamble and header; it is what
// transports.Info.Bitrate wants. Invalid params give 0, which ClassOf
// treats as the most constrained class.
func Bitrate(p Params) int64 {
	tsym, err := p.symbolNanos()
	if err != nil {
		return 0
	}
	bits := int64(p.SF)
	if p.SF >= 7 && p.lowDataRate(tsym) {
		bits -= 2
	}
	return bits * 4 * int64(time.Second) / ((int64(p.CR) + 4) * tsym)
}

// MaxPayloadWithin returns the largest payload (0..255 bytes) whose packet
// stays within d on air, or -1 if not even an empty packet does. Use it to
// size the MTU under a dwell-time limit (US915: 400 ms).
func MaxPayloadWithin(p Params, d time.Duration) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	// Airtime is non-decreasing in the payload length: binary search.
	lo, hi := -1, MaxPayload // invariant: lo fits (or -1), hi+1 does not (or 255)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		t, _ := Airtime(p, mid)
		if t <= d {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}
