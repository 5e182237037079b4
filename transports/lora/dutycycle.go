package lora

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// Window is the period over which a duty cycle is measured: one
// continuous hour (ETSI EN 300 220-2).
const Window = time.Hour

// DutyCycle is the share of Window a transmitter may be on air in one
// sub-band, in basis points (percent × 100): 10 is 0.1 %, 100 is 1 %,
// 1000 is 10 %, 10000 (NoDutyCycle) is no limit. It is the unit of the
// RNode airtime-lock commands (LT_ALOCK 1 % = 00 64).
type DutyCycle uint16

// Duty cycles used by the regions.
const (
	DutyCycle0_1 DutyCycle = 10    // 0.1 %: 3.6 s per hour
	DutyCycle1   DutyCycle = 100   // 1 %: 36 s per hour
	DutyCycle10  DutyCycle = 1000  // 10 %: 360 s per hour
	NoDutyCycle  DutyCycle = 10000 // 100 %: no duty-cycle limit
)

// Budget is the airtime the duty cycle allows per Window.
func (d DutyCycle) Budget() time.Duration { return Window * time.Duration(d) / 10000 }

func (d DutyCycle) String() string {
	s := fmt.Sprintf("%d.%02d", d/100, d%100)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// SubBand is a frequency range with one transmit rule.
type SubBand struct {
	// Name is the range in MHz, "869.4-869.65".
	Name string
	// Low and High bound the sub-band in Hz. A centre frequency belongs to
	// it when Low <= f < High; a channel when its whole bandwidth lies
	// within [Low, High].
	Low, High uint32
	// DutyCycle limits the airtime per hour; NoDutyCycle where the region
	// has none. It is zero in a restricted band.
	DutyCycle DutyCycle
	// MaxDwell caps each single transmission (US915: 400 ms); zero means
	// no cap.
	MaxDwell time.Duration
	// Restricted marks bands we never transmit in (EU868 alarm bands).
	Restricted bool
	// MaxPower is the highest transmit power allowed in the sub-band, in
	// dBm (ERP in EU868, conducted in US915); zero in a restricted band.
	// The check (Region.CheckTxPower) compares a modem's txp with it
	// directly, so it assumes an antenna without gain over a dipole: with
	// a gain of G dBd, set txp G dB lower.
	MaxPower int
}

func (b SubBand) String() string {
	switch {
	case b.Restricted:
		return b.Name + " MHz (alarms only)"
	case b.MaxDwell > 0:
		return fmt.Sprintf("%s MHz (duty cycle %s, dwell %s)", b.Name, b.DutyCycle, b.MaxDwell)
	}
	return fmt.Sprintf("%s MHz (duty cycle %s)", b.Name, b.DutyCycle)
}

// Region is a regulatory region: its sub-bands, in frequency order. The
// predefined regions are EU868 and US915; RegionByName finds them.
type Region struct {
	name  string
	bands []SubBand
}

func subBand(lowKHz, highKHz uint32, d DutyCycle, maxDBm int) SubBand {
	mhz := func(khz uint32) string {
		s := strconv.FormatFloat(float64(khz)/1000, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	return SubBand{Name: mhz(lowKHz) + "-" + mhz(highKHz), Low: lowKHz * 1000, High: highKHz * 1000, DutyCycle: d, Restricted: d == 0, MaxPower: maxDBm}
}

// The predefined regions.
var (
	// EU868 is the European 863–870 MHz SRD band (ETSI EN 300 220-2, CEPT
	// ERC Rec 70-03) with its duty cycles per sub-band; three narrow bands
	// are for alarms only and refused. Power limits (ERP) from ERC Rec
	// 70-03 Annex 1, non-specific short-range devices, and EN 300 220-2
	// Table B.1: 25 mW (14 dBm) in every sub-band except 869.4–869.65 MHz,
	// which allows 500 mW (27 dBm).
	EU868 = Region{name: "EU868", bands: []SubBand{
		subBand(863_000, 865_000, DutyCycle0_1, 14),
		subBand(865_000, 868_000, DutyCycle1, 14),
		subBand(868_000, 868_600, DutyCycle1, 14), // LoRaWAN 868.1/868.3/868.5
		subBand(868_600, 868_700, 0, 0),           // alarms
		subBand(868_700, 869_200, DutyCycle0_1, 14),
		subBand(869_200, 869_400, 0, 0),            // alarms
		subBand(869_400, 869_650, DutyCycle10, 27), // 869.525 community meshes, 500 mW
		subBand(869_650, 869_700, 0, 0),            // alarms
		subBand(869_700, 870_000, DutyCycle1, 14),
	}}

	// US915 is the US 902–928 MHz ISM band: no duty cycle, but each
	// transmission may last at most 400 ms. Power: 1 W (30 dBm) conducted
	// with an antenna of up to 6 dBi (FCC 47 CFR 15.247(b)(3)).
	US915 = Region{name: "US915", bands: []SubBand{
		func() SubBand {
			b := subBand(902_000, 928_000, NoDutyCycle, 30)
			b.MaxDwell = 400 * time.Millisecond
			return b
		}(),
	}}
)

// RegionByName returns the region named name ("eu868", "US915", ...;
// case does not matter).
func RegionByName(name string) (Region, error) {
	for _, r := range []Region{EU868, US915} {
		if strings.EqualFold(name, r.name) {
			return r, nil
		}
	}
	return Region{}, &ParamError{Field: "Region", Value: strconv.Quote(name), Allowed: "EU868 or US915"}
}

// Name is the region's name, "EU868".
func (r Region) Name() string { return r.name }

// SubBands returns a copy of the region's sub-bands, restricted ones
// included, in frequency order.
func (r Region) SubBands() []SubBand { return append([]SubBand(nil), r.bands...) }

func (r Region) String() string { return r.name }

// SubBandFor returns the sub-band that the centre frequency freqHz lies
// in. A frequency in a restricted band returns that band and an error
// matching ErrRestrictedBand; one outside the region ErrOutOfBand.
func (r Region) SubBandFor(freqHz uint32) (SubBand, error) {
	for _, b := range r.bands {
		if freqHz >= b.Low && freqHz < b.High {
			if b.Restricted {
				return b, fmt.Errorf("%s: %d Hz is in %s: %w", prefix, freqHz, b, ErrRestrictedBand)
			}
			return b, nil
		}
	}
	return SubBand{}, fmt.Errorf("%s: %d Hz: %w %s", prefix, freqHz, ErrOutOfBand, r.name)
}

// SubBandForChannel is SubBandFor for a whole channel: the occupied band
// freqHz ± bandwidthHz/2 must lie within one sub-band (edges included).
// A channel that touches a restricted band gets ErrRestrictedBand, one
// that straddles two sub-bands or leaves the region ErrOutOfBand. This
// is the check to run on a radio's configuration.
func (r Region) SubBandForChannel(freqHz uint32, bandwidthHz int) (SubBand, error) {
	if _, ok := bandwidthDivisor(bandwidthHz); !ok {
		return SubBand{}, &ParamError{Field: "Bandwidth", Value: bandwidthHz, Allowed: bandwidthsAllowed}
	}
	half := int64(bandwidthHz) / 2
	lo, hi := int64(freqHz)-half, int64(freqHz)+half
	for _, b := range r.bands {
		if b.Restricted && lo < int64(b.High) && hi > int64(b.Low) {
			return b, fmt.Errorf("%s: channel %d Hz ± %d Hz overlaps %s: %w", prefix, freqHz, half, b, ErrRestrictedBand)
		}
	}
	for _, b := range r.bands {
		if lo >= int64(b.Low) && hi <= int64(b.High) {
			return b, nil
		}
	}
	return SubBand{}, fmt.Errorf("%s: channel %d Hz ± %d Hz does not fit in one sub-band of %s: %w", prefix, freqHz, half, r.name, ErrOutOfBand)
}

// MaxTxPower is the highest transmit power (dBm) the region allows for
// a channel at freqHz with bandwidthHz: the MaxPower of its sub-band
// (SubBandForChannel, whose errors it returns). It is the node's default
// txp for a radio on that channel.
func (r Region) MaxTxPower(freqHz uint32, bandwidthHz int) (int, SubBand, error) {
	b, err := r.SubBandForChannel(freqHz, bandwidthHz)
	if err != nil {
		return 0, b, err
	}
	return b.MaxPower, b, nil
}

// CheckTxPower checks that txp dBm is allowed for a channel at freqHz
// with bandwidthHz: the channel's sub-band errors first, then a
// *PowerError (ErrTxPowerTooHigh) naming the sub-band and its limit when
// txp is above it, or a *ParamError when txp is negative.
func (r Region) CheckTxPower(freqHz uint32, bandwidthHz int, txp int) error {
	limit, b, err := r.MaxTxPower(freqHz, bandwidthHz)
	if err != nil {
		return err
	}
	if txp < 0 {
		return &ParamError{Field: "TxPower", Value: txp, Allowed: fmt.Sprintf("0 to %d dBm in %s MHz", limit, b.Name)}
	}
	if txp > limit {
		return &PowerError{Region: r.name, SubBand: b, TxPower: txp, Limit: limit}
	}
	return nil
}

// TrafficClass is what a transmission carries, for the duty-cycle budget.
type TrafficClass uint8

// Traffic classes.
const (
	// UserData (the zero value) may use the whole budget.
	UserData TrafficClass = iota
	// Control (announces, routing, the link's HELLOs and BYEs) may only
	// use the part of the budget not reserved for user data. The link's
	// ACKs and NACKs are UserData: they are part of delivering a frame.
	Control
)

func (c TrafficClass) String() string {
	switch c {
	case UserData:
		return "user-data"
	case Control:
		return "control"
	}
	return fmt.Sprintf("TrafficClass(%d)", uint8(c))
}

// ClassFor maps a frame priority to its budget class: messages.Control
// is Control, Data and Bulk are UserData.
func ClassFor(p messages.Priority) TrafficClass {
	if p == messages.Control {
		return Control
	}
	return UserData
}

// DefaultDataShare is the share of the budget reserved for user data:
// announces and other control traffic may use at most half of it.
const DefaultDataShare = 0.5

// Tracker accounts one transmitter's airtime in one sub-band over a
// rolling Window and says when the next transmission may start.
//
// It stores each reserved transmission (start, airtime) and forgets those
// that ended more than a Window ago, so it holds at most budget / shortest
// airtime entries (36 s / 25 ms ≈ 1500 at 1 %).
//
// Rules:
//
//   - A transmission of airtime a starting at T is allowed when every
//     one-hour window stays within the budget of its class. Because one
//     transmitter's transmissions never overlap, the window ending at
//     T+a is the fullest, so the check is usage(T+a-1h, T+a) + a <= limit.
//   - UserData's limit is the sub-band's whole budget. Control's limit is
//     (1 - dataShare) of it: a control frame is only sent while the total
//     usage (all classes) stays below that ceiling, so the last dataShare
//     of the budget is always left for user data (like a filesystem's
//     blocks reserved for root).
//   - One transmission at a time: Reserve during a reserved transmission
//     answers "wait until it ends".
//
// A Tracker is plain state for one owner (the link actor); it is not safe
// for concurrent use. Times passed to it must not go backwards.
type Tracker struct {
	band    SubBand
	budget  time.Duration // UserData limit
	control time.Duration // Control limit
	txs     []txRecord    // sorted by start, non-overlapping; live from head
	head    int
	total   time.Duration // sum of txs[head:].airtime
}

type txRecord struct {
	start   time.Time
	airtime time.Duration
}

func (r txRecord) end() time.Time { return r.start.Add(r.airtime) }

// NewTracker returns a tracker for band, with dataShare (0 <= share < 1)
// of the budget reserved for user data; DefaultDataShare is usual, 0
// lets control traffic use the whole budget. A restricted band is refused
// with ErrRestrictedBand.
func NewTracker(band SubBand, dataShare float64) (*Tracker, error) {
	if band.Restricted || band.DutyCycle == 0 {
		return nil, fmt.Errorf("%s: tracker for %s: %w", prefix, band, ErrRestrictedBand)
	}
	if band.DutyCycle > NoDutyCycle {
		return nil, &ParamError{Field: "DutyCycle", Value: uint16(band.DutyCycle), Allowed: "1 to 10000 basis points"}
	}
	if math.IsNaN(dataShare) || dataShare < 0 || dataShare >= 1 {
		return nil, &ParamError{Field: "DataShare", Value: dataShare, Allowed: "0 <= share < 1"}
	}
	b := band.DutyCycle.Budget()
	return &Tracker{
		band:    band,
		budget:  b,
		control: time.Duration(float64(b) * (1 - dataShare)),
	}, nil
}

// SubBand is the sub-band the tracker accounts.
func (t *Tracker) SubBand() SubBand { return t.band }

// Budget is the airtime per Window the sub-band allows (UserData's limit).
func (t *Tracker) Budget() time.Duration { return t.budget }

// Limit is the airtime per Window class c may fill up to.
func (t *Tracker) Limit(c TrafficClass) time.Duration {
	if c == Control {
		return t.control
	}
	return t.budget
}

// evict forgets transmissions that ended at or before now - Window.
func (t *Tracker) evict(now time.Time) {
	from := now.Add(-Window)
	for t.head < len(t.txs) && !t.txs[t.head].end().After(from) {
		t.total -= t.txs[t.head].airtime
		t.head++
	}
	if t.head == len(t.txs) {
		t.txs, t.head = t.txs[:0], 0
	} else if t.head > 64 && t.head > len(t.txs)/2 {
		n := copy(t.txs, t.txs[t.head:])
		t.txs, t.head = t.txs[:n], 0
	}
}

// usageFrom is the airtime of the stored transmissions that lies at or
// after x (whole transmissions after x, the part after x of one that
// straddles it).
func (t *Tracker) usageFrom(x time.Time) time.Duration {
	u := t.total
	for _, r := range t.txs[t.head:] {
		if !r.start.Before(x) {
			break
		}
		if e := r.end(); e.After(x) {
			u -= x.Sub(r.start)
			break
		}
		u -= r.airtime
	}
	return u
}

// Used is the airtime on air within the hour before now, [now-Window,
// now], as the regulation measures it: a transmission straddling either
// end counts only its part inside, so a reservation counts as it goes on
// air. Used never exceeds Budget.
func (t *Tracker) Used(now time.Time) time.Duration {
	t.evict(now)
	u := t.usageFrom(now.Add(-Window))
	if n := len(t.txs); n > t.head {
		if e := t.txs[n-1].end(); e.After(now) {
			u -= min(e.Sub(now), t.txs[n-1].airtime)
		}
	}
	return max(u, 0)
}

// Remaining is Budget - Used(now): the airtime user data has left in the
// current hour. It is a gauge for metrics and status; whether a given
// transmission may start now is Reserve's to say (it also counts airtime
// that leaves the window while the transmission is on air).
func (t *Tracker) Remaining(now time.Time) time.Duration {
	return max(t.budget-t.Used(now), 0)
}

// RemainingFor is Remaining for class c (Control sees only its ceiling).
func (t *Tracker) RemainingFor(now time.Time, c TrafficClass) time.Duration {
	return max(t.Limit(c)-t.Used(now), 0)
}

// Reserve asks to start a transmission of the given airtime at now.
//
//   - ok: it fits; it is recorded as starting at now. Transmit it now.
//   - !ok, err == nil: it does not fit yet; waitUntil is the earliest time
//     it will (exactly: Reserve at waitUntil with nothing else reserved in
//     between returns ok). Nothing is recorded.
//   - err matching ErrNeverFits: the airtime is longer than the class's
//     whole limit or the sub-band's dwell time; waiting will not help.
//     err matching ErrBadParams: airtime <= 0.
func (t *Tracker) Reserve(now time.Time, airtime time.Duration, class TrafficClass) (ok bool, waitUntil time.Time, err error) {
	if airtime <= 0 {
		return false, time.Time{}, &ParamError{Field: "airtime", Value: airtime, Allowed: "> 0"}
	}
	if t.band.MaxDwell > 0 && airtime > t.band.MaxDwell {
		return false, time.Time{}, fmt.Errorf("%s: %s airtime in %s: %w: dwell time %s", prefix, airtime, t.band.Name, ErrNeverFits, t.band.MaxDwell)
	}
	limit := t.Limit(class)
	if airtime > limit {
		return false, time.Time{}, fmt.Errorf("%s: %s airtime in %s: %w: %s may use %s per hour", prefix, airtime, t.band.Name, ErrNeverFits, class, limit)
	}
	t.evict(now)

	earliest := now
	if n := len(t.txs); n > t.head {
		if e := t.txs[n-1].end(); e.After(earliest) {
			earliest = e // still on air
		}
	}
	// Smallest x with usageFrom(x) <= limit - airtime; then the
	// transmission may start when its window begins at x.
	target := limit - airtime
	if rem := t.total; rem > target {
		for _, r := range t.txs[t.head:] {
			if rem-r.airtime <= target {
				x := r.start.Add(rem - target) // inside r
				if s := x.Add(Window - airtime); s.After(earliest) {
					earliest = s
				}
				break
			}
			rem -= r.airtime
		}
	}
	if earliest.After(now) {
		return false, earliest, nil
	}
	t.txs = append(t.txs, txRecord{start: now, airtime: airtime})
	t.total += airtime
	return true, now, nil
}
