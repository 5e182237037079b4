package harness

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// Bound is the crypto bound of the chain, measured in-process with the
// primitives the node uses, one goroutine at a time:
//
//	(a) sender:   seal a 32-byte text, build and sign an envelope, encode it
//	(b) relay:    decode the envelope and verify its signature
//	(c) receiver: decode, verify and open
//
// Every message costs a+b+c CPU seconds somewhere on the chain, and the
// three nodes share the machine's CPUs, so no run can deliver more than
// NumCPU/(a+b+c) messages per second. Each step is timed over Iterations
// messages, best of three rounds.
type Bound struct {
	Iterations int
	NumCPU     int
	Sender     time.Duration // (a) per message
	Relay      time.Duration // (b) per message
	Receiver   time.Duration // (c) per message
	MsgsPerSec float64

	// Sync is the median time to make 4 KiB durable (write + fsync) in the
	// directory the nodes keep their data in. A node answers a send only
	// once the message is durable, so with k clients each waiting for its
	// answer, at most k messages share one sync: with one text per
	// request no run can deliver more than k / Sync messages per second,
	// however fast the crypto (DurableMsgsPerSec, for k = the run's
	// clients).
	Sync time.Duration
}

// DurableMsgsPerSec is the durability bound for clients senders of one
// text per request each: clients messages per sync.
func (b *Bound) DurableMsgsPerSec(clients int) float64 {
	if b == nil || b.Sync <= 0 {
		return 0
	}
	return float64(clients) / b.Sync.Seconds()
}

// measureSync is the median of n timed write + fsync rounds of 4 KiB in a
// fresh file under dir.
func measureSync(dir string, n int) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "qpc-sync-probe-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	if _, err := f.Write(page); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	times := make([]time.Duration, n)
	for i := range times {
		page[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(page, 0); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		times[i] = time.Since(t0)
	}
	slices.Sort(times)
	return times[n/2], nil
}

// newEnvelope is the one place that calls the envelope constructor, so a
// change of its signature is a change of one line.
func newEnvelope(src, dst crypto.Address, seq uint64, sealed []byte) messages.Envelope {
	env := messages.NewEnvelope(src, dst, messages.DefaultHopLimit, time.Now().Add(time.Hour), messages.PayloadSealed, sealed)
	env.Seq = seq
	return env
}

// boundRounds: MeasureBound times each step this many times and keeps the
// fastest, the round least disturbed by whatever else the machine did.
const boundRounds = 3

// MeasureBound times (a), (b) and (c) over n iterations each, best of
// boundRounds.
func MeasureBound(n int) (Bound, error) {
	if n <= 0 {
		n = 2000
	}
	var best Bound
	for r := 0; r < boundRounds; r++ {
		b, err := measureBound(n)
		if err != nil {
			return Bound{}, err
		}
		if r == 0 {
			best = b
			continue
		}
		best.Sender, best.Relay, best.Receiver = min(best.Sender, b.Sender), min(best.Relay, b.Relay), min(best.Receiver, b.Receiver)
	}
	if sum := (best.Sender + best.Relay + best.Receiver).Seconds(); sum > 0 {
		best.MsgsPerSec = float64(best.NumCPU) / sum
	}
	sync, err := measureSync(os.TempDir(), 200)
	if err != nil {
		return Bound{}, fmt.Errorf("sync: %w", err)
	}
	best.Sync = sync
	return best, nil
}

func measureBound(n int) (Bound, error) {
	sender, err := crypto.NewIdentity(nil)
	if err != nil {
		return Bound{}, err
	}
	receiver, err := crypto.NewIdentity(nil)
	if err != nil {
		return Bound{}, err
	}
	sealKey, err := crypto.SealingKeyFor(receiver)
	if err != nil {
		return Bound{}, err
	}
	sealTo := sealKey.Public()
	src, dst := sender.Address(), receiver.Address()
	aad := crypto.SealAAD(src, dst)
	text := append([]byte("m-000000"), make([]byte, 24)...) // 32 bytes
	frames := make([][]byte, n)

	// Warm up (first-use allocations, CPU frequency) outside the timing.
	for i := 0; i < 50; i++ {
		sealed, _ := crypto.Seal(sealTo, text, aad)
		env := newEnvelope(src, dst, 1, sealed)
		_ = env.Sign(sender.Sign)
		_, _ = messages.EncodeEnvelope(env)
	}

	t0 := time.Now()
	for i := range frames {
		sealed, err := crypto.Seal(sealTo, text, aad)
		if err != nil {
			return Bound{}, fmt.Errorf("seal: %w", err)
		}
		env := newEnvelope(src, dst, uint64(i+1), sealed)
		if err := env.Sign(sender.Sign); err != nil {
			return Bound{}, fmt.Errorf("sign: %w", err)
		}
		if frames[i], err = messages.EncodeEnvelope(env); err != nil {
			return Bound{}, fmt.Errorf("encode: %w", err)
		}
	}
	a := time.Since(t0)

	pub := sender.PublicKey()
	t0 = time.Now()
	for _, f := range frames {
		env, err := messages.DecodeEnvelope(f)
		if err != nil {
			return Bound{}, fmt.Errorf("relay decode: %w", err)
		}
		if err := env.Verify(pub); err != nil {
			return Bound{}, fmt.Errorf("relay verify: %w", err)
		}
	}
	b := time.Since(t0)

	t0 = time.Now()
	for _, f := range frames {
		env, err := messages.DecodeEnvelope(f)
		if err != nil {
			return Bound{}, fmt.Errorf("receiver decode: %w", err)
		}
		if err := env.Verify(pub); err != nil {
			return Bound{}, fmt.Errorf("receiver verify: %w", err)
		}
		if _, err := sealKey.Open(env.Payload, crypto.SealAAD(crypto.Address(env.Source), crypto.Address(env.Destination))); err != nil {
			return Bound{}, fmt.Errorf("receiver open: %w", err)
		}
	}
	c := time.Since(t0)

	per := func(d time.Duration) time.Duration { return d / time.Duration(n) }
	return Bound{Iterations: n, NumCPU: runtime.NumCPU(), Sender: per(a), Relay: per(b), Receiver: per(c)}, nil
}
