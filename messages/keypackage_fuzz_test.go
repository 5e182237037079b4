package messages

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzKeyPackagePayloads(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Add(make([]byte, 17))
	f.Add(bytes.Repeat([]byte{1}, 16+MaxKeyPackageSize+1))
	f.Fuzz(func(t *testing.T, p []byte) {
		if r, err := DecodeKeyPackageRef(p); err == nil {
			if !bytes.Equal(r.Encode(), p) {
				t.Fatalf("ref does not round-trip")
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("ref error %v is not ErrMalformed", err)
		}
		owner, kp, err := DecodeKeyPackagePayload(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		back, err := EncodeKeyPackagePayload(owner, kp)
		if err != nil || !bytes.Equal(back, p) {
			t.Fatalf("payload does not round-trip: %v", err)
		}
	})
}

func TestKeyPackagePayloadLimits(t *testing.T) {
	if _, _, err := DecodeKeyPackagePayload(make([]byte, 16+MaxKeyPackageSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v, want ErrTooLarge", err)
	}
	if _, _, err := DecodeKeyPackagePayload(make([]byte, 16)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("owner without KeyPackage: %v, want ErrMalformed", err)
	}
	if _, err := EncodeKeyPackagePayload([16]byte{}, nil); err == nil {
		t.Fatal("empty KeyPackage encoded")
	}
	if _, err := DecodeKeyPackageRef(make([]byte, 31)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("31-byte ref: %v", err)
	}
	p, _ := EncodeKeyPackagePayload([16]byte{7}, []byte{1, 2, 3})
	o, kp, err := DecodeKeyPackagePayload(p)
	if err != nil || o != ([16]byte{7}) || !bytes.Equal(kp, []byte{1, 2, 3}) {
		t.Fatalf("round trip: %v %x %x", err, o, kp)
	}
}
