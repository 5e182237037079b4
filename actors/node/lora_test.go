package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
	"github.com/quicprochat/qpc/transports/lora/rnode"
)

// TestLoRaDemo is the original demo (acceptance 5 of the LoRa issue): A on
// a (simulated) LoRa channel, B a relay on LoRa and TCP, C on TCP only. A
// sends to C and C answers, end to end across both kinds of link.
func TestLoRaDemo(t *testing.T) {
	radio := link.NewMockNetwork(lora.MediumOptions{})
	ca := testConfig(t)
	ca.Transports.Listen = []string{"lora+mock://demo?sf=7"}
	a, _ := startNode(t, ca, WithLoRaMock(radio))
	cb := testConfig(t)
	cb.Transports.Listen = []string{"lora+mock://demo?sf=7", "tcp://127.0.0.1:0"}
	// No announce cap: at 2 % of the channel, B's radio would send C's
	// announce 15 s after its own, and waitRoute waits 15 s.
	cb.Transports.LoRa.AnnounceShare = 1
	b, _ := startNode(t, cb, WithLoRaMock(radio))
	cc := testConfig(t)
	cc.Transports.Listen = nil
	cc.Transports.Peers = []string{b.ListenAddrs()[1]}
	c, _ := startNode(t, cc)

	waitLink(t, a, b.Address(), "lora")
	waitRoute(t, a, c.Address())
	waitRoute(t, c, a.Address())
	if _, err := a.SendText(context.Background(), c.Address(), []byte("hello from the radio")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-c.Deliveries():
		if string(m.Text) != "hello from the radio" || m.From != a.Address() || m.Hops != 2 {
			t.Fatalf("C got %+v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("A's message did not reach C")
	}
	if _, err := c.SendText(context.Background(), a.Address(), []byte("hello from TCP")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-a.Deliveries():
		if string(m.Text) != "hello from TCP" || m.From != c.Address() {
			t.Fatalf("A got %+v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("C's reply did not reach A")
	}
	st, err := a.Status(context.Background())
	if err != nil || len(st.Links) != 1 || st.Links[0].Transport != "lora" {
		t.Fatalf("A's links: %+v %v", st.Links, err)
	}
}

// TestLoRaSerialModem runs a node on an RNode (the emulator, on the far
// end of a pseudo-terminal, so the real serial code path is used): it is
// detected and configured at start, and told LEAVE at stop; a modem that
// echoes a wrong spreading factor is refused, and the node does not start.
func TestLoRaSerialModem(t *testing.T) {
	master, slave, err := rnode.OpenPTY()
	if err != nil {
		t.Skipf("SKIP: no pseudo-terminal here: %v", err)
	}
	emu := rnode.NewEmulator(rnode.EmulatorConfig{})
	emu.Start(master)
	c := testConfig(t)
	c.Transports.Listen = []string{"lora+serial://" + slave + "?sf=7&freq=869525000"}
	n, _ := startNode(t, c)
	st, err := n.Status(context.Background())
	if err != nil || len(st.Listeners) != 1 || st.Listeners[0].Transport != "lora+serial" {
		t.Fatalf("listeners %+v %v", st.Listeners, err)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-emu.Left():
	case <-time.After(10 * time.Second):
		t.Fatal("the modem was not told LEAVE")
	}

	master2, slave2, err := rnode.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	bad := rnode.NewEmulator(rnode.EmulatorConfig{EchoSF: 9})
	bad.Start(master2)
	c2 := testConfig(t)
	c2.Transports.Listen = []string{"lora+serial://" + slave2 + "?sf=7&freq=869525000"}
	n2, err := New(WithConfig(c2), WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	err = n2.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "SF") {
		t.Fatalf("start with a mismatching modem: %v", err)
	}
}
