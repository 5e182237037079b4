package transports

import (
	"errors"
	"fmt"
)

// Errors shared by every transport. Implementations wrap them with context
// ("transports/tcp: handshake with 10.0.0.7:7701: %w"), so test with
// errors.Is, never with ==.
var (
	// ErrFrameTooLarge: a frame's length exceeds the limit. On read the
	// length is the one the peer declared, and nothing was allocated for it;
	// the caller should close the connection and log the reason. The
	// concrete error is a *FrameTooLargeError carrying both numbers.
	ErrFrameTooLarge = errors.New("frame too large")

	// ErrBadFrame: the length prefix itself is malformed (longer than
	// MaxFramePrefix bytes, or not in its shortest form). The stream can no
	// longer be parsed; close the connection.
	ErrBadFrame = errors.New("malformed frame length prefix")

	// ErrHandshake: the peer failed to prove its identity, spoke another
	// protocol or version, or did not finish the handshake in time. The
	// connection has been closed.
	ErrHandshake = errors.New("handshake failed")

	// ErrSelf: the peer presented our own identity: the address reaches
	// this node itself. It comes wrapped with ErrHandshake.
	ErrSelf = errors.New("peer presented our own identity")

	// ErrListenerBusy: a listener closed an inbound connection before its
	// handshake because too many handshakes were pending, from its source
	// or in all. The dialer sees the connection close and retries later.
	ErrListenerBusy = errors.New("listener busy: too many pending handshakes")

	// ErrFrameTimeout: a frame that had started arriving was not complete
	// within the frame timeout (a peer stalled inside it). The connection
	// is unusable; close it.
	ErrFrameTimeout = errors.New("frame not completed in time")

	// ErrPeerMismatch: the peer authenticated as a different identity than
	// the one the caller expected (see DialPeer).
	ErrPeerMismatch = errors.New("peer is not the expected identity")

	// ErrUnknownScheme: a URI names a transport this build does not know.
	ErrUnknownScheme = errors.New("unknown transport scheme")

	// ErrBadURI: a URI with a known scheme is malformed (no port, a path
	// where none belongs, ...).
	ErrBadURI = errors.New("malformed transport URI")

	// ErrBadOptions: a transport was constructed with invalid options.
	ErrBadOptions = errors.New("invalid transport options")
)

// FrameTooLargeError reports a frame longer than the limit. It matches
// ErrFrameTooLarge under errors.Is; use errors.As to read the numbers.
type FrameTooLargeError struct {
	Size  uint64 // the declared (on read) or attempted (on write) length
	Limit int    // the largest frame allowed
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("frame too large: %d bytes, limit %d", e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrFrameTooLarge) true.
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrFrameTooLarge }
