package mlslite

import (
	"crypto/ed25519"
	"fmt"

	"github.com/quicprochat/qpc/crypto"
)

// Seal encrypts plaintext from src to the member dst under src's key of
// this epoch and returns the encoded frame, hop count 0. counter must come
// from src's Counter of this epoch (never reuse one: the nonce would
// repeat). signer nil gives an unsigned frame; otherwise signer is src's
// Ed25519 identity key (its address must be src) and the frame carries its
// signature over TBS. It refuses a text that does not fit MaxFrameSize,
// counting the extra byte of a hop count from 24 when hopLimit allows one
// (ErrTooLarge), and a broadcast src or dst (ErrMalformed).
func (e *Epoch) Seal(src, dst crypto.Address, hopLimit uint8, counter uint32, plaintext []byte, signer ed25519.PrivateKey) ([]byte, error) {
	if len(plaintext) > MaxFrameSize {
		return nil, fmt.Errorf("%w: text of %d bytes", ErrTooLarge, len(plaintext))
	}
	if signer != nil {
		if len(signer) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("mlslite: signer key of %d bytes, want %d", len(signer), ed25519.PrivateKeySize)
		}
		if crypto.AddressOf(signer.Public().(ed25519.PublicKey)) != src {
			return nil, fmt.Errorf("mlslite: the signer's address is not the source %s", src.Short())
		}
	}
	f := Frame{HopLimit: hopLimit, Source: src, Destination: dst, GroupRef: e.ref, Epoch: e.epoch, Counter: counter}
	if signer != nil {
		f.Signature = make([]byte, 0, SignatureSize) // marks the AAD signed; filled below
	}
	k := e.keys(src)
	nonce := k.nonce(counter)
	f.Ciphertext = k.aead.Seal(nil, nonce[:], plaintext, f.AAD())
	if signer != nil {
		f.Signature = ed25519.Sign(signer, f.TBS())
	}
	out, err := encode(f)
	if err != nil {
		return nil, err
	}
	if hopLimit >= 24 && len(out)+1 > MaxFrameSize {
		return nil, fmt.Errorf("%w: frame of %d bytes would pass %d when forwarded beyond hop 23", ErrTooLarge, len(out), MaxFrameSize)
	}
	return out, nil
}

// Opened is a frame that Open authenticated and decrypted.
type Opened struct {
	Source, Destination crypto.Address
	Epoch               uint64
	Counter             uint32
	Signed              bool // the source's signature verified
	Plaintext           []byte
	ID                  [16]byte // Frame.ID
}

// Open authenticates and decrypts a frame for the member self with this
// epoch's keys. It checks, in this order, and stops at the first refusal:
//
//  1. size: more than MaxFrameSize bytes is ErrTooLarge, before decoding;
//  2. the canonical decoding (Decode): ErrMalformed;
//  3. the group ref and the epoch are e's: ErrWrongGroup, ErrWrongEpoch
//     (a frame of an older or newer epoch needs that epoch's keys, and old
//     keys are refused by the caller keeping only the current Epoch);
//  4. the destination is self: ErrWrongDestination;
//  5. a signature, when present, verifies under pub(source), whose
//     address must be the source (ErrBadSignature, also for an unknown
//     source or pub nil); an unsigned frame when requireSigned is
//     ErrUnsigned;
//  6. the AEAD opens with the source's key and the frame's AAD:
//     ErrDecrypt;
//  7. the replay windows w accept (epoch, source, counter): ErrReplay (or
//     ErrWrongEpoch for an epoch older than w's newest of the group,
//     ErrTooManySenders when w is full).
//
// Only a frame that passed 1–6 touches w, so a forgery never uses up a
// real message's counter. w is required. Without a signature the source is
// authenticated only as "some member of the group" (docs/crypto.md).
func (e *Epoch) Open(frame []byte, self crypto.Address, pub func(crypto.Address) (ed25519.PublicKey, bool), requireSigned bool, w *Windows) (Opened, error) {
	if w == nil {
		return Opened{}, fmt.Errorf("mlslite: Open without replay windows")
	}
	f, err := Decode(frame)
	if err != nil {
		return Opened{}, err
	}
	if f.GroupRef != e.ref {
		return Opened{}, fmt.Errorf("%w: group ref %x, this group's %x", ErrWrongGroup, f.GroupRef, e.ref)
	}
	if f.Epoch != e.epoch {
		return Opened{}, fmt.Errorf("%w: epoch %d, keys of epoch %d", ErrWrongEpoch, f.Epoch, e.epoch)
	}
	if f.Destination != self {
		return Opened{}, fmt.Errorf("%w: for %s, this is %s", ErrWrongDestination, f.Destination.Short(), self.Short())
	}
	switch {
	case f.Signed():
		if pub == nil {
			return Opened{}, fmt.Errorf("%w: no key lookup for the source %s", ErrBadSignature, f.Source.Short())
		}
		key, ok := pub(f.Source)
		if !ok {
			return Opened{}, fmt.Errorf("%w: no key known for the source %s", ErrBadSignature, f.Source.Short())
		}
		if len(key) != ed25519.PublicKeySize || crypto.AddressOf(key) != f.Source {
			return Opened{}, fmt.Errorf("%w: the key given for %s is not its", ErrBadSignature, f.Source.Short())
		}
		if !ed25519.Verify(key, f.TBS(), f.Signature) {
			return Opened{}, fmt.Errorf("%w: from %s", ErrBadSignature, f.Source.Short())
		}
	case requireSigned:
		return Opened{}, fmt.Errorf("%w: from %s", ErrUnsigned, f.Source.Short())
	}
	k := e.keys(f.Source)
	nonce := k.nonce(f.Counter)
	pt, err := k.aead.Open(nil, nonce[:], f.Ciphertext, f.AAD())
	if err != nil {
		return Opened{}, fmt.Errorf("%w: from %s, counter %d", ErrDecrypt, f.Source.Short(), f.Counter)
	}
	if err := w.accept(e.groupID, e.epoch, f.Source, f.Counter); err != nil {
		return Opened{}, err
	}
	if pt == nil {
		pt = []byte{}
	}
	return Opened{Source: f.Source, Destination: f.Destination, Epoch: f.Epoch, Counter: f.Counter,
		Signed: f.Signed(), Plaintext: pt, ID: f.ID()}, nil
}
