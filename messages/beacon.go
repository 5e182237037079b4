package messages

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// A Beacon is the signed UDP multicast datagram a node sends on its LAN so
// that peers there can find it without configuration (transports/discovery).
//
// Wire form, a CBOR array (Core Deterministic Encoding):
//
//	[ tag: uint = TagBeacon,
//	  public_key: bstr .size 32,          ; Ed25519
//	  time: uint,                         ; unix seconds when sent
//	  listeners: [* [scheme: uint, port: uint, host: bstr .size (0 / 4 / 16)]],
//	  signature: bstr .size 64 ]          ; Ed25519 over BeaconSigningBytes
//
// A listener with an empty host means "the IP address this beacon came
// from", which keeps the beacon small and right behind NAT-less LAN
// renumbering. The signature covers everything but itself; the source IP is
// not covered, so discovery gives hints only: the transport handshake must
// still authenticate the peer's key.
type Beacon struct {
	_         struct{} `cbor:",toarray"`
	Tag       Tag
	PublicKey []byte
	Time      uint64
	Listeners []BeaconListener
	Signature []byte
}

// BeaconListener is one address a node accepts connections on.
type BeaconListener struct {
	_      struct{} `cbor:",toarray"`
	Scheme Scheme
	Port   uint16
	// Host is empty (use the beacon's source address), or an IPv4 (4 bytes)
	// or IPv6 (16 bytes) address.
	Host []byte
}

// TagBeacon is version 0 of FrameBeacon.
const TagBeacon Tag = Tag(FrameBeacon) // MakeTag(FrameBeacon, 0)

// Beacon limits. MaxBeaconSize is checked before decoding; a beacon with
// MaxBeaconListeners IPv4 listeners fits in it.
const (
	MaxBeaconSize      = 256
	MaxBeaconListeners = 8
)

// BeaconDomain prefixes the bytes a beacon signature covers, so that a
// beacon signature can never be taken for a signature on anything else.
const BeaconDomain = "qpc/beacon/v0\x00"

// Scheme names the transport of a listener. Unknown schemes decode fine
// (a newer node may speak more) and are skipped by the receiver.
type Scheme uint8

// Transport schemes, as in listen URIs.
const (
	SchemeTCP  Scheme = 1 // tcp://host:port
	SchemeQUIC Scheme = 2 // quic://host:port
)

func (s Scheme) String() string {
	switch s {
	case SchemeTCP:
		return "tcp"
	case SchemeQUIC:
		return "quic"
	}
	return fmt.Sprintf("scheme%d", uint8(s))
}

// ParseScheme maps a URI scheme to its code; ok is false for schemes a
// beacon cannot carry (lora+serial, mem, ...).
func ParseScheme(name string) (s Scheme, ok bool) {
	switch name {
	case "tcp":
		return SchemeTCP, true
	case "quic":
		return SchemeQUIC, true
	}
	return 0, false
}

// NewBeacon fills in the tag, key, time and listeners of an unsigned beacon;
// Sign it before EncodeBeacon.
func NewBeacon(pub ed25519.PublicKey, at time.Time, listeners []BeaconListener) Beacon {
	var t uint64
	if s := at.Unix(); s > 0 {
		t = uint64(s)
	}
	return Beacon{Tag: TagBeacon, PublicKey: pub, Time: t, Listeners: listeners}
}

// SentAt is the beacon's timestamp.
func (b *Beacon) SentAt() time.Time {
	if b.Time > 1<<62 {
		return time.Unix(1<<62, 0)
	}
	return time.Unix(int64(b.Time), 0)
}

// beaconTBS is the beacon without its signature: what the signature covers.
type beaconTBS struct {
	_         struct{} `cbor:",toarray"`
	Tag       Tag
	PublicKey []byte
	Time      uint64
	Listeners []BeaconListener
}

// SigningBytes is the canonical to-be-signed byte string: BeaconDomain
// followed by the deterministic CBOR encoding of the beacon's first four
// fields.
func (b *Beacon) SigningBytes() ([]byte, error) {
	body, err := Marshal(beaconTBS{Tag: b.Tag, PublicKey: b.PublicKey, Time: b.Time, Listeners: b.Listeners})
	if err != nil {
		return nil, err
	}
	return append([]byte(BeaconDomain), body...), nil
}

// Sign sets the signature with sign, which signs with the private key of
// b.PublicKey (for example (*crypto.Identity).Sign).
func (b *Beacon) Sign(sign func(msg []byte) []byte) error {
	if err := b.validate(); err != nil {
		return err
	}
	tbs, err := b.SigningBytes()
	if err != nil {
		return err
	}
	b.Signature = sign(tbs)
	return nil
}

// Verify checks the signature against the beacon's own public key. An
// unsigned beacon and a wrong signature both give ErrBadSignature.
func (b *Beacon) Verify() error {
	if len(b.PublicKey) != ed25519.PublicKeySize { // ed25519.Verify panics on other lengths
		return fmt.Errorf("%w: beacon public key has %d bytes, want %d", ErrMalformed, len(b.PublicKey), ed25519.PublicKeySize)
	}
	if len(b.Signature) == 0 {
		return fmt.Errorf("%w: beacon is unsigned", ErrBadSignature)
	}
	if len(b.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: beacon signature has %d bytes, want %d", ErrBadSignature, len(b.Signature), ed25519.SignatureSize)
	}
	tbs, err := b.SigningBytes()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !ed25519.Verify(b.PublicKey, tbs, b.Signature) {
		return fmt.Errorf("%w: beacon signature does not verify", ErrBadSignature)
	}
	return nil
}

// validate checks everything but the signature.
func (b *Beacon) validate() error {
	if err := CheckTag(uint64(b.Tag), TagBeacon); err != nil {
		return err
	}
	if len(b.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: beacon public key has %d bytes, want %d", ErrMalformed, len(b.PublicKey), ed25519.PublicKeySize)
	}
	if len(b.Listeners) > MaxBeaconListeners {
		return fmt.Errorf("%w: beacon has %d listeners, limit %d", ErrMalformed, len(b.Listeners), MaxBeaconListeners)
	}
	for i, l := range b.Listeners {
		if l.Scheme == 0 || l.Port == 0 {
			return fmt.Errorf("%w: beacon listener %d: scheme %d port %d", ErrMalformed, i, l.Scheme, l.Port)
		}
		if n := len(l.Host); n != 0 && n != 4 && n != 16 {
			return fmt.Errorf("%w: beacon listener %d: host has %d bytes, want 0, 4 or 16", ErrMalformed, i, n)
		}
	}
	return nil
}

// EncodeBeacon encodes a signed beacon. It refuses an unsigned one
// (ErrBadSignature), out-of-range fields (ErrMalformed) and a result longer
// than MaxBeaconSize (ErrTooLarge). It does not verify the signature.
func EncodeBeacon(b Beacon) ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	if len(b.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: beacon is unsigned", ErrBadSignature)
	}
	out, err := Marshal(b)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxBeaconSize {
		return nil, fmt.Errorf("%w: beacon encodes to %d bytes, limit %d", ErrTooLarge, len(out), MaxBeaconSize)
	}
	return out, nil
}

// DecodeBeacon decodes and verifies a beacon received from the network.
// In order, it refuses: more than MaxBeaconSize bytes (ErrTooLarge, before
// any decoding), another frame type (ErrUnknownType) or beacon version
// (ErrUnsupportedVersion), anything but the canonical encoding of a valid
// beacon (ErrMalformed), and a missing or wrong signature (ErrBadSignature).
// It never panics.
func DecodeBeacon(data []byte) (Beacon, error) {
	var b Beacon
	if err := decodeFrame(data, MaxBeaconSize, "beacon", TagBeacon, &b); err != nil {
		return Beacon{}, err
	}
	if err := b.validate(); err != nil {
		return Beacon{}, err
	}
	if err := b.Verify(); err != nil {
		return Beacon{}, err
	}
	return b, nil
}
