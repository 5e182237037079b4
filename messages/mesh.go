package messages

import "time"

// This file is the bus contract of the mesh: announcer, router, store and
// the node's API.

// AnnounceHeard is a received announce whose signature and age the
// announcer checked; the router decides whether it is fresh.
type AnnounceHeard struct {
	Announce Announce
	Frame    []byte   // as received, for re-broadcast with ForwardAnnounce
	From     [16]byte // the neighbour it came from
	Link     string
	Signal   Signal // its reception, when it came over a radio
}

// SendText asks the router to seal text to To and send it; the router
// keeps it in its outbox until To's receipt comes back or it expires, and
// answers with *SendResult once that record is durable.
type SendText struct {
	To   [16]byte
	Text []byte
	// Sealed, when set, is Text sealed to To by the caller already (with
	// the AAD of this node and To), so the sealing runs on the caller's
	// goroutine rather than the router's; Text is then ignored.
	Sealed []byte
	// Payload is PayloadSealed (0 means it: a text) or PayloadGroup (an
	// MLS message for the member To; always a signed envelope, never a
	// compact one).
	Payload PayloadType
	// Frame, when set, is the whole frame already sealed by the caller
	// (an MLS-Lite frame, the keys actor's) with its id FrameID: the
	// router keeps and retransmits it as it is, expiring after its TTL.
	Frame   []byte
	FrameID [16]byte
}

// SendBatch asks the router to send several messages at once: one group
// commit for all of them. It answers *SendBatchResult once they are
// durable, one result per message, in order.
type SendBatch struct{ Items []SendText }

// SendBatchResult answers SendBatch.
type SendBatchResult struct{ Results []SendResult }

// SendResult answers SendText once the message is durable in the
// outbox: Status is its state then (queued or sent). Err is set when it
// was not accepted (unknown destination, outbox full: the caller may
// retry later).
type SendResult struct {
	ID     [16]byte
	Status string
	Err    error
}

// RoutesRequest asks the router for its table; it answers *RoutesReply.
type RoutesRequest struct{}

// RouteInfo is one destination as `qpc routes` shows it.
type RouteInfo struct {
	Address      [16]byte
	NextHop      [16]byte
	Hops         int
	Link         string
	Capabilities Capabilities
	Seq          uint64
	Refreshed    time.Time
}

// RoutesReply answers RoutesRequest.
type RoutesReply struct{ Routes []RouteInfo }

// TraceRequest asks the router to trace the path to To, hop by hop; it
// answers *TraceResult when the destination answered or Timeout passed.
type TraceRequest struct {
	To      [16]byte
	Timeout time.Duration
}

// TraceHop is one node on a traced path.
type TraceHop struct {
	Hop     int
	Address [16]byte
	RTT     time.Duration
}

// TraceResult answers TraceRequest.
type TraceResult struct {
	Hops    []TraceHop
	Reached bool
	Err     error
}

// Store messages between router and store.
type (
	// StoreFrame asks the store to hold an envelope for Dest.
	StoreFrame struct {
		Dest   [16]byte
		ID     [16]byte
		Frame  []byte
		Expiry time.Time
	}
	// StoreAck tells the store an envelope was delivered (a receipt came
	// back); it deletes its copy.
	StoreAck struct {
		ID [16]byte
		// Dest signed the receipt that named ID: only a frame held for
		// Dest may go, so that no other node's receipt (anyone can name
		// an id it saw pass) makes a relay let go of a message.
		Dest [16]byte
	}
	// RouteUp tells the store a destination became reachable, so it hands
	// back what it holds for it.
	RouteUp struct{ Dest [16]byte }
	// StoredFrames hands held envelopes back to the router for sending.
	StoredFrames struct {
		Dest   [16]byte
		Frames [][]byte
	}
)

// InboxMessage is a message delivered to this node and opened.
type InboxMessage struct {
	ID   [16]byte
	From [16]byte
	Text []byte
	At   time.Time
	Hops int
	// Payload is PayloadGroup for an MLS message the router delivered to
	// the keys actor's group inbox (Text is the opened MLS message), and
	// 0 for a text.
	Payload PayloadType
	// Group is the group id of a group message the keys actor decrypted
	// (Text is the member's text, From the member); nil for 1:1.
	Group []byte
}

// VerifiedEnvelope is an envelope the edge checked: decoded, its
// signature verified with the source's announced key, its id derived and,
// when it is sealed to this node, opened (Opened, or OpenFailed). The
// router only decides what to do with it.
type VerifiedEnvelope struct {
	In         *InboundFrame // the frame as it arrived: link, neighbour, credit
	Env        Envelope
	ID         [16]byte
	Opened     []byte
	OpenFailed bool
}

// GroupFrameIn is an MLS-Lite frame for this node, from the router to
// the keys actor.
type GroupFrameIn struct {
	Frame []byte
	ID    [16]byte
	From  [16]byte // the neighbour it came from
}

// SendReceipts asks the router to acknowledge messages from To (ids of
// frames the keys actor delivered, or that it saw again).
type SendReceipts struct {
	To  [16]byte
	IDs [][16]byte
}

// ClassesRequest asks the router how each destination is reached: it
// answers *ClassesReply with the class of the fastest link to the next
// hop of each one's route, and the X-Wing keys of those the PQ mode may
// reach (asking the others for their PQ key record).
type ClassesRequest struct{ Dests [][16]byte }

// ClassesReply answers ClassesRequest; a destination without a route, or
// whose next hop has no open link, has class 0. PQ holds the X-Wing
// public key of each destination the PQ mode applies to (it announces
// it, its first link is unconstrained, its record is held); nil with the
// mode off.
type ClassesReply struct {
	Classes map[[16]byte]uint8 // transports.Class
	PQ      map[[16]byte][]byte
}

// GroupInbound tells the keys actor that the router committed MLS
// messages to its group inbox (inbox.GroupBucket).
type GroupInbound struct{}

// KeyPackageIn is a KeyPackage message the router hands to the keys
// actor: one for this node (Transit false), or a request or response on
// its way to another node (Transit true). For a request in transit the
// router has not forwarded it: the keys actor answers it from its cache
// or sends it on with ForwardFrame (Frame has its hop count raised
// already; nil when the hop limit is reached). A response in transit was
// forwarded; the keys actor may cache it.
type KeyPackageIn struct {
	Env     Envelope
	ID      [16]byte
	Frame   []byte
	From    [16]byte // the neighbour it came from
	Transit bool
}

// ForwardFrame asks the router to route a frame it handed out (a
// KeyPackage request no cache here could answer) towards Dest, never back
// to From.
type ForwardFrame struct {
	Dest, ID, From [16]byte
	Frame          []byte
	Expiry         time.Time
}

// SendControl asks the router to sign and send an unsealed envelope of a
// payload type without a seq (a KeyPackage request or answer): not kept
// in the outbox, not retransmitted. Fire and forget.
type SendControl struct {
	To      [16]byte
	Payload PayloadType
	Data    []byte
}

// Delivered tells the inbox actor that the router committed these
// messages to the inbox (and their replay records) in one transaction.
type Delivered struct{ Msgs []*InboxMessage }

// MessageRequest asks the router for the outbox record of one of this
// node's messages; it answers *MessageStatus (Found false when unknown).
type MessageRequest struct{ ID [16]byte }

// MessageStatus is an own message as the outbox keeps it.
type MessageStatus struct {
	Found     bool
	ID, To    [16]byte
	Seq       uint64
	State     string // queued, sent, delivered, failed
	Attempts  int
	Created   time.Time
	Expiry    time.Time
	NextRetry time.Time
	Done      time.Time
	Reason    string
}

// OutboxRequest asks the router for the pending messages; it answers
// *OutboxReply.
type OutboxRequest struct{}

// OutboxReply lists pending own messages, oldest first.
type OutboxReply struct {
	Messages []MessageStatus
	Pending  int
}

// SetKeyPackageHash changes the KeyPackage hash this node announces (the
// first 16 bytes of its current KeyPackageRef; zero: none); the announcer
// sends a fresh announce at once when it changed.
type SetKeyPackageHash struct{ Hash [16]byte }

// SetCapabilities changes what this node announces; the announcer sends a
// fresh announce at once.
type SetCapabilities struct{ Caps Capabilities }
