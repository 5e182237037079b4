package messages

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// frameHeadMax is the most FrameTag may read: a 9-byte array head and a
// 9-byte tag head.
const frameHeadMax = 18

// FuzzFrameTag: FrameTag is the first thing run on every frame a peer
// sends (the link's outer check, ratelimit's dispatch, the admission
// mailbox's priority). Whatever the bytes, it returns a tag with a frame
// type (never 0) or ErrMalformed / ErrUnknownType, never a panic; it reads
// nothing after the tag (the verdict on the first 18 bytes is the verdict
// on the frame, so a huge declared length costs nothing); and on every
// input the cbor library reads as an array it agrees with the library on
// what the first element is. CheckTag then accepts the tag for exactly the
// wire type it names.
func FuzzFrameTag(f *testing.F) {
	env, err := EncodeEnvelope(goldenEnvelope(f))
	if err != nil {
		f.Fatal(err)
	}
	ann, err := EncodeAnnounce(goldenAnnounce(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add(ann)
	f.Add(readGolden(f, "beacon.golden"))
	f.Add(env[:1])
	f.Add(env[:2])
	f.Add([]byte{})
	f.Add([]byte{0x80})                                                                     // empty array
	f.Add([]byte{0x9f, 0x11, 0xff})                                                         // indefinite array
	f.Add([]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x11})               // 2^64-1 elements declared
	f.Add([]byte{0x9a, 0xff, 0xff, 0xff, 0xff, 0x02})                                       // 2^32-1 elements declared
	f.Add([]byte{0x81, 0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11})               // tag in a non-shortest 8-byte head
	f.Add([]byte{0x81, 0x1b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x11})               // tag above 0xFF
	f.Add([]byte{0x81, 0x19, 0x01, 0x00})                                                   // 256
	f.Add([]byte{0x81, 0x18, 0xf1})                                                         // envelope version 15
	f.Add([]byte{0x81, 0x00})                                                               // type 0
	f.Add([]byte{0x81, 0x20})                                                               // a negative integer
	f.Add([]byte{0x81, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})               // a huge byte string first
	f.Add(append([]byte{0x8a, 0x11, 0x00, 0x08, 0x5b, 0x7f, 0xff, 0xff, 0xff}, env[4:]...)) // huge field later
	f.Add([]byte{0x1c})                                                                     // reserved additional information
	f.Add([]byte{0x9c, 0x11})

	lenient, err := cbor.DecOptions{}.DecMode()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tag, err := FrameTag(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("FrameTag(%x): untyped error %v", data, err)
			}
			if tag != 0 {
				t.Fatalf("FrameTag(%x) = %v with error %v", data, tag, err)
			}
		} else if tag.Type() == 0 {
			t.Fatalf("FrameTag(%x) = %v: type 0 is never valid", data, tag)
		}

		// Only the head is read.
		if len(data) > frameHeadMax {
			t2, err2 := FrameTag(data[:frameHeadMax])
			if t2 != tag || (err == nil) != (err2 == nil) || (err != nil && errors.Is(err, ErrUnknownType) != errors.Is(err2, ErrUnknownType)) {
				t.Fatalf("FrameTag reads past the head: %v, %v on %x; %v, %v on its first %d bytes", tag, err, data, t2, err2, frameHeadMax)
			}
		}

		// Agreement with the cbor library on what it can read as an array.
		var arr []cbor.RawMessage
		if _, lerr := lenient.UnmarshalFirst(data, &arr); lerr == nil && data[0]>>5 == 4 {
			want, wantErr := Tag(0), error(nil)
			switch {
			case data[0] == 0x9f:
				wantErr = ErrMalformed // indefinite length: refused
			case len(arr) == 0 || len(arr[0]) == 0 || arr[0][0]>>5 != 0:
				wantErr = ErrMalformed
			default:
				var v uint64
				if err := lenient.Unmarshal(arr[0], &v); err != nil {
					t.Fatalf("library: first element %x: %v", arr[0], err)
				}
				if v > 0xFF || v&0x0F == 0 {
					wantErr = ErrUnknownType
				} else {
					want = Tag(v)
				}
			}
			if tag != want || (wantErr == nil) != (err == nil) || (wantErr != nil && !errors.Is(err, wantErr)) {
				t.Fatalf("FrameTag(%x) = %v, %v; the library reads it as %v, %v", data, tag, err, want, wantErr)
			}
		}

		if err != nil {
			return
		}
		for _, want := range []Tag{TagEnvelope, TagAnnounce, TagBeacon} {
			cerr := CheckTag(uint64(tag), want)
			switch {
			case tag == want:
				if cerr != nil {
					t.Fatalf("CheckTag(%v, %v) = %v", tag, want, cerr)
				}
			case tag.Type() == want.Type():
				if !errors.Is(cerr, ErrUnsupportedVersion) {
					t.Fatalf("CheckTag(%v, %v) = %v, want ErrUnsupportedVersion", tag, want, cerr)
				}
			default:
				if !errors.Is(cerr, ErrUnknownType) {
					t.Fatalf("CheckTag(%v, %v) = %v, want ErrUnknownType", tag, want, cerr)
				}
			}
		}
	})
}

// A frame that declares a huge length is refused (or, for FrameTag, read)
// without allocating anything of that size: the limits come before the
// work. Measured in bytes allocated, so an allocation of the declared size
// (or of MaxFrameSize) would fail the test.
func TestHugeDeclaredLengthsFailFast(t *testing.T) {
	env, err := EncodeEnvelope(goldenEnvelope(t))
	if err != nil {
		t.Fatal(err)
	}
	// The payload (field 9) declared as 2^63 bytes: the frame up to the
	// payload, then a byte string head of 0x7fff_ffff_ffff_ffff.
	e := goldenEnvelope(t)
	prefix, err := Marshal(envelopeTBS{Tag: e.Tag, HopLimit: e.HopLimit, Source: e.Source, Destination: e.Destination, Expiry: e.Expiry, Seq: e.Seq, PayloadType: e.PayloadType})
	if err != nil {
		t.Fatal(err)
	}
	// prefix is [tag, limit, src, dst, expiry, seq, pt, h''] as an 8-array;
	// make it the 10-array of an envelope with hops inserted, and cut the
	// empty payload off.
	head := append([]byte{0x8a, prefix[1], 0x00}, prefix[2:len(prefix)-1]...)
	sig := env[len(env)-66:]
	// The control: with an empty payload the same bytes are an envelope.
	if _, err := DecodeEnvelope(append(append(bytes.Clone(head), 0x40), sig...)); err != nil {
		t.Fatalf("the frame around the huge payload does not decode: %v", err)
	}
	huge := append(bytes.Clone(head), 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	huge = append(huge, sig...)
	hugeArray := append([]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, env[1:]...)
	oversized := append(bytes.Clone(env), make([]byte, MaxEnvelopeSize)...)

	cases := []struct {
		name string
		run  func() error
		want error
	}{
		{"envelope payload of 2^63 bytes", func() error { _, err := DecodeEnvelope(huge); return err }, ErrMalformed},
		{"envelope array of 2^64-1 elements", func() error { _, err := DecodeEnvelope(hugeArray); return err }, ErrMalformed},
		{"envelope over MaxEnvelopeSize", func() error { _, err := DecodeEnvelope(oversized); return err }, ErrTooLarge},
		{"announce over MaxAnnounceSize", func() error { _, err := DecodeAnnounce(oversized[:MaxAnnounceSize+1]); return err }, ErrTooLarge},
		{"forward over MaxEnvelopeSize", func() error { _, err := ForwardEnvelope(oversized); return err }, ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			const runs = 50
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				_ = c.run()
			}
			runtime.ReadMemStats(&after)
			if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 8<<10 {
				t.Fatalf("%d bytes allocated per refusal, want under 8 KiB", per)
			}
		})
	}
	// FrameTag reads a tag behind a declared 2^64-element array without
	// allocating at all.
	if tag, err := FrameTag(hugeArray); err != nil || tag != TagEnvelope {
		t.Fatalf("FrameTag = %v, %v", tag, err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = FrameTag(hugeArray) }); n != 0 {
		t.Fatalf("FrameTag allocates %.0f times", n)
	}
}
