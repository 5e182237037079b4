package link

import (
	"time"

	"github.com/quicprochat/qpc/transports/lora"
)

// Stats are a radio's gauges and counters, for metrics and `qpc stats`.
// Counters only grow; gauges are as of the call.
type Stats struct {
	// SubBand is the airtime account of the radio's duty-cycle sub-band
	// (a radio transmits on one frequency, so in one sub-band).
	SubBand AirtimeStats

	// Packets on air. PacketsReceived counts qpc link packets heard,
	// whoever they were for; PacketsResent the data packets sent again by
	// the selective repeat (fragments and single-packet frames).
	PacketsSent, PacketsReceived, PacketsResent uint64

	// Frames: FramesSent were acknowledged by their peer, FramesReceived
	// delivered to a connection. FramesDropped and FramesFailed were
	// given up after the last round: dropped alone while the peer was
	// heard within Options.PeerSilence (the connection stays; a
	// congestion signal the end-to-end retransmission recovers), failed
	// with their connection (ErrPeerLost) when it was silent. FramesShed
	// counts frames dropped from the full outbound queue, indexed by
	// messages.Priority.
	FramesSent, FramesReceived, FramesDropped, FramesFailed uint64
	FramesShed                                              [numPriorities]uint64
	// FramesCopies counts frames not queued because the same bytes for
	// the same peer were queued already (WriteFramePriority).
	FramesCopies uint64

	// Held counts transmissions the duty cycle held back (each once, when
	// it was first held); HeldUntil is when the one held now may go (zero
	// when nothing is held).
	Held      uint64
	HeldUntil time.Time

	// Queued and QueuedBytes are the outbound queue's depth (the frame
	// being sent not included).
	Queued, QueuedBytes int

	// Timeouts counts rounds that got no report in time; CarrierBusy the
	// times listen-before-talk found the channel busy; SendErrors packets
	// the radio refused.
	Timeouts, CarrierBusy, SendErrors uint64

	HellosSent, HellosReceived uint64
	// HellosRejected counts HELLOs that failed verification (forged,
	// unsigned, wrong hint, our own key, a timestamp too far from our
	// clock or older than one already seen).
	HellosRejected uint64

	// Packets dropped on receipt: Foreign (not qpc), OtherVersion (a qpc
	// link packet of another version), Malformed, NotForUs (another
	// destination), UnknownSource (a hint we have no HELLO for),
	// RecvOverflow (the connection's read queue was full), StaleReports
	// (an ACK or NACK for a frame no longer on its way), PeersDropped (a
	// new peer beyond MaxPeers), CtlDropped (a report or BYE beyond the
	// control queue).
	Foreign, OtherVersion, Malformed, NotForUs, UnknownSource uint64
	RecvOverflow, StaleReports, PeersDropped, CtlDropped      uint64

	// BadMAC counts unicast packets (indexed by Kind: BadMAC[KindAck] …)
	// whose MAC checked under no known peer's key towards us: forged,
	// altered, or for another node with our hint. They change nothing.
	BadMAC [8]uint64

	// HintCollisions counts new peers whose hint a known peer (or this
	// node) has. Both are kept: the MACs tell their packets apart.
	HintCollisions uint64

	// Broadcasts (issue 12): BroadcastsSent went out (every packet),
	// BroadcastsReceived were delivered to a connection,
	// BroadcastsDropped did not fit the full queue, BroadcastUnknown
	// packets came from a hint without a HELLO (dropped).
	// AnnouncesCollapsed counts announces that replaced a queued one of
	// the same destination; AnnouncesHeld the times an announce waited
	// for the announce share; AnnouncesSuppressed the queued broadcast
	// announces dropped because a neighbour broadcast the same one (same
	// destination, same or newer sequence) first.
	BroadcastsSent, BroadcastsReceived, BroadcastsDropped, BroadcastUnknown uint64
	AnnouncesCollapsed, AnnouncesHeld, AnnouncesSuppressed                  uint64

	// Airtime is the airtime since the start by kind of packet.
	Airtime AirtimeByKind

	// Reassembly is the reassembler's account (fragments refused,
	// duplicates, reassemblies timed out).
	Reassembly lora.ReassemblyStats

	// Peers heard and open connections.
	Peers, Conns int
}

// AirtimeStats is the airtime account of one sub-band over the rolling
// hour the regulation measures.
type AirtimeStats struct {
	Name      string         // "869.4-869.65" (MHz)
	DutyCycle lora.DutyCycle // its limit
	// Budget is the airtime per hour (all traffic); ControlLimit the part
	// control traffic may fill.
	Budget, ControlLimit time.Duration
	// Used is the airtime within the last hour; Remaining what user data
	// may still use in it, ControlRemaining what control traffic may.
	Used, Remaining, ControlRemaining time.Duration
	// Total is all airtime since the transport started.
	Total time.Duration
}

// Stats returns the radio's current gauges and counters.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clk.Now()
	s := t.st.stats
	tr := t.st.tracker
	s.SubBand.Used = tr.Used(now)
	s.SubBand.Remaining = tr.Remaining(now)
	s.SubBand.ControlRemaining = tr.RemainingFor(now, lora.Control)
	if s.HeldUntil = t.st.heldUntil; !s.HeldUntil.After(now) {
		s.HeldUntil = time.Time{}
	}
	s.Queued, s.QueuedBytes = t.st.queue.n, t.st.queue.b
	s.Reassembly = t.st.reasm.Stats()
	s.Peers, s.Conns = len(t.st.peers), t.st.conns
	return s
}
