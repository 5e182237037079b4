package link

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/rnode"
)

// Addr is a LoRa address as transports.ParseURI leaves it: the channel
// (lora+mock) or device path (lora+serial) and the radio settings its
// query names.
//
//	lora+mock://channel-a?sf=9&bw=125000&freq=868100000
//	lora+serial:///dev/ttyUSB0?freq=869525000&sf=9&cr=5&mtu=51&region=eu868
//
// Query keys, each at most once:
//
//	sf        spreading factor, 5..12
//	bw        bandwidth in Hz (7800 .. 500000)
//	cr        coding rate: 5..8 or 4/5..4/8
//	freq      centre frequency in Hz
//	preamble  preamble symbols, 1..65535
//	mtu       radio packet size in bytes, MinMTU..255
//	region    eu868 or us915
//	txp       transmit power in dBm, 0..MaxTxPower (a modem's setting;
//	          the region's limit for the channel is checked by
//	          CheckTxPower, not here)
type Addr struct {
	// Channel is the address without its query: the mock channel's name
	// or the serial device.
	Channel string
	// Radio is the base settings ParseAddr was given, with the query's
	// values in place of their fields.
	Radio RadioParams
	// MTU is the query's mtu, or 0.
	MTU int
	// Region is the query's region, or "".
	Region string
	// TxPower is the query's txp in dBm, or nil when it has none (the
	// node then takes the region's limit for the channel).
	TxPower *int
}

// MaxTxPower is the largest txp a URI may carry (dBm): the RNode
// driver's limit; the region's limit for the channel is lower or equal
// (lora.Region.CheckTxPower).
const MaxTxPower = rnode.MaxTxPower

// ParseAddr parses addr (what ParseURI returns for a lora URI) on top of
// base (the transport's configured or default settings). Values are
// checked for syntax and range; errors match transports.ErrBadURI and
// name the key, the value and what is allowed. It does not check that
// the settings work together (a channel inside one sub-band): New does.
func ParseAddr(addr string, base RadioParams) (Addr, error) {
	channel, query, _ := strings.Cut(addr, "?")
	a := Addr{Channel: channel, Radio: base}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return Addr{}, fmt.Errorf("%s: %q: %w: query: %v", prefix, addr, transports.ErrBadURI, err)
	}
	bad := func(key, val, allowed string) error {
		return fmt.Errorf("%s: %q: %w: %s=%q, want %s", prefix, addr, transports.ErrBadURI, key, val, allowed)
	}
	num := func(key, val string, lo, hi int64, allowed string) (int64, error) {
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < lo || n > hi {
			return 0, bad(key, val, allowed)
		}
		return n, nil
	}
	for _, key := range slices.Sorted(maps.Keys(vals)) {
		vs := vals[key]
		if len(vs) != 1 {
			return Addr{}, fmt.Errorf("%s: %q: %w: %s given %d times", prefix, addr, transports.ErrBadURI, key, len(vs))
		}
		v := vs[0]
		switch strings.ToLower(key) {
		case "sf":
			n, err := num(key, v, lora.MinSF, lora.MaxSF, fmt.Sprintf("%d to %d", lora.MinSF, lora.MaxSF))
			if err != nil {
				return Addr{}, err
			}
			a.Radio.SF = int(n)
		case "bw":
			n, err := num(key, v, 1, 1_000_000, "one of 7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000")
			if err != nil {
				return Addr{}, err
			}
			if _, ok := lora.NominalBandwidth(int(n)); !ok {
				return Addr{}, bad(key, v, "one of 7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000")
			}
			a.Radio.Bandwidth = int(n)
		case "cr":
			cr, err := lora.ParseCodingRate(v)
			if err != nil {
				return Addr{}, bad(key, v, "5 to 8 or 4/5 to 4/8")
			}
			a.Radio.CR = cr
		case "freq":
			n, err := num(key, v, 1, 1<<32-1, "a frequency in Hz, e.g. 869525000")
			if err != nil {
				return Addr{}, err
			}
			a.Radio.Frequency = uint32(n)
		case "preamble":
			n, err := num(key, v, lora.MinPreamble, lora.MaxPreamble, fmt.Sprintf("%d to %d symbols", lora.MinPreamble, lora.MaxPreamble))
			if err != nil {
				return Addr{}, err
			}
			a.Radio.Preamble = int(n)
		case "mtu":
			n, err := num(key, v, MinMTU, lora.MaxPayload, fmt.Sprintf("%d to %d bytes", MinMTU, lora.MaxPayload))
			if err != nil {
				return Addr{}, err
			}
			a.MTU = int(n)
		case "region":
			if _, err := lora.RegionByName(v); err != nil {
				return Addr{}, bad(key, v, "eu868 or us915")
			}
			a.Region = v
		case "txp":
			n, err := num(key, v, 0, MaxTxPower, fmt.Sprintf("0 to %d (dBm)", MaxTxPower))
			if err != nil {
				return Addr{}, err
			}
			txp := int(n)
			a.TxPower = &txp
		default:
			return Addr{}, fmt.Errorf("%s: %q: %w: unknown key %q (known: sf, bw, cr, freq, preamble, mtu, region, txp)", prefix, addr, transports.ErrBadURI, key)
		}
	}
	return a, nil
}

// TxPowerFor is the transmit power a radio at addr uses in region (the
// query's region, when it names one, instead): the query's txp, else
// fallback when it is positive (the config's transports.lora.tx_power),
// else the highest power the region allows on the channel. It checks the
// result against the region's limit for the channel's sub-band:
// *lora.PowerError (lora.ErrTxPowerTooHigh) names the sub-band and the
// limit. The channel is a.Radio's frequency and bandwidth, zero fields
// taking DefaultFrequency and DefaultBandwidth.
func TxPowerFor(a Addr, region lora.Region, fallback int) (int, error) {
	if a.Region != "" {
		r, err := lora.RegionByName(a.Region)
		if err != nil {
			return 0, err
		}
		region = r
	}
	if region.Name() == "" {
		region = lora.EU868
	}
	p := a.Radio.withDefaults()
	limit, _, err := region.MaxTxPower(p.Frequency, p.Bandwidth)
	if err != nil {
		return 0, err
	}
	txp := limit
	switch {
	case a.TxPower != nil:
		txp = *a.TxPower
	case fallback > 0:
		txp = fallback
	}
	if err := region.CheckTxPower(p.Frequency, p.Bandwidth, txp); err != nil {
		return 0, err
	}
	return txp, nil
}
