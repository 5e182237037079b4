package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/quicprochat/qpc/crypto/mls"
	"github.com/quicprochat/qpc/crypto/mlslite"
	"github.com/quicprochat/qpc/crypto/pq"
	"github.com/quicprochat/qpc/messages"
)

// Sizes measures what groups put on the wire (`qpc sizes`, docs/crypto.md):
// the MLS objects as crypto/mls makes them, the same inside the envelopes
// that carry them between nodes, and MLS-Lite frames. Every number is the
// length of a real encoding.
func Sizes() ([]messages.SizeRow, error) {
	raw, err := mls.Sizes()
	if err != nil {
		return nil, err
	}
	names := map[string]string{
		"KeyPackage":                                         "mls-keypackage",
		"Welcome, 2 members":                                 "mls-welcome-2",
		"Welcome, 10 members":                                "mls-welcome-10",
		"Commit, add 1 to a 1-member group":                  "mls-commit-add-to-1",
		"Commit, add 1 to a 2-member group":                  "mls-commit-add",
		"Commit, remove 1 from a 3-member group":             "mls-commit-remove",
		"Commit, self-update in a 2-member group":            "mls-commit-update",
		"Commit with a PSK, self-update in a 2-member group": "mls-commit-update-psk",
		"Application message, 32-byte text":                  "mls-application-32",
		"Group state, 3 members":                             "mls-group-state-3",
	}
	var out []messages.SizeRow
	by := map[string]int{}
	for _, r := range raw {
		n, ok := names[r.Name]
		if !ok {
			return nil, fmt.Errorf("keys: sizes: unknown row %q of crypto/mls", r.Name)
		}
		by[n] = r.Bytes
		out = append(out, messages.SizeRow{Name: n, Bytes: r.Bytes, Note: r.Name + ": " + r.Note})
	}
	seed := sha256.Sum256([]byte("qpc group sizes"))
	id := ed25519.NewKeyFromSeed(seed[:])
	src := messages.AddressOf(id.Public().(ed25519.PublicKey))
	dst := [16]byte{1}
	at := time.Unix(1_800_000_000, 0)
	envelope := func(pt messages.PayloadType, seq uint64, payload int) (int, error) {
		e := messages.NewEnvelope(src, dst, messages.DefaultHopLimit, at.Add(24*time.Hour), pt, bytes.Repeat([]byte{0xCD}, payload))
		e.Seq = seq
		if err := e.Sign(func(m []byte) []byte { return ed25519.Sign(id, m) }); err != nil {
			return 0, err
		}
		b, err := messages.EncodeEnvelope(e)
		return len(b), err
	}
	group := func(kind PayloadKind, mlsBytes int) (int, error) {
		p := GroupPayload{Kind: kind, Group: make([]byte, 16), MLS: make([]byte, mlsBytes)}
		if kind == KindWelcome {
			p.Name, p.Creator = "Chor", make([]byte, 16)
		}
		b, err := EncodeGroupPayload(p)
		if err != nil {
			return 0, err
		}
		return envelope(messages.PayloadGroup, 1, len(b)+48) // sealed: +32 ephemeral key, +16 tag
	}
	for _, w := range []struct {
		name, from, note string
		kind             PayloadKind
	}{
		{"group-envelope-application-32", "mls-application-32", "an MLS application message (32-byte text) to one member: sealed, signed envelope, payload type group", KindApplication},
		{"group-envelope-commit-add", "mls-commit-add", "the commit adding a third member, to one member", KindCommit},
		{"group-envelope-welcome-2", "mls-welcome-2", "the Welcome of a second member, with the group's name", KindWelcome},
	} {
		n, err := group(w.kind, by[w.from])
		if err != nil {
			return nil, err
		}
		out = append(out, messages.SizeRow{Name: w.name, Bytes: n, Note: w.note})
	}
	req, err := envelope(messages.PayloadKeyPackageRequest, 0, 32)
	if err != nil {
		return nil, err
	}
	resp, err := envelope(messages.PayloadKeyPackage, 0, 16+by["mls-keypackage"])
	if err != nil {
		return nil, err
	}
	out = append(out,
		messages.SizeRow{Name: "keypackage-request", Bytes: req, Note: "signed envelope: owner and KeyPackage hash"},
		messages.SizeRow{Name: "keypackage-response", Bytes: resp, Note: "signed envelope: owner and KeyPackage"},
	)
	for _, r := range pq.Sizes() {
		if r.Name == "pq-key-record" || r.Name == "pq-sealed-overhead" {
			out = append(out, messages.SizeRow{Name: r.Name, Bytes: r.Bytes, Note: r.Note})
		}
	}
	pqEnv, err := envelope(messages.PayloadSealedPQ, 1, 32+pq.Overhead)
	if err != nil {
		return nil, err
	}
	pqKey, err := envelope(messages.PayloadPQKey, 0, pq.RecordSize)
	if err != nil {
		return nil, err
	}
	plain, err := EncodeGroupPayload(GroupPayload{Kind: KindCommit, Group: make([]byte, 16), MLS: make([]byte, by["mls-commit-update"])})
	if err != nil {
		return nil, err
	}
	withPSK, err := EncodeGroupPayload(GroupPayload{Kind: KindCommit, Group: make([]byte, 16), MLS: make([]byte, by["mls-commit-update"]), PSK: make([]byte, SealedPSKSize)})
	if err != nil {
		return nil, err
	}
	pskOverhead := by["mls-commit-update-psk"] - by["mls-commit-update"] + len(withPSK) - len(plain)
	out = append(out,
		messages.SizeRow{Name: "mls-pq-psk-overhead", Bytes: pskOverhead, Note: fmt.Sprintf("a PQ commit's cost per member (and a PQ Welcome's): the PSK proposal, and the PSK sealed to the member with X-Wing (%d B) in its copy", SealedPSKSize)},
		messages.SizeRow{Name: "pq-envelope-sealed-32", Bytes: pqEnv, Note: "a 32-byte text sealed with X-Wing in its signed envelope (classic: envelope-sealed-32)"},
		messages.SizeRow{Name: "pq-key-response", Bytes: pqKey, Note: "signed envelope carrying a node's signed X-Wing key record"},
	)
	for _, r := range mlslite.Sizes() {
		if strings.HasSuffix(r.Name, "-lora") {
			continue // qpc sizes measures the link packets itself
		}
		out = append(out, messages.SizeRow{Name: r.Name, Bytes: r.Bytes, Note: r.Note})
	}
	return out, nil
}
