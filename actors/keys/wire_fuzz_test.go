package keys

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzDecodeGroupPayload(f *testing.F) {
	for _, p := range []GroupPayload{
		{Kind: KindApplication, Group: bytes.Repeat([]byte{1}, 16), MLS: []byte("m")},
		{Kind: KindWelcome, Group: bytes.Repeat([]byte{2}, 16), MLS: []byte("w"), Name: "Chor", Creator: bytes.Repeat([]byte{3}, 16)},
		{Kind: KindCommit, Group: bytes.Repeat([]byte{4}, 16), MLS: []byte("c"), PSK: bytes.Repeat([]byte{5}, SealedPSKSize)},
	} {
		b, err := EncodeGroupPayload(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeGroupPayload(b)
		if err != nil {
			if !errors.Is(err, ErrPayload) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := EncodeGroupPayload(p)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded payload does not re-encode to the same bytes: %v", err)
		}
	})
}

func TestGroupPayloadRules(t *testing.T) {
	g := bytes.Repeat([]byte{1}, 16)
	for name, p := range map[string]GroupPayload{
		"kind 0":              {Kind: 0, Group: g, MLS: []byte("m")},
		"short group":         {Kind: KindCommit, Group: g[:15], MLS: []byte("m")},
		"empty MLS":           {Kind: KindCommit, Group: g},
		"name on a commit":    {Kind: KindCommit, Group: g, MLS: []byte("m"), Name: "x"},
		"welcome, no creator": {Kind: KindWelcome, Group: g, MLS: []byte("m"), Name: "x"},
		"long name":           {Kind: KindWelcome, Group: g, MLS: []byte("m"), Name: string(bytes.Repeat([]byte("a"), MaxGroupName+1)), Creator: g},
		"PSK on a text":       {Kind: KindApplication, Group: g, MLS: []byte("m"), PSK: make([]byte, SealedPSKSize)},
		"short PSK":           {Kind: KindCommit, Group: g, MLS: []byte("m"), PSK: make([]byte, SealedPSKSize-1)},
	} {
		if _, err := EncodeGroupPayload(p); !errors.Is(err, ErrPayload) {
			t.Errorf("%s: encoded (%v)", name, err)
		}
	}
}
