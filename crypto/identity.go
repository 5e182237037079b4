// Package crypto holds the node's identity and addresses, and (in later
// issues) sealed 1:1 messages, replay windows and group encryption. It
// imports nothing else of qpc.
package crypto

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// AddressSize is the length of a node address in bytes.
const AddressSize = 16

// Address identifies a node on the mesh: the first 16 bytes of the SHA-256
// of its Ed25519 public key.
type Address [AddressSize]byte

// AddressOf derives the address of an Ed25519 public key.
func AddressOf(pub ed25519.PublicKey) Address {
	sum := sha256.Sum256(pub)
	var a Address
	copy(a[:], sum[:AddressSize])
	return a
}

// String renders the address as 32 lower-case hex characters.
func (a Address) String() string { return hex.EncodeToString(a[:]) }

// Short is the first 8 hex characters, for log lines.
func (a Address) Short() string { return hex.EncodeToString(a[:4]) }

// ParseAddress parses 32 hex characters.
func ParseAddress(s string) (Address, error) {
	var a Address
	if len(s) != 2*AddressSize {
		return a, fmt.Errorf("%w: %q has %d characters, want %d hex characters", ErrBadAddress, s, len(s), 2*AddressSize)
	}
	if _, err := hex.Decode(a[:], []byte(s)); err != nil {
		return a, fmt.Errorf("%w: %q: %v", ErrBadAddress, s, err)
	}
	return a, nil
}

// Errors of the identity layer.
var (
	ErrBadAddress       = errors.New("crypto: bad address")
	ErrKeyFileMode      = errors.New("crypto: identity key file is readable by others")
	ErrKeyFileCorrupt   = errors.New("crypto: identity key file is corrupt")
	ErrKeyFileNotExists = errors.New("crypto: identity key file does not exist")
)

// Identity is a node's long-term Ed25519 key pair.
type Identity struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	addr Address
}

// NewIdentity creates a fresh identity from r (crypto/rand when nil).
func NewIdentity(r io.Reader) (*Identity, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, fmt.Errorf("crypto: generate identity: %w", err)
	}
	return &Identity{priv: priv, pub: pub, addr: AddressOf(pub)}, nil
}

// IdentityFromSeed rebuilds an identity from a 32-byte Ed25519 seed.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed has %d bytes, want %d", ErrKeyFileCorrupt, len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &Identity{priv: priv, pub: pub, addr: AddressOf(pub)}, nil
}

// Address is the node's 16-byte mesh address.
func (id *Identity) Address() Address { return id.addr }

// PublicKey is the Ed25519 public key.
func (id *Identity) PublicKey() ed25519.PublicKey { return id.pub }

// PrivateKey is the Ed25519 private key; callers must not retain or log it.
func (id *Identity) PrivateKey() ed25519.PrivateKey { return id.priv }

// Sign signs msg with the identity key.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.priv, msg) }

const pemType = "QPC ED25519 SEED"

// MarshalPEM encodes the private seed as a PEM block.
func (id *Identity) MarshalPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{
		Type:    pemType,
		Headers: map[string]string{"Address": id.addr.String()},
		Bytes:   id.priv.Seed(),
	})
}

// ParseIdentityPEM decodes what MarshalPEM wrote.
func ParseIdentityPEM(data []byte) (*Identity, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("%w: no %q PEM block", ErrKeyFileCorrupt, pemType)
	}
	id, err := IdentityFromSeed(block.Bytes)
	if err != nil {
		return nil, err
	}
	if want := block.Headers["Address"]; want != "" && want != id.addr.String() {
		return nil, fmt.Errorf("%w: stored address %s does not match key (%s)", ErrKeyFileCorrupt, want, id.addr)
	}
	return id, nil
}

// LoadIdentity reads the key file at path. It refuses a file that group or
// others can read (ErrKeyFileMode), like ssh does.
func LoadIdentity(path string) (*Identity, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrKeyFileNotExists, path)
	}
	if err != nil {
		return nil, fmt.Errorf("crypto: identity %s: %w", path, err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run 'chmod 600 %s'", ErrKeyFileMode, path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("crypto: identity %s: %w", path, err)
	}
	id, err := ParseIdentityPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// SaveIdentity writes the key file with mode 0600, creating its directory
// (0700) if needed. It refuses to overwrite an existing file.
func SaveIdentity(path string, id *Identity) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("crypto: identity dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("crypto: write identity %s: %w", path, err)
	}
	if _, err := f.Write(id.MarshalPEM()); err != nil {
		f.Close()
		return fmt.Errorf("crypto: write identity %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("crypto: write identity %s: %w", path, err)
	}
	return f.Close()
}

// LoadOrCreateIdentity loads the key file, or creates it on first start.
// created reports whether a new identity was made.
func LoadOrCreateIdentity(path string) (id *Identity, created bool, err error) {
	id, err = LoadIdentity(path)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, ErrKeyFileNotExists) {
		return nil, false, err
	}
	id, err = NewIdentity(nil)
	if err != nil {
		return nil, false, err
	}
	if err := SaveIdentity(path, id); err != nil {
		return nil, false, err
	}
	return id, true, nil
}

// Bytes returns the address as a slice.
func (a Address) Bytes() []byte { return a[:] }

// IsZero reports whether a is the all-zero address.
func (a Address) IsZero() bool { return a == Address{} }
