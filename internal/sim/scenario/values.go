package scenario

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The value types below keep the text they were read from and are checked
// by the validation pass, not by the TOML decoder: that way every bad value
// is reported as an *Error naming its line and dotted field, whether it
// was a string, a bare number or a negative one.

// Duration is a simulated time span written in Go syntax: "90s", "10m",
// "1h30m". A bare number ("600") is refused (it needs a unit), and so is a
// negative span. The zero value is 0s.
type Duration struct {
	d   time.Duration
	raw string
	set bool
}

// D returns the span.
func (d Duration) D() time.Duration { return d.d }

// IsSet reports whether the file gave the value.
func (d Duration) IsSet() bool { return d.set }

// Dur makes a Duration (for tests and for code that builds scenarios).
func Dur(d time.Duration) Duration { return Duration{d: d, set: true, raw: d.String()} }

// String writes the Go syntax.
func (d Duration) String() string { return d.d.String() }

// MarshalText writes the Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.d.String()), nil }

// UnmarshalText records the text; validation parses it.
func (d *Duration) UnmarshalText(b []byte) error {
	*d = Duration{raw: string(b), set: true}
	return nil
}

func (d *Duration) check() error {
	if !d.set {
		return nil
	}
	if _, err := strconv.ParseFloat(d.raw, 64); err == nil {
		return fmt.Errorf("duration %q needs a unit, e.g. \"%ss\" or \"%sm\"", d.raw, d.raw, d.raw)
	}
	v, err := time.ParseDuration(d.raw)
	if err != nil {
		return fmt.Errorf("bad duration %q (want Go syntax such as \"90s\", \"10m\", \"1h30m\")", d.raw)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", d.raw)
	}
	d.d = v
	return nil
}

// Rate is how often something happens, in events per second. It is
// written "N/unit" with N a non-negative decimal number and unit one of
// s, sec, min, h, hour, d, day: "2/min", "0.5/s", "3/h". "0/s" is allowed
// (nothing happens).
type Rate struct {
	perSec float64
	raw    string
	set    bool
}

// PerSecond returns events per second.
func (r Rate) PerSecond() float64 { return r.perSec }

// Interval returns the mean time between events (0 for a zero rate).
func (r Rate) Interval() time.Duration {
	if r.perSec <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / r.perSec)
}

// IsSet reports whether the file gave the value.
func (r Rate) IsSet() bool { return r.set }

// PerSec makes a Rate of n events per second.
func PerSec(n float64) Rate {
	return Rate{perSec: n, set: true, raw: strconv.FormatFloat(n, 'g', -1, 64) + "/s"}
}

// String writes the rate per second.
func (r Rate) String() string { return strconv.FormatFloat(r.perSec, 'g', -1, 64) + "/s" }

// UnmarshalText records the text; validation parses it.
func (r *Rate) UnmarshalText(b []byte) error {
	*r = Rate{raw: string(b), set: true}
	return nil
}

var rateUnits = map[string]float64{
	"s": 1, "sec": 1, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400,
}

func (r *Rate) check() error {
	if !r.set {
		return nil
	}
	n, unit, ok := strings.Cut(strings.TrimSpace(r.raw), "/")
	if !ok {
		return fmt.Errorf("rate %q needs a unit: write it as \"N/s\", \"N/min\", \"N/h\" or \"N/d\"", r.raw)
	}
	per, known := rateUnits[strings.TrimSpace(unit)]
	if !known {
		return fmt.Errorf("rate %q: unknown unit %q (s, min, h or d)", r.raw, unit)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("rate %q: %q is not a number", r.raw, n)
	}
	if v < 0 {
		return fmt.Errorf("rate %q is negative", r.raw)
	}
	r.perSec = v / per
	return nil
}

// Bandwidth is a link's capacity in bits per second; 0 means unlimited.
// It is written as a non-negative integer (bits per second) or a string
// "N unit" with unit bit, kbit, Mbit or Gbit (decimal: 1kbit = 1000 bit/s),
// optionally followed by "/s" and case-insensitive: 9600, "250kbit",
// "1.5Mbit", "1Gbit/s". At most 100Gbit.
type Bandwidth struct {
	bps int64
	raw string
	set bool
}

// BitsPerSecond returns the capacity, 0 for unlimited.
func (b Bandwidth) BitsPerSecond() int64 { return b.bps }

// IsSet reports whether the file gave the value.
func (b Bandwidth) IsSet() bool { return b.set }

// BPS makes a Bandwidth of n bits per second.
func BPS(n int64) Bandwidth { return Bandwidth{bps: n, set: true, raw: strconv.FormatInt(n, 10)} }

// String writes bits per second.
func (b Bandwidth) String() string { return strconv.FormatInt(b.bps, 10) + "bit/s" }

// UnmarshalText records the text (a string or the digits of a number);
// validation parses it.
func (b *Bandwidth) UnmarshalText(t []byte) error {
	*b = Bandwidth{raw: string(t), set: true}
	return nil
}

const maxBandwidth = 100e9

func (b *Bandwidth) check() error {
	if !b.set {
		return nil
	}
	s := strings.ToLower(strings.TrimSpace(b.raw))
	s = strings.TrimSuffix(s, "/s")
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"bit", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("bandwidth %q: want bits per second as a number or a string such as \"250kbit\", \"1Mbit\"", b.raw)
	}
	v *= mult
	if v < 0 {
		return fmt.Errorf("bandwidth %q is negative", b.raw)
	}
	if v > maxBandwidth {
		return fmt.Errorf("bandwidth %q is above 100Gbit", b.raw)
	}
	b.bps = int64(math.Round(v))
	return nil
}
