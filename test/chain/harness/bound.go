package harness

import (
	"fmt"
	"runtime"
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
