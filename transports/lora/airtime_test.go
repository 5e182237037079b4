package lora

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/quicprochat/qpc/transports"
)

func params(sf, bw int, cr CodingRate) Params {
	return Params{SF: sf, Bandwidth: bw, CR: cr, Preamble: DefaultPreamble}
}

// The expected values were computed independently (Python, floating
// point, straight from the formula of the LoRa reference sheet) and include
// the two published reference points.
func TestAirtimeTable(t *testing.T) {
	type row struct {
		name    string
		p       Params
		pl      int
		ms      float64
		symbols int // Npayload
		ldro    bool
	}
	imp := func(p Params) Params { p.ImplicitHeader = true; return p }
	nocrc := func(p Params) Params { p.NoCRC = true; return p }
	ldro := func(p Params, l LowDataRate) Params { p.LDRO = l; return p }
	pre := func(p Params, n int) Params { p.Preamble = n; return p }
	rows := []row{
		// The reference points of lora.md.
		{"ref SF7 20B", params(7, 125000, CR45), 20, 56.576, 43, false},
		{"ref SF9 13B (AN1200.13)", params(9, 125000, CR45), 13, 164.864, 28, false},
		// SF5..SF12, 20 bytes, explicit header, CRC on, 125 kHz, 4/5.
		{"SF5 20B", params(5, 125000, CR45), 20, 17.216, 53, false},
		{"SF6 20B", params(6, 125000, CR45), 20, 31.872, 48, false},
		{"SF8 20B", params(8, 125000, CR45), 20, 102.912, 38, false},
		{"SF10 20B", params(10, 125000, CR45), 20, 370.688, 33, false},
		{"SF11 20B (LDRO auto on)", params(11, 125000, CR45), 20, 741.376, 33, true},
		{"SF12 20B (LDRO auto on)", params(12, 125000, CR45), 20, 1318.912, 28, true},
		{"SF12 51B (LoRaWAN DR0 max)", params(12, 125000, CR45), 51, 2465.792, 63, true},
		// Implicit header.
		{"SF5 51B implicit", imp(params(5, 125000, CR45)), 51, 32.576, 113, false},
		{"SF6 51B implicit", imp(params(6, 125000, CR45)), 51, 54.912, 93, false},
		{"SF7 51B implicit", imp(params(7, 125000, CR45)), 51, 97.536, 83, false},
		{"SF12 51B implicit", imp(params(12, 125000, CR45)), 51, 2301.952, 58, true},
		// CRC off.
		{"SF5 51B no CRC", nocrc(params(5, 125000, CR45)), 51, 32.576, 113, false},
		{"SF7 51B no CRC", nocrc(params(7, 125000, CR45)), 51, 97.536, 83, false},
		{"SF10 51B no CRC", nocrc(params(10, 125000, CR45)), 51, 575.488, 58, false},
		// LDRO forced on and off.
		{"SF7 51B LDRO on", ldro(params(7, 125000, CR45), LDROOn), 51, 133.376, 118, true},
		{"SF8 51B 4/8 LDRO on", ldro(params(8, 125000, CR48), LDROOn), 51, 336.384, 152, true},
		{"SF12 51B LDRO off", ldro(params(12, 125000, CR45), LDROOff), 51, 2138.112, 53, false},
		{"SF11 51B LDRO off", ldro(params(11, 125000, CR45), LDROOff), 51, 1150.976, 58, false},
		{"SF11 51B LDRO auto", params(11, 125000, CR45), 51, 1314.816, 68, true},
		// Other bandwidths (LDRO auto follows the symbol time).
		{"SF12 250k 4/6 51B (LDRO on)", params(12, 250000, CR46), 51, 1413.120, 74, true},
		{"SF11 250k 51B (LDRO off)", params(11, 250000, CR45), 51, 575.488, 58, false},
		{"SF10 62.5k 51B (LDRO on)", params(10, 62500, CR45), 51, 1396.736, 73, true},
		{"SF12 7.8k 10B", params(12, 7800, CR45), 10, 15859.712, 18, true},
		{"SF6 41.7k 10B", params(6, 41700, CR45), 10, 64.896, 28, false},
		{"SF7 500k 4/7 100B preamble 18", pre(params(7, 500000, CR47), 18), 100, 61.504, 218, false},
		// Edges of the payload length.
		{"SF7 0B", params(7, 125000, CR45), 0, 25.856, 13, false},
		{"SF7 255B", params(7, 125000, CR45), 255, 399.616, 378, false},
		{"SF12 255B", params(12, 125000, CR45), 255, 9019.392, 263, true},
		{"SF12 4/8 255B", params(12, 125000, CR48), 255, 14032.896, 416, true},
		{"SF5 500k 0B implicit no CRC", nocrc(imp(params(5, 500000, CR45))), 0, 1.424, 8, false},
		{"SF12 51B preamble 18 (RNode minimum)", pre(params(12, 125000, CR45), 18), 51, 2793.472, 63, true},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			b, err := Calculate(r.p, r.pl)
			if err != nil {
				t.Fatal(err)
			}
			got := float64(b.Total) / float64(time.Millisecond)
			if math.Abs(got-r.ms) > 0.01 {
				t.Errorf("airtime = %.6f ms, want %.3f ms", got, r.ms)
			}
			if b.PayloadSymbols != r.symbols {
				t.Errorf("Npayload = %d, want %d", b.PayloadSymbols, r.symbols)
			}
			if b.LowDataRate != r.ldro {
				t.Errorf("LowDataRate = %v, want %v", b.LowDataRate, r.ldro)
			}
			if b.Preamble+b.Payload != b.Total {
				t.Errorf("breakdown %v + %v != %v", b.Preamble, b.Payload, b.Total)
			}
			d, err := Airtime(r.p, r.pl)
			if err != nil || d != b.Total {
				t.Errorf("Airtime = %v, %v; Calculate says %v", d, err, b.Total)
			}
		})
	}
}

// refAirtime is a floating-point transcription of the formula, written
// apart from the integer implementation, to check it over the whole input
// space.
func refAirtime(sf int, bwHz float64, cr, pl, pre int, implicit, crcOn bool, ldro LowDataRate) float64 {
	ts := math.Pow(2, float64(sf)) / bwHz
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	ih, crc := b2f(implicit), b2f(crcOn)
	if sf < 7 {
		n := 8 + math.Ceil(math.Max(8*float64(pl)+16*crc-4*float64(sf)+20*(1-ih), 0)/(4*float64(sf)))*float64(cr+4)
		return (float64(pre) + 6.25 + n) * ts
	}
	de := b2f(ts > 0.016)
	switch ldro {
	case LDROOn:
		de = 1
	case LDROOff:
		de = 0
	}
	n := 8 + math.Max(math.Ceil((8*float64(pl)-4*float64(sf)+28+16*crc-20*ih)/(4*(float64(sf)-2*de)))*float64(cr+4), 0)
	return (float64(pre) + 4.25 + n) * ts
}

func TestAirtimeMatchesReferenceEverywhere(t *testing.T) {
	exact := map[int]float64{7800: 500e3 / 64, 10400: 500e3 / 48, 15600: 500e3 / 32, 20800: 500e3 / 24,
		31250: 31250, 41700: 500e3 / 12, 62500: 62500, 125000: 125000, 250000: 250000, 500000: 500000}
	n := 0
	for sf := MinSF; sf <= MaxSF; sf++ {
		for bw, bwExact := range exact {
			for cr := CR45; cr <= CR48; cr++ {
				for _, flags := range [][2]bool{{false, true}, {true, true}, {false, false}, {true, false}} {
					for _, l := range []LowDataRate{LDROAuto, LDROOn, LDROOff} {
						p := Params{SF: sf, Bandwidth: bw, CR: cr, Preamble: 8, ImplicitHeader: flags[0], NoCRC: !flags[1], LDRO: l}
						for pl := 0; pl <= MaxPayload; pl++ {
							got, err := Airtime(p, pl)
							if err != nil {
								t.Fatal(err)
							}
							want := refAirtime(sf, bwExact, int(cr), pl, 8, flags[0], flags[1], l)
							if math.Abs(got.Seconds()-want) > 1e-9*want+1e-9 {
								t.Fatalf("%v %d B: %v, reference %.9f s", p, pl, got, want)
							}
							n++
						}
					}
				}
			}
		}
	}
	t.Logf("%d combinations agree", n)
}

func TestAirtimeMonotonicInPayload(t *testing.T) {
	for sf := MinSF; sf <= MaxSF; sf++ {
		p := params(sf, 125000, CR45)
		prev := time.Duration(0)
		for pl := 0; pl <= MaxPayload; pl++ {
			d, _ := Airtime(p, pl)
			if d < prev {
				t.Fatalf("SF%d: %d B takes %v < %v for %d B", sf, pl, d, prev, pl-1)
			}
			prev = d
		}
	}
}

func TestAirtimeErrorsNameTheField(t *testing.T) {
	ok := params(7, 125000, CR45)
	cases := []struct {
		name  string
		p     Params
		pl    int
		field string
	}{
		{"SF low", Params{SF: 4, Bandwidth: 125000, CR: CR45, Preamble: 8}, 10, "SF"},
		{"SF high", Params{SF: 13, Bandwidth: 125000, CR: CR45, Preamble: 8}, 10, "SF"},
		{"bandwidth unknown", Params{SF: 7, Bandwidth: 100000, CR: CR45, Preamble: 8}, 10, "Bandwidth"},
		{"bandwidth zero", Params{SF: 7, CR: CR45, Preamble: 8}, 10, "Bandwidth"},
		{"bandwidth negative", Params{SF: 7, Bandwidth: -125000, CR: CR45, Preamble: 8}, 10, "Bandwidth"},
		{"CR zero", Params{SF: 7, Bandwidth: 125000, Preamble: 8}, 10, "CR"},
		{"CR as denominator", Params{SF: 7, Bandwidth: 125000, CR: 5, Preamble: 8}, 10, "CR"},
		{"preamble zero", Params{SF: 7, Bandwidth: 125000, CR: CR45}, 10, "Preamble"},
		{"preamble huge", Params{SF: 7, Bandwidth: 125000, CR: CR45, Preamble: 70000}, 10, "Preamble"},
		{"LDRO bogus", Params{SF: 7, Bandwidth: 125000, CR: CR45, Preamble: 8, LDRO: 7}, 10, "LDRO"},
		{"PL > 255", ok, 256, "PayloadLen"},
		{"PL negative", ok, -1, "PayloadLen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Airtime(c.p, c.pl)
			var pe *ParamError
			if !errors.As(err, &pe) || !errors.Is(err, ErrBadParams) {
				t.Fatalf("err = %v, want a *ParamError", err)
			}
			if pe.Field != c.field {
				t.Errorf("field = %q, want %q (%v)", pe.Field, c.field, err)
			}
			t.Log(err)
		})
	}
}

func TestBandwidthSpellings(t *testing.T) {
	for _, c := range []struct{ hz, nominal int }{
		{7800, 7800}, {7810, 7800}, {7813, 7800}, {10400, 10400}, {10420, 10400}, {10417, 10400},
		{15600, 15600}, {15630, 15600}, {20800, 20800}, {20830, 20800}, {31250, 31250},
		{41700, 41700}, {41670, 41700}, {62500, 62500}, {125000, 125000}, {250000, 250000}, {500000, 500000},
	} {
		got, ok := NominalBandwidth(c.hz)
		if !ok || got != c.nominal {
			t.Errorf("NominalBandwidth(%d) = %d, %v; want %d", c.hz, got, ok, c.nominal)
		}
	}
	for _, hz := range []int{0, 1, 7000, 9000, 100000, 126500, 200000, 1000000} {
		if _, ok := NominalBandwidth(hz); ok {
			t.Errorf("NominalBandwidth(%d) accepted", hz)
		}
	}
	// All spellings of a bandwidth compute the same airtime.
	a, _ := Airtime(params(12, 7800, CR45), 10)
	b, _ := Airtime(params(12, 7813, CR45), 10)
	if a != b {
		t.Errorf("7800 Hz: %v, 7813 Hz: %v", a, b)
	}
	if len(Bandwidths()) != 10 {
		t.Errorf("Bandwidths() = %v", Bandwidths())
	}
}

func TestSymbolTimeAndLDRO(t *testing.T) {
	for _, c := range []struct {
		sf, bw int
		tsym   time.Duration
		ldro   bool
	}{
		{5, 125000, 256 * time.Microsecond, false},
		{7, 125000, 1024 * time.Microsecond, false},
		{10, 125000, 8192 * time.Microsecond, false},
		{11, 125000, 16384 * time.Microsecond, true},
		{12, 125000, 32768 * time.Microsecond, true},
		{11, 250000, 8192 * time.Microsecond, false},
		{12, 250000, 16384 * time.Microsecond, true},
		{10, 62500, 16384 * time.Microsecond, true},
		{12, 500000, 8192 * time.Microsecond, false},
		{12, 7800, 524288 * time.Microsecond, true},
	} {
		p := params(c.sf, c.bw, CR45)
		tsym, err := SymbolTime(p)
		if err != nil || tsym != c.tsym {
			t.Errorf("SymbolTime(SF%d %d) = %v, %v; want %v", c.sf, c.bw, tsym, err, c.tsym)
		}
		on, _ := LowDataRateOn(p)
		if on != c.ldro {
			t.Errorf("LowDataRateOn(SF%d %d) = %v, want %v", c.sf, c.bw, on, c.ldro)
		}
	}
	if _, err := SymbolTime(Params{}); !errors.Is(err, ErrBadParams) {
		t.Errorf("SymbolTime(zero) err = %v", err)
	}
}

func TestCodingRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want CodingRate
	}{{"5", CR45}, {"6", CR46}, {"7", CR47}, {"8", CR48}, {"4/5", CR45}, {"4/8", CR48}, {" 6 ", CR46}} {
		got, err := ParseCodingRate(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseCodingRate(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "1", "4", "9", "4/9", "4/4", "x", "5/4", "4/"} {
		if got, err := ParseCodingRate(in); !errors.Is(err, ErrBadParams) {
			t.Errorf("ParseCodingRate(%q) = %v, %v; want ErrBadParams", in, got, err)
		}
	}
	if CR45.String() != "4/5" || CR48.Denominator() != 8 || CodingRate(0).String() != "CodingRate(0)" {
		t.Errorf("String/Denominator: %v %v %v", CR45, CR48.Denominator(), CodingRate(0))
	}
	for d := 5; d <= 8; d++ {
		c, err := CodingRateFromDenominator(d)
		if err != nil || c.Denominator() != d {
			t.Errorf("CodingRateFromDenominator(%d) = %v, %v", d, c, err)
		}
	}
}

func TestBitrateAndLinkInfo(t *testing.T) {
	for _, c := range []struct {
		sf, bw int
		cr     CodingRate
		want   int64
		class  transports.Class
	}{
		{7, 125000, CR45, 5468, transports.Constrained},
		{8, 125000, CR45, 3125, transports.Constrained},
		{9, 125000, CR45, 1757, transports.Constrained},
		{10, 125000, CR45, 976, transports.SeverelyConstrained},
		{11, 125000, CR45, 439, transports.SeverelyConstrained}, // LDRO: 9 bits per symbol
		{12, 125000, CR45, 244, transports.SeverelyConstrained}, // LDRO: 10 bits per symbol
		{12, 125000, CR48, 152, transports.SeverelyConstrained},
		{7, 500000, CR45, 21875, transports.Constrained},
		{5, 500000, CR45, 62500, transports.Constrained},
	} {
		p := params(c.sf, c.bw, c.cr)
		if got := Bitrate(p); got != c.want {
			t.Errorf("Bitrate(%v) = %d, want %d", p, got, c.want)
		}
		info, err := LinkInfo(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		if info.Class != c.class || info.Bitrate != c.want || info.Name != "lora" || info.MTU != MTUFor(p) || info.MaxFrame != MaxFrameFor(info.MTU) {
			t.Errorf("LinkInfo(%v) = %v, want class %v", p, info, c.class)
		}
	}
	if s := (Params{SF: 9, Bandwidth: 125000, CR: CR47, Preamble: 8, NoCRC: true, LDRO: LDROOn}).String(); s != "SF9 BW125000 CR4/7 preamble 8 no-crc ldro-on" {
		t.Errorf("String = %q", s)
	}
	if Bitrate(Params{}) != 0 {
		t.Error("Bitrate of invalid params is not 0")
	}
	if _, err := LinkInfo(params(7, 125000, CR45), 5); !errors.Is(err, ErrBadParams) {
		t.Errorf("LinkInfo MTU 5: %v", err)
	}
}

func TestMaxPayloadWithin(t *testing.T) {
	for _, c := range []struct {
		sf   int
		d    time.Duration
		want int
	}{
		{10, 400 * time.Millisecond, 24}, // US915 DR0: LoRaWAN allows 11 B MAC payload + 13 B overhead
		{7, 400 * time.Millisecond, 255},
		{12, 400 * time.Millisecond, -1}, // not even an empty packet
		{9, 400 * time.Millisecond, 66},  // US915 DR1: 53 + 13
	} {
		p := params(c.sf, 125000, CR45)
		got, err := MaxPayloadWithin(p, c.d)
		if err != nil || got != c.want {
			t.Errorf("MaxPayloadWithin(SF%d, %v) = %d, %v; want %d", c.sf, c.d, got, err, c.want)
		}
		if got >= 0 {
			if a, _ := Airtime(p, got); a > c.d {
				t.Errorf("SF%d %d B takes %v > %v", c.sf, got, a, c.d)
			}
		}
		if got < MaxPayload {
			if a, _ := Airtime(p, got+1); a <= c.d {
				t.Errorf("SF%d %d B takes %v <= %v: not the largest", c.sf, got+1, a, c.d)
			}
		}
	}
}
