package inbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// The group inbox: MLS messages (payload type group) the router delivered
// exactly once, in its group commit as it does texts, for the keys actor
// to process. They wait here, durable, until the keys actor has applied
// them to the group's state and written what a user reads (a member's
// text) into the inbox, in one transaction; a node that stops in between
// processes them again at its next start. Entries are numbered from the
// inbox's counter, so they sort in arrival order.

// GroupBucket holds the group inbox.
var GroupBucket = []byte("inbox/group")

// GroupEntry is one MLS message waiting in the group inbox.
type GroupEntry struct {
	Seq  uint64    `json:"-"`
	ID   [16]byte  `json:"id"`
	From [16]byte  `json:"from"`
	At   time.Time `json:"at"`
	Hops int       `json:"hops"`
	// Data is the opened MLS message.
	Data []byte `json:"data"`
}

// MaxGroupEntrySize bounds a group inbox record read back.
const MaxGroupEntrySize = 2 * messages.MaxEnvelopeSize

// ErrGroupEntry is a group inbox record that does not decode.
var ErrGroupEntry = errors.New("inbox: group inbox record does not decode")

// EncodeGroup numbers m (payload type group) as the next entry and
// returns its key and value in GroupBucket, for the router's commit.
func (s *Store) EncodeGroup(m *messages.InboxMessage) (key, val []byte, err error) {
	s.mu.Lock()
	s.last++
	seq := s.last
	s.mu.Unlock()
	val, err = json.Marshal(GroupEntry{ID: m.ID, From: m.From, At: m.At.UTC(), Hops: m.Hops, Data: m.Text})
	if err != nil {
		return nil, nil, err
	}
	key = make([]byte, 8)
	binary.BigEndian.PutUint64(key, seq)
	return key, val, nil
}

// DecodeGroupEntry reads one group inbox record.
func DecodeGroupEntry(key, val []byte) (GroupEntry, error) {
	var e GroupEntry
	if len(key) != 8 || len(val) > MaxGroupEntrySize {
		return e, fmt.Errorf("%w: key of %d bytes, value of %d", ErrGroupEntry, len(key), len(val))
	}
	if err := json.Unmarshal(val, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrGroupEntry, err)
	}
	e.Seq = binary.BigEndian.Uint64(key)
	return e, nil
}

// GroupKey is the record key of group inbox entry seq.
func GroupKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}
