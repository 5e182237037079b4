package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// transports.max_inbound_links reaches the listeners: with a cap of 1, the
// second node that dials the hub is refused after its handshake (counted,
// logged once however often it re-dials) while the first keeps its link.
func TestMaxInboundLinksFromConfig(t *testing.T) {
	ch := testConfig(t)
	ch.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	ch.Transports.MaxInboundLinks = 1
	hub, hubLogs := startNode(t, ch)

	ca := testConfig(t)
	ca.Transports.Listen = nil
	ca.Transports.Peers = hub.ListenAddrs()
	a, _ := startNode(t, ca)
	waitLink(t, hub, a.Address(), "tcp")

	cb := testConfig(t)
	cb.Transports.Listen = nil
	cb.Transports.Peers = hub.ListenAddrs()
	startNode(t, cb, WithDialBackoff(linksBackoffFast))
	refused := hub.metrics.Links.Refused.WithLabelValues("tcp", "max_inbound_links")
	deadline := time.Now().Add(15 * time.Second)
	for testutil.ToFloat64(refused) < 3 { // the refused node re-dials every 20–200 ms
		if time.Now().After(deadline) {
			t.Fatalf("refusals counted: %v, want 3 within 15 s\n%s", testutil.ToFloat64(refused), hubLogs)
		}
		<-time.After(10 * time.Millisecond) // the next probe
	}
	ls, err := hub.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].Peer != a.Address() {
		t.Fatalf("hub links %+v, want only the first node's", ls)
	}
	if n := strings.Count(hubLogs.String(), "refusing an inbound link"); n != 1 {
		t.Fatalf("%d refusal lines for %v refusals, want 1:\n%s", n, testutil.ToFloat64(refused), hubLogs)
	}
}
