package messages

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The golden vectors are regenerated with `go test ./messages -run Golden -update`.
// The flag is registered here only if no other test file of the package
// registered it already, so several wire types can share it.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden vectors under testdata/")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// goldenKey is the fixed identity of the golden vectors: its seed is
// SHA-256("qpc golden beacon key").
func goldenKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("qpc golden beacon key"))
	return ed25519.NewKeyFromSeed(seed[:])
}

func signer(priv ed25519.PrivateKey) func([]byte) []byte {
	return func(m []byte) []byte { return ed25519.Sign(priv, m) }
}

// goldenBeacon: sent 2026-01-01T00:00:00Z, listening on tcp :7701 and
// quic :7702 at the source address. Ed25519 signatures are deterministic, so
// the encoding is fixed.
func goldenBeacon(t testing.TB) Beacon {
	priv := goldenKey()
	b := NewBeacon(priv.Public().(ed25519.PublicKey), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), []BeaconListener{
		{Scheme: SchemeTCP, Port: 7701},
		{Scheme: SchemeQUIC, Port: 7702},
	})
	if err := b.Sign(signer(priv)); err != nil {
		t.Fatal(err)
	}
	return b
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var hexText strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			hexText.WriteString(line)
		}
	}
	b, err := hex.DecodeString(hexText.String())
	if err != nil {
		t.Fatalf("testdata/%s: %v", name, err)
	}
	return b
}

func TestBeaconGolden(t *testing.T) {
	got, err := EncodeBeacon(goldenBeacon(t))
	if err != nil {
		t.Fatal(err)
	}
	if updateGolden() {
		text := "# Beacon v0 (messages/beacon.go), hex of the CBOR encoding.\n" +
			"# key seed SHA-256(\"qpc golden beacon key\"), time 2026-01-01T00:00:00Z,\n" +
			"# listeners tcp :7701 and quic :7702 (host empty: the source address).\n" +
			hex.EncodeToString(got) + "\n"
		if err := os.WriteFile(filepath.Join("testdata", "beacon.golden"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readGolden(t, "beacon.golden")
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding changed (run with -update if intended):\n got %x\nwant %x", got, want)
	}
	b, err := DecodeBeacon(want)
	if err != nil {
		t.Fatal(err)
	}
	if b.Time != 1767225600 || len(b.Listeners) != 2 || b.Listeners[1].Port != 7702 {
		t.Fatalf("decoded %+v", b)
	}
	t.Logf("beacon with 2 listeners: %d bytes", len(want))
}

func TestBeaconRoundTrip(t *testing.T) {
	priv := goldenKey()
	pub := priv.Public().(ed25519.PublicKey)
	cases := map[string][]BeaconListener{
		"none":      nil,
		"one":       {{Scheme: SchemeTCP, Port: 1}},
		"ipv4 host": {{Scheme: SchemeQUIC, Port: 443, Host: []byte{192, 0, 2, 7}}},
		"ipv6 host": {{Scheme: SchemeTCP, Port: 65535, Host: bytes.Repeat([]byte{0xfd}, 16)}},
		"unknown scheme": {
			{Scheme: 200, Port: 9}, {Scheme: SchemeTCP, Port: 7701},
		},
		"max ipv4": func() []BeaconListener {
			var ls []BeaconListener
			for i := range MaxBeaconListeners {
				ls = append(ls, BeaconListener{Scheme: SchemeTCP, Port: uint16(60000 + i), Host: []byte{10, 0, 0, byte(i)}})
			}
			return ls
		}(),
	}
	for name, ls := range cases {
		t.Run(name, func(t *testing.T) {
			b := NewBeacon(pub, time.Unix(1767225600, 0), ls)
			if err := b.Sign(signer(priv)); err != nil {
				t.Fatal(err)
			}
			enc, err := EncodeBeacon(b)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := DecodeBeacon(enc)
			if err != nil {
				t.Fatal(err)
			}
			again, err := EncodeBeacon(dec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, again) {
				t.Fatalf("round trip changed the encoding:\n%x\n%x", enc, again)
			}
			if len(dec.Listeners) != len(ls) {
				t.Fatalf("listeners %v, want %v", dec.Listeners, ls)
			}
			for i := range ls {
				if dec.Listeners[i].Scheme != ls[i].Scheme || dec.Listeners[i].Port != ls[i].Port || !bytes.Equal(dec.Listeners[i].Host, ls[i].Host) {
					t.Fatalf("listener %d: %+v, want %+v", i, dec.Listeners[i], ls[i])
				}
			}
		})
	}
}

// mustMarshal encodes v without EncodeBeacon's checks, to build bad beacons.
func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeBeaconRejects(t *testing.T) {
	good := goldenBeacon(t)
	enc, err := EncodeBeacon(good)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

	mod := func(f func(b *Beacon)) []byte {
		b := goldenBeacon(t)
		f(&b)
		return mustMarshal(t, b)
	}
	resigned := func(f func(b *Beacon)) []byte {
		b := goldenBeacon(t)
		f(&b)
		// Sign validates; these beacons are invalid on purpose, so sign by hand.
		tbs, err := b.SigningBytes()
		if err != nil {
			t.Fatal(err)
		}
		b.Signature = ed25519.Sign(goldenKey(), tbs)
		return mustMarshal(t, b)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(enc)
		c[i] ^= 0x01
		return c
	}

	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not an array", []byte{0x0f}, ErrMalformed},
		{"empty array", []byte{0x80}, ErrMalformed},
		{"indefinite array", append([]byte{0x9f}, enc[1:]...), ErrMalformed},
		{"too large", make([]byte, MaxBeaconSize+1), ErrTooLarge},
		{"other type", append([]byte{0x85, 0x01}, enc[2:]...), ErrUnknownType},
		{"tag beyond a byte", []byte{0x85, 0x19, 0x01, 0x0f}, ErrUnknownType},
		{"version 1", append([]byte{0x85, 0x18, 0x1f}, enc[2:]...), ErrUnsupportedVersion},
		{"truncated", enc[:len(enc)-1], ErrMalformed},
		{"trailing byte", append(bytes.Clone(enc), 0x00), ErrMalformed},
		{"four fields", mustMarshal(t, beaconTBS{Tag: TagBeacon, PublicKey: good.PublicKey, Time: 1}), ErrMalformed},
		{"non-shortest time", func() []byte {
			// time 1767225600 re-encoded with an 8-byte head: same value, other bytes.
			i := bytes.Index(enc, []byte{0x1a, 0x69, 0x55, 0xb9, 0x00})
			if i < 0 {
				t.Fatal("time not found in golden encoding")
			}
			out := append(bytes.Clone(enc[:i]), 0x1b, 0, 0, 0, 0, 0x69, 0x55, 0xb9, 0x00)
			return append(out, enc[i+5:]...)
		}(), ErrMalformed},
		{"short key", resigned(func(b *Beacon) { b.PublicKey = b.PublicKey[:31] }), ErrMalformed},
		{"bad host length", resigned(func(b *Beacon) { b.Listeners[0].Host = []byte{1, 2, 3} }), ErrMalformed},
		{"port zero", resigned(func(b *Beacon) { b.Listeners[0].Port = 0 }), ErrMalformed},
		{"too many listeners", resigned(func(b *Beacon) {
			b.Listeners = make([]BeaconListener, MaxBeaconListeners+1)
			for i := range b.Listeners {
				b.Listeners[i] = BeaconListener{Scheme: SchemeTCP, Port: 1}
			}
		}), ErrMalformed},
		{"unsigned", mod(func(b *Beacon) { b.Signature = nil }), ErrBadSignature},
		{"short signature", mod(func(b *Beacon) { b.Signature = b.Signature[:63] }), ErrBadSignature},
		{"flipped signature bit", flip(len(enc) - 1), ErrBadSignature},
		{"flipped time bit", mod(func(b *Beacon) { b.Time ^= 1 }), ErrBadSignature},
		{"changed port", mod(func(b *Beacon) { b.Listeners[0].Port = 7777 }), ErrBadSignature},
		{"other signer", mod(func(b *Beacon) {
			tbs, _ := b.SigningBytes()
			b.Signature = ed25519.Sign(otherKey, tbs)
		}), ErrBadSignature},
		{"signature without domain", mod(func(b *Beacon) {
			b.Signature = ed25519.Sign(goldenKey(), mustMarshal(t, beaconTBS{Tag: b.Tag, PublicKey: b.PublicKey, Time: b.Time, Listeners: b.Listeners}))
		}), ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeBeacon(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeBeacon(%x) = %v, want %v", c.in, err, c.want)
			}
		})
	}
}

func TestEncodeBeaconRejects(t *testing.T) {
	b := goldenBeacon(t)
	b.Signature = nil
	if _, err := EncodeBeacon(b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("unsigned: %v", err)
	}
	b = goldenBeacon(t)
	b.Tag = MakeTag(FrameBeacon, 1)
	if _, err := EncodeBeacon(b); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("version 1: %v", err)
	}
	// Eight IPv6 listeners do not fit in MaxBeaconSize.
	b = goldenBeacon(t)
	b.Listeners = nil
	for i := range MaxBeaconListeners {
		b.Listeners = append(b.Listeners, BeaconListener{Scheme: SchemeQUIC, Port: 60000, Host: bytes.Repeat([]byte{byte(i)}, 16)})
	}
	if err := b.Sign(signer(goldenKey())); err != nil {
		t.Fatal(err)
	}
	if _, err := EncodeBeacon(b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("eight IPv6 listeners: %v", err)
	}
}

func FuzzDecodeBeacon(f *testing.F) {
	enc, err := EncodeBeacon(goldenBeacon(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add(readGolden(f, "beacon.golden"))
	f.Add(enc[:len(enc)/2])
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0x85, 0x0f})
	f.Add([]byte{0x9f, 0x0f, 0xff})
	f.Add([]byte{0x85, 0x0f, 0x58, 0x20})
	f.Add(append([]byte{0x85, 0x18, 0x1f}, enc[2:]...))
	unsigned := goldenBeacon(f)
	unsigned.Signature = nil
	f.Add(mustMarshal(f, unsigned))

	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBeacon(data)
		if err != nil {
			for _, e := range []error{ErrTooLarge, ErrUnknownType, ErrUnsupportedVersion, ErrMalformed, ErrBadSignature} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("untyped error %v", err)
		}
		// Accepted: it verifies and is the one canonical encoding.
		if err := b.Verify(); err != nil {
			t.Fatalf("accepted a beacon that does not verify: %v", err)
		}
		again, err := EncodeBeacon(b)
		if err != nil {
			t.Fatalf("accepted beacon does not re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", data, again)
		}
	})
}
