package transports

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzFrameReader reads frames from arbitrary bytes under an arbitrary
// limit. It must never panic and never return a frame above the limit;
// the frames it does return re-encode to exactly the bytes they came from
// (one encoding per frame), and it stops only with io.EOF at the end or one
// of the documented errors.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte{}, uint16(10))
	f.Add([]byte{0x00}, uint16(0))
	f.Add(AppendFrame(AppendFrame(nil, []byte("hello")), []byte("world")), uint16(5))
	f.Add(AppendFrame(nil, pattern(300)), uint16(299))
	f.Add([]byte{0x80, 0x00}, uint16(100))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, uint16(65535))
	f.Add(AppendFrameHeader(nil, 1<<31), uint16(1024))
	f.Add([]byte{0x05, 'a', 'b'}, uint16(100))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		fr := NewFrameReader(bytes.NewReader(data), int(limit))
		var again []byte
		for {
			frame, err := fr.ReadFrame()
			if err != nil {
				var tooLarge *FrameTooLargeError
				switch {
				case err == io.EOF:
					if !bytes.Equal(again, data) {
						t.Fatalf("frames re-encode to %x, input was %x", again, data)
					}
				case errors.As(err, &tooLarge):
					if tooLarge.Size <= uint64(limit) || tooLarge.Limit != int(limit) {
						t.Fatalf("bad FrameTooLargeError %+v for limit %d", tooLarge, limit)
					}
				case errors.Is(err, ErrBadFrame), err == io.ErrUnexpectedEOF:
				default:
					t.Fatalf("undocumented error %v", err)
				}
				if !bytes.HasPrefix(data, again) {
					t.Fatalf("frames read do not re-encode to a prefix of the input")
				}
				return
			}
			if len(frame) > int(limit) {
				t.Fatalf("frame of %d bytes above the limit %d", len(frame), limit)
			}
			again = AppendFrame(again, frame)
		}
	})
}
