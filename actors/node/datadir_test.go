package node

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/persist"
	"github.com/quicprochat/qpc/internal/persist/persisttest"
)

// startErr starts a node that is expected to refuse its data dir.
func startErr(t *testing.T, opts ...Option) (error, string) {
	t.Helper()
	logs := &syncBuffer{}
	n, err := New(append([]Option{WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = n.Start(ctx)
	if err == nil {
		n.Stop(context.Background())
		t.Fatalf("the node started:\n%s", logs)
	}
	select {
	case <-n.Done():
	default:
		t.Fatal("Done not closed after a failed start")
	}
	return err, logs.String()
}

// TestMissingIdentityBesideDatabaseIsRefused: identity.pem deleted from
// a data dir with 1,000 inbox messages was silently replaced by a new
// identity serving the old inbox. Now the start is refused naming the
// key file and the way out; with WithNewIdentity it goes on, says so,
// and keeps the inbox.
func TestMissingIdentityBesideDatabaseIsRefused(t *testing.T) {
	c := testConfig(t)
	persisttest.DataDir(t, c.DataDir, 100)
	if err := os.Remove(c.KeyPath()); err != nil {
		t.Fatal(err)
	}
	err, _ := startErr(t, WithConfig(c))
	if !errors.Is(err, ErrIdentityMissing) || !IsDataDirError(err) ||
		!strings.Contains(err.Error(), c.KeyPath()) || !strings.Contains(err.Error(), "--new-identity") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(c.KeyPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file was created: %v", err)
	}

	n, logs := startNode(t, c, WithNewIdentity())
	if n.Address() == persisttest.Identity(t).Address() {
		t.Fatal("the old identity came back")
	}
	if !strings.Contains(logs.String(), "identity created for an existing database") {
		t.Fatalf("no warning about the new identity:\n%s", logs)
	}
	res, err := n.InboxSince(context.Background(), 0, 0)
	if err != nil || len(res.Messages) != 100 {
		t.Fatalf("inbox under the new identity: %d messages, %v", len(res.Messages), err)
	}
	// The database now belongs to the new identity: a restart needs no flag.
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	startNode(t, c)
}

// TestOtherIdentityIsRefused: a key file of another node beside the
// database is refused; WithNewIdentity makes it the owner.
func TestOtherIdentityIsRefused(t *testing.T) {
	c := testConfig(t)
	persisttest.DataDir(t, c.DataDir, 10)
	os.Remove(c.KeyPath())
	other, _ := crypto.NewIdentity(nil)
	if err := crypto.SaveIdentity(c.KeyPath(), other); err != nil {
		t.Fatal(err)
	}
	err, _ := startErr(t, WithConfig(c))
	if !errors.Is(err, ErrOtherIdentity) || !IsDataDirError(err) || !strings.Contains(err.Error(), "--new-identity") {
		t.Fatalf("err = %v", err)
	}
	n, _ := startNode(t, c, WithNewIdentity())
	if n.Address() != other.Address() {
		t.Fatal("not the key file's identity")
	}
}

// TestDamagedDatabaseRefusedAtStart: the node does not start on a
// database that fails its check: no API, no listener, the file as it was.
func TestDamagedDatabaseRefusedAtStart(t *testing.T) {
	c := testConfig(t)
	path := persisttest.DataDir(t, c.DataDir, 100)
	persisttest.ZeroPageHolding(t, path, persisttest.Text(50), 4096)
	sum := persisttest.Sum(t, path)
	err, logs := startErr(t, WithConfig(c))
	if !errors.Is(err, persist.ErrDamaged) || !IsDataDirError(err) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v\n%s", err, logs)
	}
	if persisttest.Sum(t, path) != sum {
		t.Fatal("the damaged file was changed")
	}
}

// TestDatabaseCheckTimeLimitStartsAnyway: a check cut short by its time
// limit is no damage: the node starts and warns.
func TestDatabaseCheckTimeLimitStartsAnyway(t *testing.T) {
	c := testConfig(t)
	persisttest.DataDir(t, c.DataDir, 100)
	_, logs := startNode(t, c, withDBCheck(persist.CheckOptions{TimeLimit: time.Nanosecond}))
	if !strings.Contains(logs.String(), "time limit") {
		t.Fatalf("no warning about the incomplete check:\n%s", logs)
	}
}

// TestMissingDatabaseBesideIdentityIsSaid: a key file kept from before
// and no database: the new, empty database is a warning, not silent.
func TestMissingDatabaseBesideIdentityIsSaid(t *testing.T) {
	c := testConfig(t)
	path := persisttest.DataDir(t, c.DataDir, 1)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, logs := startNode(t, c)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "no database beside the identity's key file") {
		t.Fatalf("no warning:\n%s", logs)
	}
}
