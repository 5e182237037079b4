package node

import (
	"context"
	"testing"
	"time"

	"github.com/quicprochat/qpc/transports/lora"
	"github.com/quicprochat/qpc/transports/lora/link"
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
