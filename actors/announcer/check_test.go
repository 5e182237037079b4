package announcer

import (
	"errors"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// order8 is a point of order 8 on Curve25519 (the libsodium blocklist's
// e0eb7a7c…b800, little-endian u-coordinate): X25519 of it with any
// scalar is zero.
var order8 = []byte{
	0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
	0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
}

func signed(t *testing.T, id *crypto.Identity, at time.Time, hops uint8) []byte {
	t.Helper()
	seal, err := crypto.SealingKeyFor(id)
	if err != nil {
		t.Fatal(err)
	}
	return signedWithSealKey(t, id, at, hops, seal.Public())
}

func signedWithSealKey(t *testing.T, id *crypto.Identity, at time.Time, hops uint8, sealKey []byte) []byte {
	t.Helper()
	a := messages.NewAnnounce(id.PublicKey(), sealKey, messages.CapRelay, nil, at)
	a.Hops = hops
	if err := a.Sign(id.Sign); err != nil {
		t.Fatal(err)
	}
	b, err := messages.EncodeAnnounce(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheck(t *testing.T) {
	me, _ := crypto.NewIdentity(nil)
	peer, _ := crypto.NewIdentity(nil)
	now := time.Unix(1_800_000_000, 0)
	l := Limits{Self: me.Address(), MaxAge: 30 * time.Minute, MaxHops: 8}

	good := signed(t, peer, now.Add(-time.Minute), 3)
	a, err := Check(good, now, l)
	if err != nil || a.Address() != peer.Address() {
		t.Fatalf("good announce: %v", err)
	}
	// Announces whose signature does not verify, with every other field
	// well-formed: a signed field changed after signing, and a signature
	// by another key over the same fields.
	tampered := func(change func(*messages.Announce)) []byte {
		t.Helper()
		a, err := messages.DecodeAnnounce(good)
		if err != nil {
			t.Fatal(err)
		}
		change(&a)
		b, err := messages.EncodeAnnounce(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other, _ := crypto.NewIdentity(nil)
	cases := []struct {
		name, want string
		frame      []byte
	}{
		{"truncated", ReasonMalformed, []byte{0x82, 0x02, 0x00}},
		{"capabilities changed after signing", ReasonBadSignature, tampered(func(a *messages.Announce) { a.Capabilities |= messages.CapStore })},
		{"time changed after signing", ReasonBadSignature, tampered(func(a *messages.Announce) { a.UnixMilli++ })},
		{"signed by another key", ReasonBadSignature, tampered(func(a *messages.Announce) {
			if err := a.Sign(other.Sign); err != nil {
				t.Fatal(err)
			}
		})},
		{"too old", ReasonTooOld, signed(t, peer, now.Add(-31*time.Minute), 0)},
		{"from the future", ReasonFuture, signed(t, peer, now.Add(2*time.Minute), 0)},
		{"at the hop limit", ReasonHops, signed(t, peer, now, 8)},
		{"our own", ReasonOwn, signed(t, me, now, 1)},
		// Well signed, but sealing to these would be sealing in the clear:
		// the zero point and the order-8 point of X25519.
		{"sealing key zero", ReasonBadSealingKey, signedWithSealKey(t, peer, now, 0, make([]byte, 32))},
		{"sealing key of order 8", ReasonBadSealingKey, signedWithSealKey(t, peer, now, 0, order8)},
	}
	for _, tc := range cases {
		_, err := Check(tc.frame, now, l)
		var r *Refusal
		if !errors.As(err, &r) || !errors.Is(err, ErrRefused) {
			t.Fatalf("%s: err = %v", tc.name, err)
		}
		if r.Reason != tc.want {
			t.Errorf("%s: refused as %s (%v), want %s", tc.name, r.Reason, r.Err, tc.want)
		}
	}
}
