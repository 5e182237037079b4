package transports

import "fmt"

// Info describes the links a transport makes: what a frame can carry and
// how fast. The router uses it to pick a link (SelectForSize) and the
// crypto layer to pick a mode (ClassOf, Class.RecommendedCryptoMode). A
// sender whose next hop is reachable only over Constrained or
// SeverelyConstrained links seals its 1:1 messages as compact envelopes
// (messages.Compact: HPKE auth mode instead of a signature; see
// actors/router/compact.go).
type Info struct {
	// Name is the transport's scheme: "tcp", "quic", "mem", "lora".
	Name string
	// MTU is the largest frame, in bytes, the link carries as one unit
	// without fragmentation. Stream transports (tcp, quic) carry a whole
	// frame as one unit, so their MTU is their frame limit; a LoRa radio's
	// MTU is one packet's payload.
	MTU int
	// MaxFrame is the largest frame WriteFrame accepts. It is larger than
	// MTU only on a transport that fragments (LoRa); zero means MTU.
	MaxFrame int
	// Bitrate is the link's usable rate in bits per second (nominal for IP
	// transports, computed from the modulation for LoRa).
	Bitrate int64
	// Class is ClassOf(this Info), filled in by the transport.
	Class Class
	// FlowControl: a peer that sends faster than this node reads is
	// slowed by the link itself (TCP's window, QUIC's stream credit), so
	// the node holds a frame back by not reading instead of dropping it.
	// A radio has no such thing: what it cannot take is dropped.
	FlowControl bool
}

// Limit is the largest frame the link accepts: MaxFrame, or MTU when the
// link does not fragment.
func (i Info) Limit() int { return max(i.MTU, i.MaxFrame) }

func (i Info) String() string {
	return fmt.Sprintf("%s(mtu=%d max=%d bitrate=%d class=%s)", i.Name, i.MTU, i.Limit(), i.Bitrate, i.Class)
}

// Class is a link's capability class. It is derived from the link's
// properties, never configured, so every node classifies a link alike.
type Class uint8

// Capability classes, from the most to the least capable. The zero Class
// is "unset" and is what an Info gets before the transport fills it in.
const (
	Unconstrained Class = iota + 1
	Medium
	Constrained
	SeverelyConstrained
)

var classNames = [...]string{"unset", "unconstrained", "medium", "constrained", "severely-constrained"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Thresholds of ClassOf. A link belongs to the first class whose bitrate
// AND MTU minimums it meets; a link that misses either falls through.
//
//   - Unconstrained: >= 1 Mbit/s and MTU >= 64 KiB. The post-quantum hybrid
//     (X25519 + ML-KEM-768) adds about 2.3 KB to every KeyPackage, and a
//     Commit or Welcome for a few dozen members reaches tens of KiB. 64 KiB
//     fits such a message in one frame, and 1 Mbit/s moves it in about
//     half a second. Every IP link (tcp, quic) lands here by default.
//   - Medium: >= 64 kbit/s and MTU >= 1 KiB. Classic MLS with X25519 and
//     Ed25519 has KeyPackages of about 300 B and Commits around 1 KiB for
//     small groups: one frame, about 128 ms at 64 kbit/s. Slow cellular,
//     satellite messengers, BLE bridges.
//   - Constrained: >= 1 kbit/s and MTU >= 128 B. MLS-Lite's signed message
//     is a ~30 B header plus a 64 B Ed25519 signature, so a packet of
//     128 B still has room for a payload. LoRa at SF7 to SF9 on 125 kHz
//     (5.5 to 1.8 kbit/s, 222 to 255 B packets) lands here.
//   - SeverelyConstrained: everything else, notably LoRa at SF10 to SF12
//     (980 to 250 bit/s, where LoRaWAN allows only 51 B packets): a 64 B
//     signature per message is too dear, so messages go unsigned inside
//     the group's AEAD.
//
// A zero (unknown) bitrate or MTU classifies as SeverelyConstrained: a mode
// too heavy for its link fails silently (frames never arrive), while the
// compact mode still works everywhere and is still end-to-end encrypted.
// Transports therefore always fill in both.
const (
	UnconstrainedMinBitrate = 1_000_000
	UnconstrainedMinMTU     = 64 << 10
	MediumMinBitrate        = 64_000
	MediumMinMTU            = 1 << 10
	ConstrainedMinBitrate   = 1_000
	ConstrainedMinMTU       = 128
)

// ClassOf derives the capability class of a link from its bitrate and MTU
// (see the thresholds above). It ignores info.Class.
func ClassOf(info Info) Class {
	switch {
	case info.Bitrate >= UnconstrainedMinBitrate && info.MTU >= UnconstrainedMinMTU:
		return Unconstrained
	case info.Bitrate >= MediumMinBitrate && info.MTU >= MediumMinMTU:
		return Medium
	case info.Bitrate >= ConstrainedMinBitrate && info.MTU >= ConstrainedMinMTU:
		return Constrained
	default:
		return SeverelyConstrained
	}
}

// WithClass returns info with Class set to ClassOf(info).
func (i Info) WithClass() Info {
	i.Class = ClassOf(i)
	return i
}

// CryptoMode names a group-encryption mode. The crypto package implements
// and negotiates them; this is only the recommendation a link class makes.
type CryptoMode uint8

// Crypto modes, from the heaviest to the most compact.
const (
	// CryptoMLSHybridPQ is MLS (RFC 9420) with a hybrid X25519 + ML-KEM-768
	// KEM: post-quantum confidentiality, the largest messages.
	CryptoMLSHybridPQ CryptoMode = iota + 1
	// CryptoMLS is MLS (RFC 9420) with X25519 and Ed25519.
	CryptoMLS
	// CryptoMLSLite is symmetric encryption with keys derived from the MLS
	// epoch secret; every message is signed with the sender's Ed25519 key.
	CryptoMLSLite
	// CryptoMLSLiteCompact is MLS-Lite without per-message signatures
	// (sender authenticity only at group level, through the AEAD) and with
	// compact headers: for links where 64 B per message is too dear.
	CryptoMLSLiteCompact
)

var cryptoModeNames = [...]string{"unset", "mls-hybrid-pq", "mls", "mls-lite", "mls-lite-compact"}

func (m CryptoMode) String() string {
	if int(m) < len(cryptoModeNames) {
		return cryptoModeNames[m]
	}
	return fmt.Sprintf("crypto-mode(%d)", uint8(m))
}

// RecommendedCryptoMode is the group-encryption mode for a link of class c.
// An unset or unknown class gets the compact mode, like an unknown link.
func (c Class) RecommendedCryptoMode() CryptoMode {
	switch c {
	case Unconstrained:
		return CryptoMLSHybridPQ
	case Medium:
		return CryptoMLS
	case Constrained:
		return CryptoMLSLite
	default:
		return CryptoMLSLiteCompact
	}
}

// SelectForSize picks the link to send a frame of size bytes on and
// returns its index in links; ok is false when no link can carry it.
//
// The rule is deliberately simple:
//
//  1. Prefer links whose MTU holds the frame whole (no fragmentation).
//  2. Otherwise use links that accept the frame by fragmenting it
//     (MaxFrame >= size, LoRa).
//  3. Within the chosen group, take the highest bitrate; on a tie, the
//     lowest index, so the caller's order (e.g. configuration order) breaks
//     ties deterministically.
func SelectForSize(links []Info, size int) (index int, ok bool) {
	best, bestTier := -1, 3
	for i, l := range links {
		tier := 3 // cannot carry the frame
		switch {
		case size <= l.MTU:
			tier = 1
		case size <= l.Limit():
			tier = 2
		}
		if tier == 3 {
			continue
		}
		if tier < bestTier || (tier == bestTier && l.Bitrate > links[best].Bitrate) {
			best, bestTier = i, tier
		}
	}
	return best, best >= 0
}
