package messages

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"testing"
)

// goldenCompact: from the announce vectors' key to the beacon vector's
// key, hop limit 8, hop count 0, seq 1, expiry as the envelope vector's,
// and the envelope vector's 80 bytes standing for a sealed 32-byte text.
func goldenCompact() Compact {
	c := NewCompact(AddressOf(announceGoldenKey().Public().(ed25519.PublicKey)), AddressOf(goldenKey().Public().(ed25519.PublicKey)),
		DefaultHopLimit, envelopeGoldenExpiry, 1)
	c.Sealed = envelopeGoldenPayload()
	return c
}

func TestCompactGolden(t *testing.T) {
	c := goldenCompact()
	got, err := EncodeCompact(c)
	if err != nil {
		t.Fatal(err)
	}
	id := c.ID()
	if updateGolden() {
		writeGolden(t, "compact.golden", []string{
			"Compact sealed envelope v0 (messages/compact.go), hex of the CBOR encoding.",
			"from the address of the key of announce.golden (seed SHA-256(\"qpc golden announce key\")),",
			"to the address of the key of beacon.golden (seed SHA-256(\"qpc golden beacon key\")),",
			"hops 0, hop limit 8, expiry 2026-01-02T00:00:00Z (1767312000), seq 1,",
			"sealed 80 bytes (a 32-byte text): SHA-256(\"qpc golden sealed payload\"+c) for c in 0,1,2, cut to 80.",
			"aad: " + hex.EncodeToString(c.AAD()),
			"id: " + hex.EncodeToString(id[:]),
		}, got)
	}
	want := readGolden(t, "compact.golden")
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding changed (run with -update if intended):\n got %x\nwant %x", got, want)
	}
	dec, err := DecodeCompact(want)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Tag != c.Tag || dec.Hops != 0 || dec.HopLimit != 8 || dec.Source != c.Source || dec.Destination != c.Destination ||
		dec.Expiry != 1767312000 || dec.Seq != 1 || !bytes.Equal(dec.Sealed, c.Sealed) || !dec.ExpiresAt().Equal(envelopeGoldenExpiry) {
		t.Fatalf("decoded %+v", dec)
	}
	if got := dec.ID(); hex.EncodeToString(got[:]) != goldenComment(t, "compact.golden", "id") {
		t.Fatalf("id %x, golden %s", got, goldenComment(t, "compact.golden", "id"))
	}
	if got := hex.EncodeToString(dec.AAD()); got != goldenComment(t, "compact.golden", "aad") {
		t.Fatalf("aad %s, golden %s", got, goldenComment(t, "compact.golden", "aad"))
	}
	if tag, err := FrameTag(want); err != nil || tag != TagCompact || uint8(TagCompact) != 0x07 || !tag.Type().OnLinks() {
		t.Fatalf("FrameTag = %v, %v", tag, err)
	}
	// The byte count of docs/wire-format.md: 1 array head, 1 tag, 1 hops,
	// 1 hop limit, 17 source, 17 destination, 5 expiry, 1 seq, 82 sealed.
	if len(want) != 126 {
		t.Errorf("compact envelope with a sealed 32-byte text is %d bytes, documented 126", len(want))
	}
	if len(c.AAD()) != len(CompactDomain)+43 {
		t.Errorf("AAD %d bytes", len(c.AAD()))
	}
	v := dec.AsEnvelope()
	if v.Tag != TagCompact || v.PayloadType != PayloadSealed || !bytes.Equal(v.Payload, dec.Sealed) || v.Seq != 1 || v.IsBroadcast() {
		t.Fatalf("view %+v", v)
	}
	if _, err := EncodeEnvelope(v); err == nil {
		t.Fatal("the envelope view of a compact envelope encodes as an envelope")
	}
	if _, err := DecodeEnvelope(want); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("DecodeEnvelope of a compact frame: %v", err)
	}
}

// TestCompactBinding: every field but the hop count is in the AAD and the
// id; the hop count is in neither.
func TestCompactBinding(t *testing.T) {
	base := goldenCompact()
	aad, id := base.AAD(), base.ID()
	hops := base
	hops.Hops = 3
	if !bytes.Equal(hops.AAD(), aad) || hops.ID() != id {
		t.Fatal("the hop count changes the AAD or the id")
	}
	for name, change := range map[string]func(*Compact){
		"hop limit":   func(c *Compact) { c.HopLimit++ },
		"source":      func(c *Compact) { c.Source[0] ^= 1 },
		"destination": func(c *Compact) { c.Destination[15] ^= 1 },
		"expiry":      func(c *Compact) { c.Expiry++ },
		"seq":         func(c *Compact) { c.Seq++ },
	} {
		c := base
		change(&c)
		if bytes.Equal(c.AAD(), aad) || c.ID() == id {
			t.Errorf("%s is not bound", name)
		}
	}
	c := base
	c.Sealed = bytes.Clone(base.Sealed)
	c.Sealed[40] ^= 1
	if c.ID() == id {
		t.Error("the sealed payload is not in the id")
	}
	// Different domain than the envelope's: a compact id is never a
	// signed envelope's id for the same fields.
	if id == base.AsEnvelope().ID() {
		t.Error("compact id equals the envelope view's id")
	}
}

func TestCompactRefusals(t *testing.T) {
	good := goldenCompact()
	enc, _ := EncodeCompact(good)
	for name, c := range map[string]struct {
		mod  func(*Compact)
		want error
	}{
		"hops over limit":   {func(c *Compact) { c.Hops = 9 }, ErrMalformed},
		"broadcast source":  {func(c *Compact) { c.Source = BroadcastAddress }, ErrMalformed},
		"broadcast dest":    {func(c *Compact) { c.Destination = BroadcastAddress }, ErrMalformed},
		"seq 0":             {func(c *Compact) { c.Seq = 0 }, ErrMalformed},
		"sealed too short":  {func(c *Compact) { c.Sealed = c.Sealed[:CompactSealOverhead-1] }, ErrMalformed},
		"sealed too long":   {func(c *Compact) { c.Sealed = make([]byte, MaxPayloadSize+1) }, ErrTooLarge},
		"envelope tag":      {func(c *Compact) { c.Tag = TagEnvelope }, ErrUnknownType},
		"compact version 1": {func(c *Compact) { c.Tag = MakeTag(FrameCompact, 1) }, ErrUnsupportedVersion},
	} {
		k := good
		c.mod(&k)
		if _, err := EncodeCompact(k); !errors.Is(err, c.want) {
			t.Errorf("%s: EncodeCompact: %v, want %v", name, err, c.want)
		}
		raw, err := Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeCompact(raw); !errors.Is(err, c.want) {
			t.Errorf("%s: DecodeCompact: %v, want %v", name, err, c.want)
		}
	}
	if _, err := DecodeCompact(make([]byte, MaxCompactSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
	for i := range enc {
		if _, err := DecodeCompact(enc[:i]); err == nil || !isWireError(err) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	// A non-canonical length head (sealed length in two bytes where one
	// would do: 0x59 0x0050 for 0x58 0x50).
	i := bytes.Index(enc, []byte{0x58, 0x50})
	nc := append(append(append([]byte{}, enc[:i]...), 0x59, 0x00, 0x50), enc[i+2:]...)
	if _, err := DecodeCompact(nc); !errors.Is(err, ErrMalformed) {
		t.Errorf("non-canonical: %v", err)
	}
	if _, err := DecodeCompact(append(bytes.Clone(enc), 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
}

// TestCompactForward: relays raise the hop count with ForwardEnvelope, the
// id and AAD stay; at the hop limit it is ErrHopLimit.
func TestCompactForward(t *testing.T) {
	c := goldenCompact()
	c.HopLimit = 2
	frame, _ := EncodeCompact(c)
	fwd, err := ForwardEnvelope(frame)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeCompact(fwd)
	if err != nil || d.Hops != 1 || d.ID() != c.ID() || !bytes.Equal(d.AAD(), c.AAD()) {
		t.Fatalf("forwarded %+v %v", d, err)
	}
	fwd2, _ := ForwardEnvelope(fwd)
	if _, err := ForwardEnvelope(fwd2); !errors.Is(err, ErrHopLimit) {
		t.Fatalf("at the hop limit: %v", err)
	}
	if !IsCompact(frame) || IsCompact(nil) || IsCompact(readGolden(t, "envelope.golden")) {
		t.Fatal("IsCompact")
	}
	in := &InboundFrame{Data: frame}
	if in.Priority() != Data {
		t.Fatal("a compact envelope is not data")
	}
}

// FuzzDecodeCompact: whatever a peer sends, DecodeCompact returns a typed
// error or a compact envelope whose encoding is exactly the input;
// ForwardEnvelope never panics, and on an accepted frame below its hop
// limit changes the hop count only (same id, same AAD).
func FuzzDecodeCompact(f *testing.F) {
	good := goldenCompact()
	enc, err := EncodeCompact(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add(readGolden(f, "compact.golden"))
	f.Add(enc[:len(enc)/2])
	f.Add([]byte{})
	f.Add([]byte{0x88, 0x07})
	f.Add([]byte{0x88, 0x07, 0x00, 0x18, 0xff})
	f.Add([]byte{0x9f, 0x07, 0xff})
	f.Add(append([]byte{0x88, 0x07, 0x08}, enc[3:]...))
	f.Add(append([]byte{0x88, 0x17}, enc[2:]...))
	for _, c := range []struct {
		hops, limit uint8
		seq         uint64
		sealed      int
	}{{0, 0, 1, 48}, {23, 24, 1 << 20, 300}, {255, 255, 24, 49}} {
		k := good
		k.Hops, k.HopLimit, k.Seq, k.Sealed = c.hops, c.limit, c.seq, make([]byte, c.sealed)
		f.Add(mustMarshal(f, k))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fwd, ferr := ForwardEnvelope(data)
		c, err := DecodeCompact(data)
		if err != nil {
			if !isWireError(err) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := EncodeCompact(c)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted a frame that does not re-encode to itself: %v\n in %x\nout %x", err, data, again)
		}
		if c.Hops == c.HopLimit {
			if !errors.Is(ferr, ErrHopLimit) {
				t.Fatalf("forwarding at the hop limit: %v", ferr)
			}
			return
		}
		if ferr != nil {
			t.Fatalf("ForwardEnvelope refused an accepted compact envelope: %v", ferr)
		}
		d, err := DecodeCompact(fwd)
		if err != nil || d.Hops != c.Hops+1 || d.ID() != c.ID() || !bytes.Equal(d.AAD(), c.AAD()) {
			t.Fatalf("forwarded: %+v, %v", d, err)
		}
	})
}
