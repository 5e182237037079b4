package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/messages"
)

func TestAddressIsTruncatedSHA256(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	id, err := IdentityFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(id.PublicKey())
	if !bytes.Equal(id.Address().Bytes(), sum[:16]) {
		t.Fatalf("address %x, want %x", id.Address(), sum[:16])
	}
	s := id.Address().String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("address string %q: want 32 lower-case hex characters", s)
	}
	back, err := ParseAddress(s)
	if err != nil || back != id.Address() {
		t.Fatalf("ParseAddress(%q) = %v, %v", s, back, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("zz", 16), s + "00"} {
		if _, err := ParseAddress(bad); !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q): err = %v, want ErrBadAddress", bad, err)
		}
	}
}

func TestIdentityFileCreatedWith0600AndReloaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "identity.pem")
	id, created, err := LoadOrCreateIdentity(path)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	again, created, err := LoadOrCreateIdentity(path)
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if again.Address() != id.Address() || !again.PrivateKey().Equal(id.PrivateKey()) {
		t.Fatal("reloaded identity differs")
	}
	if err := SaveIdentity(path, id); err == nil {
		t.Fatal("SaveIdentity overwrote an existing key file")
	}
}

func TestIdentityFileReadableByOthersRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.pem")
	id, _ := NewIdentity(nil)
	if err := SaveIdentity(path, id); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateIdentity(path)
		if !errors.Is(err, ErrKeyFileMode) {
			t.Fatalf("mode %04o: err = %v, want ErrKeyFileMode", mode, err)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("message does not say how to fix it: %v", err)
		}
	}
	// The refused file is left alone, not replaced by a new identity.
	os.Chmod(path, 0o600)
	again, err := LoadIdentity(path)
	if err != nil || again.Address() != id.Address() {
		t.Fatalf("identity after refusals: %v, %v", again, err)
	}
}

func TestCorruptKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.pem")
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateIdentity(path); !errors.Is(err, ErrKeyFileCorrupt) {
		t.Fatalf("err = %v, want ErrKeyFileCorrupt", err)
	}
}

func TestSignVerifies(t *testing.T) {
	id, _ := NewIdentity(nil)
	msg := []byte("announce")
	if !ed25519.Verify(id.PublicKey(), msg, id.Sign(msg)) {
		t.Fatal("signature does not verify")
	}
}

// messages keeps its own copy of the address derivation (it may not import
// crypto); the two must never disagree.
func TestAddressOfMatchesMessages(t *testing.T) {
	for range 8 {
		id, _ := NewIdentity(nil)
		if got := messages.AddressOf(id.PublicKey()); got != [16]byte(id.Address()) {
			t.Fatalf("messages.AddressOf = %x, crypto address %x", got, id.Address())
		}
	}
}
