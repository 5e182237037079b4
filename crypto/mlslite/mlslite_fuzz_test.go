package mlslite

import (
	"bytes"
	"errors"
	"testing"

	"github.com/quicprochat/qpc/messages"
)

func fuzzSeeds(f *testing.F) {
	e := mustEpoch(f, "epoch 7 secret", 7)
	for _, signer := range [][]byte{nil, alice.priv} {
		for _, n := range []int{0, 32, 200} {
			b, err := e.Seal(alice.addr, bob.addr, 8, uint32(n), make([]byte, n), signer)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x89, 0x08})
	f.Add(bytes.Repeat([]byte{0x8a}, 20))
}

// isTyped: every refusal is one of the package's errors.
func isTyped(err error) bool {
	for _, e := range []error{ErrTooLarge, ErrMalformed, ErrWrongGroup, ErrWrongEpoch, ErrWrongDestination,
		ErrBadSignature, ErrUnsigned, ErrDecrypt, ErrReplay, ErrTooManySenders, ErrHopLimit} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// FuzzDecode: Decode returns a typed error or a frame whose encoding is
// exactly the input; Forward never panics and, on a frame Decode
// accepted, changes only the hop count.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := Decode(data)
		fwd, ferr := Forward(data)
		if err != nil {
			if !isTyped(err) {
				t.Fatalf("untyped error %v", err)
			}
			if ferr == nil {
				if _, err := Decode(fwd); err == nil {
					t.Fatal("Forward made a refused frame valid")
				}
			}
			return
		}
		again, err := encode(fr)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encode: %v", err)
		}
		if ferr != nil {
			if !errors.Is(ferr, ErrHopLimit) && !errors.Is(ferr, ErrTooLarge) {
				t.Fatalf("Forward of a valid frame: %v", ferr)
			}
			return
		}
		d, err := Decode(fwd)
		if err != nil || d.Hops != fr.Hops+1 || d.ID() != fr.ID() || !bytes.Equal(d.AAD(), fr.AAD()) {
			t.Fatalf("forwarded: %+v %v", d, err)
		}
	})
}

// FuzzOpen: Open never panics and refuses with a typed error; what opens
// is a frame sealed for bob by a member.
func FuzzOpen(f *testing.F) {
	fuzzSeeds(f)
	e := mustEpoch(f, "epoch 7 secret", 7)
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := e.Open(data, bob.addr, allPubs, false, NewWindows())
		if err != nil {
			if !isTyped(err) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if o.Destination != bob.addr || o.Epoch != 7 {
			t.Fatalf("opened %+v", o)
		}
		if errors.Is(err, messages.ErrMalformed) {
			t.Fatal("unreachable")
		}
	})
}

// FuzzWindowsUnmarshal: UnmarshalBinary never panics; what it accepts
// marshals back to the same bytes and leaves windows that work.
func FuzzWindowsUnmarshal(f *testing.F) {
	ws := NewWindows()
	_ = ws.accept(testGroup, 7, alice.addr, 5)
	_ = ws.accept(testGroup, 7, bob.addr, 2000)
	_ = ws.accept([16]byte{1}, 1, bob.addr, 0)
	good, _ := ws.MarshalBinary()
	f.Add(good)
	empty, _ := NewWindows().MarshalBinary()
	f.Add(empty)
	f.Add([]byte{1, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		w := NewWindows()
		if err := w.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrWindowsCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, _ := w.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatal("round trip changed the record")
		}
		_ = w.accept(testGroup, 7, carol.addr, 1)
	})
}
