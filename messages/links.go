package messages

import "time"

// This file is the bus contract of the transports subtree (actors/links).

// LinkInfo describes one connected link.
type LinkInfo struct {
	ID        uint64   // unique per node for the node's lifetime
	Peer      [16]byte // authenticated peer address
	Transport string   // "tcp", "quic", "mem", "lora"
	Local     string
	Remote    string
	Outbound  bool // we dialed it
	MTU       int
	// MaxFrame is the largest frame the link carries (its transport's
	// Info.Limit: above the MTU where the transport fragments, as LoRa
	// does).
	MaxFrame int
	Bitrate  int64
	Class    string
	Since    time.Time
	// Broadcast: the link's transport reaches every peer in range with
	// one transmission (a LoRa radio), and the node sends frames meant
	// for every neighbour over it once per radio (issue 12).
	Broadcast bool
}

// PeerUp is published on the actor system's event stream when a link to a
// peer comes up. Node is the local node's address: in the simulator many
// nodes share one event stream, so subscribers filter on it.
type PeerUp struct {
	Node [16]byte
	Link LinkInfo
}

// PeerDown is published when a link goes down; Reason says why.
type PeerDown struct {
	Node   [16]byte
	Link   LinkInfo
	Reason string
}

// SendFrame asks the transports actor to send a frame to a directly
// connected peer over the best link for its size.
type SendFrame struct {
	Peer     [16]byte
	Data     []byte
	Priority Priority
	// Broadcastable: the frame is as good for any neighbour (an announce
	// for a neighbour that just came up). When the peer's link
	// broadcasts, the frame goes as one broadcast of its radio, where
	// queued copies of the same announce collapse into one.
	Broadcastable bool
}

// OutboundFrame is a frame queued in one link actor's mailbox. Its
// Priority and Size drive the priority-shedding mailbox.
type OutboundFrame struct {
	Data []byte
	Prio Priority
}

// Priority implements the mailbox's Prioritized.
func (f *OutboundFrame) Priority() Priority { return f.Prio }

// Size implements the mailbox's Sized.
func (f *OutboundFrame) Size() int { return len(f.Data) }

// LinksRequest asks the transports actor for its links; it answers with
// *LinksReply.
type LinksRequest struct{}

// LinksReply answers LinksRequest.
type LinksReply struct {
	Links []LinkInfo
	// Peers are the configured peers (transports.peers), in the order of
	// the configuration, with how dialing them goes.
	Peers []PeerStatus
}

// Peer states in PeerStatus.State.
const (
	PeerStatePending  = "pending"  // the node has not started dialing yet
	PeerStateDialling = "dialling" // an attempt is under way
	PeerStateUp       = "up"       // a link to it is up
	PeerStateDown     = "down"     // its link just went; a re-dial is being scheduled
	PeerStateBackoff  = "backoff"  // the last attempt failed; the next is at NextAttempt
	PeerStateStopped  = "stopped"  // the node is shutting down and dials no more
	PeerStateGivenUp  = "given_up" // not dialled again: LastError says why
)

// PeerStatus is one configured peer as the transports actor sees it.
type PeerStatus struct {
	URI   string
	State string    // one of the PeerState* values
	Since time.Time // when it entered State
	// Attempts counts dial attempts since the node started; Failures
	// those that failed since the peer was last up.
	Attempts, Failures int
	// LastError is the last failed dial or the reason the last link
	// ended ("link down: closed by peer"), at LastErrorAt; kept after the
	// peer is up again, as history.
	LastError   string
	LastErrorAt time.Time
	// NextAttempt is when the next dial is due (state backoff).
	NextAttempt time.Time
	// Peer is the address the peer authenticated as, once linked (kept
	// after the link goes); zero before.
	Peer [16]byte
}

// BroadcastFrame asks the transports actor to send a frame to every
// connected peer but Except (the one it came from; zero for none) over
// each peer's best link: once per peer, except that all the peers whose
// best link is on one broadcasting transport (a LoRa radio) get it in one
// broadcast, which Except hears too (its dedup drops it).
type BroadcastFrame struct {
	Data     []byte
	Priority Priority
	Except   [16]byte
	// SkipBroadcast leaves the broadcasting transports out: the peers
	// whose best link is a radio do not get the frame. The router sets
	// it for an announce re-broadcast that a neighbour on the radio was
	// heard re-broadcasting first (the managed flood's suppression).
	SkipBroadcast bool
}

// StartLinks tells the transports actor that every other actor of the node
// runs (and listens on the event stream), so it may start accepting and
// dialing. The node root sends it whenever all its children are up; the
// transports actor acts on the first one after each (re)start. The fapp
// actor gets it too: its first sends (to the router and the links) wait
// for it.
type StartLinks struct{}
