package messages

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"testing"
	"time"
)

// envelopeGoldenExpiry is 2026-01-02T00:00:00Z.
var envelopeGoldenExpiry = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)

// envelopeGoldenPayload stands for a sealed 32-byte text: 80 bytes, the
// concatenation of SHA-256("qpc golden sealed payload" + "0", "1", "2").
func envelopeGoldenPayload() []byte {
	var p []byte
	for _, c := range "012" {
		s := sha256.Sum256([]byte("qpc golden sealed payload" + string(c)))
		p = append(p, s[:]...)
	}
	return p[:32+sealOverhead]
}

// goldenEnvelope: from the announce vectors' key to the beacon vector's
// key, hop limit 8, hop count 0, seq 1, sealed payload of 80 bytes.
func goldenEnvelope(t testing.TB) Envelope {
	priv := announceGoldenKey()
	e := NewEnvelope(AddressOf(priv.Public().(ed25519.PublicKey)), AddressOf(goldenKey().Public().(ed25519.PublicKey)),
		DefaultHopLimit, envelopeGoldenExpiry, PayloadSealed, envelopeGoldenPayload())
	e.Seq = 1
	if err := e.Sign(signer(priv)); err != nil {
		t.Fatal(err)
	}
	return e
}

func envelopeGoldenPub() ed25519.PublicKey { return announceGoldenKey().Public().(ed25519.PublicKey) }

// sameEnvelope reports whether a and b are equal in every field.
func sameEnvelope(a, b Envelope) bool {
	return a.Tag == b.Tag && a.Hops == b.Hops && a.HopLimit == b.HopLimit &&
		a.Source == b.Source && a.Destination == b.Destination && a.Expiry == b.Expiry &&
		a.Seq == b.Seq && a.PayloadType == b.PayloadType && bytes.Equal(a.Payload, b.Payload) && bytes.Equal(a.Signature, b.Signature)
}

func TestEnvelopeGolden(t *testing.T) {
	e := goldenEnvelope(t)
	got, err := EncodeEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	id := e.ID()
	if updateGolden() {
		writeGolden(t, "envelope.golden", []string{
			"Envelope v0 (messages/envelope.go), hex of the CBOR encoding.",
			"signed by the key of announce.golden (seed SHA-256(\"qpc golden announce key\")),",
			"to the address of the key of beacon.golden (seed SHA-256(\"qpc golden beacon key\")),",
			"hops 0, hop limit 8, expiry 2026-01-02T00:00:00Z (1767312000), payload type 1 (sealed),",
			"payload 80 bytes (a sealed 32-byte text): SHA-256(\"qpc golden sealed payload\"+c) for c in 0,1,2, cut to 80.",
			"id: " + hex.EncodeToString(id[:]),
		}, got)
	}
	want := readGolden(t, "envelope.golden")
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding changed (run with -update if intended):\n got %x\nwant %x", got, want)
	}
	dec, err := DecodeEnvelope(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Verify(envelopeGoldenPub()); err != nil {
		t.Fatal(err)
	}
	if !sameEnvelope(dec, e) || dec.Expiry != 1767312000 || !dec.ExpiresAt().Equal(envelopeGoldenExpiry) || dec.IsBroadcast() {
		t.Fatalf("decoded %+v", dec)
	}
	if got := dec.ID(); hex.EncodeToString(got[:]) != goldenComment(t, "envelope.golden", "id") {
		t.Fatalf("id %x, golden %s", got, goldenComment(t, "envelope.golden", "id"))
	}
	if tag, err := FrameTag(want); err != nil || tag != TagEnvelope || uint8(TagEnvelope) != 0x11 {
		t.Fatalf("FrameTag = %v, %v", tag, err)
	}
	if len(want) > 200 {
		t.Errorf("envelope with a sealed 32-byte text is %d bytes, target 200", len(want))
	}
	t.Logf("envelope with an 80-byte payload: %d bytes", len(want))
}

func TestEnvelopeRoundTrip(t *testing.T) {
	priv := announceGoldenKey()
	pub := envelopeGoldenPub()
	src := AddressOf(pub)
	dst := AddressOf(goldenKey().Public().(ed25519.PublicKey))
	cases := []struct {
		name     string
		dst      [16]byte
		hops     uint8
		limit    uint8
		expiry   uint32
		pt       PayloadType
		payloadN int
	}{
		{"empty payload", dst, 0, 0, 1, PayloadTrace, 0},
		{"23 bytes", dst, 1, 8, 1767312000, PayloadReceipt, 23},
		{"24 bytes", dst, 8, 8, 1767312000, PayloadSealed, 24},
		{"sealed 32-byte text", dst, 0, 8, 1767312000, PayloadSealed, 80},
		{"255 bytes, broadcast", BroadcastAddress, 3, 7, math.MaxUint32, PayloadTraceReply, 255},
		{"256 bytes, 24 hops", dst, 24, 255, 0, PayloadSealed, 256},
		{"unknown payload type", dst, 255, 255, 5, 200, 1000},
		{"to itself", src, 0, 0, 5, PayloadSealed, 80},
		{"largest payload", dst, 255, 255, math.MaxUint32, 255, MaxPayloadSize},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte{0x5A}, c.payloadN)
			e := NewEnvelope(src, c.dst, c.limit, time.Time{}, c.pt, payload)
			e.Expiry = c.expiry
			if err := e.Sign(signer(priv)); err != nil {
				t.Fatal(err)
			}
			id := e.ID()
			e.Hops = c.hops
			enc, err := EncodeEnvelope(e)
			if err != nil {
				t.Fatal(err)
			}
			if len(enc) > MaxEnvelopeSize {
				t.Fatalf("%d bytes, over MaxEnvelopeSize", len(enc))
			}
			dec, err := DecodeEnvelope(enc)
			if err != nil {
				t.Fatal(err)
			}
			if err := dec.Verify(pub); err != nil {
				t.Fatal(err)
			}
			if !sameEnvelope(dec, e) {
				t.Fatalf("decoded %+v", dec)
			}
			if dec.ID() != id {
				t.Fatal("the ID depends on the hop count")
			}
			if dec.IsBroadcast() != (c.dst == BroadcastAddress) {
				t.Fatal("IsBroadcast")
			}
			again, err := EncodeEnvelope(dec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, again) {
				t.Fatalf("round trip changed the encoding")
			}
		})
	}
}

// rawEnvelope is an Envelope with every field free, to build bad frames.
type rawEnvelope struct {
	_           struct{} `cbor:",toarray"`
	Tag         uint64
	Hops        uint64
	HopLimit    uint64
	Source      []byte
	Destination []byte
	Expiry      uint64
	Seq         uint64
	PayloadType uint64
	Payload     []byte
	Signature   []byte
}

func rawOfEnvelope(e Envelope) rawEnvelope {
	return rawEnvelope{Tag: uint64(e.Tag), Hops: uint64(e.Hops), HopLimit: uint64(e.HopLimit), Source: bytes.Clone(e.Source[:]),
		Destination: bytes.Clone(e.Destination[:]), Expiry: uint64(e.Expiry), Seq: e.Seq, PayloadType: uint64(e.PayloadType),
		Payload: e.Payload, Signature: e.Signature}
}

// Refusals of DecodeEnvelope: everything but the signature check, which
// needs the sender's key (TestEnvelopeVerifyRejects).
func TestDecodeEnvelopeRejects(t *testing.T) {
	good := goldenEnvelope(t)
	enc, err := EncodeEnvelope(good)
	if err != nil {
		t.Fatal(err)
	}
	// raw changes fields freely and keeps the signature.
	raw := func(f func(r *rawEnvelope)) []byte {
		r := rawOfEnvelope(goldenEnvelope(t))
		f(&r)
		return mustMarshal(t, r)
	}
	// resigned changes an envelope and signs it again, bypassing Sign's checks.
	resigned := func(f func(e *Envelope)) []byte {
		e := goldenEnvelope(t)
		f(&e)
		tbs, err := e.SigningBytes()
		if err != nil {
			t.Fatal(err)
		}
		e.Signature = ed25519.Sign(announceGoldenKey(), tbs)
		return mustMarshal(t, e)
	}
	// at replaces n bytes at offset i of the golden encoding, checking what
	// is there first.
	at := func(i int, old, new []byte) []byte {
		if !bytes.Equal(enc[i:i+len(old)], old) {
			t.Fatalf("golden encoding at %d: %x, want %x", i, enc[i:i+len(old)], old)
		}
		out := append(bytes.Clone(enc[:i]), new...)
		return append(out, enc[i+len(old):]...)
	}
	const (
		offSource  = 4                 // array head, tag, hops, hop limit
		offExpiry  = offSource + 2*17  // after two 16-byte strings
		offPayload = offExpiry + 5 + 2 // after expiry, seq and payload type
	)
	bigPayload := bytes.Repeat([]byte{1}, MaxPayloadSize+1)

	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not an array", []byte{0x01}, ErrMalformed},
		{"empty array", []byte{0x80}, ErrMalformed},
		{"indefinite array", append([]byte{0x9f}, enc[1:]...), ErrMalformed},
		{"too large", make([]byte, MaxEnvelopeSize+1), ErrTooLarge},
		{"too large, valid start", append(bytes.Clone(enc), make([]byte, MaxEnvelopeSize+1-len(enc))...), ErrTooLarge},
		{"announce tag", append([]byte{0x8a, 0x02}, enc[2:]...), ErrUnknownType},
		{"beacon tag", append([]byte{0x8a, 0x0f}, enc[2:]...), ErrUnknownType},
		{"tag beyond a byte", []byte{0x8a, 0x19, 0x01, 0x01}, ErrUnknownType},
		{"version 0", append([]byte{0x8a, 0x01}, enc[2:]...), ErrUnsupportedVersion},
		{"version 2, two-byte tag", append([]byte{0x8a, 0x18, 0x21}, enc[2:]...), ErrUnsupportedVersion},
		{"truncated", enc[:len(enc)-1], ErrMalformed},
		{"truncated in the payload", enc[:offPayload+10], ErrMalformed},
		{"trailing byte", append(bytes.Clone(enc), 0x00), ErrMalformed},
		{"eight fields", mustMarshal(t, envelopeTBS{Tag: TagEnvelope, HopLimit: 1, PayloadType: 1}), ErrMalformed},
		{"non-shortest hops", at(2, []byte{0x00}, []byte{0x18, 0x00}), ErrMalformed},
		{"non-shortest hop limit", at(3, []byte{0x08}, []byte{0x18, 0x08}), ErrMalformed},
		{"non-shortest expiry", at(offExpiry, []byte{0x1a, 0x69, 0x57, 0x0a, 0x80}, []byte{0x1b, 0, 0, 0, 0, 0x69, 0x57, 0x0a, 0x80}), ErrMalformed},
		{"non-shortest payload length", at(offPayload, []byte{0x58, 0x50}, []byte{0x59, 0x00, 0x50}), ErrMalformed},
		{"hops over the hop limit", raw(func(r *rawEnvelope) { r.Hops = 9 }), ErrMalformed},
		{"hops over 255", raw(func(r *rawEnvelope) { r.Hops, r.HopLimit = 256, 256 }), ErrMalformed},
		{"expiry over 32 bits", raw(func(r *rawEnvelope) { r.Expiry = 1 << 32 }), ErrMalformed},
		{"payload type 0", resigned(func(e *Envelope) { e.PayloadType = 0 }), ErrMalformed},
		{"payload type over 255", raw(func(r *rawEnvelope) { r.PayloadType = 256 }), ErrMalformed},
		{"15-byte source", raw(func(r *rawEnvelope) { r.Source = r.Source[:15] }), ErrMalformed},
		{"17-byte source", raw(func(r *rawEnvelope) { r.Source = append(r.Source, 0) }), ErrMalformed},
		{"empty destination", raw(func(r *rawEnvelope) { r.Destination = nil }), ErrMalformed},
		{"15-byte destination", raw(func(r *rawEnvelope) { r.Destination = r.Destination[:15] }), ErrMalformed},
		{"source as an array of uints", func() []byte {
			r := rawOfEnvelope(good)
			src := make([]uint64, 16)
			for i, b := range r.Source {
				src[i] = uint64(b)
			}
			return mustMarshal(t, []any{r.Tag, r.Hops, r.HopLimit, src, r.Destination, r.Expiry, r.Seq, r.PayloadType, r.Payload, r.Signature})
		}(), ErrMalformed},
		{"broadcast source", resigned(func(e *Envelope) { e.Source = BroadcastAddress }), ErrMalformed},
		{"payload over MaxPayloadSize", raw(func(r *rawEnvelope) { r.Payload = bigPayload }), ErrTooLarge},
		{"unsigned", raw(func(r *rawEnvelope) { r.Signature = nil }), ErrBadSignature},
		{"short signature", raw(func(r *rawEnvelope) { r.Signature = r.Signature[:63] }), ErrBadSignature},
		{"long signature", raw(func(r *rawEnvelope) { r.Signature = append(bytes.Clone(r.Signature), 0) }), ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeEnvelope(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeEnvelope(%.40x...) = %v, want %v", c.in, err, c.want)
			}
		})
	}
}

// Envelopes that decode but must not verify.
func TestEnvelopeVerifyRejects(t *testing.T) {
	pub := envelopeGoldenPub()
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	otherPub := otherKey.Public().(ed25519.PublicKey)
	enc, err := EncodeEnvelope(goldenEnvelope(t))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		mod  func(e *Envelope)
		key  ed25519.PublicKey
	}{
		{"other destination", func(e *Envelope) { e.Destination[0] ^= 1 }, pub},
		{"made broadcast", func(e *Envelope) { e.Destination = BroadcastAddress }, pub},
		{"later expiry", func(e *Envelope) { e.Expiry++ }, pub},
		{"raised hop limit", func(e *Envelope) { e.HopLimit++ }, pub},
		{"lowered hop limit", func(e *Envelope) { e.HopLimit-- }, pub},
		{"other payload type", func(e *Envelope) { e.PayloadType = PayloadReceipt }, pub},
		{"flipped payload bit", func(e *Envelope) { e.Payload[40] ^= 0x80 }, pub},
		{"shorter payload", func(e *Envelope) { e.Payload = e.Payload[:79] }, pub},
		{"flipped signature bit", func(e *Envelope) { e.Signature[10] ^= 1 }, pub},
		{"unsigned", func(e *Envelope) { e.Signature = nil }, pub},
		{"other source, right key", func(e *Envelope) { e.Source = AddressOf(otherPub) }, pub},
		{"other source, its key", func(e *Envelope) { e.Source = AddressOf(otherPub) }, otherPub},
		{"key of another node", func(e *Envelope) {}, otherPub},
		{"short key", func(e *Envelope) {}, pub[:31]},
		{"no key", func(e *Envelope) {}, nil},
		{"signed by another node for our source", func(e *Envelope) {
			tbs, _ := e.SigningBytes()
			e.Signature = ed25519.Sign(otherKey, tbs)
		}, pub},
		{"signature without domain", func(e *Envelope) {
			tbs, _ := e.SigningBytes()
			e.Signature = ed25519.Sign(announceGoldenKey(), tbs[len(EnvelopeDomain):])
		}, pub},
		{"signature with the announce domain", func(e *Envelope) {
			tbs, _ := e.SigningBytes()
			e.Signature = ed25519.Sign(announceGoldenKey(), append([]byte(AnnounceDomain), tbs[len(EnvelopeDomain):]...))
		}, pub},
		{"signature covering the hop count", func(e *Envelope) {
			r := rawOfEnvelope(*e)
			r.Signature = nil
			e.Signature = ed25519.Sign(announceGoldenKey(), append([]byte(EnvelopeDomain), mustMarshal(t, r)...))
		}, pub},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := DecodeEnvelope(enc)
			if err != nil {
				t.Fatal(err)
			}
			e.Payload = bytes.Clone(e.Payload)
			e.Signature = bytes.Clone(e.Signature)
			c.mod(&e)
			if err := e.Verify(c.key); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify = %v, want %v", err, ErrBadSignature)
			}
			// The same through the wire, where the envelope still decodes.
			if wire, err := Marshal(e); err == nil {
				if d, err := DecodeEnvelope(wire); err == nil {
					if err := d.Verify(c.key); !errors.Is(err, ErrBadSignature) {
						t.Fatalf("decoded: Verify = %v, want %v", err, ErrBadSignature)
					}
				}
			}
		})
	}
}

func TestEncodeEnvelopeRejects(t *testing.T) {
	e := goldenEnvelope(t)
	e.Signature = nil
	if _, err := EncodeEnvelope(e); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("unsigned: %v", err)
	}
	e = goldenEnvelope(t)
	e.Tag = MakeTag(FrameEnvelope, 0)
	if _, err := EncodeEnvelope(e); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("version 0: %v", err)
	}
	e = goldenEnvelope(t)
	e.Hops = e.HopLimit + 1
	if _, err := EncodeEnvelope(e); !errors.Is(err, ErrMalformed) {
		t.Fatalf("hops over the limit: %v", err)
	}
	e = goldenEnvelope(t)
	e.Payload = make([]byte, MaxPayloadSize+1)
	if _, err := EncodeEnvelope(e); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("payload over MaxPayloadSize: %v", err)
	}
	if err := e.Sign(signer(announceGoldenKey())); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Sign with a payload over MaxPayloadSize: %v", err)
	}
	e = goldenEnvelope(t)
	e.PayloadType = 0
	if err := e.Sign(signer(announceGoldenKey())); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Sign with payload type 0: %v", err)
	}
}

// The widest envelope EncodeEnvelope accepts still decodes: MaxPayloadSize
// leaves room for every other field at its widest.
func TestEnvelopeLimits(t *testing.T) {
	priv := announceGoldenKey()
	e := NewEnvelope(AddressOf(envelopeGoldenPub()), BroadcastAddress, 255, time.Unix(math.MaxUint32, 0), 255, make([]byte, MaxPayloadSize))
	e.Hops, e.Seq = 255, math.MaxUint64
	if err := e.Sign(signer(priv)); err != nil {
		t.Fatal(err)
	}
	enc, err := EncodeEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	if overhead := len(enc) - MaxPayloadSize; overhead != 125 || len(enc) > MaxEnvelopeSize {
		t.Fatalf("widest envelope: %d bytes, overhead %d", len(enc), overhead)
	}
	if _, err := DecodeEnvelope(enc); err != nil {
		t.Fatal(err)
	}
	// The widest announce fits MaxAnnounceSize.
	a := NewAnnounce(envelopeGoldenPub(), make([]byte, SealKeySize), 0xFFFF, make([]byte, MaxKeyPackageHashSize), time.Now())
	a.Hops = 255
	if err := a.Sign(signer(priv)); err != nil {
		t.Fatal(err)
	}
	if enc, err := EncodeAnnounce(a); err != nil || len(enc) != 184 || len(enc) > MaxAnnounceSize {
		t.Fatalf("widest announce: %d bytes, %v", len(enc), err)
	}
	// NewEnvelope clamps the expiry to 32 bits.
	if e := NewEnvelope(e.Source, e.Destination, 1, time.Unix(1<<40, 0), 1, nil); e.Expiry != math.MaxUint32 {
		t.Fatalf("expiry after 2106: %d", e.Expiry)
	}
	if e := NewEnvelope(e.Source, e.Destination, 1, time.Unix(-5, 0), 1, nil); e.Expiry != 0 {
		t.Fatalf("expiry before 1970: %d", e.Expiry)
	}
}

// The hop count is not signed: forwarding changes it and nothing else, the
// envelope still verifies and keeps its ID, until the hop limit.
func TestEnvelopeHopsNotSigned(t *testing.T) {
	pub := envelopeGoldenPub()
	for _, limit := range []uint8{0, 1, DefaultHopLimit, 30, 255} {
		e := goldenEnvelope(t)
		e.HopLimit = limit
		if err := e.Sign(signer(announceGoldenKey())); err != nil {
			t.Fatal(err)
		}
		id := e.ID()
		frame, err := EncodeEnvelope(e)
		if err != nil {
			t.Fatal(err)
		}
		for hop := 1; hop <= int(limit); hop++ {
			prev := bytes.Clone(frame)
			next, err := ForwardEnvelope(frame)
			if err != nil {
				t.Fatalf("limit %d, hop %d: %v", limit, hop, err)
			}
			if !bytes.Equal(frame, prev) {
				t.Fatal("ForwardEnvelope modified its input")
			}
			d, err := DecodeEnvelope(next)
			if err != nil {
				t.Fatalf("limit %d, hop %d: %v", limit, hop, err)
			}
			if err := d.Verify(pub); err != nil {
				t.Fatalf("limit %d, hop %d: %v", limit, hop, err)
			}
			if int(d.Hops) != hop || d.ID() != id {
				t.Fatalf("limit %d, hop %d: hops %d, id %x want %x", limit, hop, d.Hops, d.ID(), id)
			}
			viaStruct := e
			viaStruct.Hops = uint8(hop)
			if want, _ := EncodeEnvelope(viaStruct); !bytes.Equal(want, next) {
				t.Fatalf("limit %d, hop %d: ForwardEnvelope differs from EncodeEnvelope", limit, hop)
			}
			frame = next
		}
		if _, err := ForwardEnvelope(frame); !errors.Is(err, ErrHopLimit) {
			t.Fatalf("limit %d reached: %v", limit, err)
		}
	}
}

func TestForwardEnvelopeRejects(t *testing.T) {
	enc, err := EncodeEnvelope(goldenEnvelope(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"too large", make([]byte, MaxEnvelopeSize+1), ErrTooLarge},
		{"announce", append([]byte{0x8a, 0x02}, enc[2:]...), ErrUnknownType},
		{"version 0", append([]byte{0x8a, 0x01}, enc[2:]...), ErrUnsupportedVersion},
		{"two elements", []byte{0x82, 0x11, 0x00}, ErrMalformed},
		{"no hop limit", []byte{0x8a, 0x11, 0x00}, ErrMalformed},
		{"hop limit not a uint", append([]byte{0x8a, 0x11, 0x00, 0x40}, enc[4:]...), ErrMalformed},
		{"non-shortest hop count", append([]byte{0x8a, 0x11, 0x18, 0x00}, enc[3:]...), ErrMalformed},
		{"non-shortest hop limit", append([]byte{0x8a, 0x11, 0x00, 0x18, 0x08}, enc[4:]...), ErrMalformed},
		{"hop limit over 255", append([]byte{0x8a, 0x11, 0x00, 0x19, 0x01, 0x00}, enc[4:]...), ErrMalformed},
		{"hop count over 255", append([]byte{0x8a, 0x11, 0x19, 0x01, 0x00}, enc[3:]...), ErrMalformed},
		{"hop limit reached", append([]byte{0x8a, 0x11, 0x08}, enc[3:]...), ErrHopLimit},
		{"hops over the limit", append([]byte{0x8a, 0x11, 0x09}, enc[3:]...), ErrHopLimit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ForwardEnvelope(c.in); !errors.Is(err, c.want) {
				t.Fatalf("ForwardEnvelope(%.40x...) = %v, want %v", c.in, err, c.want)
			}
		})
	}
}

func TestEnvelopeExpired(t *testing.T) {
	e := goldenEnvelope(t)
	exp := envelopeGoldenExpiry
	for _, c := range []struct {
		now  time.Time
		want bool
	}{
		{exp.Add(-time.Hour), false},
		{exp.Add(-time.Nanosecond), false},
		{exp, true},
		{exp.Add(time.Nanosecond), true},
		{exp.Add(time.Hour), true},
		{time.Time{}, false},
	} {
		if got := e.Expired(c.now); got != c.want {
			t.Errorf("Expired(%v) = %v, want %v", c.now, got, c.want)
		}
	}
	if !(Envelope{}).Expired(time.Unix(0, 0)) {
		t.Error("expiry 0 is not expired at the epoch")
	}
}

func TestEnvelopeID(t *testing.T) {
	e := goldenEnvelope(t)
	tbs, err := e.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tbs)
	if id := e.ID(); !bytes.Equal(id[:], sum[:16]) {
		t.Fatalf("ID %x, want SHA-256(SigningBytes)[:16] %x", id, sum[:16])
	}
	// The ID is known before signing and does not depend on the signature.
	unsigned := e
	unsigned.Signature = nil
	if unsigned.ID() != e.ID() {
		t.Fatal("the ID depends on the signature")
	}
	// Every signed field changes it.
	for name, f := range map[string]func(e *Envelope){
		"hop limit":    func(e *Envelope) { e.HopLimit++ },
		"source":       func(e *Envelope) { e.Source[15] ^= 1 },
		"destination":  func(e *Envelope) { e.Destination[0] ^= 1 },
		"expiry":       func(e *Envelope) { e.Expiry++ },
		"payload type": func(e *Envelope) { e.PayloadType++ },
		"payload":      func(e *Envelope) { e.Payload = append(bytes.Clone(e.Payload), 0) },
	} {
		o := e
		f(&o)
		if o.ID() == e.ID() {
			t.Errorf("changing the %s keeps the ID", name)
		}
	}
	if PayloadSealed.String() != "sealed" || PayloadTraceReply.String() != "trace-reply" || PayloadType(12).String() != "payload12" || PayloadSealedPQ.String() != "sealed-pq" {
		t.Error("PayloadType.String")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	good := goldenEnvelope(f)
	enc, err := EncodeEnvelope(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add(readGolden(f, "envelope.golden"))
	f.Add(enc[:len(enc)/2])
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0x8a, 0x11})
	f.Add([]byte{0x8a, 0x11, 0x00, 0x18, 0xff})
	f.Add([]byte{0x9f, 0x01, 0xff})
	f.Add(append([]byte{0x8a, 0x11}, enc[2:]...))
	f.Add(append([]byte{0x8a, 0x11, 0x08}, enc[3:]...))
	f.Add(append([]byte{0x8a, 0x11, 0x09}, enc[3:]...))
	for _, c := range []struct {
		hops, limit uint8
		dst         [16]byte
		payload     []byte
	}{
		{0, 0, BroadcastAddress, nil},
		{23, 24, good.Destination, make([]byte, 300)},
		{255, 255, good.Destination, []byte{1}},
	} {
		e := good
		e.Hops, e.HopLimit, e.Destination, e.Payload = c.hops, c.limit, c.dst, c.payload
		if err := e.Sign(signer(announceGoldenKey())); err != nil {
			f.Fatal(err)
		}
		f.Add(mustMarshal(f, e))
	}
	unsigned := good
	unsigned.Signature = nil
	f.Add(mustMarshal(f, unsigned))
	pub := envelopeGoldenPub()

	f.Fuzz(func(t *testing.T, data []byte) {
		fwd, ferr := ForwardEnvelope(data) // must not panic on anything
		e, err := DecodeEnvelope(data)
		if err != nil {
			if !isWireError(err) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		verr := e.Verify(pub)
		if verr != nil && !errors.Is(verr, ErrBadSignature) {
			t.Fatalf("Verify: untyped error %v", verr)
		}
		// Accepted: it is the one canonical encoding.
		again, err := EncodeEnvelope(e)
		if err != nil {
			t.Fatalf("accepted envelope does not re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", data, again)
		}
		// Forwarding changes the hop count only: same ID, same verdict.
		if e.Hops == e.HopLimit {
			if !errors.Is(ferr, ErrHopLimit) {
				t.Fatalf("forwarding at the hop limit: %v", ferr)
			}
			return
		}
		if ferr != nil {
			t.Fatalf("ForwardEnvelope refused an accepted envelope: %v", ferr)
		}
		d, err := DecodeEnvelope(fwd)
		if err != nil {
			t.Fatalf("forwarded envelope does not decode: %v", err)
		}
		if d.Hops != e.Hops+1 || d.ID() != e.ID() {
			t.Fatalf("forwarded: hops %d→%d, id %x→%x", e.Hops, d.Hops, e.ID(), d.ID())
		}
		if (d.Verify(pub) == nil) != (verr == nil) {
			t.Fatal("forwarding changed the signature check")
		}
		d.Hops--
		if again, _ := EncodeEnvelope(d); !bytes.Equal(again, data) {
			t.Fatalf("forwarding changed more than the hop count")
		}
	})
}

// BenchmarkDecodeVerifyEnvelope is what a link actor spends on a received
// envelope with a sealed 32-byte text: DecodeEnvelope then Verify. Compare
// it with BenchmarkEd25519Verify, the bare signature check on the same
// bytes.
func BenchmarkDecodeVerifyEnvelope(b *testing.B) {
	enc, err := EncodeEnvelope(goldenEnvelope(b))
	if err != nil {
		b.Fatal(err)
	}
	pub := envelopeGoldenPub()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := DecodeEnvelope(enc)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Verify(pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEnvelope is DecodeEnvelope alone, without the signature.
func BenchmarkDecodeEnvelope(b *testing.B) {
	enc, err := EncodeEnvelope(goldenEnvelope(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEnvelope(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify is the baseline: ed25519.Verify of the golden
// envelope's signature over its signing bytes, nothing else.
func BenchmarkEd25519Verify(b *testing.B) {
	e := goldenEnvelope(b)
	tbs, err := e.SigningBytes()
	if err != nil {
		b.Fatal(err)
	}
	pub := envelopeGoldenPub()
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, tbs, e.Signature) {
			b.Fatal("does not verify")
		}
	}
}

func BenchmarkEnvelopeID(b *testing.B) {
	e := goldenEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = e.ID()
	}
}

func BenchmarkForwardEnvelope(b *testing.B) {
	enc, err := EncodeEnvelope(goldenEnvelope(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForwardEnvelope(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReceiptIDs(t *testing.T) {
	for _, n := range []int{0, 15, 17, 16 * (MaxReceiptIDs + 1)} {
		if _, err := ReceiptIDs(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
	p := make([]byte, 16*MaxReceiptIDs)
	p[16*3] = 7
	ids, err := ReceiptIDs(p)
	if err != nil || len(ids) != MaxReceiptIDs || ids[3][0] != 7 {
		t.Fatalf("%d ids, %v", len(ids), err)
	}
}

func FuzzReceiptIDs(f *testing.F) {
	f.Add(make([]byte, 16))
	f.Add(make([]byte, 33))
	f.Fuzz(func(t *testing.T, p []byte) {
		ids, err := ReceiptIDs(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(ids)*16 != len(p) || len(ids) > MaxReceiptIDs {
			t.Fatalf("%d ids from %d bytes", len(ids), len(p))
		}
		for i, id := range ids {
			if !bytes.Equal(id[:], p[16*i:16*i+16]) {
				t.Fatal("id differs from its bytes")
			}
		}
	})
}
