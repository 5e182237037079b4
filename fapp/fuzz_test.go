package fapp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/quicprochat/qpc/messages"
)

// Fuzz targets for everything a peer can send: each FAPP decoder, the
// relay's Peek and Forward, and what patient and therapist open. Whatever
// the bytes: no panic, only typed errors, and what decodes re-encodes to
// the same bytes (one encoding per meaning). `go test ./fapp` runs the
// seeds; `go test ./fapp -run X -fuzz '^FuzzDecodeSlotQuery$' -fuzztime
// 15s -fuzzminimizetime 2s` fuzzes one (without the minimize bound the
// engine can spend most of a short run shrinking one long input that a
// small limit refuses at once).

var wireErrors = []error{messages.ErrTooLarge, messages.ErrUnknownType, messages.ErrUnsupportedVersion,
	messages.ErrMalformed, messages.ErrBadSignature, messages.ErrHopLimit, ErrUnbound, ErrOpen}

func typed(t *testing.T, err error) {
	t.Helper()
	for _, e := range wireErrors {
		if errors.Is(err, e) {
			return
		}
	}
	t.Fatalf("untyped error: %v", err)
}

func seedAll(f *testing.F) {
	for _, g := range []string{"slot_announce.golden", "slot_query.golden", "slot_response.golden", "slot_reserve.golden", "slot_confirm.golden", "slot_decline.golden"} {
		b := readGolden(f, g)
		f.Add(b)
		f.Add(b[:len(b)/2])
		mut := append([]byte(nil), b...)
		mut[len(mut)/3] ^= 0x40
		f.Add(mut)
	}
	f.Add([]byte{})
	f.Add([]byte{0x84, 0x06, 0x01, 0x00, 0x00})
	f.Add([]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x06})
	f.Add([]byte{0x8c, 0x06, 0x01, 0x18, 0x18, 0x18, 0x18})
	f.Add([]byte{0x86, 0x06, 0x03, 0x00, 0x04, 0x50})
	f.Add([]byte{0x8c, 0x06, 0x01, 0x00, 0x08, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
}

func FuzzDecodeSlotAnnounce(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeSlotAnnounce(data)
		if err != nil {
			typed(t, err)
			return
		}
		again, err := EncodeSlotAnnounce(a)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encode: %v\n%x\n%x", err, again, data)
		}
		if next, err := Forward(data); err == nil {
			if b, err := DecodeSlotAnnounce(next); err != nil || b.Hops != a.Hops+1 {
				t.Fatalf("forwarded: %v", err)
			}
		} else if !errors.Is(err, messages.ErrHopLimit) {
			t.Fatalf("Forward: %v", err)
		}
	})
}

func FuzzDecodeSlotQuery(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := DecodeSlotQuery(data)
		if err != nil {
			typed(t, err)
			return
		}
		again, err := EncodeSlotQuery(q)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encode: %v", err)
		}
		if err := q.Filter().Validate(); err != nil {
			t.Fatalf("decoded query's filter: %v", err)
		}
	})
}

func FuzzDecodeSlotResponse(f *testing.F) {
	seedAll(f)
	q := goldenQuery(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeSlotResponse(data)
		if err != nil {
			typed(t, err)
			return
		}
		again, err := EncodeSlotResponse(r)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encode: %v", err)
		}
		if _, _, err := q.Open(data, t0); err != nil {
			typed(t, err)
		}
	})
}

func FuzzDecodeSlotReserve(f *testing.F) {
	seedAll(f)
	p := goldenPractice(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeSlotReserve(data)
		if err != nil {
			typed(t, err)
			return
		}
		again, err := EncodeSlotReserve(m)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := OpenReserve(p.key, p.addr, data); err != nil {
			typed(t, err)
		}
	})
}

func FuzzDecodeSlotAnswer(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeSlotAnswer(data)
		if err != nil {
			typed(t, err)
			return
		}
		again, err := EncodeSlotAnswer(m)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encode: %v", err)
		}
		r := goldenReservation(t)
		if _, err := r.OpenAnswer(data); err != nil {
			typed(t, err)
		}
	})
}

// FuzzPeekForward: the relay's fast path reads at most the head and, when
// it forwards, changes nothing but the hop count.
func FuzzPeekForward(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, h, l, err := Peek(data)
		if err != nil {
			typed(t, err)
			return
		}
		if h > l {
			t.Fatalf("Peek: hops %d over limit %d", h, l)
		}
		next, err := Forward(data)
		if err != nil {
			typed(t, err)
			return
		}
		k2, h2, l2, err := Peek(next)
		if err != nil || k2 != k || h2 != h+1 || l2 != l || len(next) != len(data) && len(next) != len(data)+1 {
			t.Fatalf("forwarded head: %v %v %d %d", err, k2, h2, l2)
		}
	})
}

// FuzzSealedBodies: the plaintexts inside reservations and answers, as
// the therapist and the patient decode them after opening.
func FuzzSealedBodies(f *testing.F) {
	for _, pt := range [][]byte{{0x83, 0x01, 0x01, 0x60}, {0x84, 0x01, 0x01, 0x60, 0x40}, {0x84, 0x03, 0x01, 0x60, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		f.Add(pt)
	}
	f.Fuzz(func(t *testing.T, pt []byte) {
		if _, err := decodeReserveBody(pt); err != nil {
			typed(t, err)
		}
		if b, err := decodeAnswerBody(pt); err != nil {
			typed(t, err)
		} else if b.Status < Confirmed || b.Status > Taken || len(pt)%answerPadBlock != 0 {
			t.Fatalf("accepted %+v", b)
		}
	})
}
