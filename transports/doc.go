// Package transports is the seam between a qpc node and the network. It
// defines what a link is (Transport, Listener, Conn: authenticated,
// ordered, reliable frames between two identities), what a link can do
// (Info, Class, SelectForSize, Class.RecommendedCryptoMode), how links are
// named (ParseURI), and the framing shared by the stream transports. It
// holds no routing logic and imports nothing of qpc but crypto.
//
// The implementations live in sub-packages:
//
//	tcp            length-prefixed frames over TCP after a mutual Ed25519 handshake
//	quic           frames on one QUIC stream, TLS 1.3 with the identity key (quic-go)
//	mem            in-process twin for tests and the simulator (no sockets, no goroutines)
//	transporttest  the conformance suite every transport runs
//
// The contract of each interface is documented on it: who may call what
// concurrently, what Close does to blocked calls (they return an error
// matching net.ErrClosed), when io.EOF is returned, and which errors are
// typed (ErrFrameTooLarge, ErrBadFrame, ErrHandshake, ErrPeerMismatch).
// transporttest checks all of it.
//
// # Frame layout (tcp and quic)
//
// A stream carries frames back to back. Each is a length prefix and the
// body:
//
//	frame  = length body
//	length = len(body) as an unsigned LEB128 varint (7 bits per byte, least
//	         significant group first, high bit set on all but the last
//	         byte), in its shortest form, 1 to 5 bytes
//	body   = len(body) bytes, at most the receiver's frame limit
//
//	len(body)    length bytes
//	0            00
//	127          7f
//	128          80 01
//	300          ac 02
//	16384        80 80 01
//	1 MiB+4 KiB  80 a0 40        (DefaultMaxFrameSize)
//
// A prefix that is not in its shortest form (80 00) or runs past 5 bytes
// is ErrBadFrame. A length above the limit is ErrFrameTooLarge, returned
// before anything is allocated for the body. Both end the connection: the
// stream cannot be resynchronised. The prefix costs 1 byte for bodies below
// 128 B, 2 below 16 KiB, 3 below 2 MiB.
//
// # TCP handshake
//
// Before any frame, both sides prove their identity. Each sends its hello
// as soon as the connection is up, without waiting for the other's:
//
//	hello (68 bytes)
//	offset  size  field
//	0       3     magic "QPC" (51 50 43)
//	3       1     version, 01
//	4       32    Ed25519 public key
//	36      32    nonce, fresh random bytes
//
// After reading the peer's hello, each side sends a signature (64 bytes,
// Ed25519 with its identity key) over
//
//	"qpc/1 tcp handshake" 00 || role || dialer's hello || listener's hello
//
// where role is 44 ('D') in the dialer's signature and 4c ('L') in the
// listener's. Each verifies the other's signature with the key from the
// other's hello. The domain string keeps these signatures apart from every
// other use of the identity key, the role byte stops a signature from
// being reflected to its maker, and the two nonces bind it to this
// session. A side refuses a peer that presents its own key or echoes its
// nonce. Any failure, or not finishing within the handshake timeout
// (10 s by default for the dialer, 3 s for the listener), closes the
// connection with ErrHandshake. Then frames
// flow both ways. Each side sends two messages and never waits for more than
// the peer's previous one, so the exchange adds about one round trip to
// TCP's.
//
// TCP frames are not encrypted: the handshake authenticates the peer when
// the connection opens, and what the frames carry is protected end to end
// by the layers above.
//
// # QUIC
//
// One QUIC connection per link, TLS 1.3, ALPN "qpc/1". Both sides present
// a self-signed X.509 certificate holding their Ed25519 identity key;
// there is no CA: a peer is accepted if its single certificate carries an
// Ed25519 key (and not our own), and TLS's CertificateVerify proves it
// holds the private key. Peer is the address of that key. The dialer then
// opens one bidirectional stream and writes one byte, 01 (the frame
// stream), followed by frames in the layout above, both ways. A normal
// close sends CONNECTION_CLOSE with application error code 0; a broken
// stream setup uses code 1; a listener with too many setups pending (from
// the dialer's source or in all) closes a new connection with code 2.
//
// # Limits on what a stranger can hold
//
// A listener admits an inbound connection to its handshake only while
// fewer than 8 are pending from the same source (an IPv4 address or an
// IPv6 /64) and fewer than 64 in all, plus 16 slots kept for sources that
// completed a handshake recently; it closes the others at once (they see
// the connection close, and retry). A frame that has started arriving must
// be complete within the frame timeout (30 s by default) or the read fails
// with ErrFrameTimeout; frames above 64 KiB reserve their length from a
// FrameBudget shared by all connections before their body is read.
package transports
