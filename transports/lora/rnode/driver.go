package rnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"go.bug.st/serial"

	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/transports/lora"
)

// Command bytes of the RNode protocol subset this package speaks.
const (
	CmdData       byte = 0x00
	CmdFrequency  byte = 0x01
	CmdBandwidth  byte = 0x02
	CmdTxPower    byte = 0x03
	CmdSF         byte = 0x04
	CmdCR         byte = 0x05
	CmdRadioState byte = 0x06
	CmdDetect     byte = 0x08
	CmdLeave      byte = 0x0A
	CmdSTALock    byte = 0x0B
	CmdLTALock    byte = 0x0C
	CmdReady      byte = 0x0F
	CmdStatRSSI   byte = 0x23
	CmdStatSNR    byte = 0x24
	CmdPlatform   byte = 0x48
	CmdMCU        byte = 0x49
	CmdFWVersion  byte = 0x50
	CmdError      byte = 0x90
)

// Values carried by the commands.
const (
	DetectRequest  byte = 0x73 // host → modem with DETECT
	DetectResponse byte = 0x46 // modem → host: "I am an RNode"
	RadioOff       byte = 0x00 // RADIO_STATE
	RadioOn        byte = 0x01
	RadioQuery     byte = 0xFF
	LeaveValue     byte = 0xFF // LEAVE: the host goes away
	ReadyFull      byte = 0x00 // READY: the transmit queue is full
	ReadyOK        byte = 0x01 // READY: the modem takes packets again

	// RSSIOffset: STAT_RSSI carries RSSI + 157 dBm.
	RSSIOffset = 157

	// BaudRate is the RNode's serial speed (8N1).
	BaudRate = 115200

	// singleMTU is the most an RNode puts in one LoRa frame after its
	// 1-byte header; longer packets travel as two frames.
	singleMTU = lora.MaxPayload - 1
)

// Platforms and MCUs an RNode reports (PLATFORM, MCU).
const (
	PlatformAVR   byte = 0x90
	PlatformESP32 byte = 0x80
	PlatformNRF52 byte = 0x70
	MCU1284P      byte = 0x91
	MCU2560       byte = 0x92
	MCUESP32      byte = 0x81
	MCUNRF52      byte = 0x71
)

// Packet is a LoRa packet the modem received.
type Packet struct {
	Data []byte    // the packet; the receiver owns it
	RSSI int       // dBm (STAT_RSSI − 157)
	SNR  float64   // dB (STAT_SNR as int8 × 0.25)
	Time time.Time // when the driver read it (Config.Clock)
	// Measured is false when the modem sent no STAT_RSSI and STAT_SNR
	// before the packet; RSSI and SNR are zero then.
	Measured bool
}

// Info is what the modem reported at start-up: its identity, and the
// radio settings it echoed (equal to the Config's, within
// FrequencyTolerance, or start-up would have failed).
type Info struct {
	Firmware string // "major.minor" as FW_VERSION reported it ("1.74"); "" if not
	Platform int    // PLATFORM byte (PlatformESP32, ...); -1 if not reported
	MCU      int    // MCU byte (MCUESP32, ...); -1 if not reported

	Frequency uint32
	Bandwidth int
	TxPower   int
	SF        int
	CR        int
	STALock   lora.DutyCycle // zero when not set
	LTALock   lora.DutyCycle
}

// Stats count a modem's traffic and troubles.
type Stats struct {
	TxFrames  uint64 // DATA frames written
	TxBytes   uint64 // their packet bytes
	RxFrames  uint64 // DATA frames read
	RxBytes   uint64
	RxDropped uint64 // received packets dropped at a full Recv queue

	ModemErrors  uint64          // ERROR frames, all codes
	ErrorsByCode map[byte]uint64 // ERROR frames by code
	QueueFull    uint64          // READY 0x00 and ERROR 0x04 received
	ReadyWaits   uint64          // Sends that waited for READY 0x01
	BadFrames    uint64          // KISS frames discarded (too long, bad escape)
	Unknown      uint64          // frames of commands the driver does not use
}

// Modem is one RNode, detected and configured. Send and Recv may be called
// from different goroutines, and Close from any. It runs one goroutine,
// reading the serial stream, until Close or a disconnect.
type Modem struct {
	cfg    Config
	params lora.Params
	clk    clock.Clock
	log    *slog.Logger
	rw     io.ReadWriteCloser

	wmu sync.Mutex // serialises writes to rw

	rx        chan Packet
	errNote   chan struct{} // capacity 1: a modem error is pending
	done      chan struct{} // closed when the reader has ended
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change waiters look at
	closed   bool          // Close was called
	endErr   error         // why the reader ended; set before done closes
	detect   []byte        // DETECT reply; nil until it comes
	firmware []byte
	platform []byte
	mcu      []byte
	echo     map[byte][]byte // latest value the modem reported per setting
	ready    bool
	pending  error // first modem error not yet returned by Send or Recv
	rssi     int
	snr      float64
	haveRSSI bool
	haveSNR  bool
	stats    Stats
	info     Info
}

// OpenSerial opens a serial port at 115200 8N1, as an RNode wants it. It
// is the OpenFunc behind Open and Keep.
func OpenSerial(path string) (io.ReadWriteCloser, error) {
	p, err := serial.Open(path, &serial.Mode{
		BaudRate: BaudRate,
		DataBits: 8,
		Parity:   serial.NoParity,
		StopBits: serial.OneStopBit,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", prefix, path, err)
	}
	_ = p.ResetInputBuffer() // stale bytes from before we opened; best effort
	return p, nil
}

// Open validates cfg, opens the serial port at path (115200 8N1), and
// detects and configures the RNode there (see New). Config errors come
// before the port is touched.
func Open(path string, cfg Config) (*Modem, error) {
	c, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	c.Logger = c.Logger.With("port", path)
	rw, err := OpenSerial(path)
	if err != nil {
		return nil, err
	}
	return start(context.Background(), rw, c)
}

// New detects and configures an RNode on rw, any byte stream to one (a
// serial port, a pipe to an Emulator). It takes rw over: on failure rw is
// closed, on success Close closes it. rw.Close must make a pending Read
// return.
//
// Start-up: wait Config.Settle; send DETECT 0x73 with the FW_VERSION,
// PLATFORM and MCU queries, again every DetectInterval, until DETECT
// 0x46 comes back (any other answer, or none within DetectTimeout:
// ErrNotRNode); send FREQUENCY, BANDWIDTH, TXPOWER, SF, CR, the airtime
// locks that are set and RADIO_STATE 0x01; wait up to ConfigTimeout for
// every echo and compare each with what was asked (frequency within
// FrequencyTolerance, bandwidth by its nominal value). A difference or a
// missing echo is a *MismatchError (ErrParamMismatch); an ERROR frame
// meanwhile is returned as a *ModemError. After a failure past DETECT
// the driver switches the radio off and sends LEAVE before closing.
func New(rw io.ReadWriteCloser, cfg Config) (*Modem, error) {
	c, err := cfg.normalize()
	if err != nil {
		rw.Close()
		return nil, err
	}
	return start(context.Background(), rw, c)
}

// start runs the start-up on rw with a normalised cfg; cancelling ctx
// closes rw and so aborts it.
func start(ctx context.Context, rw io.ReadWriteCloser, cfg Config) (*Modem, error) {
	params, err := cfg.Params()
	if err != nil {
		rw.Close()
		return nil, fmt.Errorf("%s: config: %w", prefix, err)
	}
	m := &Modem{
		cfg:     cfg,
		params:  params,
		clk:     cfg.Clock,
		log:     cfg.Logger,
		rw:      rw,
		rx:      make(chan Packet, cfg.RecvQueue),
		errNote: make(chan struct{}, 1),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
		changed: make(chan struct{}),
		echo:    make(map[byte][]byte),
		ready:   true,
		stats:   Stats{ErrorsByCode: make(map[byte]uint64)},
	}
	go m.readLoop(NewDecoder(rw, MaxFramePayload))

	stop := context.AfterFunc(ctx, func() { rw.Close() })
	detected, err := m.startup()
	if !stop() && err == nil {
		err = ctx.Err() // cancelled just as start-up succeeded: rw is closed
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%s: start-up: %w", prefix, ctx.Err())
		}
		m.abort(detected)
		m.log.Debug("start-up failed", "err", err)
		return nil, err
	}
	m.log.Debug("modem ready", "firmware", m.info.Firmware, "platform", m.info.Platform, "mcu", m.info.MCU,
		"frequency", m.info.Frequency, "bandwidth", m.info.Bandwidth, "sf", m.info.SF, "cr", m.info.CR, "txpower", m.info.TxPower)
	return m, nil
}

// abort ends a modem whose start-up failed: radio off and LEAVE if it was
// detected, then close the stream and wait for the reader.
func (m *Modem) abort(leave bool) {
	m.mu.Lock()
	alive := m.endErr == nil
	m.closed = true
	m.mu.Unlock()
	if leave && alive {
		_ = m.writeBounded(m.leaveFrames())
	}
	m.rw.Close()
	<-m.done
}

// setting is one radio parameter of the start-up.
type setting struct {
	name  string
	cmd   byte
	value []byte
	asked any
	// check compares the echo; it returns the echoed value for the error.
	check func(echo []byte) (any, bool)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func checkByte(want int) func([]byte) (any, bool) {
	return func(b []byte) (any, bool) {
		if len(b) != 1 {
			return fmt.Sprintf("% x", b), false
		}
		return int(b[0]), int(b[0]) == want
	}
}

// checkTxPower compares the TXPOWER echo: equal to want, or with
// ceiling anything from 0 to want (the modem's own maximum).
func checkTxPower(want int, ceiling bool) func([]byte) (any, bool) {
	if !ceiling {
		return checkByte(want)
	}
	return func(b []byte) (any, bool) {
		if len(b) != 1 {
			return fmt.Sprintf("% x", b), false
		}
		return int(b[0]), int(b[0]) <= want
	}
}

func checkU16(want uint16) func([]byte) (any, bool) {
	return func(b []byte) (any, bool) {
		if len(b) != 2 {
			return fmt.Sprintf("% x", b), false
		}
		v := binary.BigEndian.Uint16(b)
		return v, v == want
	}
}

func (m *Modem) settings() []setting {
	c := m.cfg
	s := []setting{
		{"Frequency", CmdFrequency, be32(c.Frequency), c.Frequency, func(b []byte) (any, bool) {
			if len(b) != 4 {
				return fmt.Sprintf("% x", b), false
			}
			v := binary.BigEndian.Uint32(b)
			d := int64(v) - int64(c.Frequency)
			return v, d >= -FrequencyTolerance && d <= FrequencyTolerance
		}},
		{"Bandwidth", CmdBandwidth, be32(uint32(c.Bandwidth)), c.Bandwidth, func(b []byte) (any, bool) {
			if len(b) != 4 {
				return fmt.Sprintf("% x", b), false
			}
			v := int(binary.BigEndian.Uint32(b))
			n, ok := lora.NominalBandwidth(v)
			return v, ok && n == c.Bandwidth
		}},
		{"TxPower", CmdTxPower, []byte{byte(c.TxPower)}, c.TxPower, checkTxPower(c.TxPower, c.TxPowerCeiling)},
		{"SF", CmdSF, []byte{byte(c.SF)}, c.SF, checkByte(c.SF)},
		{"CR", CmdCR, []byte{byte(c.CR)}, c.CR, checkByte(c.CR)},
	}
	if c.STALock > 0 {
		s = append(s, setting{"STALock", CmdSTALock, be16(uint16(c.STALock)), uint16(c.STALock), checkU16(uint16(c.STALock))})
	}
	if c.LTALock > 0 {
		s = append(s, setting{"LTALock", CmdLTALock, be16(uint16(c.LTALock)), uint16(c.LTALock), checkU16(uint16(c.LTALock))})
	}
	return append(s, setting{"RadioState", CmdRadioState, []byte{RadioOn}, int(RadioOn), checkByte(int(RadioOn))})
}

// startup detects and configures the modem. detected reports whether it
// got past DETECT (so a failure should switch the radio off).
func (m *Modem) startup() (detected bool, err error) {
	if m.cfg.Settle > 0 {
		t, stop := m.after(m.cfg.Settle)
		_, err := m.waitFor(func() (bool, error) { return false, nil }, t, nil)
		stop()
		if err != nil {
			return false, err
		}
	}

	// DETECT, repeated until answered.
	var query []byte
	query = AppendFrame(query, CmdDetect, []byte{DetectRequest})
	query = AppendFrame(query, CmdFWVersion, []byte{0x00})
	query = AppendFrame(query, CmdPlatform, []byte{0x00})
	query = AppendFrame(query, CmdMCU, []byte{0x00})
	deadline, stopDeadline := m.after(m.cfg.DetectTimeout)
	defer stopDeadline()
	isRNode := func() (bool, error) {
		switch {
		case m.detect == nil:
			return false, nil
		case len(m.detect) == 1 && m.detect[0] == DetectResponse:
			return true, nil
		}
		return false, fmt.Errorf("%s: DETECT answered % x, want %02x: %w", prefix, m.detect, DetectResponse, ErrNotRNode)
	}
	for {
		retry, stopRetry := m.after(m.cfg.DetectInterval) // armed before writing: tests advance a manual clock once the request is seen
		if err := m.write(query); err != nil {
			stopRetry()
			return false, m.writeErr("detect", err)
		}
		fired, err := m.waitFor(isRNode, retry, deadline)
		stopRetry()
		if err != nil {
			return false, err
		}
		if fired == 1 {
			return false, fmt.Errorf("%s: no answer to DETECT within %s: %w", prefix, m.cfg.DetectTimeout, ErrNotRNode)
		}
		if fired == -1 {
			break
		}
	}

	// Radio settings, then the comparison.
	settings := m.settings()
	var req []byte
	for _, s := range settings {
		req = AppendFrame(req, s.cmd, s.value)
	}
	m.mu.Lock()
	clear(m.echo)
	m.mu.Unlock()
	cfgDeadline, stopCfg := m.after(m.cfg.ConfigTimeout)
	defer stopCfg()
	if err := m.write(req); err != nil {
		return true, m.writeErr("configure", err)
	}
	allEchoed := func() (bool, error) {
		if m.pending != nil {
			err := m.pending
			m.pending = nil
			return false, err
		}
		for _, s := range settings {
			if _, ok := m.echo[s.cmd]; !ok {
				return false, nil
			}
		}
		return true, nil
	}
	if _, err := m.waitFor(allEchoed, cfgDeadline, nil); err != nil {
		return true, err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range settings {
		b, ok := m.echo[s.cmd]
		if !ok {
			return true, &MismatchError{Param: s.name, Asked: s.asked}
		}
		if v, ok := s.check(b); !ok {
			return true, &MismatchError{Param: s.name, Asked: s.asked, Echoed: v}
		}
	}
	m.info = Info{
		Firmware:  "",
		Platform:  -1,
		MCU:       -1,
		Frequency: binary.BigEndian.Uint32(m.echo[CmdFrequency]),
		Bandwidth: int(binary.BigEndian.Uint32(m.echo[CmdBandwidth])),
		TxPower:   int(m.echo[CmdTxPower][0]),
		SF:        int(m.echo[CmdSF][0]),
		CR:        int(m.echo[CmdCR][0]),
		STALock:   m.cfg.STALock,
		LTALock:   m.cfg.LTALock,
	}
	if len(m.firmware) == 2 {
		m.info.Firmware = fmt.Sprintf("%d.%02d", m.firmware[0], m.firmware[1])
	}
	if len(m.platform) == 1 {
		m.info.Platform = int(m.platform[0])
	}
	if len(m.mcu) == 1 {
		m.info.MCU = int(m.mcu[0])
	}
	return true, nil
}

// after returns a channel the clock closes after d, and a stop function.
func (m *Modem) after(d time.Duration) (<-chan struct{}, func()) { return afterClock(m.cfg, d) }

// waitFor waits until cond, called with m.mu held, reports true (-1, nil)
// or an error (-1, err), the reader ends (-1, its error), or channel a or
// b closes (0 or 1, nil, unless cond has become true meanwhile).
func (m *Modem) waitFor(cond func() (bool, error), a, b <-chan struct{}) (int, error) {
	check := func() (bool, error, <-chan struct{}) {
		m.mu.Lock()
		defer m.mu.Unlock()
		ok, err := cond()
		if !ok && err == nil && m.endErr != nil {
			err = m.endErr
		}
		return ok, err, m.changed
	}
	for {
		ok, err, changed := check()
		if ok || err != nil {
			return -1, err
		}
		fired := -1
		select {
		case <-changed:
			continue
		case <-a:
			fired = 0
		case <-b:
			fired = 1
		}
		if ok, err, _ := check(); ok || err != nil {
			return -1, err
		}
		return fired, nil
	}
}

// broadcastLocked wakes every waitFor. m.mu must be held.
func (m *Modem) broadcastLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// readLoop decodes the modem's frames until the stream fails.
func (m *Modem) readLoop(dec *Decoder) {
	defer close(m.done)
	for {
		f, err := dec.Next()
		if err != nil {
			if fe := (*FrameError)(nil); errors.As(err, &fe) {
				m.mu.Lock()
				m.stats.BadFrames++
				m.mu.Unlock()
				m.log.Debug("discarded KISS frame", "err", err)
				continue
			}
			m.mu.Lock()
			if m.closed {
				m.endErr = fmt.Errorf("%s: %w", prefix, ErrClosed)
			} else {
				m.endErr = fmt.Errorf("%s: read: %w: %w", prefix, ErrDisconnected, err)
			}
			m.broadcastLocked()
			m.mu.Unlock()
			m.log.Debug("reader ended", "err", err)
			return
		}
		m.handle(f)
		if m.cfg.onFrame != nil {
			m.cfg.onFrame(f)
		}
	}
}

// handle applies one frame from the modem.
func (m *Modem) handle(f Frame) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := f.Payload
	switch f.Cmd {
	case CmdData:
		pkt := Packet{Data: p, Time: m.clk.Now()}
		if m.haveRSSI && m.haveSNR {
			pkt.RSSI, pkt.SNR, pkt.Measured = m.rssi, m.snr, true
		}
		m.haveRSSI, m.haveSNR = false, false
		m.stats.RxFrames++
		m.stats.RxBytes += uint64(len(p))
		select {
		case m.rx <- pkt:
		default:
			m.stats.RxDropped++
			m.log.Debug("receive queue full, packet dropped", "len", len(p))
		}
		return
	case CmdStatRSSI:
		if len(p) == 1 {
			m.rssi, m.haveRSSI = int(p[0])-RSSIOffset, true
		}
		return
	case CmdStatSNR:
		if len(p) == 1 {
			m.snr, m.haveSNR = float64(int8(p[0]))*0.25, true
		}
		return
	case CmdReady:
		m.ready = len(p) >= 1 && p[0] == ReadyOK
		if !m.ready {
			m.stats.QueueFull++
		}
	case CmdError:
		code := byte(0)
		if len(p) >= 1 {
			code = p[0]
		}
		m.stats.ModemErrors++
		m.stats.ErrorsByCode[code]++
		if code == ErrorQueueFull {
			// Flow control, not a failure of its own: Send waits for READY.
			m.ready = false
			m.stats.QueueFull++
		} else if m.pending == nil {
			m.pending = &ModemError{Code: code}
			select {
			case m.errNote <- struct{}{}:
			default:
			}
		}
		m.log.Debug("modem error", "code", code)
	case CmdDetect:
		m.detect = p
	case CmdFWVersion:
		m.firmware = p
	case CmdPlatform:
		m.platform = p
	case CmdMCU:
		m.mcu = p
	case CmdFrequency, CmdBandwidth, CmdTxPower, CmdSF, CmdCR, CmdRadioState, CmdSTALock, CmdLTALock:
		m.echo[f.Cmd] = p
	default:
		m.stats.Unknown++
		return
	}
	m.broadcastLocked()
}

// write sends bytes to the modem in one piece.
func (m *Modem) write(b []byte) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	n, err := m.rw.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// writeErr maps a failed write to ErrClosed or ErrDisconnected.
func (m *Modem) writeErr(op string, err error) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return fmt.Errorf("%s: %s: %w", prefix, op, ErrClosed)
	}
	return fmt.Errorf("%s: %s: %w: %w", prefix, op, ErrDisconnected, err)
}

// writeBounded writes b, giving up after CloseTimeout. The write goes on
// in the background until the stream is closed, which ends it for a
// serial port, a pty and a pipe.
func (m *Modem) writeBounded(b []byte) error {
	res := make(chan error, 1)
	go func() { res <- m.write(b) }()
	t, stop := m.after(m.cfg.CloseTimeout)
	defer stop()
	select {
	case err := <-res:
		return err
	case <-t:
		return fmt.Errorf("%s: write not done within %s", prefix, m.cfg.CloseTimeout)
	case <-m.done:
		return m.Err()
	}
}

func (m *Modem) leaveFrames() []byte {
	b := AppendFrame(nil, CmdRadioState, []byte{RadioOff})
	return AppendFrame(b, CmdLeave, []byte{LeaveValue})
}

// usableLocked returns the error Send and Recv report before doing anything:
// closed, a pending modem error (which it consumes), or the disconnect.
func (m *Modem) usableLocked() error {
	if m.closed {
		return fmt.Errorf("%s: %w", prefix, ErrClosed)
	}
	if err := m.pending; err != nil {
		m.pending = nil
		return err
	}
	return m.endErr
}

// Send hands one packet (1..MaxDataLen bytes) to the modem for
// transmission. It returns a pending modem error (*ModemError) instead of
// sending, ErrDisconnected or ErrClosed. When the modem has said its
// queue is full (READY 0x00 or ERROR 0x04) Send waits up to ReadyTimeout
// for READY 0x01, then fails with ErrQueueFull (with ReadyTimeout NoWait
// it fails at once). Send returns once the
// packet is written to the modem, not when it is on air; the link
// accounts its airtime (Airtime) against its duty cycle before.
func (m *Modem) Send(frame []byte) error {
	if len(frame) == 0 || len(frame) > MaxDataLen {
		return fmt.Errorf("%s: send: %w", prefix,
			&lora.ParamError{Field: "PayloadLen", Value: len(frame), Allowed: fmt.Sprintf("1 to %d bytes", MaxDataLen)})
	}
	m.mu.Lock()
	err := m.usableLocked()
	ready := m.ready
	if err == nil && !ready && m.cfg.ReadyTimeout >= 0 {
		m.stats.ReadyWaits++
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if !ready {
		if m.cfg.ReadyTimeout < 0 {
			return fmt.Errorf("%s: send: modem queue full: %w", prefix, ErrQueueFull)
		}
		if err := m.awaitReady(); err != nil {
			return err
		}
	}
	if err := m.write(EncodeFrame(CmdData, frame)); err != nil {
		return m.writeErr("send", err)
	}
	m.mu.Lock()
	m.stats.TxFrames++
	m.stats.TxBytes += uint64(len(frame))
	m.mu.Unlock()
	return nil
}

func (m *Modem) awaitReady() error {
	t, stop := m.after(m.cfg.ReadyTimeout)
	defer stop()
	if m.cfg.onReadyWait != nil {
		m.cfg.onReadyWait()
	}
	fired, err := m.waitFor(func() (bool, error) {
		if m.closed {
			return false, fmt.Errorf("%s: send: %w", prefix, ErrClosed)
		}
		return m.ready, nil
	}, t, m.closing)
	switch {
	case err != nil:
		return err
	case fired == 0:
		return fmt.Errorf("%s: send: no READY within %s: %w", prefix, m.cfg.ReadyTimeout, ErrQueueFull)
	case fired == 1:
		return fmt.Errorf("%s: send: %w", prefix, ErrClosed)
	}
	return nil
}

// Recv returns the next received packet. A modem error (*ModemError)
// that arrived since the last Send or Recv is returned first, once. After
// a disconnect Recv returns the packets still queued, then
// ErrDisconnected; after Close, ErrClosed.
func (m *Modem) Recv(ctx context.Context) (Packet, error) {
	for {
		m.mu.Lock()
		closed := m.closed
		pending := m.pending
		m.pending = nil
		m.mu.Unlock()
		if closed {
			return Packet{}, fmt.Errorf("%s: %w", prefix, ErrClosed)
		}
		if pending != nil {
			return Packet{}, pending
		}
		select {
		case p := <-m.rx:
			return p, nil
		default:
		}
		select {
		case p := <-m.rx:
			return p, nil
		case <-m.errNote:
		case <-m.closing:
		case <-m.done:
			select {
			case p := <-m.rx:
				return p, nil
			default:
			}
			m.mu.Lock()
			err := m.usableLocked()
			m.mu.Unlock()
			return Packet{}, err
		case <-ctx.Done():
			return Packet{}, ctx.Err()
		}
	}
}

// Close switches the radio off, sends LEAVE 0xFF (bounded by
// CloseTimeout), closes the stream and waits for the reader to end. It is
// idempotent; Send and Recv then return ErrClosed.
func (m *Modem) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		alive := m.endErr == nil
		m.closed = true
		close(m.closing)
		m.broadcastLocked()
		m.mu.Unlock()
		if alive {
			if err := m.writeBounded(m.leaveFrames()); err != nil {
				m.log.Debug("LEAVE not sent", "err", err)
			}
		}
		err := m.rw.Close()
		<-m.done
		if err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, ErrClosed) {
			m.closeErr = fmt.Errorf("%s: close: %w", prefix, err)
		}
	})
	return m.closeErr
}

// Done is closed when the modem is finished: disconnected or closed.
func (m *Modem) Done() <-chan struct{} { return m.done }

// Err is why the modem finished (ErrDisconnected with the cause, or
// ErrClosed), nil while it runs.
func (m *Modem) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endErr
}

func (m *Modem) closedByOwner() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Ready reports whether the modem takes packets (no READY 0x00 or ERROR
// 0x04 since the last READY 0x01).
func (m *Modem) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready
}

// Info is what the modem reported at start-up.
func (m *Modem) Info() Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info
}

// Stats returns a copy of the counters.
func (m *Modem) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.ErrorsByCode = maps.Clone(m.stats.ErrorsByCode)
	return s
}

// Config is the modem's configuration with the defaults filled in.
func (m *Modem) Config() Config { return m.cfg }

// Params are the modem's modulation settings for airtime calculations
// (Config.Params).
func (m *Modem) Params() lora.Params { return m.params }

// Airtime is how long a packet of n bytes (0..MaxDataLen) handed to Send
// occupies the air with the modem's settings: see PacketAirtime.
func (m *Modem) Airtime(n int) (time.Duration, error) { return PacketAirtime(m.params, n) }

// PacketAirtime is the time on air of an n-byte packet sent through an
// RNode with params p: the RNode puts a 1-byte header before each LoRa
// frame and splits a packet longer than 254 bytes into two frames (254 +
// the rest), so it is lora.Airtime(p, n+1), or lora.Airtime(p, 255) +
// lora.Airtime(p, n-254+1) for the split case. Errors are
// *lora.ParamError.
func PacketAirtime(p lora.Params, n int) (time.Duration, error) {
	if n < 0 || n > MaxDataLen {
		return 0, &lora.ParamError{Field: "PayloadLen", Value: n, Allowed: fmt.Sprintf("0 to %d bytes", MaxDataLen)}
	}
	if n <= singleMTU {
		return lora.Airtime(p, n+1)
	}
	a, err := lora.Airtime(p, singleMTU+1)
	if err != nil {
		return 0, err
	}
	b, err := lora.Airtime(p, n-singleMTU+1)
	return a + b, err
}
