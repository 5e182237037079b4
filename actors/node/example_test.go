package node_test

// This example uses only what a module outside this one can import: the
// node package and messages/crypto types — nothing under internal/.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/quicprochat/qpc/actors/node"
)

// Example builds a two-node mesh on loopback the way the README shows:
// node B dials node A over TCP, sends it a sealed text and waits for A's
// receipt.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := node.WithLogger(slog.New(slog.DiscardHandler))

	dirA, _ := os.MkdirTemp("", "qpc-example-a")
	defer os.RemoveAll(dirA)
	cfgA := node.DefaultConfig()
	cfgA.DataDir, cfgA.API.Addr = dirA, "" // no admin API in an embedded node
	cfgA.Transports.Listen = []string{"tcp://127.0.0.1:0"}
	a, err := node.New(node.WithConfig(cfgA), quiet)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := a.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer a.Stop(context.Background())

	dirB, _ := os.MkdirTemp("", "qpc-example-b")
	defer os.RemoveAll(dirB)
	cfgB := node.DefaultConfig()
	cfgB.DataDir, cfgB.API.Addr = dirB, ""
	cfgB.Transports.Listen = nil
	cfgB.Transports.Peers = a.ListenAddrs() // B dials A
	cfgB.Outbox.RetryBase = node.Duration(time.Second)
	b, err := node.New(node.WithConfig(cfgB), quiet)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := b.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer b.Stop(context.Background())

	// B learns A's keys from A's announce once their link is up: ask its
	// routing table until then (or until ctx ends).
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if rs, _ := b.Routes(ctx); len(rs) > 0 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			fmt.Println("no route to A:", ctx.Err())
			return
		}
	}
	res, err := b.SendText(ctx, a.Address(), []byte("hello, A"))
	if err != nil {
		fmt.Println(err)
		return
	}
	m := <-a.Deliveries()
	fmt.Println(string(m.Text))
	for {
		st, err := b.Message(ctx, res.ID)
		if err != nil {
			fmt.Println(err)
			return
		}
		if st.State == "delivered" || st.State == "failed" {
			fmt.Println(st.State)
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			fmt.Println("no receipt:", ctx.Err())
			return
		}
	}
	// Output:
	// hello, A
	// delivered
}
