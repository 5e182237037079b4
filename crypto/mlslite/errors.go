package mlslite

import (
	"errors"
	"fmt"

	"github.com/quicprochat/qpc/messages"
)

// Errors of MLS-Lite. Functions wrap them with detail, so test them with
// errors.Is. ErrTooLarge, ErrMalformed, ErrBadSignature and ErrHopLimit
// also match the messages errors of the same name, so a router can treat a
// refused MLS-Lite frame as any other refused frame.
var (
	// ErrTooLarge: the frame is longer than MaxFrameSize (checked before
	// any decoding), or Seal was given a text that does not fit.
	ErrTooLarge = fmt.Errorf("mlslite: frame too large: %w", messages.ErrTooLarge)
	// ErrMalformed: not the canonical encoding of a valid MLS-Lite frame
	// (a frame of another type or version is also malformed here, and
	// matches messages.ErrUnknownType or ErrUnsupportedVersion too).
	ErrMalformed = fmt.Errorf("mlslite: malformed frame: %w", messages.ErrMalformed)
	// ErrWrongGroup: the frame's group ref is not the Epoch's group.
	ErrWrongGroup = errors.New("mlslite: frame of another group")
	// ErrWrongEpoch: the frame's epoch is not the Epoch's, or it is older
	// than the newest epoch the replay windows accepted for the group. Old
	// epochs' keys are refused: a member moves to the new epoch.
	ErrWrongEpoch = errors.New("mlslite: frame of another epoch")
	// ErrWrongDestination: the frame is addressed to another member.
	ErrWrongDestination = errors.New("mlslite: frame for another destination")
	// ErrBadSignature: the frame is signed and the signature does not
	// verify under the source's key, or the source's key is unknown.
	ErrBadSignature = fmt.Errorf("mlslite: bad sender signature: %w", messages.ErrBadSignature)
	// ErrUnsigned: an unsigned frame where the policy requires signatures.
	ErrUnsigned = errors.New("mlslite: unsigned frame refused by policy")
	// ErrDecrypt: the AEAD did not open: the ciphertext or an
	// authenticated header field was changed, or it was sealed with other
	// keys (another sender, group or epoch).
	ErrDecrypt = errors.New("mlslite: decryption failed")
	// ErrReplay: this (sender, counter) was accepted before in this epoch,
	// or the counter is below the sender's window.
	ErrReplay = errors.New("mlslite: replayed frame")
	// ErrTooManySenders: the replay windows hold MaxWindowSenders senders
	// of live epochs and a frame from yet another sender authenticated. It
	// is refused (fail closed: forgetting a window would let its replays
	// in). Only a group with more senders than that, or a member forging
	// sources, gets here.
	ErrTooManySenders = errors.New("mlslite: too many senders in the replay windows")
	// ErrWindowsCorrupt: UnmarshalBinary was given bytes that are not a
	// valid Windows record.
	ErrWindowsCorrupt = errors.New("mlslite: replay windows record is corrupt")
	// ErrHopLimit: Forward of a frame whose hop count has reached its hop
	// limit.
	ErrHopLimit = fmt.Errorf("mlslite: %w", messages.ErrHopLimit)
	// ErrCounterExhausted: the sender's counters of this epoch are used
	// up; the group must move to a new epoch before it sends again.
	ErrCounterExhausted = errors.New("mlslite: message counter exhausted, the group needs a new epoch")
)
