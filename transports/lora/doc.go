// Package lora holds the plain logic of qpc's LoRa links: how long a
// packet is on air, how much air a transmitter may use, how frames larger
// than a packet travel, and a simulated channel. It starts no goroutines
// of its own except the medium's clock timers, takes its clock
// (internal/clock) and randomness injected, and imports nothing of actors.
// The link actor, the RNode serial driver and the `qpc lora airtime`
// command build on it.
//
// # Airtime (airtime.go)
//
// Params are the modulation: SF 5–12, bandwidth in Hz (7800 … 500000),
// coding rate CR45..CR48 (ParseCodingRate and CodingRateFromDenominator
// take the 5..8 spelling of the CLI and the RNode protocol), preamble
// length, explicit or implicit header, CRC, and low-data-rate
// optimisation (LDROAuto: on when a symbol lasts longer than 16 ms, i.e.
// SF11/SF12 at 125 kHz, SF12 at 250 kHz; LDROOn/LDROOff override it).
// Calculate and Airtime apply the Semtech formula (SX127x/SX126x
// datasheets, AN1200.13), with the SX126x count at SF5/SF6, exactly: all
// LoRa symbol times are whole multiples of 2 µs, so the results are exact
// nanoseconds. Reference points (explicit header, CRC on, preamble 8,
// 125 kHz, 4/5):
//
//	SF7   20 B     56.576 ms        SF12  20 B   1318.912 ms (LDRO on)
//	SF9   13 B    164.864 ms        SF12  51 B   2465.792 ms (LDRO on)
//	SF7  255 B    399.616 ms        SF12 255 B   9019.392 ms (LDRO on)
//
// Bitrate is the equivalent bit rate SF·(4/(4+CR))·BW/2^SF (two bits per
// symbol fewer with LDRO): 5468 bit/s at SF7, 244 bit/s at SF12, both
// 125 kHz 4/5. LinkInfo turns Params and an MTU into a transports.Info;
// SF7–SF9 at 125 kHz classify as Constrained, SF10–SF12 as
// SeverelyConstrained. MaxPayloadWithin sizes a packet under a dwell
// limit (US915 400 ms: 24 B at SF10, 66 B at SF9, the LoRaWAN DR0/DR1
// limits plus their 13-byte overhead).
//
// # Duty cycle (dutycycle.go)
//
// Region lists sub-bands. EU868 (ETSI EN 300 220-2):
//
//	863.0–865.0    0.1 %   3.6 s/h
//	865.0–868.0    1 %     36 s/h
//	868.0–868.6    1 %     36 s/h    LoRaWAN 868.1/868.3/868.5
//	868.6–868.7    alarms only: refused (ErrRestrictedBand)
//	868.7–869.2    0.1 %   3.6 s/h
//	869.2–869.4    alarms only: refused
//	869.4–869.65   10 %    360 s/h   869.525 MHz community meshes
//	869.65–869.7   alarms only: refused
//	869.7–870.0    1 %     36 s/h
//
// US915 has no duty cycle but caps every transmission at 400 ms.
// SubBandFor finds a centre frequency's sub-band; SubBandForChannel
// checks that the whole channel (f ± BW/2) lies in one, which is the
// check for a radio's configuration. A DutyCycle is in basis points, the
// unit of the RNode airtime locks.
//
// A Tracker accounts one transmitter in one sub-band over a rolling hour:
// it records each transmission (start, airtime), forgets those that ended
// more than an hour ago, and Reserve admits a transmission only if no
// one-hour window would exceed the limit; otherwise it returns the exact
// earliest time it would fit. User data may fill the whole budget;
// control traffic (announces) only up to (1 − data share) of it, so the
// reserved share is always left for user data (DefaultDataShare 0.5).
// Used and Remaining are the gauges for metrics.
//
// # Fragmentation (fragment.go)
//
// A frame longer than the link MTU (DefaultMTU 255, LoRaWANMTU 51 at
// SF12; MTUFor) travels as up to 256 fragments with a 5-byte header: tag
// 03 (messages.FrameFragment, version 0), a 2-byte message id, index,
// last index. The largest frame is 256·(MTU − 5): 64000 B at 255, 11776
// B at 51. A packet is a fragment or a whole frame by its first byte
// (IsFragment): qpc frames are CBOR arrays, 80..9F. The byte layout and a
// worked example are on FragmentHeaderSize; testdata/fragments-v0.hex is
// the golden vector.
//
// The Reassembler keys reassemblies by (sender, id), drops one that sees
// no progress for its timeout (default 5 min, injected clock), caps
// concurrent reassemblies (16) and buffered bytes (256 KiB) before it
// allocates, ignores duplicates (also of messages completed within the
// timeout), and discards a reassembly on any inconsistent fragment, with
// typed errors and no panics (FuzzReassemble). Outgoing runs the sender's
// side of a small selective repeat: the receiver reports the missing
// indices (Missing), the sender resends only those, up to MaxRounds
// rounds (default 8), then ErrGaveUp.
//
// # Mock medium (medium.go)
//
// Medium is a simulated channel for tests and the simulator: radios
// attach with their Params; a frame occupies the channel for its
// airtime and arrives at the end of it; overlapping frames collide at
// every radio that hears both; radios are half-duplex; per-link loss is
// drawn from an injected math/rand/v2 source; radios on other SF or
// bandwidth neither hear nor disturb each other. With clock.Manual and a
// seeded source a run is deterministic. Radio.Send refuses frames over 255
// bytes; Recv and TryRecv return received Packets; CarrierSense is the
// listen-before-talk check.
package lora
