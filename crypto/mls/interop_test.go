package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thomas-vilte/mls-go/ciphersuite"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/keypackages"
)

// keyPackageRefLib is the library's KeyPackageRef, to cross-check ours.
func keyPackageRefLib(kp *keypackages.KeyPackage) []byte {
	return ciphersuite.MakeKeyPackageRef(kp.Raw, Suite.HashFunction()).AsSlice()
}

// vectorDir finds the mlswg test vectors shipped in the pinned mls-go module.
func vectorDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/thomas-vilte/mls-go").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/thomas-vilte/mls-go: %v (the module must be in the module cache; run go mod download)", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "testdata", "mls-interop-testvectors", "test-vectors")
	if _, err := os.Stat(filepath.Join(dir, "crypto-basics.json")); err != nil {
		t.Fatalf("mlswg test vectors not found in %s: %v", dir, err)
	}
	return dir
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

func loadVectors(t *testing.T, dir, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestInteropVectors(t *testing.T) {
	dir := vectorDir(t)

	t.Run("crypto-basics ref_hash", func(t *testing.T) {
		var vs []struct {
			CipherSuite uint16 `json:"cipher_suite"`
			RefHash     struct {
				Label string   `json:"label"`
				Value hexBytes `json:"value"`
				Out   hexBytes `json:"out"`
			} `json:"ref_hash"`
		}
		loadVectors(t, dir, "crypto-basics.json", &vs)
		n := 0
		for _, v := range vs {
			if v.CipherSuite != uint16(Suite) {
				continue
			}
			got := refHash([]byte(v.RefHash.Label), v.RefHash.Value)
			if !bytes.Equal(got[:], v.RefHash.Out) {
				t.Fatalf("RefHash(%q) = %x, want %x", v.RefHash.Label, got, v.RefHash.Out)
			}
			n++
		}
		if n == 0 {
			t.Fatal("no ref_hash vector for our suite")
		}
	})

	t.Run("welcome KeyPackageRef, ParseKeyPackage, Peek", func(t *testing.T) {
		var vs []struct {
			CipherSuite uint16   `json:"cipher_suite"`
			KeyPackage  hexBytes `json:"key_package"`
			Welcome     hexBytes `json:"welcome"`
		}
		loadVectors(t, dir, "welcome.json", &vs)
		n := 0
		for _, v := range vs {
			// Peek works on any suite's Welcome.
			if id, ep, k, err := Peek(v.Welcome); err != nil || k != KindWelcome || ep != 0 || id != ([16]byte{}) {
				t.Fatalf("Peek(welcome) = %x %d %v %v", id, ep, k, err)
			}
			if v.CipherSuite != uint16(Suite) {
				continue
			}
			m, err := framing.UnmarshalMLSMessage(v.KeyPackage)
			if err != nil || m.KeyPackage == nil {
				t.Fatalf("key_package is not an MLSMessage(KeyPackage): %v", err)
			}
			ref := keyPackageRef(m.KeyPackage)
			w, err := parseWelcome(v.Welcome)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range w.Secrets {
				found = found || bytes.Equal(s.NewMember, ref[:])
			}
			if !found {
				t.Fatalf("our KeyPackageRef %x is not in the Welcome", ref)
			}
			// Another implementation's KeyPackage passes decoding, suite and
			// both signatures, and fails only our address binding.
			_, err = ParseKeyPackage(m.KeyPackage, time.Unix(1, 0))
			if !errors.Is(err, ErrCredential) {
				t.Fatalf("ParseKeyPackage(vector) = %v, want ErrCredential", err)
			}
			n++
		}
		if n == 0 {
			t.Fatal("no welcome vector for our suite")
		}
	})

	t.Run("message-protection Peek", func(t *testing.T) {
		var vs []struct {
			CipherSuite     uint16   `json:"cipher_suite"`
			GroupID         hexBytes `json:"group_id"`
			Epoch           uint64   `json:"epoch"`
			ProposalPriv    hexBytes `json:"proposal_priv"`
			ProposalPub     hexBytes `json:"proposal_pub"`
			CommitPriv      hexBytes `json:"commit_priv"`
			CommitPub       hexBytes `json:"commit_pub"`
			ApplicationPriv hexBytes `json:"application_priv"`
		}
		loadVectors(t, dir, "message-protection.json", &vs)
		if len(vs) == 0 {
			t.Fatal("no vectors")
		}
		for _, v := range vs {
			for _, c := range []struct {
				msg  []byte
				kind Kind
			}{
				{v.ProposalPriv, KindProposal}, {v.ProposalPub, KindProposal},
				{v.CommitPriv, KindCommit}, {v.CommitPub, KindCommit},
				{v.ApplicationPriv, KindApplication},
			} {
				id, ep, k, err := peek(c.msg)
				if err != nil || !bytes.Equal(id, v.GroupID) || ep != v.Epoch || k != c.kind {
					t.Fatalf("suite %d: peek = %x %d %v %v, want %x %d %v", v.CipherSuite, id, ep, k, err, v.GroupID, v.Epoch, c.kind)
				}
				if len(v.GroupID) != GroupIDSize {
					_, _, _, err := Peek(c.msg)
					if !errors.Is(err, ErrWrongGroup) {
						t.Fatalf("Peek of a %d-byte group id: %v", len(v.GroupID), err)
					}
				}
			}
		}
	})

	t.Run("key-schedule exporter", func(t *testing.T) {
		var vs []struct {
			CipherSuite uint16 `json:"cipher_suite"`
			Epochs      []struct {
				ExporterSecret hexBytes `json:"exporter_secret"`
				Exporter       struct {
					// The label is the literal string as written in
					// the file (hex-looking ASCII), not hex to decode.
					Label   string   `json:"label"`
					Context hexBytes `json:"context"`
					Length  int      `json:"length"`
					Secret  hexBytes `json:"secret"`
				} `json:"exporter"`
			} `json:"epochs"`
		}
		loadVectors(t, dir, "key-schedule.json", &vs)
		n := 0
		for _, v := range vs {
			if v.CipherSuite != uint16(Suite) {
				continue
			}
			for _, e := range v.Epochs {
				got, err := export(e.ExporterSecret, e.Exporter.Label, e.Exporter.Context, e.Exporter.Length)
				if err != nil || !bytes.Equal(got, e.Exporter.Secret) {
					t.Fatalf("export = %x %v, want %x", got, err, e.Exporter.Secret)
				}
				n++
			}
		}
		if n == 0 {
			t.Fatal("no exporter vector for our suite")
		}
	})
}
