// Package rnode drives an RNode LoRa modem over its serial port: the KISS
// framing, the start-up handshake that detects and configures the modem
// and checks that it took the settings, sending and receiving packets
// with the modem's flow control and error reports, a clean LEAVE on
// Close, and re-opening a modem that went away (Device, Keep). It also holds an
// RNode emulator and a pty helper so that the node's tests can run the
// real serial code without hardware.
//
// It does not decide what to send or when: the duty-cycle accounting
// (lora.Tracker, fed with Modem.Airtime), fragmentation (lora.Fragmenter,
// lora.Reassembler) and the region's sub-band check
// (lora.Region.SubBandForChannel) belong to the LoRa link, which owns a
// Modem. The package imports nothing of actors; the node runs each
// lora+serial radio on a Device, which the link drives through
// link.RNodeDeviceRadio and which outlives the modems it opens.
//
// # Protocol subset (kiss.go, driver.go)
//
// Serial 115200 8N1. A frame is FEND <cmd> <escaped bytes> FEND with FEND
// 0xC0, FESC 0xDB; FESC is sent as DB DD and FEND as DB DC (the command
// byte is escaped the same way, which no RNode command needs). Integers
// are big-endian. The driver uses:
//
//	DATA         0x00  host→modem packet (1..508 B); modem→host received packet
//	FREQUENCY    0x01  uint32 Hz, echoed
//	BANDWIDTH    0x02  uint32 Hz, echoed
//	TXPOWER      0x03  1 byte dBm, echoed
//	SF           0x04  5..12, echoed
//	CR           0x05  5..8 (4/5..4/8), echoed
//	RADIO_STATE  0x06  00 off, 01 on, echoed
//	DETECT       0x08  73 → 46
//	LEAVE        0x0A  FF when the host goes away
//	ST_ALOCK     0x0B  uint16 percent×100, echoed
//	LT_ALOCK     0x0C  uint16 percent×100, echoed
//	READY        0x0F  modem→host: 01 ready, 00 queue full
//	STAT_RSSI    0x23  before each DATA: RSSI + 157 dBm
//	STAT_SNR     0x24  before each DATA: SNR × 4 as int8
//	PLATFORM     0x48  query 00 → 1 byte
//	MCU          0x49  query 00 → 1 byte
//	FW_VERSION   0x50  query 00 → major, minor
//	ERROR        0x90  01 radio init, 02 tx failed, 03 EEPROM locked,
//	                   04 queue full, 05 memory low, 06 modem timeout
//
// Other frames (statistics, display, battery of newer firmware) are
// counted (Stats.Unknown) and ignored. The Decoder skips bytes before the
// first FEND (an ESP32's boot messages) and empty frames, treats a FEND
// that closes a frame as the opening of the next, and discards a frame
// longer than MaxFramePayload (checked before its buffer grows) or with
// a bad escape, with a *FrameError, resynchronising on the next FEND
// (FuzzKISSDecode).
//
// Over the air the RNode adds a 1-byte header to each LoRa frame and
// splits a packet over 254 bytes into two frames; the firmware does both,
// so the host just sends up to 508 bytes. PacketAirtime and
// Modem.Airtime count them (len+1, or two frames), with the preamble the
// firmware programs (RNodePreamble: 24 ms worth of symbols, at least 18).
//
// # Start-up and verification
//
// Open (a port path, through go.bug.st/serial) and New (any
// io.ReadWriteCloser) validate the Config first (SF 5..12, CR 5..8, a
// bandwidth of lora.Bandwidths, a LoRa frequency range; *lora.ParamError
// naming the field), then: wait Config.Settle (zero: none; RNS waits
// 2 s); send DETECT 73 with the FW_VERSION, PLATFORM and MCU queries,
// again every DetectInterval until DETECT 46 arrives (another answer, or
// none within DetectTimeout: ErrNotRNode); send FREQUENCY, BANDWIDTH,
// TXPOWER, SF, CR, the airtime locks that are set, and RADIO_STATE 01;
// wait up to ConfigTimeout for every echo and compare it with what was
// asked (frequency within 100 Hz, bandwidth by its nominal value, the
// transmit power exactly or, with Config.TxPowerCeiling, at most as
// asked: the node's default power is the region's limit, and a board
// that clamps lower, as SX1276 RNodes do at 17 dBm, runs at its own
// maximum, which Info.TxPower reports). A
// difference or a missing echo refuses the modem with a *MismatchError
// (ErrParamMismatch) naming the parameter, the value asked and the value
// echoed, and the driver switches the radio off and sends LEAVE. Info
// keeps what the modem reported. Every wait runs on Config.Clock.
//
// # Running
//
// A Modem runs one reader goroutine. Send writes one DATA frame; while
// the modem has said its queue is full (READY 00 or ERROR 04) Send waits
// for READY 01, up to ReadyTimeout (then ErrQueueFull, which is
// lora.ErrQueueFull). Recv returns received packets with RSSI and SNR
// from a bounded queue (RecvQueue; overflow dropped and counted). Any
// other ERROR frame becomes a *ModemError (ErrRadioInit, ErrTxFailed,
// ErrEEPROMLocked, ErrMemoryLow, ErrModemTimeout; all match ErrModem),
// counted and returned once by the next Send or Recv (a blocked Recv
// wakes for it). When the stream fails (the modem was unplugged, the pty
// closed) Recv returns the packets already queued, then ErrDisconnected,
// Send returns ErrDisconnected, and Done closes. Close switches the
// radio off, sends LEAVE FF, closes the port and waits for the reader;
// it is idempotent, and afterwards Send and Recv return ErrClosed
// (net.ErrClosed).
//
// Whether the power is allowed on the frequency is the caller's check:
// lora.Region.CheckTxPower against the sub-band's MaxPower (EU868 14 dBm,
// 27 in 869.4–869.65 MHz; US915 30), which the node runs on its config.
//
// # A modem that comes back (device.go)
//
// A Modem is finished once disconnected. A Device (OpenDevice on a path,
// StartDevice on an OpenFunc) is the modem a node runs on: it starts one
// (a failure is returned, so a node refuses to run on a modem that does
// not take its settings), and when its stream fails (a read or write
// error, EOF, the device gone) marks it down and re-opens the port with
// a capped exponential back-off with jitter on Config.Clock
// (ReconnectMin doubling to ReconnectMax, less up to ReopenJitter of
// it), re-running the whole start-up each time; a modem that does not
// take the settings then is counted (DeviceState.Failures) and retried.
// While down, Send fails at once with ErrDown (not ErrClosed: a LoRa link
// counts the packet as lost) and Recv blocks, then goes on with the next
// modem, so its owner never sees the modem change. OnDown and OnUp tell
// the owner each time the modem goes away and is back (the link ends
// its connections, then greets its peers again), and State
// says up or down, since when, why, the re-opens and the next attempt
// (for qpc status, /readyz and the qpc_lora_radio_* metrics).
//
// # Reconnecting by hand (keep.go)
//
// Keep(ctx, path, cfg, onModem)
// is the supervisor that re-opens the port path and re-runs the start-up
// with a capped exponential back-off (ReconnectMin doubling to
// ReconnectMax), handing each new Modem to onModem, until ctx ends or
// the owner closes a modem. KeepOpen takes an OpenFunc instead of a path,
// for a device whose path changes and for tests: the pty test restarts
// the emulator on a new pty and its OpenFunc opens whatever the current
// slave path is (as a /dev/serial/by-id link follows a re-enumerated
// USB modem), through the real serial code; the pipe test hands out a
// new net.Pipe with a new emulator per open.
//
// # Emulator (emulator.go, pty_linux.go)
//
// Emulator speaks the modem's side of the protocol on any stream:
// answers DETECT (or not: Silent, DetectReply, BootDetects) and the
// version queries, sets and echoes the radio settings (or wrong ones:
// FrequencyOffset, EchoSF, Echo), honours RADIO_STATE (FailRadio answers
// ERROR 01), records the packets it is given (Transmitted), delivers
// packets with RSSI and SNR (Receive), sends ERROR codes (SendError),
// simulates a full queue (SetQueueFull: READY 00, ERROR 04 for DATA,
// READY 01), raw garbage (WriteRaw), clamps the transmit power to a
// board's maximum (MaxTxPower), and disappears (Disappear). An
// EmulatorPort keeps an Emulator behind a fixed path (a symbolic link to
// its pty, as /dev/serial/by-id/… is to a USB modem) so that a test can
// unplug the modem (Vanish: the pty closed, the path gone) and plug in a
// new one at the same path (Return). OpenPTY
// (golang.org/x/sys/unix: /dev/ptmx, TIOCSPTLCK, TIOCGPTN) gives it a
// pty master while the driver opens the slave path with Open; where no
// pty can be opened the pty tests skip with "SKIP: no pty: …" and the
// same tests run over net.Pipe.
package rnode
