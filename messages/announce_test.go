package messages

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Golden vectors: `go test ./messages -run Golden -update` rewrites them
// (the -update flag is registered in beacon_test.go's init).

// announceGoldenKey is the identity of the announce and envelope vectors:
// its seed is SHA-256("qpc golden announce key").
func announceGoldenKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("qpc golden announce key"))
	return ed25519.NewKeyFromSeed(seed[:])
}

// announceGoldenSealKey is the X25519 public key of the private key with
// bytes SHA-256("qpc golden announce seal key").
func announceGoldenSealKey(t testing.TB) []byte {
	seed := sha256.Sum256([]byte("qpc golden announce seal key"))
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

// announceGoldenTime is 2026-01-01T00:00:00.123Z.
var announceGoldenTime = time.Date(2026, 1, 1, 0, 0, 0, 123e6, time.UTC)

// goldenAnnounce: capabilities relay, store, fapp-relay; KeyPackage hash the
// first 16 bytes of SHA-256("qpc golden KeyPackage"); hop count 0.
func goldenAnnounce(t testing.TB) Announce {
	priv := announceGoldenKey()
	kp := sha256.Sum256([]byte("qpc golden KeyPackage"))
	a := NewAnnounce(priv.Public().(ed25519.PublicKey), announceGoldenSealKey(t), CapRelay|CapStore|CapFAPPRelay, kp[:KeyPackageHashSize], announceGoldenTime)
	if err := a.Sign(signer(priv)); err != nil {
		t.Fatal(err)
	}
	return a
}

// writeGolden writes a vector file: comment lines, then the hex.
func writeGolden(t testing.TB, name string, comments []string, data []byte) {
	t.Helper()
	var s strings.Builder
	for _, c := range comments {
		s.WriteString("# " + c + "\n")
	}
	s.WriteString(hex.EncodeToString(data) + "\n")
	if err := os.WriteFile(filepath.Join("testdata", name), []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// goldenComment returns the value of the "# key: value" comment line of a
// vector file.
func goldenComment(t testing.TB, name, key string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "# "+key+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("testdata/%s has no %q line", name, key)
	return ""
}

func TestAnnounceGolden(t *testing.T) {
	a := goldenAnnounce(t)
	got, err := EncodeAnnounce(a)
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Address()
	if updateGolden() {
		writeGolden(t, "announce.golden", []string{
			"Announce v0 (messages/announce.go), hex of the CBOR encoding.",
			"key seed SHA-256(\"qpc golden announce key\"), sealing key X25519 of SHA-256(\"qpc golden announce seal key\"),",
			"capabilities relay,store,fapp-relay (0x0203), KeyPackage hash SHA-256(\"qpc golden KeyPackage\")[:16],",
			"time 2026-01-01T00:00:00.123Z (1767225600123 ms), hops 0.",
			"address: " + hex.EncodeToString(addr[:]),
		}, got)
	}
	want := readGolden(t, "announce.golden")
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding changed (run with -update if intended):\n got %x\nwant %x", got, want)
	}
	dec, err := DecodeAnnounce(want)
	if err != nil {
		t.Fatal(err)
	}
	if dec.UnixMilli != 1767225600123 || dec.Capabilities != CapRelay|CapStore|CapFAPPRelay || dec.Hops != 0 ||
		!dec.SentAt().Equal(announceGoldenTime) || len(dec.KeyPackageHash) != KeyPackageHashSize {
		t.Fatalf("decoded %+v", dec)
	}
	if got := dec.Address(); hex.EncodeToString(got[:]) != goldenComment(t, "announce.golden", "address") {
		t.Fatalf("address %x, golden %s", got, goldenComment(t, "announce.golden", "address"))
	}
	if tag, err := FrameTag(want); err != nil || tag != TagAnnounce || uint8(TagAnnounce) != 0x02 {
		t.Fatalf("FrameTag = %v, %v", tag, err)
	}
	if len(want) > 167 {
		t.Errorf("announce is %d bytes, more than Reticulum's 167", len(want))
	}
	t.Logf("announce: %d bytes", len(want))
}

func TestAddressOf(t *testing.T) {
	pub := announceGoldenKey().Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	if a := AddressOf(pub); !bytes.Equal(a[:], sum[:16]) {
		t.Fatalf("AddressOf = %x, want %x", a, sum[:16])
	}
	a := NewAnnounce(pub, nil, 0, nil, time.Time{})
	if a.Address() != AddressOf(pub) {
		t.Fatal("Announce.Address != AddressOf(PublicKey)")
	}
	if a.UnixMilli != 0 {
		t.Fatalf("time before 1970 gives %d, want 0", a.UnixMilli)
	}
}

func TestAnnounceRoundTrip(t *testing.T) {
	priv := announceGoldenKey()
	pub := priv.Public().(ed25519.PublicKey)
	seal := announceGoldenSealKey(t)
	cases := []struct {
		name string
		caps Capabilities
		kp   []byte
		ms   uint64
		hops uint8
	}{
		{"no keypackage", CapRelay, nil, 1, 0},
		{"kp16", CapRelay | CapStore, bytes.Repeat([]byte{1}, 16), 1767225600123, 1},
		{"kp32", 0xFFFF, bytes.Repeat([]byte{2}, 32), 1<<64 - 1, 23},
		{"no caps, 24 hops", 0, nil, 0, 24},
		{"255 hops", CapFAPPPatient, bytes.Repeat([]byte{3}, 32), 1 << 40, 255},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAnnounce(pub, seal, c.caps, c.kp, time.Time{})
			a.UnixMilli = c.ms
			if err := a.Sign(signer(priv)); err != nil {
				t.Fatal(err)
			}
			a.Hops = c.hops
			enc, err := EncodeAnnounce(a)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := DecodeAnnounce(enc)
			if err != nil {
				t.Fatal(err)
			}
			again, err := EncodeAnnounce(dec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, again) {
				t.Fatalf("round trip changed the encoding:\n%x\n%x", enc, again)
			}
			if dec.Hops != c.hops || dec.Capabilities != c.caps || dec.UnixMilli != c.ms ||
				!bytes.Equal(dec.KeyPackageHash, c.kp) || !bytes.Equal(dec.SealKey, seal) || !bytes.Equal(dec.PublicKey, pub) {
				t.Fatalf("decoded %+v", dec)
			}
			if len(enc) > MaxAnnounceSize {
				t.Fatalf("%d bytes, over MaxAnnounceSize", len(enc))
			}
		})
	}
}

// rawAnnounce is an Announce with every field free, to build bad frames.
type rawAnnounce struct {
	_              struct{} `cbor:",toarray"`
	Tag            uint64
	Hops           uint64
	PublicKey      []byte
	SealKey        []byte
	Capabilities   uint64
	KeyPackageHash []byte
	UnixMilli      uint64
	Signature      []byte
}

func rawOf(a Announce) rawAnnounce {
	return rawAnnounce{Tag: uint64(a.Tag), Hops: uint64(a.Hops), PublicKey: a.PublicKey, SealKey: a.SealKey,
		Capabilities: uint64(a.Capabilities), KeyPackageHash: a.KeyPackageHash, UnixMilli: a.UnixMilli, Signature: a.Signature}
}

func TestDecodeAnnounceRejects(t *testing.T) {
	good := goldenAnnounce(t)
	enc, err := EncodeAnnounce(good)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

	// mod changes a signed announce and keeps its signature.
	mod := func(f func(a *Announce)) []byte {
		a := goldenAnnounce(t)
		f(&a)
		return mustMarshal(t, a)
	}
	// resigned changes an announce and signs it again, bypassing Sign's checks.
	resigned := func(f func(a *Announce)) []byte {
		a := goldenAnnounce(t)
		f(&a)
		tbs, err := a.SigningBytes()
		if err != nil {
			t.Fatal(err)
		}
		a.Signature = ed25519.Sign(announceGoldenKey(), tbs)
		return mustMarshal(t, a)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(enc)
		c[i] ^= 0x01
		return c
	}
	// replace swaps the first occurrence of old in the golden encoding.
	replace := func(old, new []byte) []byte {
		i := bytes.Index(enc, old)
		if i < 0 {
			t.Fatalf("%x not in the golden encoding", old)
		}
		out := append(bytes.Clone(enc[:i]), new...)
		return append(out, enc[i+len(old):]...)
	}

	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not an array", []byte{0x02}, ErrMalformed},
		{"empty array", []byte{0x80}, ErrMalformed},
		{"indefinite array", append([]byte{0x9f}, enc[1:]...), ErrMalformed},
		{"too large", make([]byte, MaxAnnounceSize+1), ErrTooLarge},
		{"too large, valid start", append(bytes.Clone(enc), make([]byte, MaxAnnounceSize+1-len(enc))...), ErrTooLarge},
		{"envelope tag", append([]byte{0x88, 0x01}, enc[2:]...), ErrUnknownType},
		{"beacon tag", append([]byte{0x88, 0x0f}, enc[2:]...), ErrUnknownType},
		{"tag beyond a byte", []byte{0x88, 0x19, 0x01, 0x02}, ErrUnknownType},
		{"version 1", append([]byte{0x88, 0x12}, enc[2:]...), ErrUnsupportedVersion},
		{"truncated", enc[:len(enc)-1], ErrMalformed},
		{"truncated to the head", enc[:3], ErrMalformed},
		{"trailing byte", append(bytes.Clone(enc), 0x00), ErrMalformed},
		{"seven fields", mustMarshal(t, announceTBS{Tag: TagAnnounce, PublicKey: good.PublicKey, SealKey: good.SealKey, UnixMilli: 1}), ErrMalformed},
		{"non-shortest hops", append([]byte{0x88, 0x02, 0x18, 0x00}, enc[3:]...), ErrMalformed},
		{"non-shortest capabilities", func() []byte {
			// 0x0203 at its fixed place (after array head, tag, hops and two keys), in a 4-byte head.
			const at = 3 + 34 + 34
			if !bytes.Equal(enc[at:at+3], []byte{0x19, 0x02, 0x03}) {
				t.Fatalf("capabilities not at %d: %x", at, enc[at:at+3])
			}
			out := append(bytes.Clone(enc[:at]), 0x1a, 0, 0, 0x02, 0x03)
			return append(out, enc[at+3:]...)
		}(), ErrMalformed},
		{"non-shortest KeyPackage hash length", replace(append([]byte{0x50}, good.KeyPackageHash...), append([]byte{0x58, 0x10}, good.KeyPackageHash...)), ErrMalformed},
		{"hops over 255", mustMarshal(t, func() rawAnnounce { r := rawOf(good); r.Hops = 256; return r }()), ErrMalformed},
		{"capabilities over 16 bits", mustMarshal(t, func() rawAnnounce { r := rawOf(good); r.Capabilities = 1 << 16; return r }()), ErrMalformed},
		{"short public key", resigned(func(a *Announce) { a.PublicKey = a.PublicKey[:31] }), ErrMalformed},
		{"long public key", resigned(func(a *Announce) { a.PublicKey = append(bytes.Clone(a.PublicKey), 0) }), ErrMalformed},
		{"short sealing key", resigned(func(a *Announce) { a.SealKey = a.SealKey[:31] }), ErrMalformed},
		{"long sealing key", resigned(func(a *Announce) { a.SealKey = append(bytes.Clone(a.SealKey), 0) }), ErrMalformed},
		{"no sealing key", resigned(func(a *Announce) { a.SealKey = nil }), ErrMalformed},
		{"17-byte KeyPackage hash", resigned(func(a *Announce) { a.KeyPackageHash = make([]byte, 17) }), ErrMalformed},
		{"33-byte KeyPackage hash", resigned(func(a *Announce) { a.KeyPackageHash = make([]byte, 33) }), ErrMalformed},
		{"unsigned", mod(func(a *Announce) { a.Signature = nil }), ErrBadSignature},
		{"short signature", mod(func(a *Announce) { a.Signature = a.Signature[:63] }), ErrBadSignature},
		{"flipped signature bit", flip(len(enc) - 1), ErrBadSignature},
		{"flipped public key bit", flip(5), ErrBadSignature},
		{"other sealing key", mod(func(a *Announce) { a.SealKey[0] ^= 1 }), ErrBadSignature},
		{"other capabilities", mod(func(a *Announce) { a.Capabilities |= CapGateway }), ErrBadSignature},
		{"other KeyPackage hash", mod(func(a *Announce) { a.KeyPackageHash[15] ^= 1 }), ErrBadSignature},
		{"KeyPackage hash removed", mod(func(a *Announce) { a.KeyPackageHash = nil }), ErrBadSignature},
		{"later time", mod(func(a *Announce) { a.UnixMilli++ }), ErrBadSignature},
		{"other key, same signature", mod(func(a *Announce) { a.PublicKey = otherKey.Public().(ed25519.PublicKey) }), ErrBadSignature},
		{"other signer", mod(func(a *Announce) {
			tbs, _ := a.SigningBytes()
			a.Signature = ed25519.Sign(otherKey, tbs)
		}), ErrBadSignature},
		{"signature without domain", mod(func(a *Announce) {
			tbs, _ := a.SigningBytes()
			a.Signature = ed25519.Sign(announceGoldenKey(), tbs[len(AnnounceDomain):])
		}), ErrBadSignature},
		{"signature with the beacon domain", mod(func(a *Announce) {
			tbs, _ := a.SigningBytes()
			a.Signature = ed25519.Sign(announceGoldenKey(), append([]byte(BeaconDomain), tbs[len(AnnounceDomain):]...))
		}), ErrBadSignature},
		{"signature covering the hop count", mod(func(a *Announce) {
			r := rawOf(*a)
			r.Signature = nil
			a.Signature = ed25519.Sign(announceGoldenKey(), append([]byte(AnnounceDomain), mustMarshal(t, r)...))
		}), ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeAnnounce(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeAnnounce(%x) = %v, want %v", c.in, err, c.want)
			}
		})
	}
}

func TestEncodeAnnounceRejects(t *testing.T) {
	a := goldenAnnounce(t)
	a.Signature = nil
	if _, err := EncodeAnnounce(a); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("unsigned: %v", err)
	}
	a = goldenAnnounce(t)
	a.Tag = MakeTag(FrameAnnounce, 1)
	if _, err := EncodeAnnounce(a); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("version 1: %v", err)
	}
	a = goldenAnnounce(t)
	a.SealKey = a.SealKey[:16]
	if _, err := EncodeAnnounce(a); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short sealing key: %v", err)
	}
	if err := a.Sign(signer(announceGoldenKey())); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Sign with a short sealing key: %v", err)
	}
	a = goldenAnnounce(t)
	a.PublicKey = nil
	if err := a.Verify(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Verify without a key: %v", err)
	}
}

// The hop count is not signed: relays change it, and the announce still
// verifies and still means the same.
func TestAnnounceHopsNotSigned(t *testing.T) {
	good := goldenAnnounce(t)
	enc, err := EncodeAnnounce(good)
	if err != nil {
		t.Fatal(err)
	}
	frame := enc
	for want := 1; want <= 255; want++ {
		prev := bytes.Clone(frame)
		next, err := ForwardAnnounce(frame)
		if err != nil {
			t.Fatalf("hop %d: %v", want, err)
		}
		if !bytes.Equal(frame, prev) {
			t.Fatal("ForwardAnnounce modified its input")
		}
		dec, err := DecodeAnnounce(next)
		if err != nil {
			t.Fatalf("hop %d: %v", want, err)
		}
		if int(dec.Hops) != want {
			t.Fatalf("hops %d, want %d", dec.Hops, want)
		}
		// Same as encoding the struct with the new hop count.
		a := good
		a.Hops = uint8(want)
		if viaStruct, _ := EncodeAnnounce(a); !bytes.Equal(viaStruct, next) {
			t.Fatalf("hop %d: ForwardAnnounce %x, EncodeAnnounce %x", want, next, viaStruct)
		}
		frame = next
	}
	if _, err := ForwardAnnounce(frame); !errors.Is(err, ErrHopLimit) {
		t.Fatalf("at 255 hops: %v", err)
	}
	if len(frame) != len(enc)+1 {
		t.Fatalf("255 hops take %d bytes more, want 1", len(frame)-len(enc))
	}
}

func TestForwardAnnounceRejects(t *testing.T) {
	enc, err := EncodeAnnounce(goldenAnnounce(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"too large", make([]byte, MaxAnnounceSize+1), ErrTooLarge},
		{"envelope", append([]byte{0x88, 0x01}, enc[2:]...), ErrUnknownType},
		{"version 1", append([]byte{0x88, 0x12}, enc[2:]...), ErrUnsupportedVersion},
		{"only a tag", []byte{0x81, 0x02}, ErrMalformed},
		{"truncated after the tag", []byte{0x88, 0x02}, ErrMalformed},
		{"truncated hop count", []byte{0x88, 0x02, 0x18}, ErrMalformed},
		{"hop count not a uint", append([]byte{0x88, 0x02, 0x40}, enc[3:]...), ErrMalformed},
		{"non-shortest hop count", append([]byte{0x88, 0x02, 0x18, 0x05}, enc[3:]...), ErrMalformed},
		{"hop count over 255", append([]byte{0x88, 0x02, 0x19, 0x01, 0x00}, enc[3:]...), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ForwardAnnounce(c.in); !errors.Is(err, c.want) {
				t.Fatalf("ForwardAnnounce(%x) = %v, want %v", c.in, err, c.want)
			}
		})
	}
}

func FuzzDecodeAnnounce(f *testing.F) {
	good := goldenAnnounce(f)
	enc, err := EncodeAnnounce(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add(readGolden(f, "announce.golden"))
	f.Add(enc[:len(enc)/2])
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0x88, 0x02})
	f.Add([]byte{0x88, 0x02, 0x18, 0xff})
	f.Add([]byte{0x9f, 0x02, 0xff})
	f.Add(append([]byte{0x88, 0x12}, enc[2:]...))
	f.Add(append([]byte{0x88, 0x02, 0x18, 0x17}, enc[3:]...))
	for _, kp := range [][]byte{nil, make([]byte, 32)} {
		a := good
		a.KeyPackageHash = kp
		a.Hops = 200
		if err := a.Sign(signer(announceGoldenKey())); err != nil {
			f.Fatal(err)
		}
		f.Add(mustMarshal(f, a))
	}
	unsigned := good
	unsigned.Signature = nil
	f.Add(mustMarshal(f, unsigned))

	f.Fuzz(func(t *testing.T, data []byte) {
		fwd, ferr := ForwardAnnounce(data) // must not panic on anything
		a, err := DecodeAnnounce(data)
		if err != nil {
			if !isWireError(err) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Accepted: it verifies and is the one canonical encoding.
		if err := a.Verify(); err != nil {
			t.Fatalf("accepted an announce that does not verify: %v", err)
		}
		again, err := EncodeAnnounce(a)
		if err != nil {
			t.Fatalf("accepted announce does not re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", data, again)
		}
		// Forwarding it gives the same announce, one hop further.
		if a.Hops == 255 {
			if !errors.Is(ferr, ErrHopLimit) {
				t.Fatalf("forwarding at 255 hops: %v", ferr)
			}
			return
		}
		if ferr != nil {
			t.Fatalf("ForwardAnnounce refused an accepted announce: %v", ferr)
		}
		b, err := DecodeAnnounce(fwd)
		if err != nil {
			t.Fatalf("forwarded announce does not decode: %v", err)
		}
		b.Hops--
		if again, _ := EncodeAnnounce(b); !bytes.Equal(again, data) {
			t.Fatalf("forwarding changed more than the hop count:\n in %x\nout %x", data, fwd)
		}
	})
}

// isWireError reports whether err is one of the typed errors of errors.go.
func isWireError(err error) bool {
	for _, e := range []error{ErrTooLarge, ErrUnknownType, ErrUnsupportedVersion, ErrMalformed, ErrBadSignature} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func BenchmarkDecodeVerifyAnnounce(b *testing.B) {
	enc, err := EncodeAnnounce(goldenAnnounce(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeAnnounce(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkForwardAnnounce(b *testing.B) {
	enc, err := EncodeAnnounce(goldenAnnounce(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForwardAnnounce(enc); err != nil {
			b.Fatal(err)
		}
	}
}
