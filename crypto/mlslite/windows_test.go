package mlslite

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/quicprochat/qpc/crypto"
)

// TestWindowsModel checks the windows against a naive model (a set of
// every accepted counter and the highest per sender) on random counters
// near each other, with a save and restore now and then.
func TestWindowsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	senders := []crypto.Address{alice.addr, bob.addr, carol.addr}
	type key struct {
		s crypto.Address
		c uint32
	}
	seen := map[key]bool{}
	highest := map[crypto.Address]uint32{}
	ws := NewWindows()
	for i := range 20000 {
		s := senders[rng.IntN(len(senders))]
		h := highest[s]
		c := h + uint32(rng.IntN(64))
		if rng.IntN(3) == 0 && h > 0 {
			c = h - uint32(rng.IntN(min(int(h), 2*WindowSize)))
		}
		var want error
		_, known := highest[s]
		switch {
		case seen[key{s, c}]:
			want = ErrReplay
		case known && c < h && h-c >= WindowSize:
			want = ErrReplay
		}
		err := ws.accept(testGroup, 7, s, c)
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Fatalf("step %d: %s counter %d (highest %d): %v, want %v", i, s.Short(), c, h, err, want)
		}
		if err == nil {
			seen[key{s, c}] = true
			if !known || c > h {
				highest[s] = c
			}
		}
		if i%1000 == 999 {
			b, _ := ws.MarshalBinary()
			ws = new(Windows) // the zero value is ready
			if err := ws.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			again, _ := ws.MarshalBinary()
			if !bytes.Equal(again, b) {
				t.Fatal("marshal round trip changed the record")
			}
		}
	}
}

func TestWindowsBound(t *testing.T) {
	ws := NewWindows()
	addr := func(i int) crypto.Address { return crypto.Address{byte(i), byte(i >> 8), 1} }
	for i := range MaxWindowSenders {
		if err := ws.accept(testGroup, 1, addr(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.accept(testGroup, 1, addr(MaxWindowSenders), 0); !errors.Is(err, ErrTooManySenders) {
		t.Fatalf("one sender too many: %v", err)
	}
	// The held senders still work, and still refuse their replays.
	if err := ws.accept(testGroup, 1, addr(3), 1); err != nil {
		t.Fatal(err)
	}
	if err := ws.accept(testGroup, 1, addr(3), 0); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay when full: %v", err)
	}
	// Another group's senders do not fit either.
	if err := ws.accept([16]byte{2}, 1, addr(0), 0); !errors.Is(err, ErrTooManySenders) {
		t.Fatalf("other group when full: %v", err)
	}
	// Moving the group to epoch 2 frees the epoch-1 windows.
	if err := ws.accept(testGroup, 2, addr(MaxWindowSenders), 0); err != nil {
		t.Fatal(err)
	}
	if ws.Len() != 1 {
		t.Fatalf("%d windows after the epoch move", ws.Len())
	}
	if err := ws.accept(testGroup, 1, addr(3), 2); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("old epoch: %v", err)
	}
	b, _ := ws.MarshalBinary()
	if len(b) != windowsHeader+windowRecordSize || windowRecordSize != 172 {
		t.Fatalf("record of %d bytes", len(b))
	}
}

func TestWindowsUnmarshalRefusals(t *testing.T) {
	ws := NewWindows()
	_ = ws.accept(testGroup, 7, alice.addr, 5)
	_ = ws.accept(testGroup, 7, bob.addr, 9)
	_ = ws.accept([16]byte{1}, 3, bob.addr, 9)
	good, _ := ws.MarshalBinary()
	rec := func(i int) []byte { return good[windowsHeader+i*windowRecordSize:][:windowRecordSize] }
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version":        mutate(func(b []byte) []byte { b[0] = 2; return b }),
		"count too high": mutate(func(b []byte) []byte { b[1], b[2] = 0xFF, 0xFF; return b }),
		"count 4":        mutate(func(b []byte) []byte { b[2] = 4; return b }),
		"truncated":      good[:len(good)-1],
		"trailing":       append(bytes.Clone(good), 0),
		"duplicate":      append(append([]byte{1, 0, 2}, rec(0)...), rec(0)...),
		"out of order":   append(append([]byte{1, 0, 2}, rec(1)...), rec(0)...),
		"highest unset":  mutate(func(b []byte) []byte { clear(b[windowsHeader+44 : windowsHeader+windowRecordSize]); return b }),
		"two epochs": func() []byte {
			r := bytes.Clone(rec(2))
			r[23]++ // same group as record 1, epoch 8
			return append(append(append([]byte{1, 0, 3}, rec(0)...), rec(1)...), r...)
		}(),
	} {
		w2 := NewWindows()
		_ = w2.accept(testGroup, 7, carol.addr, 1)
		if err := w2.UnmarshalBinary(b); !errors.Is(err, ErrWindowsCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
		if w2.Len() != 1 {
			t.Errorf("%s: a refused record changed the windows", name)
		}
	}
	w2 := NewWindows()
	if err := w2.UnmarshalBinary(good); err != nil || w2.Len() != 3 {
		t.Fatalf("good: %v, %d", err, w2.Len())
	}
	if err := w2.accept(testGroup, 7, alice.addr, 5); !errors.Is(err, ErrReplay) {
		t.Fatalf("restored windows accept a replay: %v", err)
	}
	if err := w2.accept([16]byte{1}, 2, bob.addr, 50); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("restored windows forgot the newest epoch: %v", err)
	}
}
