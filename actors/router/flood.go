package router

import (
	"math/rand/v2"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// Flood is the managed flood of announce re-broadcasts (issue 12): how
// long the router waits before it re-broadcasts an announce, and whether
// it still does when the time comes.
//
//   - An announce that came over a link without a radio waits a random
//     0..IPJitter (50 ms), as before: neighbours that heard the same
//     announce do not all send in the same instant.
//   - One heard over a radio waits a random delay measured in slots, the
//     announce's airtime: 0..4 slots for the weakest signal, 2..18 for
//     the strongest (SNR from SNRWeak to SNRStrong, linear in between; a
//     radio that does not measure counts as midway). So a weak-signal
//     receiver, likely further away and reaching new ground, tends to go
//     first, as in Meshtastic.
//   - Suppression: when, during the delay, a neighbour is heard over a
//     radio re-broadcasting the same announce (same destination and
//     sequence), the radio part of ours is cancelled: Fire reports it
//     suppressed, and the router sends it only to the peers it reaches
//     by other transports (BroadcastFrame.SkipBroadcast).
//
// A newer announce of a destination (or the same one over a shorter
// path) replaces the pending one: the older's timer then finds nothing
// to send. Flood is plain state owned by the router actor; an actor that
// restarts starts with none pending (the timers of its predecessor send
// nothing).
type Flood struct {
	pending map[[16]byte]*floodEntry
	nextID  uint64
	// Rand draws the delays: a value in [0, n). Nil: math/rand/v2.
	Rand func(n int64) int64
}

type floodEntry struct {
	id         uint64
	seq        uint64
	from       [16]byte
	radio      bool
	suppressed bool
}

// Managed-flood constants.
const (
	IPJitter   = 50 * time.Millisecond
	SNRWeak    = -20.0 // dB: the weakest signal LoRa decodes at SF12
	SNRStrong  = 10.0  // dB: a strong signal
	minSlot    = 10 * time.Millisecond
	weakSlots  = 4  // the random window at the weakest signal, in slots
	extraSlots = 12 // added to the window at the strongest
	leadSlots  = 2  // the fixed wait at the strongest
)

// NewFlood returns a flood with nothing pending.
func NewFlood() *Flood { return &Flood{pending: map[[16]byte]*floodEntry{}} }

func (f *Flood) rand(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if f.Rand != nil {
		return f.Rand(n)
	}
	return rand.Int64N(n)
}

// Delay is the wait before re-broadcasting an announce received with sig.
func (f *Flood) Delay(sig messages.Signal) time.Duration {
	if !sig.Radio {
		return time.Duration(f.rand(int64(IPJitter)))
	}
	slot := max(sig.Airtime, minSlot)
	w := SignalWeight(sig)
	lead := time.Duration(w * leadSlots * float64(slot))
	window := time.Duration((weakSlots + w*extraSlots) * float64(slot))
	return lead + time.Duration(f.rand(int64(window)))
}

// SignalWeight places a radio signal between weak (0) and strong (1) by
// its SNR; 0.5 when the radio did not measure it.
func SignalWeight(sig messages.Signal) float64 {
	if !sig.HasSNR {
		return 0.5
	}
	return min(max((sig.SNR-SNRWeak)/(SNRStrong-SNRWeak), 0), 1)
}

// Schedule records a re-broadcast of dest's announce seq heard from from
// with sig, replacing any pending one of dest. It returns the delay and
// the id Fire takes.
func (f *Flood) Schedule(dest [16]byte, seq uint64, from [16]byte, sig messages.Signal) (time.Duration, uint64) {
	f.nextID++
	f.pending[dest] = &floodEntry{id: f.nextID, seq: seq, from: from, radio: sig.Radio}
	return f.Delay(sig), f.nextID
}

// Heard notes a copy of dest's announce seq from from that is not to be
// re-broadcast itself: when it came over a radio from another neighbour
// than the copy whose re-broadcast is pending, that neighbour has
// re-broadcast it, and the pending one is suppressed on the radio. It
// reports whether it suppressed one now.
func (f *Flood) Heard(dest [16]byte, seq uint64, from [16]byte, sig messages.Signal) bool {
	e := f.pending[dest]
	if e == nil || e.suppressed || !e.radio || !sig.Radio || e.seq != seq || e.from == from {
		return false
	}
	e.suppressed = true
	return true
}

// Fire takes the pending re-broadcast id of dest: ok is false when it
// was replaced (or is unknown), suppressed when a neighbour's was heard.
func (f *Flood) Fire(dest [16]byte, id uint64) (suppressed, ok bool) {
	e := f.pending[dest]
	if e == nil || e.id != id {
		return false, false
	}
	delete(f.pending, dest)
	return e.suppressed, true
}

// Pending is the number of re-broadcasts waiting.
func (f *Flood) Pending() int { return len(f.pending) }
