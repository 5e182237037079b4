package link

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

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

	// DataOverhead is what a data packet adds to the bytes of the frame
	// it carries: the link header and the lora fragment header.
	DataOverhead = HeaderSize + lora.FragmentHeaderSize

	// HelloSize is the length of a HELLO packet.
	HelloSize = HeaderSize + helloBodySize

	// AckSize is the length of an ACK packet.
	AckSize = HeaderSize + 2

	// MaxNackSize is the length of the largest NACK packet: the message id
	// and a bitmap of 256 fragments.
	MaxNackSize = HeaderSize + 2 + lora.MaxFragments/8

	// ByeSize is the length of a BYE packet: the header alone.
	ByeSize = HeaderSize

	// MinMTU is the smallest radio packet the link can use: the data
	// overhead and one byte of frame.
	MinMTU = DataOverhead + 1
)

const (
	helloBodySize = 1 + 4 + ed25519.PublicKeySize + ed25519.SignatureSize // flags, time, key, signature

	// mark is the high nibble of the first byte: qpc LoRa link, version 0.
	mark     = 0xC0
	markMask = 0xF0
	pollFlag = 0x08
	kindMask = 0x07

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
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Hint is a short node identifier on air: the first HintSize bytes of its
// address. Hints are not unique (two of 300 nodes share one with a
// probability of about one half) and not authenticated; see doc.go.
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

// parseHeader splits a packet into its header and body. Errors match
// ErrNotLink (no mark) or ErrMalformed.
func parseHeader(pkt []byte) (header, []byte, error) {
	if len(pkt) == 0 || pkt[0]&markMask != mark {
		return header{}, nil, fmt.Errorf("%s: %w", prefix, ErrNotLink)
	}
	if len(pkt) < HeaderSize {
		return header{}, nil, fmt.Errorf("%s: %w: %d bytes, shorter than the %d-byte header", prefix, ErrMalformed, len(pkt), HeaderSize)
	}
	h := header{
		kind: Kind(pkt[0] & kindMask),
		poll: pkt[0]&pollFlag != 0,
		dst:  Hint{pkt[1], pkt[2]},
		src:  Hint{pkt[3], pkt[4]},
	}
	if h.kind < KindData || h.kind > KindBye {
		return header{}, nil, fmt.Errorf("%s: %w: unknown kind %d", prefix, ErrMalformed, h.kind)
	}
	if h.poll && h.kind != KindData {
		return header{}, nil, fmt.Errorf("%s: %w: poll flag on a %s packet", prefix, ErrMalformed, h.kind)
	}
	return h, pkt[HeaderSize:], nil
}

// dataPacket builds the data packet carrying fragment f.
func dataPacket(dst, src Hint, f lora.Fragment) []byte {
	b := make([]byte, 0, DataOverhead+len(f.Payload))
	b = appendHeader(b, header{kind: KindData, dst: dst, src: src})
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

// ackPacket acknowledges message id.
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
			return report{}, fmt.Errorf("%s: %w: ACK of %d bytes, want %d", prefix, ErrMalformed, HeaderSize+len(body), AckSize)
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
// (62720 at MTU 255, 10496 at MTU 51).
func FrameLimit(mtu int) int { return lora.MaxFrameFor(mtu - HeaderSize) }

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
