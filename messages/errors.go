package messages

import "errors"

// Errors of the wire layer. Decoders wrap them with detail
// (fmt.Errorf("%w: ...", ErrMalformed, ...)), so callers test them with
// errors.Is and log the message.
var (
	// ErrTooLarge: the input is longer than the limit of its frame type.
	// It is checked before any decoding work.
	ErrTooLarge = errors.New("messages: frame too large")
	// ErrUnknownType: the frame's type/version tag names a type this node
	// does not know, or a different type than the decoder expects.
	ErrUnknownType = errors.New("messages: unknown frame type")
	// ErrUnsupportedVersion: the frame type is known but not this version.
	ErrUnsupportedVersion = errors.New("messages: unsupported frame version")
	// ErrMalformed: the input is not a well-formed, canonical encoding of
	// the expected type, or a field is out of range.
	ErrMalformed = errors.New("messages: malformed frame")
	// ErrBadSignature: the frame is unsigned, or its signature does not
	// verify against the key it carries.
	ErrBadSignature = errors.New("messages: bad signature")
)
