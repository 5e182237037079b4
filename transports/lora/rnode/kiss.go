package rnode

import (
	"fmt"
	"io"
)

// KISS framing bytes.
const (
	FEND  byte = 0xC0 // frame delimiter
	FESC  byte = 0xDB // escape
	TFEND byte = 0xDC // FESC TFEND stands for a FEND in the data
	TFESC byte = 0xDD // FESC TFESC stands for a FESC in the data
)

// Sizes of the framing.
const (
	// MaxDataLen is the largest packet the RNode accepts in one DATA
	// command (it splits packets over 254 bytes into two LoRa frames) and
	// the largest it hands back.
	MaxDataLen = 508

	// MaxFramePayload is the largest unescaped payload (after the command
	// byte) the Decoder accepts: 512 bytes plus a margin for replies
	// larger than DATA. Longer frames are discarded before the buffer
	// grows past it.
	MaxFramePayload = 512 + 8

	readBufSize   = 1024
	maxNoProgress = 100 // consecutive empty reads before io.ErrNoProgress
)

// Frame is one decoded KISS frame: the command byte and its unescaped
// payload.
type Frame struct {
	Cmd     byte
	Payload []byte
}

// AppendFrame appends the KISS encoding of one frame to dst:
// FEND, the command, the payload, FEND, where a FESC in the command or
// payload is sent as FESC TFESC and a FEND as FESC TFEND. (Escaping FESC
// first and FEND second, as the protocol describes it, is the same as
// escaping byte by byte.)
func AppendFrame(dst []byte, cmd byte, payload []byte) []byte {
	dst = append(dst, FEND)
	dst = appendEscaped(dst, cmd)
	for _, b := range payload {
		dst = appendEscaped(dst, b)
	}
	return append(dst, FEND)
}

// EncodeFrame returns the KISS encoding of one frame (see AppendFrame).
func EncodeFrame(cmd byte, payload []byte) []byte {
	return AppendFrame(make([]byte, 0, len(payload)+4+len(payload)/16), cmd, payload)
}

func appendEscaped(dst []byte, b byte) []byte {
	switch b {
	case FESC:
		return append(dst, FESC, TFESC)
	case FEND:
		return append(dst, FESC, TFEND)
	}
	return append(dst, b)
}

// FrameError is a frame the Decoder discarded: too long (ErrFrameTooLong)
// or carrying an escape other than FESC TFEND / FESC TFESC
// (ErrBadEscape). Test it with errors.Is; the decoder resynchronises on
// the next FEND and the caller may go on calling Next.
type FrameError struct {
	Cmd byte  // the frame's command byte, if it was read
	Len int   // payload bytes read before the frame was discarded
	Err error // ErrFrameTooLong or ErrBadEscape
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("%s: kiss: frame cmd 0x%02x discarded after %d bytes: %v", prefix, e.Cmd, e.Len, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// DecoderStats count what a Decoder saw.
type DecoderStats struct {
	Frames    uint64 // frames returned by Next
	Empty     uint64 // empty frames (FEND FEND) skipped
	Skipped   uint64 // bytes outside any frame skipped (garbage, resync)
	Oversize  uint64 // frames discarded as longer than the limit
	BadEscape uint64 // frames discarded for an invalid escape
}

type decodeState uint8

const (
	stHunt    decodeState = iota // before the first FEND: skip to it
	stStart                      // after an opening FEND: expect the command byte
	stEnd                        // after a closing FEND: it may also open the next frame
	stDiscard                    // inside a discarded frame: skip to the next FEND
	stData                       // inside a frame
	stEsc                        // after FESC
	stEscCmd                     // after FESC in the command position
)

// Decoder reads KISS frames from a byte stream. It skips bytes before the
// first FEND (a board's boot messages), treats a FEND that ends one frame
// as the start of the next (so FEND FEND between frames is normal), skips
// and counts empty frames (more FENDs in a row), and
// discards a frame that grows beyond its limit or has a bad escape,
// returning a *FrameError and resynchronising on the next FEND. It checks
// the limit before appending, so its buffer never grows past it. A
// Decoder is not safe for concurrent use.
type Decoder struct {
	r     io.Reader
	max   int
	rbuf  []byte
	rpos  int
	rend  int
	rerr  error
	state decodeState
	cmd   byte
	buf   []byte
	stats DecoderStats
}

// NewDecoder returns a decoder reading from r that accepts payloads of up
// to maxPayload bytes; maxPayload <= 0 means MaxFramePayload.
func NewDecoder(r io.Reader, maxPayload int) *Decoder {
	if maxPayload <= 0 {
		maxPayload = MaxFramePayload
	}
	return &Decoder{
		r:    r,
		max:  maxPayload,
		rbuf: make([]byte, readBufSize),
		buf:  make([]byte, 0, maxPayload),
	}
}

// Stats returns the decoder's counters.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// Next returns the next frame. The payload is a fresh slice the caller
// owns. A *FrameError (errors.Is ErrFrameTooLong or ErrBadEscape) reports
// a discarded frame; call Next again to go on. Any other error is the
// reader's (io.EOF at the end of the stream; a partial frame is dropped)
// and is returned again by every later call.
func (d *Decoder) Next() (Frame, error) {
	for {
		if d.rpos == d.rend {
			if err := d.fill(); err != nil {
				return Frame{}, err
			}
		}
		for d.rpos < d.rend {
			b := d.rbuf[d.rpos]
			d.rpos++
			if f, done, err := d.step(b); done || err != nil {
				return f, err
			}
		}
	}
}

// fill reads more bytes, or returns the reader's (sticky) error.
func (d *Decoder) fill() error {
	if d.rerr != nil {
		return d.rerr
	}
	for i := 0; i < maxNoProgress; i++ {
		n, err := d.r.Read(d.rbuf)
		if n < 0 || n > len(d.rbuf) {
			n = 0 // a broken reader; treat as no progress
		}
		d.rpos, d.rend = 0, n
		if err != nil {
			d.rerr = err
		}
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	d.rerr = io.ErrNoProgress
	return d.rerr
}

// step feeds one byte to the state machine. It returns a complete frame
// with done, or a *FrameError for a discarded one.
func (d *Decoder) step(b byte) (Frame, bool, error) {
	switch d.state {
	case stHunt, stDiscard:
		switch {
		case b != FEND:
			d.stats.Skipped++
		case d.state == stHunt:
			d.state = stStart
		default:
			d.state = stEnd
		}
	case stStart, stEnd:
		switch b {
		case FEND:
			if d.state == stStart {
				d.stats.Empty++
			}
			d.state = stStart
		case FESC:
			d.state = stEscCmd
		default:
			d.cmd, d.buf, d.state = b, d.buf[:0], stData
		}
	case stEscCmd:
		c, ok := unescape(b)
		if !ok {
			d.cmd, d.buf = 0, d.buf[:0]
			return Frame{}, false, d.badEscape(b)
		}
		d.cmd, d.buf, d.state = c, d.buf[:0], stData
	case stData:
		switch b {
		case FEND:
			d.state = stEnd
			d.stats.Frames++
			p := make([]byte, len(d.buf))
			copy(p, d.buf)
			return Frame{Cmd: d.cmd, Payload: p}, true, nil
		case FESC:
			d.state = stEsc
		default:
			return Frame{}, false, d.append(b)
		}
	case stEsc:
		c, ok := unescape(b)
		if !ok {
			return Frame{}, false, d.badEscape(b)
		}
		d.state = stData
		return Frame{}, false, d.append(c)
	}
	return Frame{}, false, nil
}

func unescape(b byte) (byte, bool) {
	switch b {
	case TFEND:
		return FEND, true
	case TFESC:
		return FESC, true
	}
	return 0, false
}

// append adds one payload byte, checking the limit first.
func (d *Decoder) append(c byte) error {
	if len(d.buf) >= d.max {
		d.stats.Oversize++
		err := &FrameError{Cmd: d.cmd, Len: len(d.buf), Err: ErrFrameTooLong}
		d.buf = d.buf[:0]
		d.state = stDiscard
		d.stats.Skipped++ // c itself
		return err
	}
	d.buf = append(d.buf, c)
	return nil
}

// badEscape discards the current frame. A FEND after FESC both ends the
// bad frame and starts the next one.
func (d *Decoder) badEscape(b byte) error {
	d.stats.BadEscape++
	err := &FrameError{Cmd: d.cmd, Len: len(d.buf), Err: ErrBadEscape}
	d.buf = d.buf[:0]
	if b == FEND {
		d.state = stEnd
	} else {
		d.state = stDiscard
	}
	return err
}
