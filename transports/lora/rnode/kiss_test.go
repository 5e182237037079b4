package rnode

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"testing/iotest"
)

func TestEncodeFrame(t *testing.T) {
	tests := []struct {
		name    string
		cmd     byte
		payload []byte
		want    []byte
	}{
		{"empty", CmdReady, nil, []byte{0xC0, 0x0F, 0xC0}},
		{"plain", CmdData, []byte{1, 2, 3}, []byte{0xC0, 0x00, 1, 2, 3, 0xC0}},
		{"fend", CmdData, []byte{0xC0}, []byte{0xC0, 0x00, 0xDB, 0xDC, 0xC0}},
		{"fesc", CmdData, []byte{0xDB}, []byte{0xC0, 0x00, 0xDB, 0xDD, 0xC0}},
		// DB DC in the data must not turn into C0: FESC is escaped first.
		{"fesc then tfend", CmdData, []byte{0xDB, 0xDC}, []byte{0xC0, 0x00, 0xDB, 0xDD, 0xDC, 0xC0}},
		{"fesc fend", CmdData, []byte{0xDB, 0xC0, 0xDD}, []byte{0xC0, 0x00, 0xDB, 0xDD, 0xDB, 0xDC, 0xDD, 0xC0}},
		{"frequency", CmdFrequency, be32(869_525_000), []byte{0xC0, 0x01, 0x33, 0xD3, 0xE6, 0x08, 0xC0}},
		{"escaped cmd", 0xC0, []byte{0x01}, []byte{0xC0, 0xDB, 0xDC, 0x01, 0xC0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EncodeFrame(tt.cmd, tt.payload)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("EncodeFrame = % x, want % x", got, tt.want)
			}
			f, err := NewDecoder(bytes.NewReader(got), 0).Next()
			if err != nil || f.Cmd != tt.cmd || !bytes.Equal(f.Payload, tt.payload) {
				t.Fatalf("decode = %#x % x, %v; want %#x % x", f.Cmd, f.Payload, err, tt.cmd, tt.payload)
			}
		})
	}
}

// decodeAll reads frames until the stream ends, collecting frame errors.
func decodeAll(t *testing.T, r io.Reader, max int) ([]Frame, []error, DecoderStats) {
	t.Helper()
	d := NewDecoder(r, max)
	var frames []Frame
	var errs []error
	for {
		f, err := d.Next()
		if err == nil {
			frames = append(frames, f)
			continue
		}
		var fe *FrameError
		if errors.As(err, &fe) {
			errs = append(errs, err)
			continue
		}
		if err != io.EOF {
			t.Fatalf("Next: %v, want io.EOF at the end", err)
		}
		return frames, errs, d.Stats()
	}
}

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func TestDecoder(t *testing.T) {
	big := bytes.Repeat([]byte{0x55}, 40)
	tests := []struct {
		name      string
		in        []byte
		max       int
		want      []Frame
		wantErrs  []error
		wantStats DecoderStats
	}{
		{
			name:      "garbage before the first frame",
			in:        cat([]byte("ESP-ROM:esp32s3-20210327\r\nboot:0x8\r\n"), EncodeFrame(CmdDetect, []byte{0x46})),
			want:      []Frame{{CmdDetect, []byte{0x46}}},
			wantStats: DecoderStats{Frames: 1, Skipped: 36},
		},
		{
			name:      "empty frames",
			in:        cat([]byte{0xC0, 0xC0, 0xC0}, EncodeFrame(CmdSF, []byte{7}), []byte{0xC0}),
			want:      []Frame{{CmdSF, []byte{7}}},
			wantStats: DecoderStats{Frames: 1, Empty: 3},
		},
		{
			name:      "shared FEND between frames",
			in:        []byte{0xC0, 0x04, 0x07, 0xC0, 0x05, 0x05, 0xC0},
			want:      []Frame{{CmdSF, []byte{7}}, {CmdCR, []byte{5}}},
			wantStats: DecoderStats{Frames: 2},
		},
		{
			name:      "command only",
			in:        []byte{0xC0, 0x0F, 0xC0},
			want:      []Frame{{CmdReady, []byte{}}},
			wantStats: DecoderStats{Frames: 1},
		},
		{
			name:     "oversize discarded, next frame kept",
			in:       cat(EncodeFrame(CmdData, big), EncodeFrame(CmdData, []byte{1, 0xC0, 2})),
			max:      32,
			want:     []Frame{{CmdData, []byte{1, 0xC0, 2}}},
			wantErrs: []error{ErrFrameTooLong},
			// 8 bytes after the 32 kept are skipped, up to the FEND.
			wantStats: DecoderStats{Frames: 1, Oversize: 1, Skipped: 8},
		},
		{
			name:      "exactly the limit",
			in:        EncodeFrame(CmdData, big[:32]),
			max:       32,
			want:      []Frame{{CmdData, big[:32]}},
			wantStats: DecoderStats{Frames: 1},
		},
		{
			name:      "escaped bytes count once against the limit",
			in:        EncodeFrame(CmdData, bytes.Repeat([]byte{0xC0}, 32)),
			max:       32,
			want:      []Frame{{CmdData, bytes.Repeat([]byte{0xC0}, 32)}},
			wantStats: DecoderStats{Frames: 1},
		},
		{
			name:      "bad escape resyncs on the next FEND",
			in:        cat([]byte{0xC0, 0x00, 0x01, 0xDB, 0x41, 0x42, 0xC0}, EncodeFrame(CmdSF, []byte{9})),
			want:      []Frame{{CmdSF, []byte{9}}},
			wantErrs:  []error{ErrBadEscape},
			wantStats: DecoderStats{Frames: 1, BadEscape: 1, Skipped: 1},
		},
		{
			name:      "FESC FEND ends the bad frame and starts the next",
			in:        []byte{0xC0, 0x00, 0x01, 0xDB, 0xC0, 0x04, 0x08, 0xC0},
			want:      []Frame{{CmdSF, []byte{8}}},
			wantErrs:  []error{ErrBadEscape},
			wantStats: DecoderStats{Frames: 1, BadEscape: 1},
		},
		{
			name:      "bad escape in the command position",
			in:        []byte{0xC0, 0xDB, 0x00, 0x01, 0xC0, 0x04, 0x08, 0xC0},
			want:      []Frame{{CmdSF, []byte{8}}},
			wantErrs:  []error{ErrBadEscape},
			wantStats: DecoderStats{Frames: 1, BadEscape: 1, Skipped: 1},
		},
		{
			name:      "partial frame at EOF dropped",
			in:        cat(EncodeFrame(CmdSF, []byte{7}), []byte{0x00, 1, 2, 3}),
			want:      []Frame{{CmdSF, []byte{7}}},
			wantStats: DecoderStats{Frames: 1},
		},
	}
	for _, tt := range tests {
		readers := map[string]func([]byte) io.Reader{
			"whole":    func(b []byte) io.Reader { return bytes.NewReader(b) },
			"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
			"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		}
		for rn, mk := range readers {
			t.Run(tt.name+"/"+rn, func(t *testing.T) {
				frames, errs, st := decodeAll(t, mk(tt.in), tt.max)
				if len(frames) != len(tt.want) {
					t.Fatalf("frames = %v, want %v", frames, tt.want)
				}
				for i := range frames {
					if frames[i].Cmd != tt.want[i].Cmd || !bytes.Equal(frames[i].Payload, tt.want[i].Payload) {
						t.Errorf("frame %d = %#x % x, want %#x % x", i, frames[i].Cmd, frames[i].Payload, tt.want[i].Cmd, tt.want[i].Payload)
					}
				}
				if len(errs) != len(tt.wantErrs) {
					t.Fatalf("errors = %v, want %v", errs, tt.wantErrs)
				}
				for i := range errs {
					if !errors.Is(errs[i], tt.wantErrs[i]) {
						t.Errorf("error %d = %v, want %v", i, errs[i], tt.wantErrs[i])
					}
				}
				if st != tt.wantStats {
					t.Errorf("stats = %+v, want %+v", st, tt.wantStats)
				}
			})
		}
	}
}

// The buffer never grows beyond the limit, however long the frame.
func TestDecoderBufferBounded(t *testing.T) {
	in := cat([]byte{0xC0, 0x00}, bytes.Repeat([]byte{0x11}, 1<<20), []byte{0xC0})
	d := NewDecoder(bytes.NewReader(in), 0)
	_, err := d.Next()
	if !errors.Is(err, ErrFrameTooLong) {
		t.Fatalf("Next = %v, want ErrFrameTooLong", err)
	}
	if cap(d.buf) != MaxFramePayload {
		t.Fatalf("buffer capacity %d, want %d", cap(d.buf), MaxFramePayload)
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("Next after discard = %v, want io.EOF", err)
	}
}

// A reader that returns no bytes and no error forever ends with
// io.ErrNoProgress instead of spinning.
func TestDecoderNoProgress(t *testing.T) {
	d := NewDecoder(readerFunc(func([]byte) (int, error) { return 0, nil }), 0)
	if _, err := d.Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("Next = %v, want io.ErrNoProgress", err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// FuzzKISSDecode feeds arbitrary bytes to the decoder: it must not panic,
// every frame it returns must fit the limit, re-encode to something that
// decodes to the same frame, and the re-encoded stream must be canonical
// (encode(decode(x)) == x).
func FuzzKISSDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(EncodeFrame(CmdDetect, []byte{DetectResponse}))
	f.Add(cat(EncodeFrame(CmdStatRSSI, []byte{67}), EncodeFrame(CmdStatSNR, []byte{29}), EncodeFrame(CmdData, []byte{0xC0, 0xDB, 0xDC, 0xDD})))
	f.Add([]byte{0xC0, 0xC0, 0x00, 0xDB, 0xC0, 0x01, 0xDB})
	f.Add(cat([]byte("boot garbage"), []byte{0xC0, 0x04, 0x07, 0xC0, 0x05, 0x05, 0xC0}))
	f.Add(cat([]byte{0xC0, 0x00}, bytes.Repeat([]byte{0xDB, 0xDC}, MaxFramePayload+2), []byte{0xC0}))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(bytes.NewReader(in), 0)
		var frames []Frame
		for {
			fr, err := d.Next()
			if err != nil {
				var fe *FrameError
				if errors.As(err, &fe) {
					if !errors.Is(err, ErrFrameTooLong) && !errors.Is(err, ErrBadEscape) {
						t.Fatalf("FrameError with unexpected cause: %v", err)
					}
					continue
				}
				if err != io.EOF {
					t.Fatalf("Next: %v", err)
				}
				break
			}
			if len(fr.Payload) > MaxFramePayload {
				t.Fatalf("frame of %d bytes over the limit", len(fr.Payload))
			}
			frames = append(frames, fr)
		}
		st := d.Stats()
		if st.Frames != uint64(len(frames)) {
			t.Fatalf("Stats.Frames = %d, returned %d", st.Frames, len(frames))
		}
		var enc []byte
		for _, fr := range frames {
			one := EncodeFrame(fr.Cmd, fr.Payload)
			g, err := NewDecoder(bytes.NewReader(one), 0).Next()
			if err != nil || g.Cmd != fr.Cmd || !bytes.Equal(g.Payload, fr.Payload) {
				t.Fatalf("round trip of %#x % x: %#x % x, %v", fr.Cmd, fr.Payload, g.Cmd, g.Payload, err)
			}
			enc = append(enc, one...)
		}
		// The canonical stream decodes to the same frames and encodes back
		// to itself.
		d2 := NewDecoder(bytes.NewReader(enc), 0)
		var again []byte
		for i := 0; ; i++ {
			g, err := d2.Next()
			if err == io.EOF {
				if i != len(frames) {
					t.Fatalf("canonical stream gave %d frames, want %d", i, len(frames))
				}
				break
			}
			if err != nil {
				t.Fatalf("canonical stream: %v", err)
			}
			again = AppendFrame(again, g.Cmd, g.Payload)
		}
		if !bytes.Equal(again, enc) {
			t.Fatalf("encode(decode(x)) != x for canonical x")
		}
		if s2 := d2.Stats(); s2.Skipped != 0 || s2.Empty != 0 || s2.Oversize != 0 || s2.BadEscape != 0 {
			t.Fatalf("canonical stream stats %+v", s2)
		}
	})
}
