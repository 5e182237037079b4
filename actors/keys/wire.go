package keys

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/quicprochat/qpc/messages"
)

// GroupPayload is what a group message (messages.PayloadGroup) carries
// once its envelope is opened: one MLS message of one group, for one
// member. CBOR, deterministic:
//
//	[kind, group (16 B), mls (bstr), name (tstr), creator (bstr, 0 or 16 B),
//	 psk (bstr, 0 or SealedPSKSize B)]
//
// Name and creator are set in a Welcome only (a joiner learns the group's
// name and who commits its membership changes); empty otherwise. PSK is set
// in a commit or Welcome that injects a post-quantum PSK (pq.go): the PSK
// sealed to this member with X-Wing; empty otherwise.
type GroupPayload struct {
	_       struct{} `cbor:",toarray"`
	Kind    PayloadKind
	Group   []byte
	MLS     []byte
	Name    string
	Creator []byte
	PSK     []byte
}

// PayloadKind says which MLS message a GroupPayload carries.
type PayloadKind uint8

// Payload kinds.
const (
	KindWelcome     PayloadKind = 1
	KindCommit      PayloadKind = 2
	KindApplication PayloadKind = 3
)

func (k PayloadKind) String() string {
	switch k {
	case KindWelcome:
		return "welcome"
	case KindCommit:
		return "commit"
	case KindApplication:
		return "application"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// MaxGroupName bounds a group's name.
const MaxGroupName = 64

// ErrPayload is a group payload that does not decode.
var ErrPayload = errors.New("keys: malformed group payload")

// EncodeGroupPayload encodes p.
func EncodeGroupPayload(p GroupPayload) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return messages.Marshal(p)
}

// DecodeGroupPayload decodes and checks a group payload; the size is
// checked before anything is decoded.
func DecodeGroupPayload(b []byte) (GroupPayload, error) {
	var p GroupPayload
	if len(b) > messages.MaxPayloadSize {
		return p, fmt.Errorf("%w: %d bytes, limit %d", ErrPayload, len(b), messages.MaxPayloadSize)
	}
	if err := messages.UnmarshalCanonical(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	return p, p.check()
}

func (p GroupPayload) check() error {
	switch {
	case p.Kind < KindWelcome || p.Kind > KindApplication:
		return fmt.Errorf("%w: kind %d", ErrPayload, p.Kind)
	case len(p.Group) != 16:
		return fmt.Errorf("%w: group id of %d bytes, want 16", ErrPayload, len(p.Group))
	case len(p.MLS) == 0:
		return fmt.Errorf("%w: no MLS message", ErrPayload)
	case p.Kind != KindWelcome && (p.Name != "" || len(p.Creator) != 0):
		return fmt.Errorf("%w: name or creator outside a Welcome", ErrPayload)
	case p.Kind == KindWelcome && len(p.Creator) != 16:
		return fmt.Errorf("%w: Welcome without its group's creator", ErrPayload)
	case len(p.PSK) != 0 && (p.Kind == KindApplication || len(p.PSK) != SealedPSKSize):
		return fmt.Errorf("%w: a PSK of %d bytes in a %s (want %d, in a commit or Welcome)", ErrPayload, len(p.PSK), p.Kind, SealedPSKSize)
	case len(p.Name) > MaxGroupName || !utf8.ValidString(p.Name):
		return fmt.Errorf("%w: group name of %d bytes (limit %d, UTF-8)", ErrPayload, len(p.Name), MaxGroupName)
	}
	return nil
}
