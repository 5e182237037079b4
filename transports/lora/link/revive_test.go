package link

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/rnode"
)

// deviceNode is a transport on an rnode.Device behind an emulator port.
func deviceNode(t *testing.T, port *rnode.EmulatorPort) (*Transport, *rnode.Device, *crypto.Identity) {
	t.Helper()
	d, err := rnode.OpenDevice(port.Path(), rnode.Config{
		Frequency: 915_000_000, Bandwidth: 500_000, SF: 7, CR: 5, TxPower: 20,
		ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := crypto.NewIdentity(nil)
	tr, err := New(NewRNodeDeviceRadio(d), Options{Identity: id, Region: lora.US915, Channel: port.Path(), Logger: testLogger(),
		ReportTimeout: 100 * time.Millisecond, PeerSilence: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, d, id
}

func acceptWithin(t *testing.T, l transports.Listener, what string) transports.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c
}

// A modem that vanishes and comes back (issue 12 item 5): the transport
// is not torn down, but its connections end with ErrRadioDown while the
// modem is away, and the peer gives its end up; when the modem is back
// the transport greets the channel, both ends link again, and frames
// flow both ways over the same transport.
func TestRadioComesBack(t *testing.T) {
	dir := t.TempDir()
	pa, err := rnode.NewEmulatorPort(filepath.Join(dir, "a"), rnode.EmulatorConfig{})
	if err != nil {
		t.Skipf("SKIP: no pty: %v", err)
	}
	t.Cleanup(func() { pa.Close() })
	pb, err := rnode.NewEmulatorPort(filepath.Join(dir, "b"), rnode.EmulatorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })
	stop := make(chan struct{})
	defer close(stop)
	rnode.ShareAir(pa, pb, stop)

	a, devA, idA := deviceNode(t, pa)
	b, _, idB := deviceNode(t, pb)
	la, err := a.Listen(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	lb, err := b.Listen(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	ab := acceptWithin(t, la, "A links with B")
	ba := acceptWithin(t, lb, "B links with A")
	if ab.Peer() != idB.Address() || ba.Peer() != idA.Address() {
		t.Fatal("linked with the wrong peers")
	}
	if err := ab.WriteFrame([]byte("before")); err != nil {
		t.Fatal(err)
	}
	if got, err := readTimeout(ba, 10*time.Second); err != nil || string(got) != "before" {
		t.Fatalf("before: %q %v", got, err)
	}
	probe.Until(t, 10*time.Second, func() bool { return a.Stats().FramesSent >= 1 }, "A's frame acknowledged")

	if err := pa.Vanish(); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, func() bool { return !devA.Up() }, "A's modem marked down")
	// A's connections end: B is out of reach.
	if _, err := readTimeout(ab, 10*time.Second); !errors.Is(err, ErrRadioDown) {
		t.Fatalf("A's link to B with A's modem away: %v, want ErrRadioDown", err)
	}
	if _, err := a.Listen(context.Background(), ""); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("A's transport with its modem away: Listen = %v, want ErrAddrInUse (not ErrRadio)", err)
	}
	// B's frames to A go unacknowledged: once A has been silent for B's
	// PeerSilence (1 s), B gives the link up (a frame given up on before
	// is dropped alone).
	err = nil
	for i := 0; i < 20 && !errors.Is(err, ErrPeerLost); i++ {
		if err = ba.WriteFrame([]byte("into the void")); err == nil {
			_, err = readTimeout(ba, 3*time.Second)
		}
	}
	if !errors.Is(err, ErrPeerLost) {
		t.Fatalf("B's link to A while A's modem is away: %v, want ErrPeerLost", err)
	}

	if _, err := pa.Return(); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 10*time.Second, devA.Up, "A's modem re-opened")
	// Both ends link again, by the HELLOs A asks for.
	ab2 := acceptWithin(t, la, "A links with B again")
	ba2 := acceptWithin(t, lb, "B links with A again")
	if ab2.Peer() != idB.Address() || ba2.Peer() != idA.Address() {
		t.Fatal("linked again with the wrong peers")
	}
	if err := ba2.WriteFrame([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if got, err := readTimeout(ab2, 20*time.Second); err != nil || string(got) != "after" {
		t.Fatalf("A got %q %v, want B's frame after the re-open", got, err)
	}
	if err := ab2.WriteFrame([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if got, err := readTimeout(ba2, 20*time.Second); err != nil || string(got) != "back" {
		t.Fatalf("B got %q %v", got, err)
	}
}
