package link

import (
	"path"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/transporttest"
)

// fastClock is the real clock sped up k times: the conformance suite
// waits in real time (10 s per step), so the medium and the transports
// run on a clock where those 10 s are k × 10 s of radio time.
type fastClock struct {
	base, real time.Time
	k          time.Duration
}

func (c *fastClock) Now() time.Time { return c.base.Add(time.Since(c.real) * c.k) }

func (c *fastClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return time.AfterFunc(d/c.k, f)
}

// notForLoRa lists the checks of the suite that a LoRa radio cannot
// pass, and why; the tests of this package cover what they would.
var notForLoRa = map[string]string{
	// Frames of up to 100 kB (transporttest.Limit), and of 0 bytes: LoRa
	// fragmentation carries at most FrameLimit(255) = 61696 bytes, and
	// every packet at least one byte. TestRoundTripSizes covers 1 byte to
	// the limit.
	"RoundTrip": "frames of 0 and of up to 100 kB; LoRa carries 1 to 61696 bytes (TestRoundTripSizes)",
	// It writes frames of transporttest.Limit bytes, which are refused
	// (ErrFrameTooLarge) before the suite's writer signals that it
	// started, so the check would hang. TestQueueShedsByPriority has a
	// writer blocked on the full queue.
	"CloseUnblocksWrite": "writes 100 kB frames, above LoRa's frame limit",
	// A radio never hears itself, so there is no handshake to refuse:
	// Dial on a channel where only this node is waits for a listening
	// peer until its context ends (TestListenDialAddresses).
	"SelfDialRefused": "a broadcast radio never hears itself; Dial waits for another node",
}

// conformanceParams: SF5 at 500 kHz in US915 (no duty cycle, 400 ms
// dwell) keeps the suite's thousands of frames short on air.
var conformanceParams = RadioParams{Params: lora.Params{SF: 5, Bandwidth: 500_000, CR: lora.CR45, Preamble: 8}, Frequency: 915_000_000}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite runs seconds of radio traffic")
	}
	clk := &fastClock{base: t0, real: time.Now(), k: 100}
	var mu sync.Mutex
	media := map[testing.TB]*lora.Medium{}
	transporttest.Run(t, transporttest.Harness{
		New: func(tb testing.TB, id *crypto.Identity, maxFrame int) transports.Transport {
			if why, skip := notForLoRa[path.Base(tb.Name())]; skip {
				tb.Skip("not for a LoRa radio: " + why)
			}
			mu.Lock()
			m := media[tb]
			if m == nil {
				m = lora.NewMedium(lora.MediumOptions{Clock: clk})
				media[tb] = m
			}
			mu.Unlock()
			tr, err := NewMock(Options{
				Identity: id, Medium: m, Clock: clk, Channel: "conformance",
				Radio: conformanceParams, Region: lora.US915,
				MaxFrameSize: maxFrame, HelloInterval: time.Minute,
				// 100× faster means the default 260 ms report timeout
				// would be 2.6 ms of real time: a busy machine's scheduling
				// delay. The suite's medium loses nothing, so a long
				// timeout costs nothing.
				ReportTimeout: 3 * time.Second, MaxRounds: 16,
				Logger: testLogger(),
			})
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { tr.Close() })
			return tr
		},
		ListenAddr: "",
		// The receive goroutine lives until Transport.Close, which the
		// transports.Transport interface lacks; TestCloseSemantics checks
		// that nothing outlives it.
		CheckGoroutines: false,
	})
}
