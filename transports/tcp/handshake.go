package tcp

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
)

// Handshake wire constants (the layout is in the transports package doc).
const (
	// Version is the handshake and framing version this package speaks.
	Version = 1
	// HelloSize is the size of a hello: magic (3), version (1), key (32),
	// nonce (32).
	HelloSize = 3 + 1 + ed25519.PublicKeySize + nonceSize
	// SigSize is the size of the second message: an Ed25519 signature.
	SigSize = ed25519.SignatureSize

	nonceSize = 32
)

// helloMagic opens every hello, so a peer speaking something else is told
// apart from one with a bad key.
var helloMagic = [3]byte{'Q', 'P', 'C'}

// sigDomain separates handshake signatures from every other signature the
// identity key makes (announces, KeyPackages): no other signed message can
// start with it.
const sigDomain = "qpc/1 tcp handshake\x00"

// role says which end signs. It is part of the signed message, so a
// signature can never be reflected back to the side that made it.
type role byte

const (
	roleDialer   role = 'D'
	roleListener role = 'L'
)

func (r role) peer() role {
	if r == roleDialer {
		return roleListener
	}
	return roleDialer
}

// hello is the first handshake message.
type hello struct {
	key   [ed25519.PublicKeySize]byte
	nonce [nonceSize]byte
}

func (h *hello) encode() []byte {
	b := make([]byte, 0, HelloSize)
	b = append(b, helloMagic[:]...)
	b = append(b, Version)
	b = append(b, h.key[:]...)
	return append(b, h.nonce[:]...)
}

// decodeHello parses a hello. Every error matches transports.ErrHandshake.
func decodeHello(b []byte) (hello, error) {
	var h hello
	switch {
	case len(b) != HelloSize:
		return h, fmt.Errorf("%w: hello is %d bytes, want %d", transports.ErrHandshake, len(b), HelloSize)
	case !bytes.Equal(b[:3], helloMagic[:]):
		return h, fmt.Errorf("%w: not a qpc peer (hello starts %x)", transports.ErrHandshake, b[:3])
	case b[3] != Version:
		return h, fmt.Errorf("%w: peer speaks version %d, we speak %d", transports.ErrHandshake, b[3], Version)
	}
	copy(h.key[:], b[4:4+ed25519.PublicKeySize])
	copy(h.nonce[:], b[4+ed25519.PublicKeySize:])
	return h, nil
}

// signedMessage is what the side r signs: the domain string, the signer's
// role, then both hellos in the fixed order dialer, listener. It binds the
// signature to this session (both fresh nonces) and both identities.
func signedMessage(r role, dialerHello, listenerHello []byte) []byte {
	m := make([]byte, 0, len(sigDomain)+1+2*HelloSize)
	m = append(m, sigDomain...)
	m = append(m, byte(r))
	m = append(m, dialerHello...)
	return append(m, listenerHello...)
}

// handshake runs the mutual identity proof on a fresh connection and
// returns the peer's verified key. Both sides send their hello at once,
// then their signature, so it costs one round trip plus a half. The
// deadline covers the whole exchange and is cleared on success. Every
// error matches transports.ErrHandshake; the caller closes conn.
func handshake(conn net.Conn, id *crypto.Identity, r role, deadline time.Time) (ed25519.PublicKey, error) {
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("%w: %w", transports.ErrHandshake, err)
	}
	var ours hello
	copy(ours.key[:], id.PublicKey())
	rand.Read(ours.nonce[:]) // never fails (crypto/rand panics rather than return an error)
	ourHello := ours.encode()
	if _, err := conn.Write(ourHello); err != nil {
		return nil, fmt.Errorf("%w: send hello: %w", transports.ErrHandshake, err)
	}

	peerHello := make([]byte, HelloSize)
	if _, err := io.ReadFull(conn, peerHello); err != nil {
		return nil, fmt.Errorf("%w: read hello: %w", transports.ErrHandshake, err)
	}
	theirs, err := decodeHello(peerHello)
	if err != nil {
		return nil, err
	}
	if theirs.key == ours.key {
		return nil, fmt.Errorf("%w: %w", transports.ErrHandshake, transports.ErrSelf)
	}
	if theirs.nonce == ours.nonce {
		return nil, fmt.Errorf("%w: peer echoed our nonce", transports.ErrHandshake)
	}

	dialerHello, listenerHello := ourHello, peerHello
	if r == roleListener {
		dialerHello, listenerHello = peerHello, ourHello
	}
	sig := id.Sign(signedMessage(r, dialerHello, listenerHello))
	if _, err := conn.Write(sig); err != nil {
		return nil, fmt.Errorf("%w: send signature: %w", transports.ErrHandshake, err)
	}
	peerSig := make([]byte, SigSize)
	if _, err := io.ReadFull(conn, peerSig); err != nil {
		return nil, fmt.Errorf("%w: read signature: %w", transports.ErrHandshake, err)
	}
	peerKey := ed25519.PublicKey(theirs.key[:])
	if !ed25519.Verify(peerKey, signedMessage(r.peer(), dialerHello, listenerHello), peerSig) {
		return nil, fmt.Errorf("%w: bad signature from %s", transports.ErrHandshake, crypto.AddressOf(peerKey).Short())
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("%w: %w", transports.ErrHandshake, err)
	}
	return peerKey, nil
}
