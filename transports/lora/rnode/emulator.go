package rnode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// EmulatorConfig shapes an Emulator. The zero value is a well-behaved
// RNode (firmware 1.74 on an ESP32) that echoes every setting truthfully.
type EmulatorConfig struct {
	// Firmware is the FW_VERSION answer (major, minor); zero means 1.74.
	Firmware [2]byte
	// Platform and MCU are the PLATFORM and MCU answers; zero means
	// PlatformESP32 and MCUESP32.
	Platform byte
	MCU      byte

	// Silent makes the emulator answer nothing at all: a device that is
	// not an RNode, or one still booting.
	Silent bool
	// BootDetects is how many DETECT requests the emulator ignores
	// before it answers (a board still booting after the port opened).
	BootDetects int
	// DetectReply, when non-zero, is sent in answer to DETECT instead of
	// 0x46 (a device that is not an RNode).
	DetectReply byte

	// FrequencyOffset is added to the frequency the emulator sets and
	// echoes (a radio that did not take the frequency asked).
	FrequencyOffset int
	// EchoSF, when non-zero, is the SF the emulator sets and echoes
	// whatever was asked.
	EchoSF int
	// Echo, when set, rewrites any echo: it gets the command and the value
	// the emulator would echo and returns what to send instead (nil: send
	// no echo at all).
	Echo func(cmd byte, value []byte) []byte

	// MaxTxPower, when non-zero, clamps the transmit power the emulator
	// sets and echoes, as the firmware does to its chip's maximum (17 dBm
	// on SX1276 boards, 22 on SX1262).
	MaxTxPower byte

	// FailRadio answers RADIO_STATE 0x01 with ERROR 0x01 (radio init
	// failed) and leaves the radio off.
	FailRadio bool
}

// EmulatorState is the emulated radio's configuration as the host set it.
type EmulatorState struct {
	Frequency uint32
	Bandwidth uint32
	TxPower   byte
	SF        byte
	CR        byte
	STALock   uint16
	LTALock   uint16
	RadioOn   bool
	QueueFull bool
}

// EmulatorStats count what an Emulator saw.
type EmulatorStats struct {
	Transmitted uint64 // DATA frames accepted ("sent on air")
	DroppedFull uint64 // DATA frames refused with ERROR 0x04 (queue full)
	DroppedOff  uint64 // DATA frames dropped with the radio off
	Unknown     uint64 // frames of commands it does not emulate
	BadFrames   uint64 // KISS frames discarded by its decoder
}

// Emulator plays an RNode on one end of a byte stream, speaking the same
// KISS protocol as a real one: it answers DETECT and the version queries,
// sets and echoes the radio settings (or wrong ones, as EmulatorConfig
// says), honours RADIO_STATE, records the packets the host transmits,
// and on demand delivers received packets with RSSI and SNR, sends ERROR
// codes, reports a full queue, or disappears. The node's tests use it
// over a pty (OpenPTY, so the driver's real serial code runs) or an
// in-memory pipe (net.Pipe).
//
// An Emulator serves one stream; make a new one for the next. Its methods
// are safe for concurrent use.
type Emulator struct {
	cfg EmulatorConfig
	rw  io.ReadWriteCloser

	wmu sync.Mutex // serialises writes

	tx     chan []byte
	left   chan struct{}
	done   chan struct{}
	leaveO sync.Once

	mu      sync.Mutex
	serving bool
	state   EmulatorState
	stats   EmulatorStats
	seen    map[byte]chan struct{}
	detects int   // DETECT requests seen
	err     error // why Serve ended
}

// EmulatorTxQueue is how many transmitted packets an Emulator buffers
// for Transmitted; beyond it they are counted but not kept.
const EmulatorTxQueue = 1024

// NewEmulator returns an emulator; Serve or Start runs it on a stream.
func NewEmulator(cfg EmulatorConfig) *Emulator {
	if cfg.Firmware == [2]byte{} {
		cfg.Firmware = [2]byte{1, 74}
	}
	if cfg.Platform == 0 {
		cfg.Platform = PlatformESP32
	}
	if cfg.MCU == 0 {
		cfg.MCU = MCUESP32
	}
	return &Emulator{
		cfg:  cfg,
		tx:   make(chan []byte, EmulatorTxQueue),
		left: make(chan struct{}),
		done: make(chan struct{}),
		seen: make(map[byte]chan struct{}),
	}
}

// errEmulatorNotServing: a method that writes was called before Serve.
var errEmulatorNotServing = errors.New("emulator is not serving a stream")

// Start runs Serve on its own goroutine; Done tells when it ended.
func (e *Emulator) Start(rw io.ReadWriteCloser) {
	e.mu.Lock()
	e.rw, e.serving = rw, true
	e.mu.Unlock()
	go e.Serve(rw) //nolint:errcheck // Err reports it
}

// Serve answers the host on rw until rw fails or is closed (Disappear),
// then closes rw and returns why (io.EOF and the like when the host
// closed its end).
func (e *Emulator) Serve(rw io.ReadWriteCloser) error {
	e.mu.Lock()
	e.rw, e.serving = rw, true
	e.mu.Unlock()
	dec := NewDecoder(rw, MaxFramePayload)
	var err error
	for {
		var f Frame
		f, err = dec.Next()
		if err != nil {
			if fe := (*FrameError)(nil); errors.As(err, &fe) {
				e.mu.Lock()
				e.stats.BadFrames++
				e.mu.Unlock()
				continue
			}
			break
		}
		// A reply that cannot be written (the host closed its end) does
		// not stop the emulator: like a real modem it goes on with what it
		// already read (LEAVE after RADIO_STATE), and the next read fails.
		_ = e.handle(f)
	}
	rw.Close()
	e.mu.Lock()
	e.err = err
	e.mu.Unlock()
	close(e.done)
	return err
}

// Done is closed when Serve has returned; Err then says why.
func (e *Emulator) Done() <-chan struct{} { return e.done }

// Err is why Serve ended, nil while it runs.
func (e *Emulator) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Transmitted delivers the packets the host sent with DATA while the
// radio was on and the queue not full, in order.
func (e *Emulator) Transmitted() <-chan []byte { return e.tx }

// Left is closed when the host sent LEAVE 0xFF.
func (e *Emulator) Left() <-chan struct{} { return e.left }

// Seen returns a channel closed once a frame with command cmd has come
// from the host (CmdDetect: the host is trying to detect it).
func (e *Emulator) Seen(cmd byte) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seenLocked(cmd)
}

func (e *Emulator) seenLocked(cmd byte) chan struct{} {
	ch, ok := e.seen[cmd]
	if !ok {
		ch = make(chan struct{})
		e.seen[cmd] = ch
	}
	return ch
}

// State is the radio's configuration as the host set it.
func (e *Emulator) State() EmulatorState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

// Stats returns the emulator's counters.
func (e *Emulator) Stats() EmulatorStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// send writes frames to the host.
func (e *Emulator) send(frames ...Frame) error {
	e.mu.Lock()
	rw, serving := e.rw, e.serving
	e.mu.Unlock()
	if !serving {
		return errEmulatorNotServing
	}
	var b []byte
	for _, f := range frames {
		b = AppendFrame(b, f.Cmd, f.Payload)
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	_, err := rw.Write(b)
	return err
}

// echo sends the value of a setting back, through cfg.Echo.
func (e *Emulator) echo(cmd byte, v []byte) error {
	if e.cfg.Echo != nil {
		if v = e.cfg.Echo(cmd, v); v == nil {
			return nil
		}
	}
	return e.send(Frame{Cmd: cmd, Payload: v})
}

// handle answers one frame from the host.
func (e *Emulator) handle(f Frame) error {
	e.mu.Lock()
	ch := e.seenLocked(f.Cmd)
	select {
	case <-ch:
	default:
		close(ch)
	}
	e.mu.Unlock()
	if e.cfg.Silent {
		if f.Cmd == CmdLeave {
			e.leaveO.Do(func() { close(e.left) })
		}
		return nil
	}

	p := f.Payload
	query := len(p) == 1 && p[0] == 0xFF
	e.mu.Lock()
	st := &e.state
	var reply []byte
	switch f.Cmd {
	case CmdData:
		switch {
		case !st.RadioOn:
			e.stats.DroppedOff++
		case st.QueueFull:
			e.stats.DroppedFull++
			e.mu.Unlock()
			return e.send(Frame{Cmd: CmdError, Payload: []byte{ErrorQueueFull}})
		default:
			e.stats.Transmitted++
			select {
			case e.tx <- p:
			default:
			}
		}
		e.mu.Unlock()
		return nil
	case CmdDetect:
		e.detects++
		booting := e.detects <= e.cfg.BootDetects
		e.mu.Unlock()
		if len(p) != 1 || p[0] != DetectRequest || booting {
			return nil
		}
		r := DetectResponse
		if e.cfg.DetectReply != 0 {
			r = e.cfg.DetectReply
		}
		return e.send(Frame{Cmd: CmdDetect, Payload: []byte{r}})
	case CmdFWVersion, CmdPlatform, CmdMCU:
		booting := e.detects <= e.cfg.BootDetects
		e.mu.Unlock()
		if booting {
			return nil
		}
		v := map[byte][]byte{CmdFWVersion: e.cfg.Firmware[:], CmdPlatform: {e.cfg.Platform}, CmdMCU: {e.cfg.MCU}}[f.Cmd]
		return e.send(Frame{Cmd: f.Cmd, Payload: v})
	case CmdFrequency:
		if len(p) == 4 {
			f := int64(binary.BigEndian.Uint32(p)) + int64(e.cfg.FrequencyOffset)
			st.Frequency = uint32(min(max(f, 0), math.MaxUint32))
		}
		reply = be32(st.Frequency)
	case CmdBandwidth:
		if len(p) == 4 {
			st.Bandwidth = binary.BigEndian.Uint32(p)
		}
		reply = be32(st.Bandwidth)
	case CmdTxPower:
		if len(p) == 1 && !query {
			st.TxPower = p[0]
			if e.cfg.MaxTxPower != 0 {
				st.TxPower = min(st.TxPower, e.cfg.MaxTxPower)
			}
		}
		reply = []byte{st.TxPower}
	case CmdSF:
		if len(p) == 1 && !query {
			st.SF = p[0]
			if e.cfg.EchoSF != 0 {
				st.SF = byte(e.cfg.EchoSF)
			}
		}
		reply = []byte{st.SF}
	case CmdCR:
		if len(p) == 1 && !query {
			st.CR = p[0]
		}
		reply = []byte{st.CR}
	case CmdSTALock:
		if len(p) == 2 {
			st.STALock = binary.BigEndian.Uint16(p)
		}
		reply = be16(st.STALock)
	case CmdLTALock:
		if len(p) == 2 {
			st.LTALock = binary.BigEndian.Uint16(p)
		}
		reply = be16(st.LTALock)
	case CmdRadioState:
		if len(p) == 1 {
			switch p[0] {
			case RadioOn:
				if e.cfg.FailRadio {
					st.RadioOn = false
					e.mu.Unlock()
					return e.send(Frame{Cmd: CmdError, Payload: []byte{ErrorRadioInit}},
						Frame{Cmd: CmdRadioState, Payload: []byte{RadioOff}})
				}
				st.RadioOn = true
			case RadioOff:
				st.RadioOn = false
			}
		}
		reply = []byte{RadioOff}
		if st.RadioOn {
			reply[0] = RadioOn
		}
	case CmdLeave:
		e.mu.Unlock()
		if len(p) == 1 && p[0] == LeaveValue {
			e.leaveO.Do(func() { close(e.left) })
		}
		return nil
	default:
		e.stats.Unknown++
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	return e.echo(f.Cmd, reply)
}

// Receive delivers a packet to the host as if the radio had heard it:
// STAT_RSSI, STAT_SNR, then DATA. rssi is in dBm (-157..98), snr in dB
// (-32..31.75, in steps of 0.25). The radio must be on.
func (e *Emulator) Receive(data []byte, rssi int, snr float64) error {
	if rssi < -RSSIOffset || rssi > 255-RSSIOffset {
		return fmt.Errorf("%s: emulator: RSSI %d dBm outside -157..98", prefix, rssi)
	}
	q := math.Round(snr * 4)
	if q < math.MinInt8 || q > math.MaxInt8 {
		return fmt.Errorf("%s: emulator: SNR %v dB outside -32..31.75", prefix, snr)
	}
	if len(data) > MaxDataLen {
		return fmt.Errorf("%s: emulator: packet of %d bytes, at most %d", prefix, len(data), MaxDataLen)
	}
	if !e.State().RadioOn {
		return fmt.Errorf("%s: emulator: radio is off", prefix)
	}
	return e.send(
		Frame{Cmd: CmdStatRSSI, Payload: []byte{byte(rssi + RSSIOffset)}},
		Frame{Cmd: CmdStatSNR, Payload: []byte{byte(int8(q))}},
		Frame{Cmd: CmdData, Payload: data},
	)
}

// SendError sends ERROR code to the host (ErrorTxFailed, ...).
func (e *Emulator) SendError(code byte) error {
	return e.send(Frame{Cmd: CmdError, Payload: []byte{code}})
}

// SetQueueFull simulates the transmit queue filling (READY 0x00; DATA is
// then refused with ERROR 0x04) or draining (READY 0x01).
func (e *Emulator) SetQueueFull(full bool) error {
	e.mu.Lock()
	e.state.QueueFull = full
	e.mu.Unlock()
	r := ReadyOK
	if full {
		r = ReadyFull
	}
	return e.send(Frame{Cmd: CmdReady, Payload: []byte{r}})
}

// Send writes an arbitrary frame to the host (for unknown commands,
// malformed replies and the like).
func (e *Emulator) Send(cmd byte, payload []byte) error {
	return e.send(Frame{Cmd: cmd, Payload: payload})
}

// WriteRaw writes bytes to the host as they are, without framing
// (garbage, boot messages).
func (e *Emulator) WriteRaw(b []byte) error {
	e.mu.Lock()
	rw, serving := e.rw, e.serving
	e.mu.Unlock()
	if !serving {
		return errEmulatorNotServing
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	_, err := rw.Write(b)
	return err
}

// Disappear closes the emulator's end of the stream, as an unplugged
// modem would: the host's reads fail. Serve returns.
func (e *Emulator) Disappear() error {
	e.mu.Lock()
	rw, serving := e.rw, e.serving
	e.mu.Unlock()
	if !serving {
		return errEmulatorNotServing
	}
	return rw.Close()
}
