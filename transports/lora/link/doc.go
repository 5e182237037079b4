// Package link is the LoRa transport: a transports.Transport over one
// LoRa radio, either simulated (lora+mock://CHANNEL, a lora.Medium that
// several nodes of one process share: NewMock) or real (any Radio; for
// the RNode serial modem of transports/lora/rnode, New with
// NewRNodeDeviceRadio on an rnode.Device, lora+serial: a modem that goes
// away is re-opened under the same transport, see Reviver). It builds on
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
//     not acknowledged after MaxRounds rounds is given up. While the peer
//     is heard (any packet of it verified within PeerSilence, default two
//     HELLO intervals) only that frame is dropped, counted in
//     Stats.FramesDropped, and the Conn goes on with the next frame: on a
//     busy channel a lost frame is congestion, which the sender's
//     end-to-end retransmission recovers, not a lost peer. A peer silent
//     for the whole window is lost: the Conn fails with ErrPeerLost
//     (matching lora.ErrGaveUp, Stats.FramesFailed), and the peer is
//     forgotten until it is heard again. So a Conn may lose frames in the
//     middle (never reorder or duplicate them).
//   - Identity: Peer is proven by the HELLO's signature, and every
//     unicast packet after it (DATA, ACK, NACK, BYE) by a 4-byte MAC under
//     a key only the two ends have (X25519 of their identities, one key
//     per direction; see "Link MAC" below). A packet whose MAC does not
//     check is refused before it changes anything and counted
//     (Stats.BadMAC, by kind): nobody in radio range can forge or alter
//     an ACK, a BYE or a frame of another peer. A 4-byte MAC is a 2^-32
//     chance per forged packet, and each try costs the forger airtime
//     under the same duty cycle as everyone. What it does not stop: a
//     replay of a packet heard earlier (a replayed DATA packet is a
//     duplicate fragment, a replayed ACK names a message id the sender
//     has moved past unless the 16-bit ids wrapped; a replayed BYE closes
//     a re-opened link), and jamming.
//   - Hints collide: of 300 nodes, two share a hint with probability about
//     one half. Both are peers (Stats.HintCollisions counts such HELLOs):
//     the sender of a packet is the peer with its source hint whose key
//     checks the MAC. A node that shares our own hint is a peer like any
//     other. Packets addressed to another node with our hint fail our MAC
//     check and are counted with Stats.BadMAC. A Dial's HELLO is
//     addressed by hint alone, so every node with that hint takes it as a
//     Dial (each answers and makes its end of a link with the dialer).
//
// # On-air layout
//
// Every packet starts with a 5-byte link header, and every unicast packet
// after the HELLO ends in a 4-byte MAC:
//
//	offset  size  field
//	0       1     kind byte: 1101 P kkk
//	                110v (high nibble D): qpc LoRa link, version v = 1;
//	                     high nibble C is version 0 (no MACs), refused
//	                     (ErrVersion, Stats.OtherVersion); any other high
//	                     nibble is another protocol (Stats.Foreign)
//	                P:   poll, only on data packets: the last packet of a
//	                     round, which the receiver answers with ACK or NACK
//	                kkk: the kind, below
//	1       2     destination hint: the first two bytes of the destination's
//	              address; ff ff broadcast (HELLOs, broadcast DATA)
//	3       2     source hint: the first two bytes of the sender's address
//	5       n     body
//	5+n     4     MAC (DATA, ACK, NACK, BYE; not HELLOs, not broadcast
//	              DATA): see "Link MAC"
//
//	byte   kind   body
//	d1     DATA   a lora fragment (transports/lora, fragment.go): 03, message
//	d9            id (2, big-endian), index, last index, 1..MTU-14 frame bytes;
//	              d9 is DATA with P set
//	d2     HELLO  flags (1): 01 listening, 02 asks for an answer (broadcast:
//	              every hearer broadcasts a HELLO; addressed: the destination
//	              answers with one addressed back);
//	              time (4): unix seconds, big-endian;
//	              Ed25519 public key (32);
//	              signature (64) over "qpc/lora-hello/v0" 00 || bytes 0..41
//	              (the header included, so neither hint nor destination can
//	              be changed); destination ff ff, or the peer a Dial picked
//	              (and that peer's answer)
//	d3     ACK    message id (2): the message arrived whole
//	d4     NACK   message id (2), then a bitmap of the missing fragments: bit
//	              i%8 (least significant first) of byte i/8 is fragment i; no
//	              trailing zero byte; 1..32 bytes. No bitmap: the receiver holds
//	              nothing of the message, resend it all
//	d5     BYE    nothing: the sender closed its Conn to the destination
//	d6     BDATA  broadcast DATA: a lora fragment as in DATA, destination
//	              ff ff, no poll, no MAC, ids of their own; see "Broadcast"
//
// Sizes: header 5 B, MAC 4 B, data overhead 14 B (header, fragment header
// and MAC), HELLO 106 B, ACK 11 B, NACK 11 to 43 B, BYE 9 B. One packet
// carries a frame of up to MTU-14 bytes (241 at MTU 255, 37 at MTU 51:
// Info().MTU), and a frame travels in up to 256 packets: FrameLimit is
// 61696 B at MTU 255, 9472 B at MTU 51 (Info().MaxFrame). Every frame,
// even a one-packet one, is a fragmented message with an id, because the
// id is what ACKs and NACKs name and what the receiver deduplicates
// retransmissions by.
// (That is also why the link cuts frames itself with lora.AppendFragment
// rather than with lora.Fragmenter, which sends frames that fit the MTU
// whole and without an id; the format and the Reassembler are lora's.)
// testdata/link-v1.hex is the golden vector; Overhead computes the cost
// (version 0, without MACs, in brackets):
//
//	192-byte envelope   MTU 255                  MTU 51
//	packets             1 of 206 B (202)         5 of 51 B and 1 of 21 B
//	                                             (4 of 51 B and 1 of 38 B)
//	overhead            14 B (10) + 11 B ACK     84 B (50) + 11 B ACK back
//	                    back (7)                 (7)
//	airtime, 125 kHz    SF7: 328 ms + 41 ms ACK  SF12: 13.8 s + 1.2 s ACK
//	                    (323 + 36 ms)            (11.8 s + 1.0 s)
//
// # Broadcast
//
// A frame meant for every neighbour (an announce, its re-broadcast, a
// flooded envelope; transports.Broadcaster, Transport.Broadcast) goes out
// once for all peers, as BDATA packets: the data packet's layout, kind 6,
// destination ff ff, 10 bytes of overhead (no MAC), the same frame bytes
// per packet as DATA (so a BDATA packet is up to 4 bytes shorter than
// the MTU). A 148-byte announce is one 158-byte packet at MTU 255: 256 ms
// at SF7, against 19 unicast DATA packets of 162 B and 19 ACKs for 19
// neighbours (5.8 s). Nobody acknowledges a broadcast and nothing
// retransmits it: a lost one is repaired by the next announce round.
//
// Message ids of broadcasts are a 16-bit space of their own; receivers
// reassemble by source hint and id, and deliver the frame on the Conn of
// the source peer (made now, as for a unicast frame from a known peer,
// when it has none; ReadFrameSignal says it came as a broadcast). A
// broadcast from a hint without a HELLO is counted
// (Stats.BroadcastUnknown) and, when complete, held for up to 64 HELLO
// airtimes (at least 30 s; at most 8 frames), so that a new neighbour's
// first announce, sent the moment its link came up, is not lost because
// its HELLO has not reached us yet. A broadcast from a hint that several
// peers share is delivered only when it names its sender itself (an
// announce of its own, hops 0, for the peer of that address); others are
// dropped and counted.
//
// Authentication: a broadcast cannot carry a pairwise MAC, so it is
// authenticated by its content alone: announces are signed by their
// origin (and checked by the announcer before anything changes), and
// envelopes are signed or sealed end to end. What that leaves open: the
// source hint is not authenticated, so anyone in range can replay a
// (valid, signed) announce as if a given neighbour had re-broadcast it,
// making the router take that neighbour as the next hop to the announce's
// origin (until a better path or the route's expiry), or spend that
// neighbour's rate limit. The data such a route attracts is still sealed
// and signed end to end, and the outbox's retransmission and the
// receipts show a path that does not deliver. A broadcast MAC would need
// a group key, which a mesh of strangers does not have.
//
// The announce share: announces (frames whose tag says FrameAnnounce,
// unicast or broadcast) may use at most Options.AnnounceShare of the
// radio's time (default 2 %, as Reticulum caps announces at 2 % of an
// interface's bandwidth): after an announce packet of airtime a, the next
// announce frame waits until a/share has passed since the later of its
// start and the end of the previous wait (announceGate). So over any
// span of time w the radio's announces last at most share × w plus one
// frame; they wait and never go early, and idle time earns no burst.
// Other frames pass the waiting announces. Waiting announces are served
// in order, the node's own (hops 0) first; a
// queued announce is replaced by a newer one of the same destination and
// target (Stats.AnnouncesCollapsed), and a queued broadcast announce is
// dropped once every peer but its origin has been heard broadcasting it
// (Stats.AnnouncesSuppressed: it would serve nobody). Stats.Airtime
// accounts the radio's airtime by kind (announce, hello, data, ACK/NACK/
// BYE).
//
// # Link MAC
//
// The MAC of a packet is the first 4 bytes of HMAC-SHA256 over every byte
// before it (the header with its poll flag included) under K(sender →
// destination):
//
//	shared  = X25519(sender's twin, destination's twin)
//	K(X→Y)  = HKDF-SHA256(secret = shared, salt = "qpc/lora-link/v1",
//	                      info = "qpc/lora-link/v1" 00 || lo || hi || d, 32 B)
//
// The twin of an identity is the X25519 key of its Ed25519 key
// (crypto.X25519PublicFromEd25519: the birational map; the private side
// is the Ed25519 scalar), so the keys come from the HELLOs alone: derived
// once when a peer's HELLO verifies, kept with the peer. lo and hi are
// the two 16-byte addresses in byte order, d is 00 when the sender is lo
// and 01 when it is hi: the two directions have different keys, so a
// packet cannot be reflected to its sender. A HELLO needs no MAC (it is
// signed), and a packet for every neighbour cannot have a pairwise one
// (see "Broadcast").
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
// After MaxRounds rounds (default 8) the frame is given up. When the peer
// was heard within Options.PeerSilence (default two HELLO intervals, 20
// minutes: a live peer HELLOs every interval ±10 %, so one lost HELLO
// does not make it silent), by any packet that verified (its HELLO, a
// DATA, ACK, NACK or BYE with its MAC, a broadcast), it is alive and the
// channel is busy or its reports collide: the frame alone is dropped
// (Stats.FramesDropped), the Conn stays up, and the next frame goes. A
// NACK in the last round is such a packet, so a frame given up by NACK is
// always dropped. Only a peer silent for the whole window fails the Conn
// with ErrPeerLost (Stats.FramesFailed); its routes go with it. Above the
// link, a dropped frame is a congestion signal: the node's end-to-end
// retransmission recovers the message, and the drop is counted by reason
// (the node's qpc_lora_frames_given_up_total{reason="dropped"}). A
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
// when. HELLOs, BYEs and frames of priority messages.Control are control
// traffic and may fill only (1 − DataShare) of the budget; data and bulk
// frames, and the ACKs and NACKs that answer any frame, may use all of
// it. When control traffic is at its ceiling, a data frame and a report
// may still go, and a report waiting is not held behind a HELLO or BYE
// that waits for the ceiling. (Reports were control traffic until issue
// 12: a busy relay whose data had filled more than the ceiling could no
// longer acknowledge anything, so every neighbour spent its rounds, and
// then the frame, on it; in the 30-node mesh of acceptance 2 the bridge
// node held 5000 transmissions and dropped as many frames as it
// delivered.) Options a packet
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
// (PriorityOf); WriteFramePriority (PriorityWriter) takes it. A frame
// whose bytes wait in the queue for the same peer already is not queued
// a second time (Stats.FramesCopies): an end-to-end retransmission that
// reaches a relay whose duty cycle still holds the first copy adds
// nothing but airtime there.
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
