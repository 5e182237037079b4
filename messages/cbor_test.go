package messages

// Tests of cbor.go (the shared encoder, strict decoder and frame tags). They
// live here, next to the first wire type that uses them; move them to
// cbor_test.go when convenient.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStrictDecoderRejects(t *testing.T) {
	type keyed struct {
		A uint `cbor:"1,keyasint"`
		B uint `cbor:"2,keyasint"`
	}
	deep := bytes.Repeat([]byte{0x81}, 9) // nine nested one-element arrays...
	deep = append(deep, 0x00)             // ...around a 0
	cases := []struct {
		name string
		in   []byte
		v    any
		want error
	}{
		{"duplicate map key", unhex(t, "a201010102"), new(map[uint]uint), ErrMalformed},
		{"duplicate struct key", unhex(t, "a201010102"), new(keyed), ErrMalformed},
		{"unknown struct key", unhex(t, "a10301"), new(keyed), ErrMalformed},
		{"indefinite array", unhex(t, "9f01ff"), new([]uint), ErrMalformed},
		{"indefinite byte string", unhex(t, "5f4101ff"), new([]byte), ErrMalformed},
		{"tag", unhex(t, "c11a6955b900"), new(uint64), ErrMalformed},
		{"invalid utf-8", unhex(t, "62c328"), new(string), ErrMalformed},
		{"nested too deep", deep, new(any), ErrMalformed},
		{"length past the input", unhex(t, "5a7fffffff00"), new([]byte), ErrMalformed},
		{"trailing bytes", unhex(t, "0000"), new(uint), ErrMalformed},
		{"too large", make([]byte, MaxFrameSize+1), new([]byte), ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Unmarshal(c.in, c.v); !errors.Is(err, c.want) {
				t.Fatalf("Unmarshal(%x) = %v, want %v", c.in, err, c.want)
			}
		})
	}
	const n = maxArrayElements + 1
	big := append([]byte{0x99, n >> 8, n & 0xff}, bytes.Repeat([]byte{0x00}, n)...)
	if err := Unmarshal(big, new([]uint)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("array of %d elements: %v", maxArrayElements+1, err)
	}
}

func TestDeterministicEncoding(t *testing.T) {
	// Map keys sorted (bytewise lexicographic on their encodings), shortest
	// integers, nil slice as empty.
	got, err := Marshal(map[uint]any{10: []byte(nil), 1: uint64(500), 100: []uint(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a3011901f40a4018648" + "0"; hex.EncodeToString(got) != want {
		t.Fatalf("got %x, want %s", got, want)
	}
}

func TestUnmarshalCanonical(t *testing.T) {
	var a [4]byte
	// A 3-byte string into [4]byte: Unmarshal pads it silently...
	if err := Unmarshal(unhex(t, "43010203"), &a); err != nil {
		t.Fatal(err)
	}
	// ...UnmarshalCanonical notices.
	if err := UnmarshalCanonical(unhex(t, "43010203"), &a); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short array: %v", err)
	}
	var n uint64
	if err := UnmarshalCanonical(unhex(t, "1800"), &n); !errors.Is(err, ErrMalformed) {
		t.Fatalf("non-shortest integer: %v", err)
	}
	if err := UnmarshalCanonical(unhex(t, "1818"), &n); err != nil || n != 24 {
		t.Fatalf("canonical 24: %v %d", err, n)
	}
}

func TestFrameTag(t *testing.T) {
	cases := []struct {
		in   string
		want Tag
		err  error
	}{
		{"850f", TagBeacon, nil},
		{"8101", MakeTag(1, 0), nil},
		{"98050f", TagBeacon, nil},                 // array length in a 1-byte head
		{"82181f00", MakeTag(FrameBeacon, 1), nil}, // tag 31 needs a 1-byte head
		{"", 0, ErrMalformed},
		{"0f", 0, ErrMalformed},         // not an array
		{"80", 0, ErrMalformed},         // empty array
		{"9f0fff", 0, ErrMalformed},     // indefinite
		{"8140", 0, ErrMalformed},       // first element not a uint
		{"8118", 0, ErrMalformed},       // truncated tag
		{"98", 0, ErrMalformed},         // truncated length
		{"8100", 0, ErrUnknownType},     // type 0
		{"81190100", 0, ErrUnknownType}, // 256
	}
	for _, c := range cases {
		got, err := FrameTag(unhex(t, c.in))
		if !errors.Is(err, c.err) || got != c.want {
			t.Errorf("FrameTag(%s) = %v, %v; want %v, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestCheckTag(t *testing.T) {
	if err := CheckTag(uint64(TagBeacon), TagBeacon); err != nil {
		t.Fatal(err)
	}
	if err := CheckTag(uint64(MakeTag(FrameBeacon, 3)), TagBeacon); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("other version: %v", err)
	}
	if err := CheckTag(uint64(MakeTag(2, 0)), TagBeacon); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("other type: %v", err)
	}
	if err := CheckTag(0x10F, TagBeacon); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("beyond a byte: %v", err)
	}
	if tg := MakeTag(FrameBeacon, 2); tg.Type() != FrameBeacon || tg.Version() != 2 || tg != 0x2F {
		t.Fatalf("MakeTag = %#x", uint8(tg))
	}
}
