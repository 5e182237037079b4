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
	forged := append([]byte(nil), good...)
	forged[len(forged)-70] ^= 1 // inside the signed fields, before the signature
	cases := map[string][]byte{
		ReasonMalformed:    []byte{0x82, 0x02, 0x00},
		ReasonBadSignature: forged,
		ReasonTooOld:       signed(t, peer, now.Add(-31*time.Minute), 0),
		ReasonFuture:       signed(t, peer, now.Add(2*time.Minute), 0),
		ReasonHops:         signed(t, peer, now, 8),
		ReasonOwn:          signed(t, me, now, 1),
	}
	for want, frame := range cases {
		_, err := Check(frame, now, l)
		var r *Refusal
		if !errors.As(err, &r) || !errors.Is(err, ErrRefused) {
			t.Fatalf("%s: err = %v", want, err)
		}
		if r.Reason != want {
			// A flipped byte may land in a key or length: then malformed is right too.
			if !(want == ReasonBadSignature && r.Reason == ReasonMalformed) {
				t.Errorf("%s: refused as %s (%v)", want, r.Reason, r.Err)
			}
		}
	}
}
