// Package link is the LoRa transport: a transports.Transport over one
// LoRa radio, either simulated (lora+mock://CHANNEL, a lora.Medium that
// several nodes of one process share: NewMock) or real (any Radio; for
// the RNode serial modem of transports/lora/rnode, New with
// NewRNodeRadio, lora+serial). It builds on
// the plain logic of transports/lora (airtime, duty cycle, fragment
// format and reassembly, mock medium) and imports nothing of actors.
//
// # A broadcast radio as links
//
// LoRa is a broadcast medium without connections. The transport maps it
// onto the Transport/Listener/Conn contract like this:
//
//   - One Transport is one radio on one channel (frequency, SF,
//     bandwidth). Listen and Dial take "" or that channel's name, with an
//     optional query that must match the radio (ParseAddr;
//     ErrWrongChannel otherwise). Close the Transport to stop the radio.
//   - Nodes know each other by HELLOs: a signed packet carrying the
//     node's Ed25519 key and a timestamp, broadcast when the radio starts
//     (after a random delay), then every HelloInterval (10 min ±10 %),
//     when the node starts or stops listening, and in answer to a HELLO
//     that asks for answers. A HELLO that does not verify (forged,
//     unsigned, another key's hint, our own key, a timestamp more than
//     MaxClockSkew from our clock or older than the peer's last) is
//     ignored and counted (Stats.HellosRejected).
//   - Every peer has at most one Conn (Peer() is its address). The
//     listener's Accept returns a Conn for each peer whose HELLO says it
//     listens, and for each peer that dials this node. So nodes that all
//     listen link up pairwise by HELLOs alone.
//   - Dial picks the first-heard listening peer that has no Conn yet and
//     sends it a HELLO addressed to it that asks for an answer, again
//     until the peer answers with a HELLO addressed back (or sends any
//     packet to us). The peer's listener makes its end on that HELLO; Dial
//     returns when the answer arrives, so the peer has its end and has
//     just signed for its key. When no such peer is known, Dial asks the
//     channel for HELLOs and waits. Either wait ends with ctx. A radio
//     never hears itself: Dial on a channel with no other node waits; it
//     never returns ErrHandshake, there being no handshake to fail.
//   - A frame from a known peer that has no Conn makes one (a peer
//     re-linking after a Close); the Conn goes to a waiting Dial, the
//     listener, or waits for one of them.
//   - Conn.Close sends the peer a BYE (best effort): its ReadFrame returns
//     io.EOF after the frames it holds, its WriteFrame io.ErrClosedPipe.
//     Transport.Close sends nothing: peers notice when their frames go
//     unacknowledged.
//
// Where LoRa cannot keep the letter of the Conn contract:
//
//   - Order holds within a priority: a frame of higher priority overtakes
//     queued frames of lower priority (that is the point of priorities).
//   - Delivery is reliable as far as the selective repeat reaches: a frame
//     not acknowledged after MaxRounds rounds fails its Conn with
//     ErrPeerLost (matching lora.ErrGaveUp), and the peer is forgotten
//     until it is heard again.
//   - Identity: Peer is proven by the HELLO's signature, but the packets
//     after it carry only 2-byte hints, which anyone in radio range can
//     forge: a frame can be attributed to the wrong peer, and an ACK or a
//     BYE faked. What frames say stays authentic (announces are signed,
//     envelopes sealed end to end), but what the node derives from the
//     link's peer does not: a spoofer in range can make the router take
//     another peer as the next hop of an announce it relays, or spend that
//     peer's rate limit. A per-link MAC (keys from X25519 of the two
//     identities) would close this at about 4 bytes per packet; not done.
//   - Hints collide: of 300 nodes, two share a hint with probability about
//     one half. The first key heard keeps a hint; the other is ignored and
//     counted (Stats.HintCollisions).
//
// # On-air layout
//
// Every packet starts with a 5-byte link header:
//
//	offset  size  field
//	0       1     kind byte: 1100 P kkk
//	                1100 (high nibble C): qpc LoRa link, version 0; any other
//	                     high nibble is another protocol (Stats.Foreign)
//	                P:   poll, only on data packets: the last packet of a
//	                     round, which the receiver answers with ACK or NACK
//	                kkk: the kind, below
//	1       2     destination hint: the first two bytes of the destination's
//	              address; ff ff broadcast (HELLOs)
//	3       2     source hint: the first two bytes of the sender's address
//	5       n     body
//
//	byte   kind   body
//	c1     DATA   a lora fragment (transports/lora, fragment.go): 03, message
//	c9            id (2, big-endian), index, last index, 1..MTU-10 frame bytes;
//	              c9 is DATA with P set
//	c2     HELLO  flags (1): 01 listening, 02 asks for an answer (broadcast:
//	              every hearer broadcasts a HELLO; addressed: the destination
//	              answers with one addressed back);
//	              time (4): unix seconds, big-endian;
//	              Ed25519 public key (32);
//	              signature (64) over "qpc/lora-hello/v0" 00 || bytes 0..41
//	              (the header included, so neither hint nor destination can
//	              be changed); destination ff ff, or the peer a Dial picked
//	              (and that peer's answer)
//	c3     ACK    message id (2): the message arrived whole
//	c4     NACK   message id (2), then a bitmap of the missing fragments: bit
//	              i%8 (least significant first) of byte i/8 is fragment i; no
//	              trailing zero byte; 1..32 bytes. No bitmap: the receiver holds
//	              nothing of the message, resend it all
//	c5     BYE    nothing: the sender closed its Conn to the destination
//
// Sizes: header 5 B, data overhead 10 B (header and fragment header),
// HELLO 106 B, ACK 7 B, NACK 7 to 39 B, BYE 5 B. One packet carries a frame
// of up to MTU-10 bytes (245 at MTU 255, 41 at MTU 51: Info().MTU), and a
// frame travels in up to 256 packets: FrameLimit is 62720 B at MTU 255,
// 10496 B at MTU 51 (Info().MaxFrame). Every frame, even a one-packet
// one, is a fragmented message with an id, because the id is what ACKs
// and NACKs name and what the receiver deduplicates retransmissions by.
// (That is also why the link cuts frames itself with lora.AppendFragment
// rather than with lora.Fragmenter, which sends frames that fit the MTU
// whole and without an id; the format and the Reassembler are lora's.)
// testdata/link-v0.hex is the golden vector; Overhead computes the cost:
//
//	192-byte envelope   MTU 255                  MTU 51
//	packets             1 of 202 B               4 of 51 B and 1 of 38 B
//	overhead            10 B (+7 B ACK back)     50 B (+7 B ACK back)
//	airtime, 125 kHz    SF7: 323 ms + 36 ms ACK  SF12: about 11.8 s + 1 s ACK
//
// # Selective repeat
//
// The radio sends one frame at a time, stop-and-wait: it sends a round
// of packets, the last with P set, then stays silent (LoRa is half
// duplex) for ReportTimeout, the time the receiver's report takes. The
// receiver answers a poll with its state of the message
// (lora.Reassembler.Missing):
//
//	report                      sender
//	ACK                         done: the next frame
//	NACK with a bitmap          resends those fragments, P on the last
//	NACK without a bitmap       resends all
//	nothing by the deadline     resends the last packet alone (a probe that
//	                            makes the receiver report again), after a
//	                            random delay of up to one MTU airtime
//
// After MaxRounds rounds (default 8) the Conn fails with ErrPeerLost. A
// receiver whose Conn holds RecvQueue unread frames does not answer, so
// the sender retries later. Retransmissions of a frame the receiver has
// completed are recognised by the Reassembler for its timeout (5 min)
// and acknowledged again, not delivered twice.
//
// # Duty cycle, dwell time and priorities
//
// Every packet passes the radio's lora.Tracker for the sub-band of its
// frequency (EU868: 0.1 %, 1 % or 10 % per rolling hour; US915: none, but
// 400 ms per packet) before it is handed to the radio. One that does not
// fit is held back — never sent early — and goes at the exact time the
// tracker names; Stats.Held counts them and Stats.HeldUntil says until
// when. HELLOs, ACKs, NACKs, BYEs and frames of priority
// messages.Control are control traffic and may fill only (1 − DataShare)
// of the budget; data and bulk frames may use all of it. When control
// traffic is at its ceiling, a data frame may still go. Options a packet
// could never fit (a HELLO longer than the dwell time, a packet longer
// than the hourly control share) are refused by New.
//
// Frames wait in one outbound queue per radio (all Conns together),
// bounded in frames and bytes (QueueFrames, QueueBytes), one FIFO per
// priority, served highest first. When a frame does not fit, the newest
// frames of the lowest priority below its own are shed (counted in
// Stats.FramesShed) — the rule of actors/mailbox.Queue; when lower frames
// cannot make room, WriteFrame waits for room (the backpressure of the
// Conn contract). WriteFrame guesses a frame's priority from its tag
// (PriorityOf); WriteFramePriority (PriorityWriter) takes it.
//
// Before each transmission the link listens (CarrierSenser, where the
// radio can) and backs off while the channel is busy; a new round starts
// a random moment after the channel falls quiet, so that two nodes freed
// by the same packet do not start together. The timings are listed in
// engine.go; all derive from the airtime of the radio's settings.
//
// # Goroutines and locking
//
// A Transport runs one goroutine, the receiver, from New to Close. All
// state is under one mutex (the …Locked methods hold it); it is changed
// by WriteFrame, Close, the receiver and one clock timer, and packets are
// sent from under it (pumpLocked). The clock is injected: with the
// Medium's clock.Manual, a test or the simulator runs a deterministic
// discrete-event simulation (see sim_test.go).
package link
