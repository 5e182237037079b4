package link

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports/lora"
)

// The on-air layout is documented in doc.go; this file is its only
// encoder and decoder.

// Sizes of the link's packets, in bytes.
const (
	// HeaderSize is the link header every packet starts with: the kind
	// byte, the destination hint and the source hint.
	HeaderSize = 1 + HintSize + HintSize

	// HintSize is the length of a destination or source hint: the first
	// bytes of a node's address.
	HintSize = 2

	// MACSize is the length of the MAC that ends every unicast packet
	// after the HELLO (DATA, ACK, NACK, BYE): HMAC-SHA256 under the
	// sender's key towards the destination, truncated.
	MACSize = 4

	// DataOverhead is what a data packet adds to the bytes of the frame
	// it carries: the link header, the lora fragment header and the MAC.
	DataOverhead = HeaderSize + lora.FragmentHeaderSize + MACSize

	// BcastOverhead is what a broadcast data packet (KindBcast) adds to
	// the frame bytes it carries: the link header and the lora fragment
	// header; no MAC (broadcast frames are authenticated by their
	// content, see doc.go). It carries as many frame bytes as a data
	// packet, so it is up to MACSize bytes shorter than the MTU.
	BcastOverhead = HeaderSize + lora.FragmentHeaderSize

	// HelloSize is the length of a HELLO packet.
	HelloSize = HeaderSize + helloBodySize

	// AckSize is the length of an ACK packet.
	AckSize = HeaderSize + 2 + MACSize

	// MaxNackSize is the length of the largest NACK packet: the message id
	// and a bitmap of 256 fragments.
	MaxNackSize = HeaderSize + 2 + lora.MaxFragments/8 + MACSize

	// ByeSize is the length of a BYE packet: the header and the MAC.
	ByeSize = HeaderSize + MACSize

	// MinMTU is the smallest radio packet the link can use: the data
	// overhead and one byte of frame.
	MinMTU = DataOverhead + 1
)

const (
	helloBodySize = 1 + 4 + ed25519.PublicKeySize + ed25519.SignatureSize // flags, time, key, signature

	// mark is the high nibble of the first byte: qpc LoRa link, version
	// 1. The high three bits 110 name the qpc link; the fourth is the
	// version: markV0 (0xC, without MACs) is refused as ErrVersion.
	mark       = 0xD0
	markMask   = 0xF0
	markV0     = 0xC0
	familyMask = 0xE0
	pollFlag   = 0x08
	kindMask   = 0x07

	// helloDomain prefixes the bytes a HELLO signature covers, so that it
	// can never be taken for a signature on anything else.
	helloDomain = "qpc/lora-hello/v0\x00"

	helloListening = 0x01 // flags: the sender has a listener
	helloSolicit   = 0x02 // flags: the sender asks for HELLOs in reply
	helloKnownBits = helloListening | helloSolicit
)

// Kind is what a link packet carries (the low 3 bits of its first byte).
type Kind uint8

// Packet kinds.
const (
	KindData  Kind = 1 // one lora fragment of a frame (the only kind with the poll flag)
	KindHello Kind = 2 // a signed presence announcement: broadcast, or to the peer a Dial picked
	KindAck   Kind = 3 // a message arrived whole
	KindNack  Kind = 4 // fragments of a message are missing, or it is unknown
	KindBye   Kind = 5 // the sender closed its connection to the destination
	// KindBcast is one lora fragment of a frame for every node in range
	// (destination ff ff): never acknowledged, ids of their own (issue 12).
	KindBcast Kind = 6
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindHello:
		return "hello"
	case KindAck:
		return "ack"
	case KindNack:
		return "nack"
	case KindBye:
		return "bye"
	case KindBcast:
		return "broadcast"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Hint is a short node identifier on air: the first HintSize bytes of its
// address. Hints are not unique (two of 300 nodes share one with a
// probability of about one half) and not authenticated: the MAC of a
// packet tells which of the peers with its source hint sent it; see
// doc.go.
type Hint [HintSize]byte

// Broadcast is the destination hint of packets for every node (HELLOs
// other than a Dial's).
var Broadcast = Hint{0xFF, 0xFF}

// HintOf is the hint of an address.
func HintOf(a crypto.Address) Hint { return Hint{a[0], a[1]} }

func (h Hint) String() string { return fmt.Sprintf("%02x%02x", h[0], h[1]) }

// header is the parsed link header.
type header struct {
	kind     Kind
	poll     bool
	dst, src Hint
}

func appendHeader(b []byte, h header) []byte {
	k := byte(mark) | byte(h.kind)&kindMask
	if h.poll {
		k |= pollFlag
	}
	return append(b, k, h.dst[0], h.dst[1], h.src[0], h.src[1])
}

// parseHeader splits a packet into its header and body; the body of a
// kind with a MAC (macked) ends before it, and the MAC is not checked
// here (macKey.verify). Errors match ErrNotLink (no mark), ErrVersion or
// ErrMalformed. It only slices pkt: lengths are checked before anything
// is read or allocated.
func parseHeader(pkt []byte) (header, []byte, error) {
	switch {
	case len(pkt) == 0 || pkt[0]&familyMask != mark&familyMask:
		return header{}, nil, fmt.Errorf("%s: %w", prefix, ErrNotLink)
	case pkt[0]&markMask != mark:
		return header{}, nil, fmt.Errorf("%s: %w: version %d, want %d", prefix, ErrVersion, (pkt[0]&markMask^markV0)>>4, (mark^markV0)>>4)
	case len(pkt) < HeaderSize:
		return header{}, nil, fmt.Errorf("%s: %w: %d bytes, shorter than the %d-byte header", prefix, ErrMalformed, len(pkt), HeaderSize)
	}
	h := header{
		kind: Kind(pkt[0] & kindMask),
		poll: pkt[0]&pollFlag != 0,
		dst:  Hint{pkt[1], pkt[2]},
		src:  Hint{pkt[3], pkt[4]},
	}
	if h.kind < KindData || h.kind > KindBcast {
		return header{}, nil, fmt.Errorf("%s: %w: unknown kind %d", prefix, ErrMalformed, h.kind)
	}
	if h.poll && h.kind != KindData {
		return header{}, nil, fmt.Errorf("%s: %w: poll flag on a %s packet", prefix, ErrMalformed, h.kind)
	}
	if !macked(h.kind) {
		return h, pkt[HeaderSize:], nil
	}
	if len(pkt) < HeaderSize+MACSize {
		return header{}, nil, fmt.Errorf("%s: %w: %s of %d bytes, shorter than header and MAC (%d)", prefix, ErrMalformed, h.kind, len(pkt), HeaderSize+MACSize)
	}
	return h, pkt[HeaderSize : len(pkt)-MACSize], nil
}

// macked reports whether packets of kind k end in a MAC: the unicast
// kinds after the HELLO. HELLOs prove themselves by signature, and a
// packet for every neighbour (broadcast) cannot carry a pairwise MAC.
func macked(k Kind) bool {
	switch k {
	case KindData, KindAck, KindNack, KindBye:
		return true
	}
	return false
}

// The per-pair MAC keys. Each node has an X25519 twin of its Ed25519 key
// (crypto.X25519PublicFromEd25519, Identity.X25519Private), so two nodes
// that have verified each other's HELLO share a secret without sending
// anything more:
//
//	shared  = X25519(our twin, the peer's twin)
//	K(X→Y)  = HKDF-SHA256(secret = shared, salt = "qpc/lora-link/v1",
//	                      info = "qpc/lora-link/v1" 00 || lo || hi || d,
//	                      length 32)
//	          lo, hi: the two 16-byte addresses in byte order; d = 00 when
//	          the sender X is lo, 01 when it is hi
//	MAC     = HMAC-SHA256(K(sender→destination), every byte before it)[0:4]
//
// So the keys differ by direction (a packet cannot be reflected back to
// its sender), and a packet names its sender by the key that checks it,
// whatever its hints say.
const linkKeyLabel = "qpc/lora-link/v1"

// macKey computes and checks the MACs of one direction of one pair. It is
// not safe for concurrent use (the transport's lock guards it).
type macKey struct{ h hash.Hash }

func newMACKey(k []byte) *macKey { return &macKey{h: hmac.New(sha256.New, k)} }

func (k *macKey) sum(msg []byte) [MACSize]byte {
	k.h.Reset()
	k.h.Write(msg)
	var full [sha256.Size]byte
	var out [MACSize]byte
	copy(out[:], k.h.Sum(full[:0]))
	return out
}

// seal appends the MAC of pkt to it.
func (k *macKey) seal(pkt []byte) []byte {
	m := k.sum(pkt)
	return append(pkt, m[:]...)
}

// verify reports whether pkt (with its MAC at the end) carries the MAC
// of this key. Packets shorter than a MAC never verify.
func (k *macKey) verify(pkt []byte) bool {
	if len(pkt) < HeaderSize+MACSize {
		return false
	}
	n := len(pkt) - MACSize
	m := k.sum(pkt[:n])
	return hmac.Equal(m[:], pkt[n:])
}

// pairKeys are the two MAC keys of a link: tx for what we send the peer,
// rx for what it sends us.
type pairKeys struct{ tx, rx *macKey }

// derivePairKeys derives the MAC keys between us (own, the X25519 twin of
// our identity at address self) and a peer whose HELLO verified. Errors
// match ErrBadHello: a key without an X25519 twin, or a low-order one.
func derivePairKeys(own *ecdh.PrivateKey, self crypto.Address, peerKey ed25519.PublicKey, peerAddr crypto.Address) (pairKeys, error) {
	pub, err := crypto.X25519PublicFromEd25519(peerKey)
	if err != nil {
		return pairKeys{}, fmt.Errorf("%s: %w: %s: %w", prefix, ErrBadHello, peerAddr.Short(), err)
	}
	shared, err := own.ECDH(pub)
	if err != nil {
		return pairKeys{}, fmt.Errorf("%s: %w: %s: key agreement: %w", prefix, ErrBadHello, peerAddr.Short(), err)
	}
	defer clear(shared)
	tx, err := directionKey(shared, self, peerAddr)
	if err != nil {
		return pairKeys{}, err
	}
	rx, err := directionKey(shared, peerAddr, self)
	if err != nil {
		return pairKeys{}, err
	}
	return pairKeys{tx: newMACKey(tx), rx: newMACKey(rx)}, nil
}

// directionKey is K(from→to) of the derivation above.
func directionKey(shared []byte, from, to crypto.Address) ([]byte, error) {
	lo, hi, d := from, to, byte(0)
	if bytes.Compare(from[:], to[:]) > 0 {
		lo, hi, d = to, from, 1
	}
	info := make([]byte, 0, len(linkKeyLabel)+1+2*len(lo)+1)
	info = append(append(append(append(append(info, linkKeyLabel...), 0), lo[:]...), hi[:]...), d)
	k, err := hkdf.Key(sha256.New, shared, []byte(linkKeyLabel), string(info), sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: derive link key: %w", prefix, err)
	}
	return k, nil
}

// dataPacket builds the data packet carrying fragment f, without its MAC
// (the poll flag is set, and the MAC added, as it goes on air).
func dataPacket(dst, src Hint, f lora.Fragment) []byte {
	b := make([]byte, 0, DataOverhead+len(f.Payload))
	b = appendHeader(b, header{kind: KindData, dst: dst, src: src})
	return lora.AppendFragment(b, f)
}

// bcastPacket builds the broadcast data packet carrying fragment f: the
// layout of a data packet, kind KindBcast, destination Broadcast.
func bcastPacket(src Hint, f lora.Fragment) []byte {
	b := make([]byte, 0, BcastOverhead+len(f.Payload))
	b = appendHeader(b, header{kind: KindBcast, dst: Broadcast, src: src})
	return lora.AppendFragment(b, f)
}

// hello is a parsed, verified HELLO.
type hello struct {
	key       ed25519.PublicKey
	addr      crypto.Address
	time      uint32 // unix seconds
	listening bool
	solicit   bool
}

// helloPacket builds and signs a HELLO from id to dst (Broadcast, or the
// peer a Dial picked).
func helloPacket(id *crypto.Identity, dst Hint, unix uint32, listening, solicit bool) []byte {
	var flags byte
	if listening {
		flags |= helloListening
	}
	if solicit {
		flags |= helloSolicit
	}
	b := make([]byte, 0, HelloSize)
	b = appendHeader(b, header{kind: KindHello, dst: dst, src: HintOf(id.Address())})
	b = append(b, flags)
	b = binary.BigEndian.AppendUint32(b, unix)
	b = append(b, id.PublicKey()...)
	sig := id.Sign(helloSigned(b))
	return append(b, sig...)
}

// helloSigned is what a HELLO signature covers: the domain string and
// every byte of the packet before the signature.
func helloSigned(unsigned []byte) []byte {
	return append([]byte(helloDomain), unsigned...)
}

// parseHello checks a HELLO (pkt is the whole packet, h its header) and
// returns it. It verifies the layout, that the source hint is the key's
// and the signature (which covers the destination). Errors match
// ErrMalformed or ErrBadHello. Freshness is the caller's to check.
func parseHello(h header, pkt []byte) (hello, error) {
	if len(pkt) != HelloSize {
		return hello{}, fmt.Errorf("%s: %w: HELLO of %d bytes, want %d", prefix, ErrMalformed, len(pkt), HelloSize)
	}
	body := pkt[HeaderSize:]
	flags := body[0]
	if flags&^helloKnownBits != 0 {
		return hello{}, fmt.Errorf("%s: %w: HELLO flags %#02x", prefix, ErrMalformed, flags)
	}
	key := ed25519.PublicKey(append([]byte(nil), body[5:5+ed25519.PublicKeySize]...))
	addr := crypto.AddressOf(key)
	if HintOf(addr) != h.src {
		return hello{}, fmt.Errorf("%s: %w: source hint %s is not the key's (%s)", prefix, ErrBadHello, h.src, HintOf(addr))
	}
	sig := pkt[HelloSize-ed25519.SignatureSize:]
	if !ed25519.Verify(key, helloSigned(pkt[:HelloSize-ed25519.SignatureSize]), sig) {
		return hello{}, fmt.Errorf("%s: %w: bad signature from %s", prefix, ErrBadHello, addr.Short())
	}
	return hello{
		key:       key,
		addr:      addr,
		time:      binary.BigEndian.Uint32(body[1:5]),
		listening: flags&helloListening != 0,
		solicit:   flags&helloSolicit != 0,
	}, nil
}

// ackPacket acknowledges message id; the packet builders below return
// packets without their MAC (macKey.seal adds it).
func ackPacket(dst, src Hint, id uint16) []byte {
	b := make([]byte, 0, AckSize)
	b = appendHeader(b, header{kind: KindAck, dst: dst, src: src})
	return binary.BigEndian.AppendUint16(b, id)
}

// nackPacket reports the missing fragments of message id (sorted
// indices 0..255); none means "unknown: resend everything".
func nackPacket(dst, src Hint, id uint16, missing []int) []byte {
	b := make([]byte, 0, MaxNackSize)
	b = appendHeader(b, header{kind: KindNack, dst: dst, src: src})
	b = binary.BigEndian.AppendUint16(b, id)
	if len(missing) == 0 {
		return b
	}
	bitmap := make([]byte, missing[len(missing)-1]/8+1)
	for _, i := range missing {
		bitmap[i/8] |= 1 << (i % 8)
	}
	return append(b, bitmap...)
}

// report is a parsed ACK or NACK.
type report struct {
	id      uint16
	ack     bool  // the message arrived whole
	missing []int // NACK: the missing indices, ascending; none: unknown
}

// parseReport parses the body of an ACK or NACK. Errors match ErrMalformed.
func parseReport(kind Kind, body []byte) (report, error) {
	if len(body) < 2 {
		return report{}, fmt.Errorf("%s: %w: %s without a message id", prefix, ErrMalformed, kind)
	}
	r := report{id: binary.BigEndian.Uint16(body), ack: kind == KindAck}
	bitmap := body[2:]
	switch {
	case kind == KindAck:
		if len(bitmap) != 0 {
			return report{}, fmt.Errorf("%s: %w: ACK of %d bytes, want %d", prefix, ErrMalformed, HeaderSize+len(body)+MACSize, AckSize)
		}
		return r, nil
	case len(bitmap) > lora.MaxFragments/8:
		return report{}, fmt.Errorf("%s: %w: NACK bitmap of %d bytes, at most %d", prefix, ErrMalformed, len(bitmap), lora.MaxFragments/8)
	case len(bitmap) > 0 && bitmap[len(bitmap)-1] == 0:
		return report{}, fmt.Errorf("%s: %w: NACK bitmap not in its shortest form", prefix, ErrMalformed)
	}
	for i, b := range bitmap {
		for bit := range 8 {
			if b&(1<<bit) != 0 {
				r.missing = append(r.missing, i*8+bit)
			}
		}
	}
	return r, nil
}

// byePacket tells dst that src closed its connection to it.
func byePacket(dst, src Hint) []byte {
	return appendHeader(make([]byte, 0, ByeSize), header{kind: KindBye, dst: dst, src: src})
}

// FrameLimit is the largest frame a radio with packets of mtu bytes
// carries: lora.MaxFragments fragments of mtu - DataOverhead bytes
// (61696 at MTU 255, 9472 at MTU 51).
func FrameLimit(mtu int) int { return lora.MaxFrameFor(mtu - HeaderSize - MACSize) }

// Overhead reports how a frame of frameLen bytes travels with packets of
// mtu bytes: the number of data packets and the bytes they add to the
// frame (DataOverhead each). It does not count the ACK that answers them
// (AckSize bytes the other way, when nothing was lost). frameLen must be
// 1..FrameLimit(mtu).
func Overhead(frameLen, mtu int) (packets, bytes int) {
	chunk := mtu - DataOverhead
	if chunk < 1 || frameLen < 1 {
		return 0, 0
	}
	packets = (frameLen + chunk - 1) / chunk
	return packets, packets * DataOverhead
}
