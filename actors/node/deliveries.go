package node

import (
	"sync"

	"github.com/quicprochat/qpc/actors/inbox"
	"github.com/quicprochat/qpc/messages"
)

// deliveriesReadAhead is how many delivered messages the Deliveries
// channel reads from the inbox ahead of its reader, by default
// (WithInboxSize changes it).
const deliveriesReadAhead = 8

// deliveryFeed is the state behind Deliveries: the inbox Feed, started
// once the channel is asked for and the inbox is open.
type deliveryFeed struct {
	mu     sync.Mutex
	wanted bool   // Deliveries was called
	opened bool   // Start opened the inbox
	from   uint64 // the inbox's last number then: the feed hands out what came after
	feed   *inbox.Feed
}

// Deliveries are the messages delivered to this node and opened, in
// arrival order, from the time the node started. They are read from the
// inbox (where they are kept, see InboxSince) as the channel's reader
// takes them, a few ahead at most: a node whose Deliveries nobody reads
// keeps nothing in memory for it, and a reader that comes late misses
// nothing still in the inbox. A message deleted from the inbox before it
// was read (retention, DELETE /v1/inbox) is not handed out.
func (n *Node) Deliveries() <-chan *messages.InboxMessage {
	n.deliveries.mu.Lock()
	defer n.deliveries.mu.Unlock()
	n.deliveries.wanted = true
	n.startFeedLocked()
	return n.inbox
}

// inboxOpened is Start's: the inbox store is open.
func (n *Node) inboxOpened() {
	n.deliveries.mu.Lock()
	defer n.deliveries.mu.Unlock()
	n.deliveries.opened, n.deliveries.from = true, n.box.Last()
	n.startFeedLocked()
}

func (n *Node) startFeedLocked() {
	d := &n.deliveries
	if !d.wanted || !d.opened || d.feed != nil {
		return
	}
	d.feed = n.box.NewFeed(d.from, n.inbox, n.opts.inboxSize, n.metrics.FramesDelivered.Inc)
	go d.feed.Run(n.done)
}

// heldDeliveries is how many delivered messages are in memory for the
// Deliveries channel (tests).
func (n *Node) heldDeliveries() int {
	n.deliveries.mu.Lock()
	defer n.deliveries.mu.Unlock()
	h := len(n.inbox)
	if n.deliveries.feed != nil {
		h += n.deliveries.feed.Held()
	}
	return h
}
