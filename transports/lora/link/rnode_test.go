package link

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/rnode"
)

// rnodeNode is a link transport on an RNode modem driven over a pipe by
// an emulator.
func rnodeNode(t *testing.T) (*Transport, *rnode.Emulator, *crypto.Identity) {
	t.Helper()
	emu := rnode.NewEmulator(rnode.EmulatorConfig{})
	host, dev := net.Pipe()
	emu.Start(dev)
	t.Cleanup(func() { dev.Close(); <-emu.Done() })
	m, err := rnode.New(host, rnode.Config{
		Frequency: 915_000_000, Bandwidth: 500_000, SF: 7, CR: 5, TxPower: 10,
		DetectTimeout: 10 * time.Second, ConfigTimeout: 10 * time.Second,
		ReadyTimeout: 10 * time.Second, CloseTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := crypto.NewIdentity(nil)
	tr, err := New(NewRNodeRadio(m), Options{Identity: id, Region: lora.US915, Channel: "/dev/ttyUSB0", Logger: testLogger()})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, emu, id
}

// Two nodes on RNode modems (through the real KISS driver, against the
// emulator), with an ideal air between the emulators.
func TestOverRNodeModems(t *testing.T) {
	a, emuA, _ := rnodeNode(t)
	b, emuB, idB := rnodeNode(t)
	air := func(from, to *rnode.Emulator) {
		for {
			select {
			case p := <-from.Transmitted():
				to.Receive(p, -60, 8)
			case <-from.Done():
				return
			}
		}
	}
	go air(emuA, emuB)
	go air(emuB, emuA)

	if a.MTU() != 254 {
		t.Errorf("MTU on an RNode = %d, want 254 (its header takes one byte)", a.MTU())
	}
	want, _ := a.radio.(Airtimer).Airtime(100)
	if got := a.airtime(100); got != want {
		t.Errorf("airtime %s, want the modem's %s", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := a.Listen(ctx, "/dev/ttyUSB0?freq=915000000&sf=7&bw=500000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ba, err := b.Dial(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	ab, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Peer() != idB.Address() {
		t.Fatalf("accepted %s, want %s", ab.Peer().Short(), idB.Address().Short())
	}
	big := payload(2048, 9)
	if err := ba.WriteFrame(big); err != nil {
		t.Fatal(err)
	}
	if err := ab.WriteFrame([]byte("hello over serial")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    transports.Conn
		want []byte
	}{{ab, big}, {ba, []byte("hello over serial")}} {
		got, err := readTimeout(tc.c, 10*time.Second)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Fatalf("got %d bytes, %v; want %d bytes as sent", len(got), err, len(tc.want))
		}
	}
	if st := emuA.Stats(); st == (rnode.EmulatorStats{}) {
		t.Error("the emulator saw nothing")
	}
}

func readTimeout(c transports.Conn, d time.Duration) ([]byte, error) {
	type res struct {
		f   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() { f, err := c.ReadFrame(); ch <- res{f, err} }()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-time.After(d):
		c.Close()
		<-ch
		return nil, context.DeadlineExceeded
	}
}
