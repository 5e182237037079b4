package rnode

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/transports/lora"
)

// Defaults of Config.
const (
	// DefaultSettle is how long RNS waits after opening the port before it
	// talks to the modem (ESP32 boards reset when the port opens). Settle
	// is zero unless set; see Config.Settle.
	DefaultSettle         = 2 * time.Second
	DefaultDetectTimeout  = 5 * time.Second
	DefaultDetectInterval = 500 * time.Millisecond
	DefaultConfigTimeout  = 3 * time.Second
	DefaultReadyTimeout   = 15 * time.Second
	DefaultCloseTimeout   = time.Second
	DefaultRecvQueue      = 32
	DefaultReconnectMin   = time.Second
	DefaultReconnectMax   = 30 * time.Second

	// NoWait as Config.ReadyTimeout: Send does not wait for READY.
	NoWait time.Duration = -1
)

// Limits Config accepts.
const (
	// MaxTxPower is the largest transmit power the protocol's byte is
	// allowed to carry here; the modem may clamp lower (SX1276 boards at
	// 17 dBm, SX1262 at 22), which the echo check then refuses.
	MaxTxPower = 30

	// FrequencyTolerance is how far (Hz) the echoed frequency may lie from
	// the asked one: the chip's PLL steps are about 61 Hz.
	FrequencyTolerance = 100

	// RNodePreambleMin and RNodePreambleTarget are the RNode firmware's
	// preamble rule (LORA_PREAMBLE_SYMBOLS_MIN, LORA_PREAMBLE_TARGET_MS):
	// ceil(24 ms / Tsym) symbols, at least 18. Older firmware aims at
	// 15 ms; 24 ms over-estimates its airtime slightly, which is the safe
	// side for duty-cycle accounting.
	RNodePreambleMin    = 18
	RNodePreambleTarget = 24 * time.Millisecond
)

// Config is what the driver tells the modem and how long it waits for
// it. The radio fields have no defaults and are checked before the port
// is opened; zero durations and sizes take the defaults above, except
// Settle. Whether Frequency lies in an allowed sub-band of the region
// (lora.Region.SubBandForChannel) is the caller's check.
type Config struct {
	// Frequency is the centre frequency in Hz: 137–1020 MHz (SX127x,
	// SX126x) or 2400–2500 MHz (SX128x).
	Frequency uint32
	// Bandwidth in Hz, one of lora.Bandwidths(): 7800 … 500000.
	Bandwidth int
	// TxPower in dBm, 0..MaxTxPower. Whether the region allows it on
	// Frequency (lora.Region.CheckTxPower) is the caller's check.
	TxPower int
	// TxPowerCeiling makes TxPower the most the modem may take rather than
	// the exact value: an echo below it (a board that clamps to its own
	// maximum, as SX1276 RNodes do at 17 dBm) is accepted and Info.TxPower
	// tells what the modem took; an echo above it is still refused. The
	// node sets it when the txp is its default (the region's limit) and
	// not the user's.
	TxPowerCeiling bool
	// SF is the spreading factor, 5..12.
	SF int
	// CR is the coding rate's denominator, 5..8 (4/5..4/8), as the RNode
	// protocol and the --cr flag spell it.
	CR int
	// STALock and LTALock are the modem's own airtime locks in percent ×
	// 100 (basis points, lora.DutyCycle: 1 % = 100): the short-term limit
	// and the one-hour limit. Zero leaves the modem's setting alone. They
	// are a second line of defence under the link's own Tracker.
	STALock lora.DutyCycle
	LTALock lora.DutyCycle
	// Preamble is the modem's preamble in symbols, used only for Airtime.
	// Zero means the RNode firmware's rule (RNodePreamble).
	Preamble int

	// Settle is the wait after opening before the first DETECT. Zero means
	// no wait. RNS waits DefaultSettle; because DETECT is repeated every
	// DetectInterval until DetectTimeout, a board that resets on open is
	// found without it as long as DetectTimeout covers its boot.
	Settle time.Duration
	// DetectTimeout bounds the wait for DETECT's answer (default 5 s);
	// DetectInterval is how often DETECT is repeated meanwhile (500 ms).
	DetectTimeout  time.Duration
	DetectInterval time.Duration
	// ConfigTimeout bounds the wait for the echoes of the radio settings
	// (default 3 s).
	ConfigTimeout time.Duration
	// ReadyTimeout bounds how long Send waits for READY 0x01 after the
	// modem said its queue is full (default 15 s; a 508-byte packet at
	// SF12 takes about 18 s on air, so raise it for slow settings).
	// Negative (NoWait) makes Send fail at once with ErrQueueFull instead,
	// for a caller that must not block and retries later.
	ReadyTimeout time.Duration
	// CloseTimeout bounds writing RADIO_STATE off and LEAVE on Close
	// (default 1 s).
	CloseTimeout time.Duration
	// RecvQueue is the number of received packets buffered for Recv
	// (default 32); packets arriving at a full queue are dropped and
	// counted (Stats.RxDropped).
	RecvQueue int
	// ReconnectMin and ReconnectMax bound Keep's back-off between attempts
	// to reopen the modem (defaults 1 s and 30 s; it doubles per failure).
	ReconnectMin time.Duration
	ReconnectMax time.Duration

	// Logger gets debug and warning records (component=rnode); default
	// discards.
	Logger *slog.Logger
	// Clock times every wait; default clock.Real{}.
	Clock clock.Clock

	// Test hooks: onFrame is called by the reader after it applied a frame
	// from the modem, onReadyWait when Send starts waiting for READY.
	onFrame     func(Frame)
	onReadyWait func()
}

func cfgError(field string, value any, allowed string) error {
	return fmt.Errorf("%s: config: %w", prefix, &lora.ParamError{Field: field, Value: value, Allowed: allowed})
}

// Validate checks every field and returns an error wrapping a
// *lora.ParamError (matching lora.ErrBadParams) that names the first
// field out of range.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

// normalize validates c and fills in the defaults.
func (c Config) normalize() (Config, error) {
	f := c.Frequency
	if !(f >= 137_000_000 && f <= 1_020_000_000) && !(f >= 2_400_000_000 && f <= 2_500_000_000) {
		return c, cfgError("Frequency", f, "137000000 to 1020000000 or 2400000000 to 2500000000 (Hz)")
	}
	if !slices.Contains(lora.Bandwidths(), c.Bandwidth) {
		return c, cfgError("Bandwidth", c.Bandwidth, fmt.Sprintf("one of %v (Hz)", lora.Bandwidths()))
	}
	if c.TxPower < 0 || c.TxPower > MaxTxPower {
		return c, cfgError("TxPower", c.TxPower, fmt.Sprintf("0 to %d (dBm)", MaxTxPower))
	}
	if c.SF < lora.MinSF || c.SF > lora.MaxSF {
		return c, cfgError("SF", c.SF, fmt.Sprintf("%d to %d", lora.MinSF, lora.MaxSF))
	}
	if c.CR < 5 || c.CR > 8 {
		return c, cfgError("CR", c.CR, "5 to 8 (coding rate 4/5 to 4/8)")
	}
	if c.STALock > lora.NoDutyCycle {
		return c, cfgError("STALock", uint16(c.STALock), "0 (unset) to 10000 (percent × 100)")
	}
	if c.LTALock > lora.NoDutyCycle {
		return c, cfgError("LTALock", uint16(c.LTALock), "0 (unset) to 10000 (percent × 100)")
	}
	if c.Preamble < 0 || c.Preamble > lora.MaxPreamble {
		return c, cfgError("Preamble", c.Preamble, fmt.Sprintf("0 (RNode's rule) to %d symbols", lora.MaxPreamble))
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Settle", &c.Settle, 0},
		{"DetectTimeout", &c.DetectTimeout, DefaultDetectTimeout},
		{"DetectInterval", &c.DetectInterval, DefaultDetectInterval},
		{"ConfigTimeout", &c.ConfigTimeout, DefaultConfigTimeout},
		{"ReadyTimeout", &c.ReadyTimeout, DefaultReadyTimeout},
		{"CloseTimeout", &c.CloseTimeout, DefaultCloseTimeout},
		{"ReconnectMin", &c.ReconnectMin, DefaultReconnectMin},
		{"ReconnectMax", &c.ReconnectMax, DefaultReconnectMax},
	}
	for _, d := range durations {
		if *d.v < 0 && d.v == &c.ReadyTimeout {
			*d.v = NoWait
			continue
		}
		if *d.v < 0 {
			return c, cfgError(d.name, *d.v, ">= 0 (0 means the default)")
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		return c, cfgError("ReconnectMax", c.ReconnectMax, fmt.Sprintf(">= ReconnectMin (%s)", c.ReconnectMin))
	}
	if c.RecvQueue < 0 {
		return c, cfgError("RecvQueue", c.RecvQueue, ">= 0 (0 means the default)")
	}
	if c.RecvQueue == 0 {
		c.RecvQueue = DefaultRecvQueue
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "rnode")
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	return c, nil
}

// Params are the modulation settings of c for airtime calculations:
// explicit header, CRC on, LDRO automatic (as the RNode firmware sets
// them), and the preamble of Preamble or RNodePreamble.
func (c Config) Params() (lora.Params, error) {
	cr, err := lora.CodingRateFromDenominator(c.CR)
	if err != nil {
		return lora.Params{}, err
	}
	p := lora.Params{SF: c.SF, Bandwidth: c.Bandwidth, CR: cr, Preamble: c.Preamble}
	if p.Preamble == 0 {
		if p.Preamble, err = RNodePreamble(c.SF, c.Bandwidth); err != nil {
			return lora.Params{}, err
		}
	}
	return p, p.Validate()
}

// RNodePreamble is the preamble length in symbols the RNode firmware
// programs for sf and bandwidth: ceil(RNodePreambleTarget / Tsym), at
// least RNodePreambleMin (24 at SF7/125 kHz, 18 from SF8/125 kHz up).
func RNodePreamble(sf, bandwidth int) (int, error) {
	tsym, err := lora.SymbolTime(lora.Params{SF: sf, Bandwidth: bandwidth, CR: lora.CR45, Preamble: lora.DefaultPreamble})
	if err != nil {
		return 0, err
	}
	n := int((RNodePreambleTarget + tsym - 1) / tsym)
	return max(n, RNodePreambleMin), nil
}
