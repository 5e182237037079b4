package lora

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/messages"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func TestSubBandFor(t *testing.T) {
	for _, c := range []struct {
		freq uint32
		name string
		duty DutyCycle
		err  error
	}{
		{863_000_000, "863.0-865.0", DutyCycle0_1, nil},
		{864_900_000, "863.0-865.0", DutyCycle0_1, nil},
		{865_000_000, "865.0-868.0", DutyCycle1, nil},
		{868_100_000, "868.0-868.6", DutyCycle1, nil},
		{868_300_000, "868.0-868.6", DutyCycle1, nil},
		{868_500_000, "868.0-868.6", DutyCycle1, nil},
		{868_650_000, "868.6-868.7", 0, ErrRestrictedBand},
		{868_800_000, "868.7-869.2", DutyCycle0_1, nil},
		{869_300_000, "869.2-869.4", 0, ErrRestrictedBand},
		{869_525_000, "869.4-869.65", DutyCycle10, nil},
		{869_675_000, "869.65-869.7", 0, ErrRestrictedBand},
		{869_850_000, "869.7-870.0", DutyCycle1, nil},
		{862_999_999, "", 0, ErrOutOfBand},
		{870_000_000, "", 0, ErrOutOfBand},
		{915_000_000, "", 0, ErrOutOfBand},
	} {
		b, err := EU868.SubBandFor(c.freq)
		if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("SubBandFor(%d) err = %v, want %v", c.freq, err, c.err)
		}
		if b.Name != c.name || b.DutyCycle != c.duty {
			t.Errorf("SubBandFor(%d) = %v, want %s at %v", c.freq, b, c.name, c.duty)
		}
		if c.err == ErrRestrictedBand && !b.Restricted {
			t.Errorf("SubBandFor(%d) = %v not marked restricted", c.freq, b)
		}
	}
	b, err := US915.SubBandFor(915_000_000)
	if err != nil || b.MaxDwell != 400*time.Millisecond || b.DutyCycle != NoDutyCycle {
		t.Errorf("US915 915 MHz: %v, %v", b, err)
	}
	if _, err := US915.SubBandFor(868_100_000); !errors.Is(err, ErrOutOfBand) {
		t.Errorf("US915 868.1 MHz: %v", err)
	}
}

func TestSubBandForChannel(t *testing.T) {
	for _, c := range []struct {
		freq uint32
		bw   int
		name string
		err  error
	}{
		{869_525_000, 125000, "869.4-869.65", nil},
		{869_525_000, 250000, "869.4-869.65", nil},              // exactly fills it
		{869_525_000, 500000, "869.2-869.4", ErrRestrictedBand}, // spills into the alarm bands
		{868_500_000, 125000, "868.0-868.6", nil},
		{868_500_000, 250000, "868.6-868.7", ErrRestrictedBand},
		{865_000_000, 125000, "", ErrOutOfBand}, // straddles 0.1 % and 1 %
		{863_000_000, 125000, "", ErrOutOfBand}, // leaves the region
		{869_850_000, 250000, "869.7-870.0", nil},
	} {
		b, err := EU868.SubBandForChannel(c.freq, c.bw)
		if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("SubBandForChannel(%d, %d) err = %v, want %v", c.freq, c.bw, err, c.err)
		}
		if b.Name != c.name {
			t.Errorf("SubBandForChannel(%d, %d) = %q, want %q", c.freq, c.bw, b.Name, c.name)
		}
	}
	if _, err := EU868.SubBandForChannel(869_525_000, 100000); !errors.Is(err, ErrBadParams) {
		t.Errorf("bad bandwidth: %v", err)
	}
}

func TestRegionByName(t *testing.T) {
	for _, n := range []string{"EU868", "eu868", "us915"} {
		if r, err := RegionByName(n); err != nil || r.Name() == "" {
			t.Errorf("RegionByName(%q) = %v, %v", n, r, err)
		}
	}
	if _, err := RegionByName("AS923"); !errors.Is(err, ErrBadParams) {
		t.Errorf("AS923: %v", err)
	}
	bands := EU868.SubBands()
	bands[0].DutyCycle = NoDutyCycle
	if EU868.SubBands()[0].DutyCycle != DutyCycle0_1 {
		t.Error("SubBands returned the region's own slice")
	}
}

func TestBudgets(t *testing.T) {
	for _, c := range []struct {
		d    DutyCycle
		want time.Duration
		s    string
	}{
		{DutyCycle0_1, 3600 * time.Millisecond, "0.1%"},
		{DutyCycle1, 36 * time.Second, "1%"},
		{DutyCycle10, 360 * time.Second, "10%"},
		{NoDutyCycle, time.Hour, "100%"},
		{25, 9 * time.Second, "0.25%"},
	} {
		if got := c.d.Budget(); got != c.want || c.d.String() != c.s {
			t.Errorf("%d bp: %v %q, want %v %q", c.d, got, c.d, c.want, c.s)
		}
	}
}

func mustTracker(t *testing.T, freq uint32, share float64) *Tracker {
	t.Helper()
	b, err := EU868.SubBandFor(freq)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTracker(b, share)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// maxWindowUsage is the naive reference: the largest airtime in any
// one-hour window over the sent transmissions. The sum over a sliding
// window peaks when the window ends at the end of a transmission.
func maxWindowUsage(sent []txRecord) time.Duration {
	var peak time.Duration
	for _, w := range sent {
		end := w.end()
		from := end.Add(-Window)
		var u time.Duration
		for _, r := range sent {
			s, e := r.start, r.end()
			if s.Before(from) {
				s = from
			}
			if e.After(end) {
				e = end
			}
			if e.After(s) {
				u += e.Sub(s)
			}
		}
		peak = max(peak, u)
	}
	return peak
}

// Offering far more than 1 %: the excess is held back, never sent before
// Reserve allows it, and released as the window rolls.
func TestTrackerHoldsBackExcess(t *testing.T) {
	clk := clock.NewManual(t0)
	tr := mustTracker(t, 868_100_000, DefaultDataShare) // 1 %: 36 s per hour
	p := params(12, 125000, CR45)
	airtime, _ := Airtime(p, 51) // 2.465792 s
	const offered = 40           // 98.6 s of airtime, 2.7 times the budget

	var sent []txRecord
	queue := offered
	for steps := 0; queue > 0; steps++ {
		if steps > 10000 {
			t.Fatal("the queue never drained")
		}
		now := clk.Now()
		ok, wait, err := tr.Reserve(now, airtime, UserData)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if !wait.After(now) {
				t.Fatalf("not ok, but wait until %v is not after now %v", wait, now)
			}
			// Probe just before the promised time: still refused.
			clk.Advance(wait.Sub(now) - time.Nanosecond)
			if ok, _, _ := tr.Reserve(clk.Now(), airtime, UserData); ok {
				t.Fatalf("admitted 1 ns before the promised %v", wait)
			}
			clk.Advance(time.Nanosecond)
			continue
		}
		sent = append(sent, txRecord{start: now, airtime: airtime})
		queue--
		if u := tr.Used(now); u > tr.Budget() {
			t.Fatalf("used %v of %v", u, tr.Budget())
		}
		clk.Advance(airtime) // the radio is busy meanwhile
	}

	// 14 frames (34.5 s) fit at once; the 15th would make 36.99 s.
	burst := 0
	for burst < len(sent) && sent[burst].start.Sub(t0) < time.Hour/2 {
		burst++
	}
	if burst != 14 {
		t.Errorf("%d frames in the first burst, want 14", burst)
	}
	// The 15th goes exactly when enough of the first frame has left the
	// window: at +1h + 14a - 36 s (59:58.52).
	if got, want := sent[14].start, t0.Add(Window+14*airtime-tr.Budget()); !got.Equal(want) {
		t.Errorf("15th frame at +%v, want +%v", got.Sub(t0), want.Sub(t0))
	}
	if peak := maxWindowUsage(sent); peak > tr.Budget() {
		t.Errorf("some hour carried %v, budget %v", peak, tr.Budget())
	}
	if last := sent[len(sent)-1].start.Sub(t0); last < 2*time.Hour {
		t.Errorf("all %d frames out after %v: faster than 1 %% allows", offered, last)
	}
	t.Logf("%d frames of %v: first burst %d, 15th at +%v, last at +%v, peak hour %v",
		offered, airtime, burst, sent[14].start.Sub(t0), sent[len(sent)-1].start.Sub(t0), maxWindowUsage(sent))
}

// Reserve against a naive model: random offers, random gaps. The promised
// waitUntil is exact (admitted there, refused 1 ns before), and no hour
// ever exceeds the limit.
func TestTrackerAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for trial := range 20 {
		tr := mustTracker(t, 869_850_000, 0.3) // 1 %
		now := t0
		var sent []txRecord
		fits := func(at time.Time, a time.Duration, c TrafficClass) bool {
			if len(sent) > 0 && sent[len(sent)-1].end().After(at) {
				return false
			}
			return windowUsage(sent, at.Add(a))+a <= tr.Limit(c)
		}
		for range 300 {
			a := time.Duration(20+rng.IntN(3000)) * time.Millisecond
			c := TrafficClass(rng.IntN(2))
			ok, wait, err := tr.Reserve(now, a, c)
			if err != nil {
				t.Fatal(err)
			}
			if ok != fits(now, a, c) {
				t.Fatalf("trial %d: Reserve(+%v, %v, %v) = %v, reference says %v", trial, now.Sub(t0), a, c, ok, !ok)
			}
			if ok {
				sent = append(sent, txRecord{now, a})
			} else {
				if !fits(wait, a, c) || fits(wait.Add(-time.Nanosecond), a, c) {
					t.Fatalf("trial %d: waitUntil +%v is not the earliest fit for %v %v", trial, wait.Sub(t0), a, c)
				}
				if rng.IntN(2) == 0 {
					now = wait // take the offer
					continue
				}
			}
			now = now.Add(time.Duration(rng.IntN(120_000)) * time.Millisecond)
		}
		if peak := maxWindowUsage(sent); peak > tr.Budget() {
			t.Fatalf("trial %d: peak hour %v > %v", trial, peak, tr.Budget())
		}
	}
}

// windowUsage is the airtime of sent within [end-Window, end].
func windowUsage(sent []txRecord, end time.Time) time.Duration {
	from := end.Add(-Window)
	var u time.Duration
	for _, r := range sent {
		s, e := r.start, r.end()
		if s.Before(from) {
			s = from
		}
		if e.After(end) {
			e = end
		}
		if e.After(s) {
			u += e.Sub(s)
		}
	}
	return u
}

func TestTrackerControlShare(t *testing.T) {
	tr := mustTracker(t, 869_525_000, 0.25) // 10 %: 360 s; control may fill 270 s
	if tr.Limit(Control) != 270*time.Second || tr.Limit(UserData) != 360*time.Second {
		t.Fatalf("limits %v %v", tr.Limit(Control), tr.Limit(UserData))
	}
	now := t0
	// Announces fill up to their ceiling.
	for i := range 27 {
		ok, _, err := tr.Reserve(now, 10*time.Second, Control)
		if !ok || err != nil {
			t.Fatalf("announce %d refused: %v", i, err)
		}
		now = now.Add(10 * time.Second)
		if u := tr.Used(now); u != time.Duration(i+1)*10*time.Second {
			t.Fatalf("Used = %v after %d announces", u, i+1)
		}
	}
	ok, wait, _ := tr.Reserve(now, 10*time.Second, Control)
	if ok {
		t.Fatal("announce beyond the control ceiling admitted")
	}
	if want := t0.Add(Window); !wait.Equal(want) {
		t.Errorf("announce may go at +%v, want +%v", wait.Sub(t0), want.Sub(t0))
	}
	if r := tr.RemainingFor(now, Control); r != 0 {
		t.Errorf("RemainingFor(Control) = %v", r)
	}
	// User data still has the reserved 90 s.
	for i := range 9 {
		if ok, _, err := tr.Reserve(now, 10*time.Second, UserData); !ok || err != nil {
			t.Fatalf("data %d refused: %v", i, err)
		}
		now = now.Add(10 * time.Second)
	}
	if ok, _, _ := tr.Reserve(now, time.Second, UserData); ok {
		t.Fatal("data beyond the budget admitted")
	}
	if u, r := tr.Used(now), tr.Remaining(now); u != 360*time.Second || r != 0 {
		t.Errorf("Used %v Remaining %v", u, r)
	}
	// Data first: announces are held back once the total passes 75 %.
	tr = mustTracker(t, 869_525_000, 0.25)
	now = t0
	if ok, _, _ := tr.Reserve(now, 265*time.Second, UserData); !ok {
		t.Fatal("data refused")
	}
	now = now.Add(265 * time.Second)
	if ok, _, _ := tr.Reserve(now, 5*time.Second, Control); !ok {
		t.Error("announce within the ceiling refused")
	}
	now = now.Add(5 * time.Second)
	if ok, _, _ := tr.Reserve(now, time.Second, Control); ok {
		t.Error("announce over the ceiling admitted")
	}
	if ok, _, _ := tr.Reserve(now, 90*time.Second, UserData); !ok {
		t.Error("data in the reserved share refused")
	}
}

func TestTrackerUsedRollsOff(t *testing.T) {
	tr := mustTracker(t, 868_100_000, 0)
	if ok, _, _ := tr.Reserve(t0, 10*time.Second, UserData); !ok {
		t.Fatal("refused")
	}
	for _, c := range []struct {
		at   time.Duration
		used time.Duration
	}{
		{0, 0}, // reserved, counted as it goes on air
		{4 * time.Second, 4 * time.Second},
		{10 * time.Second, 10 * time.Second},
		{Window, 10 * time.Second},
		{Window + 4*time.Second, 6 * time.Second},
		{Window + 10*time.Second, 0},
		{3 * Window, 0},
	} {
		if got := tr.Used(t0.Add(c.at)); got != c.used {
			t.Errorf("Used(+%v) = %v, want %v", c.at, got, c.used)
		}
	}
}

func TestTrackerOneAtATime(t *testing.T) {
	tr := mustTracker(t, 869_525_000, 0)
	if ok, _, _ := tr.Reserve(t0, time.Second, UserData); !ok {
		t.Fatal("refused")
	}
	ok, wait, err := tr.Reserve(t0.Add(100*time.Millisecond), time.Second, UserData)
	if ok || err != nil || !wait.Equal(t0.Add(time.Second)) {
		t.Errorf("during a transmission: %v %v %v, want wait until it ends", ok, wait, err)
	}
}

func TestTrackerNeverFits(t *testing.T) {
	tr := mustTracker(t, 868_800_000, 0.5) // 0.1 %: 3.6 s; control 1.8 s
	if _, _, err := tr.Reserve(t0, 3601*time.Millisecond, UserData); !errors.Is(err, ErrNeverFits) {
		t.Errorf("3.601 s in a 3.6 s budget: %v", err)
	}
	if _, _, err := tr.Reserve(t0, 2*time.Second, Control); !errors.Is(err, ErrNeverFits) {
		t.Errorf("2 s over the control ceiling: %v", err)
	}
	if _, _, err := tr.Reserve(t0, 0, UserData); !errors.Is(err, ErrBadParams) {
		t.Errorf("zero airtime: %v", err)
	}
	us, _ := US915.SubBandFor(915_000_000)
	tu, err := NewTracker(us, DefaultDataShare)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tu.Reserve(t0, 401*time.Millisecond, UserData); !errors.Is(err, ErrNeverFits) {
		t.Errorf("US915 401 ms: %v", err)
	}
	if ok, _, err := tu.Reserve(t0, 400*time.Millisecond, UserData); !ok || err != nil {
		t.Errorf("US915 400 ms: %v %v", ok, err)
	}
	// No duty cycle: back to back all hour.
	now := t0.Add(400 * time.Millisecond)
	for i := range 1000 {
		if ok, _, err := tu.Reserve(now, 400*time.Millisecond, UserData); !ok || err != nil {
			t.Fatalf("US915 frame %d: %v %v", i, ok, err)
		}
		now = now.Add(400 * time.Millisecond)
	}
}

func TestNewTrackerRefuses(t *testing.T) {
	alarm, _ := EU868.SubBandFor(868_650_000)
	if _, err := NewTracker(alarm, 0); !errors.Is(err, ErrRestrictedBand) {
		t.Errorf("alarm band: %v", err)
	}
	ok, _ := EU868.SubBandFor(868_100_000)
	for _, s := range []float64{-0.1, 1, 1.5} {
		if _, err := NewTracker(ok, s); !errors.Is(err, ErrBadParams) {
			t.Errorf("share %v: %v", s, err)
		}
	}
}

func TestClassFor(t *testing.T) {
	if ClassFor(messages.Control) != Control || ClassFor(messages.Data) != UserData || ClassFor(messages.Bulk) != UserData {
		t.Error("ClassFor mapping")
	}
}

// A long run keeps the record list bounded by what one hour can hold.
func TestTrackerMemoryBounded(t *testing.T) {
	tr := mustTracker(t, 869_525_000, 0)
	now := t0
	a := 50 * time.Millisecond
	for range 100_000 {
		ok, wait, err := tr.Reserve(now, a, UserData)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			now = wait
			continue
		}
		now = now.Add(a)
	}
	if n := len(tr.txs) - tr.head; n > int(tr.Budget()/a)+1 { // +1 straddling the window's start
		t.Errorf("%d records live, at most %d fit in an hour", n, tr.Budget()/a)
	}
	if cap(tr.txs) > 4*int(tr.Budget()/a) {
		t.Errorf("capacity %d grew without bound", cap(tr.txs))
	}
}
