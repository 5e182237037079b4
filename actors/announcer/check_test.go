package announcer

import (
	"errors"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

func signed(t *testing.T, id *crypto.Identity, at time.Time, hops uint8) []byte {
	t.Helper()
	a := messages.NewAnnounce(id.PublicKey(), make([]byte, 32), messages.CapRelay, nil, at)
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
