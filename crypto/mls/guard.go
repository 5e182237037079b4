package mls

import (
	"encoding/binary"
	"encoding/json"

	"github.com/thomas-vilte/mls-go/ciphersuite"
	mlsext "github.com/thomas-vilte/mls-go/extensions"
	"github.com/thomas-vilte/mls-go/group"
)

// Guards against inputs that make mls-go v1.6.0 allocate without bound.
//
// treesync.UnmarshalTree reads a uint32 leaf count and allocates 2n-1 nodes
// before reading any of them. It is used for the stored state, and, as a
// fallback, for a Welcome's ratchet_tree extension that does not decode as
// RFC 9420 vector: anyone who has one of our (public) KeyPackages can encrypt
// such a Welcome to us, and the tree is parsed before the GroupInfo
// signature is checked. TestJoinTreeBomb and FuzzLoad found and pin this.

// readVarint decodes a minimal MLS variable-length integer (RFC 9420
// §2.1.2), as mls-go's reader accepts it.
func readVarint(b []byte) (n uint64, hdr int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch b[0] >> 6 {
	case 0:
		return uint64(b[0] & 0x3f), 1, true
	case 1:
		if len(b) < 2 {
			return 0, 0, false
		}
		n = uint64(b[0]&0x3f)<<8 | uint64(b[1])
		return n, 2, n >= 1<<6
	case 2:
		if len(b) < 4 {
			return 0, 0, false
		}
		n = uint64(b[0]&0x3f)<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		return n, 4, n >= 1<<14
	}
	return 0, 0, false
}

// wholeVector reports whether b is exactly one non-empty vector<V>, so that
// mls-go's UnmarshalTreeFromExtension does not fall back to UnmarshalTree.
func wholeVector(b []byte) bool {
	n, hdr, ok := readVarint(b)
	return ok && n > 0 && uint64(len(b)-hdr) == n
}

// welcomeKeys opens the GroupSecrets of w meant for k (ref is k.Ref()) and
// derives the key and nonce of the encrypted GroupInfo; sd is the GroupSecrets
// plaintext.
func welcomeKeys(w *group.Welcome, k *OwnKeyPackage, ref [32]byte, psks []PSK) (sd, key, nonce []byte, withPSK bool, err error) {
	var egs *group.EncryptedGroupSecrets
	for i := range w.Secrets {
		if string(w.Secrets[i].NewMember) == string(ref[:]) {
			egs = &w.Secrets[i]
			break
		}
	}
	if egs == nil {
		return nil, nil, nil, false, errorf(ErrNotMember, "welcome is not for this key package")
	}
	sd, err = ciphersuite.DecryptWithLabel(k.initPriv.Bytes(), "Welcome", w.EncryptedGroupInfo, &egs.EncryptedGroupSecrets, Suite)
	if err != nil {
		return nil, nil, nil, false, errorf(ErrDecrypt, "group secrets: %v", err)
	}
	gs, err := group.UnmarshalGroupSecrets(sd)
	if err != nil || gs.JoinerSecret == nil {
		return nil, nil, nil, false, errorf(ErrMalformed, "group secrets: %v", err)
	}
	pskSecret, err := welcomePSKSecret(gs, psks)
	if err != nil {
		return nil, nil, nil, false, err
	}
	// welcome_secret = DeriveSecret(Extract(joiner_secret, psk_secret), "welcome")
	// (RFC 9420 §8; psk_secret zero without PSKs); key and nonce are
	// ExpandWithLabel of it.
	ikm := ciphersuite.ZeroSecretCS(Suite)
	if pskSecret != nil {
		ikm = ciphersuite.NewSecretForCS(Suite, pskSecret)
	}
	joiner := ciphersuite.NewSecretForCS(Suite, append([]byte(nil), gs.JoinerSecret.AsSlice()...))
	member, err := joiner.HKDFExtract(ikm)
	if err != nil {
		return nil, nil, nil, false, errorf(ErrMalformed, "member secret: %v", err)
	}
	ws, err := member.DeriveSecret(Suite, "welcome")
	if err != nil {
		return nil, nil, nil, false, errorf(ErrMalformed, "welcome secret: %v", err)
	}
	k1, err1 := ws.KdfExpandLabel("key", []byte{}, Suite.AEADKeyLength())
	n1, err2 := ws.KdfExpandLabel("nonce", []byte{}, Suite.AEADNonceLength())
	if err1 != nil || err2 != nil {
		return nil, nil, nil, false, errorf(ErrMalformed, "welcome key")
	}
	return sd, k1.AsSlice(), n1.AsSlice(), pskSecret != nil, nil
}

// preflightWelcome decrypts the GroupInfo of w with k's init key and refuses
// what mls-go would mis-handle: PSKs other than one external PSK held in
// psks, and a ratchet_tree extension that is missing or not one whole
// vector. withPSK: the Welcome injects a PSK.
func preflightWelcome(w *group.Welcome, k *OwnKeyPackage, ref [32]byte, psks []PSK) (withPSK bool, err error) {
	_, key, nonce, withPSK, err := welcomeKeys(w, k, ref, psks)
	if err != nil {
		return false, err
	}
	pt, err := ciphersuite.DecryptWithCipherSuite(key, nonce, w.EncryptedGroupInfo, []byte{}, Suite)
	if err != nil {
		return false, errorf(ErrDecrypt, "group info: %v", err)
	}
	gi, err := group.UnmarshalGroupInfo(pt)
	if err != nil {
		return false, errorf(ErrMalformed, "group info: %v", err)
	}
	found := false
	for _, ext := range gi.Extensions {
		if ext.Type == mlsext.ExtensionTypeRatchetTree {
			if found || !wholeVector(ext.Data) {
				return false, errorf(ErrMalformed, "ratchet_tree extension is not one vector")
			}
			found = true
		}
	}
	if !found {
		return false, errorf(ErrMalformed, "welcome without ratchet_tree")
	}
	return withPSK, nil
}

// precheckState refuses a stored state whose ratchet tree claims more
// nodes than it has bytes (each node takes at least one).
func precheckState(st []byte) error {
	var s struct {
		RatchetTree []byte `json:"ratchet_tree"`
	}
	if err := json.Unmarshal(st, &s); err != nil {
		return errorf(ErrMalformed, "state: %v", err)
	}
	t := s.RatchetTree
	if len(t) < 4 {
		return errorf(ErrMalformed, "state: ratchet tree of %d bytes", len(t))
	}
	n := uint64(binary.BigEndian.Uint32(t))
	if n == 0 || 2*n-1 > uint64(len(t)-4) {
		return errorf(ErrMalformed, "state: ratchet tree claims %d leaves in %d bytes", n, len(t))
	}
	return nil
}
