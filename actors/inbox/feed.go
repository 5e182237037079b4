package inbox

import (
	"encoding/base64"
	"sync/atomic"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/messages"
)

// Last is the highest number handed out so far: a Feed started after it
// hands out what arrives from now on.
func (s *Store) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Feed hands the entries of a Store to a channel in arrival order, as
// they are committed (the Go API's Deliveries). It reads them from the
// database, at most ReadAhead at a time, and blocks until its reader
// takes each one: what nobody reads stays on disk, not in memory. An
// entry deleted (retention, DELETE /v1/inbox) before the reader got to it
// is not handed out.
type Feed struct {
	store     *Store
	out       chan<- *messages.InboxMessage
	after     uint64
	readAhead int
	onHanded  func()
	held      atomic.Int64
}

// NewFeed returns a feed of the entries after seq into out; readAhead
// (at least 1) bounds how many it holds in memory ahead of its reader;
// onHanded (may be nil) is called for each message the reader took.
func (s *Store) NewFeed(after uint64, out chan<- *messages.InboxMessage, readAhead int, onHanded func()) *Feed {
	return &Feed{store: s, out: out, after: after, readAhead: max(readAhead, 1), onHanded: onHanded}
}

// Held is how many entries the feed has read from the database and its
// reader has not taken yet (at most ReadAhead).
func (f *Feed) Held() int { return int(f.held.Load()) }

// Run feeds until done is closed; run it on its own goroutine.
func (f *Feed) Run(done <-chan struct{}) {
	for {
		entries, changed, err := f.store.List(f.after, f.readAhead)
		if err != nil {
			// The database is closing (done follows): try again after
			// the next commit. (A damaged entry is no error: List returns
			// it marked, and entryMessage skips it.)
			entries = nil
		}
		f.held.Store(int64(len(entries)))
		for i := range entries {
			m, ok := entryMessage(&entries[i])
			seq := entries[i].Seq
			entries[i] = Entry{} // the reader holds its copy; ours goes
			if ok {
				select {
				case f.out <- m:
					if f.onHanded != nil {
						f.onHanded()
					}
				case <-done:
					f.held.Store(0)
					return
				}
			}
			f.held.Add(-1)
			f.after = seq
		}
		if len(entries) > 0 && err == nil {
			continue
		}
		select {
		case <-changed:
		case <-done:
			return
		}
	}
}

// entryMessage turns a stored entry back into the message delivered; an
// entry that does not (it was not written by Encode) is skipped.
func entryMessage(e *Entry) (*messages.InboxMessage, bool) {
	id, err1 := crypto.ParseAddress(e.ID)
	from, err2 := crypto.ParseAddress(e.From)
	text := []byte(e.Text)
	var err3 error
	if e.Encoding == api.EncodingBase64 {
		text, err3 = base64.StdEncoding.DecodeString(e.Text)
	}
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, false
	}
	return &messages.InboxMessage{ID: id, From: from, Text: text, At: e.At, Hops: e.Hops}, true
}
