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
//   - Suppression: a re-broadcast on the radio serves only the radio
//     neighbours that do not have the announce yet. When every radio
//     neighbour (but the announce's own origin) has been heard sending
//     it during the delay (the first copy or a re-broadcast of its
//     own), nobody is left to serve: Fire reports it suppressed, and the
//     router sends it only to the peers it reaches by other transports
//     (BroadcastFrame.SkipBroadcast). This is safe where the simpler
//     counter-based rule (cancel after hearing k copies, as Meshtastic
//     does with one) cuts a sparse mesh at its bridges: the node that
//     joins two clusters hears its own cluster re-broadcast and would
//     never pass the announce on. In a dense neighbourhood it would save
//     little (only the last nodes whose timers run out have heard
//     everyone), so there the counter rule applies as well, adapted to
//     the density: a node with at least DenseNeighbours radio
//     neighbours also leaves its re-broadcast off after hearing
//     DenseCopies of them re-broadcast it (the adaptive counter scheme
//     of the broadcast-storm literature). Bridges have few neighbours.
//
// A newer announce of a destination (or the same one over a shorter
// path) replaces the pending one: the older's timer then finds nothing
// to send. Flood is plain state owned by the router actor; an actor that
// restarts starts with none pending (the timers of its predecessor send
// nothing).
type Flood struct {
	pending map[[16]byte]*floodEntry
	radio   map[[16]byte]int // radio neighbours: their links that broadcast
	nextID  uint64
	// Rand draws the delays: a value in [0, n). Nil: math/rand/v2.
	Rand func(n int64) int64
}

type floodEntry struct {
	id    uint64
	seq   uint64
	from  [16]byte
	radio bool              // heard over a radio
	heard map[[16]byte]bool // radio neighbours heard sending it
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

	// DenseNeighbours and DenseCopies: the counter rule for dense
	// neighbourhoods (see Flood).
	DenseNeighbours = 8
	DenseCopies     = 3
)

// NewFlood returns a flood with nothing pending.
func NewFlood() *Flood {
	return &Flood{pending: map[[16]byte]*floodEntry{}, radio: map[[16]byte]int{}}
}

// RadioLink notes a link to peer over a transport that broadcasts coming
// up (up) or going down.
func (f *Flood) RadioLink(peer [16]byte, up bool) {
	if up {
		f.radio[peer]++
		return
	}
	if f.radio[peer]--; f.radio[peer] <= 0 {
		delete(f.radio, peer)
	}
}

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
	e := &floodEntry{id: f.nextID, seq: seq, from: from, radio: sig.Radio, heard: map[[16]byte]bool{}}
	if sig.Radio {
		e.heard[from] = true
	}
	f.pending[dest] = e
	return f.Delay(sig), f.nextID
}

// Heard notes a copy of dest's announce seq from from: over a radio,
// from now has it.
func (f *Flood) Heard(dest [16]byte, seq uint64, from [16]byte, sig messages.Signal) {
	if e := f.pending[dest]; e != nil && sig.Radio && e.seq == seq {
		e.heard[from] = true
	}
}

// Fire takes the pending re-broadcast id of dest: ok is false when it
// was replaced (or is unknown); suppressed when it came over a radio and
// every radio neighbour but dest itself has been heard sending it.
func (f *Flood) Fire(dest [16]byte, id uint64) (suppressed, ok bool) {
	e := f.pending[dest]
	if e == nil || e.id != id {
		return false, false
	}
	delete(f.pending, dest)
	if !e.radio || len(f.radio) == 0 { // no radio neighbours known (a restart): send
		return false, true
	}
	if copies := len(e.heard) - 1; len(f.radio) >= DenseNeighbours && copies >= DenseCopies {
		return true, true // heard from the first sender and DenseCopies others
	}
	for n := range f.radio {
		if n != dest && !e.heard[n] {
			return false, true
		}
	}
	return true, true
}

// Pending is the number of re-broadcasts waiting.
func (f *Flood) Pending() int { return len(f.pending) }
