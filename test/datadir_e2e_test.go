package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/persist/persisttest"
)

const dataDirMessages = 1000

// soundDataDir is a data dir with 1,000 inbox messages, as a node leaves
// it (identity.pem and qpc.db), built with the store API.
func soundDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	persisttest.DataDir(t, dir, dataDirMessages)
	return dir
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestNodeRefusesDamagedDataDir is issue 10 item 4 with real processes:
// on a copy of a data dir holding 1,000 inbox messages, each damage made
// qpc node panic (exit 2), restart its router and exit 1 after 30 s,
// serve a zeroed page, or silently replace the file or the identity. Now
// each exits 3 at once with one line naming the file and what to do,
// never becomes ready, and leaves the data dir as it was.
func TestNodeRefusesDamagedDataDir(t *testing.T) {
	base := soundDataDir(t)
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		file   string // what the line names
		want   string
	}{
		{"qpc.db truncated to half", func(t *testing.T, d string) { persisttest.Truncate(t, filepath.Join(d, "qpc.db")) }, "qpc.db", "cut short"},
		{"200 bytes flipped", func(t *testing.T, d string) { persisttest.Flip(t, filepath.Join(d, "qpc.db"), 200, 1, 4096) }, "qpc.db", "qpc db salvage"},
		{"a zeroed page", func(t *testing.T, d string) {
			persisttest.ZeroPageHolding(t, filepath.Join(d, "qpc.db"), persisttest.Text(500), 4096)
		}, "qpc.db", "zeroed"},
		{"qpc.db of 0 bytes", func(t *testing.T, d string) { persisttest.Empty(t, filepath.Join(d, "qpc.db")) }, "qpc.db", "empty (0 bytes)"},
		{"identity.pem deleted", func(t *testing.T, d string) {
			if err := os.Remove(filepath.Join(d, "identity.pem")); err != nil {
				t.Fatal(err)
			}
		}, "identity.pem", "--new-identity"},
		{"identity.pem damaged", func(t *testing.T, d string) {
			if err := os.WriteFile(filepath.Join(d, "identity.pem"), []byte("-----BEGIN GARBAGE-----\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "identity.pem", "restore it from a backup"},
		{"identity.pem of another node", func(t *testing.T, d string) {
			os.Remove(filepath.Join(d, "identity.pem"))
			other, _ := crypto.NewIdentity(nil)
			if err := crypto.SaveIdentity(filepath.Join(d, "identity.pem"), other); err != nil {
				t.Fatal(err)
			}
		}, "qpc.db", "--new-identity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := persisttest.Copy(t, base)
			c.damage(t, dir)
			sums := map[string][32]byte{}
			for _, f := range []string{"qpc.db", "identity.pem"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					sums[f] = persisttest.Sum(t, filepath.Join(dir, f))
				}
			}
			api := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			start := time.Now()
			p := startNode(t, t.TempDir(), "--data-dir", dir, "--api", api, "--listen", "tcp://127.0.0.1:0")
			err := p.wait(t, 15*time.Second)
			if code := exitCode(err); code != 3 {
				t.Fatalf("exit %d (%v) after %s, want 3:\n%s", code, err, time.Since(start), p.log)
			}
			out := p.log.String()
			var lines []string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "qpc: ") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], filepath.Join(dir, c.file)) || !strings.Contains(lines[0], c.want) {
				t.Fatalf("want one line naming %s and %q:\n%s", filepath.Join(dir, c.file), c.want, out)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "restart") {
				t.Fatalf("a panic or a restart on the way:\n%s", out)
			}
			if resp, err := http.Get("http://" + api + "/readyz"); err == nil {
				resp.Body.Close()
				t.Fatalf("the API answered after the refusal: %d", resp.StatusCode)
			}
			for f, sum := range sums {
				if persisttest.Sum(t, filepath.Join(dir, f)) != sum {
					t.Fatalf("%s was changed", f)
				}
			}
			if _, ok := sums["identity.pem"]; !ok {
				if _, err := os.Stat(filepath.Join(dir, "identity.pem")); err == nil {
					t.Fatal("an identity was created")
				}
			}
		})
	}
}

// inboxOver reads a node's inbox through its admin API.
func inboxOver(t *testing.T, addr string) []api.InboxEntry {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/inbox")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r api.InboxResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/inbox: %d %v", resp.StatusCode, err)
	}
	return r.Messages
}

// TestSalvagedDataDirServes: qpc db check says what is damaged (exit 3),
// qpc db salvage copies what can be read into qpc.db.salvaged (leaving
// qpc.db as it is), and a node on the salvaged file serves every message
// but those of the zeroed page, each as it was.
func TestSalvagedDataDirServes(t *testing.T) {
	dir := soundDataDir(t)
	db := filepath.Join(dir, "qpc.db")
	persisttest.ZeroPageHolding(t, db, persisttest.Text(500), 4096)
	sum := persisttest.Sum(t, db)
	if out, _, code := qpc(t, "db", "check", "--data-dir", dir); code != 3 || !strings.Contains(out, "DAMAGED") {
		t.Fatalf("db check: %d %s", code, out)
	}
	if out, e, code := qpc(t, "db", "salvage", "--data-dir", dir); code != 0 || !strings.Contains(out, "copied") {
		t.Fatalf("db salvage: %d %s %s", code, out, e)
	}
	if persisttest.Sum(t, db) != sum {
		t.Fatal("salvage changed qpc.db")
	}
	if err := os.Rename(db, db+".damaged"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(db+".salvaged", db); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startNode(t, t.TempDir(), "--data-dir", dir, "--api", addr, "--listen", "tcp://127.0.0.1:0")
	waitHealthy(t, addr, p)
	msgs := inboxOver(t, addr)
	if len(msgs) < dataDirMessages-20 || len(msgs) >= dataDirMessages {
		t.Fatalf("%d messages served after salvage", len(msgs))
	}
	for _, m := range msgs {
		if m.Seq == 500 || m.Text != persisttest.Text(int(m.Seq)) {
			t.Fatalf("message %d served as %q", m.Seq, m.Text)
		}
	}
}

// TestNewIdentityKeepsTheData: --new-identity is the deliberate way on
// when identity.pem is lost: a new identity, the old inbox kept, a
// warning in the log.
func TestNewIdentityKeepsTheData(t *testing.T) {
	dir := soundDataDir(t)
	os.Remove(filepath.Join(dir, "identity.pem"))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startNode(t, t.TempDir(), "--data-dir", dir, "--api", addr, "--listen", "tcp://127.0.0.1:0", "--new-identity")
	waitHealthy(t, addr, p)
	p.log.waitFor(t, "identity created for an existing database", 5*time.Second)
	if n := len(inboxOver(t, addr)); n != dataDirMessages {
		t.Fatalf("%d messages under the new identity, want %d", n, dataDirMessages)
	}
	if _, err := os.Stat(filepath.Join(dir, "identity.pem")); err != nil {
		t.Fatal(err)
	}
}

// TestHandlerPanicMakesNodeNotReady: a page of qpc.db zeroed under a
// running node made GET /v1/inbox panic inside bbolt while /readyz said
// ready. Now the request is a 500, the cause is logged at ERROR, and
// /readyz answers 503 from then on.
func TestHandlerPanicMakesNodeNotReady(t *testing.T) {
	dir := soundDataDir(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startNode(t, t.TempDir(), "--data-dir", dir, "--api", addr, "--listen", "tcp://127.0.0.1:0")
	waitHealthy(t, addr, p)

	// Zero the page in place: the node's memory map sees it at once.
	db := filepath.Join(dir, "qpc.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	at := strings.Index(string(b), persisttest.Text(500)) / 4096 * 4096
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), int64(at)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	resp, err := http.Get("http://" + addr + "/v1/inbox")
	if err != nil {
		t.Fatalf("GET /v1/inbox: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), `"internal"`) {
		t.Fatalf("GET /v1/inbox over a zeroed page: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("/readyz after the panic: %d %s", resp.StatusCode, body)
	}
	p.log.waitFor(t, "level=ERROR", 5*time.Second)
	if !strings.Contains(p.log.String(), "request handler panicked") {
		t.Fatalf("no ERROR line with the cause:\n%s", p.log)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 10*time.Second)
}
