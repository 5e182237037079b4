package links

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// FuzzCheckOuter: checkOuter is the first check a link's reader runs on
// every frame a peer sends. Whatever the bytes, it passes the frame or
// refuses it with ErrMalformed or ErrUnknownType, never a panic; it passes
// exactly the frames whose tag FrameTag reads and whose type may travel on
// links (never the LAN beacon); and it never refuses a frame the envelope
// or announce decoder would accept (no valid frame is lost at the edge).
// Seeds: valid frames of every kind built here, the corpus under
// testdata/fuzz/FuzzCheckOuter (truncated frames, declared lengths of
// 2^64, other versions).
func FuzzCheckOuter(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	sign := func(m []byte) []byte { return ed25519.Sign(key, m) }
	at := time.Unix(1_800_000_000, 0)

	env := messages.NewEnvelope(messages.AddressOf(pub), [16]byte{1}, 8, at, messages.PayloadSealed, make([]byte, 60))
	env.Seq = 1
	if err := env.Sign(sign); err != nil {
		f.Fatal(err)
	}
	envFrame, err := messages.EncodeEnvelope(env)
	if err != nil {
		f.Fatal(err)
	}
	ann := messages.NewAnnounce(pub, make([]byte, 32), messages.CapRelay, nil, at)
	if err := ann.Sign(sign); err != nil {
		f.Fatal(err)
	}
	annFrame, err := messages.EncodeAnnounce(ann)
	if err != nil {
		f.Fatal(err)
	}
	b := messages.NewBeacon(pub, at, []messages.BeaconListener{{Scheme: messages.SchemeTCP, Port: 7701}})
	if err := b.Sign(sign); err != nil {
		f.Fatal(err)
	}
	beacon, err := messages.EncodeBeacon(b)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{envFrame, annFrame, beacon, envFrame[:3], annFrame[:1], {0x81, 0x04}, {0x81, 0x07}, {0x81, 0x18, 0x21}} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, frame []byte) {
		err := checkOuter(frame)
		tag, terr := messages.FrameTag(frame)
		switch {
		case err == nil:
			if terr != nil || !tag.Type().OnLinks() {
				t.Fatalf("checkOuter passed %x (tag %v, %v)", frame, tag, terr)
			}
			if tag.Type() == messages.FrameBeacon || tag.Type() == 0 {
				t.Fatalf("checkOuter passed a %v frame", tag)
			}
		case !errors.Is(err, messages.ErrMalformed) && !errors.Is(err, messages.ErrUnknownType):
			t.Fatalf("checkOuter(%x): untyped error %v", frame, err)
		case terr == nil && tag.Type().OnLinks():
			t.Fatalf("checkOuter refused %x (tag %v): %v", frame, tag, err)
		}
		if _, derr := messages.DecodeEnvelope(frame); derr == nil && err != nil {
			t.Fatalf("checkOuter refused an envelope: %v", err)
		}
		if _, derr := messages.DecodeAnnounce(frame); derr == nil && err != nil {
			t.Fatalf("checkOuter refused an announce: %v", err)
		}
		if _, derr := messages.DecodeBeacon(frame); derr == nil && err == nil {
			t.Fatal("checkOuter passed a beacon")
		}
	})
}
