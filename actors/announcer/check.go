package announcer

import (
	"errors"
	"fmt"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// Refusal reasons, as counted in qpc_mesh_announces_refused_total.
const (
	ReasonMalformed    = "malformed"
	ReasonBadSignature = "bad_signature"
	ReasonTooOld       = "too_old"
	ReasonFuture       = "future"
	ReasonHops         = "hops"
	ReasonOwn          = "own"
	// ReasonBadSealingKey: the announce verifies but the X25519 key it
	// offers for sealing is a low-order point (or not a key at all):
	// every message sealed to it would be readable by anyone, so the
	// announce is refused rather than stored and re-broadcast.
	ReasonBadSealingKey = "bad_sealing_key"
)

// MaxClockSkew is how far in the future an announce's time may be.
const MaxClockSkew = time.Minute

// ErrRefused wraps every refusal of Check; Reason says which.
var ErrRefused = errors.New("announcer: announce refused")

// Refusal is why Check refused an announce.
type Refusal struct {
	Reason string
	Err    error
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("announcer: announce refused (%s): %v", r.Reason, r.Err)
}
func (r *Refusal) Unwrap() error { return ErrRefused }

// Limits of Check.
type Limits struct {
	Self    [16]byte
	MaxAge  time.Duration
	MaxHops int
}

// Check decodes and verifies a received announce frame and applies the
// limits. It does not judge freshness: that needs the routing table.
func Check(frame []byte, now time.Time, l Limits) (messages.Announce, error) {
	a, err := messages.DecodeAnnounce(frame)
	if err != nil {
		reason := ReasonMalformed
		if errors.Is(err, messages.ErrBadSignature) {
			reason = ReasonBadSignature
		}
		return a, &Refusal{Reason: reason, Err: err}
	}
	switch sent := a.SentAt(); {
	case a.Address() == l.Self:
		return a, &Refusal{Reason: ReasonOwn, Err: errors.New("our own announce came back")}
	case now.Sub(sent) > l.MaxAge:
		return a, &Refusal{Reason: ReasonTooOld, Err: fmt.Errorf("sent %s ago, limit %s", now.Sub(sent).Round(time.Second), l.MaxAge)}
	case sent.Sub(now) > MaxClockSkew:
		return a, &Refusal{Reason: ReasonFuture, Err: fmt.Errorf("sent %s in the future", sent.Sub(now).Round(time.Second))}
	case int(a.Hops) >= l.MaxHops:
		return a, &Refusal{Reason: ReasonHops, Err: fmt.Errorf("%d hops, limit %d", a.Hops, l.MaxHops)}
	}
	// Last, as it costs an X25519 multiplication (about as much as the
	// signature check): only announces that passed everything else pay it.
	if err := crypto.ValidateSealingPublic(a.SealKey); err != nil {
		return a, &Refusal{Reason: ReasonBadSealingKey, Err: err}
	}
	return a, nil
}
