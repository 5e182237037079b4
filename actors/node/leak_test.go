package node

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/probe"
)

// TestNoGoroutineOutlivesTheNode starts and stops a node and checks that
// every goroutine it started has ended (wireguard's goroutineLeakCheck).
func TestNoGoroutineOutlivesTheNode(t *testing.T) {
	before := runtime.NumGoroutine()
	c := testConfig(t)
	n, err := New(WithConfig(c), WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, "http://"+n.APIAddr()+"/v1/status"); code != 200 {
		t.Fatal("status")
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	http2Idle() // the test's own HTTP client keeps idle connections
	// Nothing signals a goroutine's end; probe the count until the deadline.
	if !probe.Wait(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines before the node, %d after it stopped:\n%s", before, runtime.NumGoroutine(), filterStacks(string(buf)))
	}
}

func filterStacks(s string) string {
	var keep []string
	for _, g := range strings.Split(s, "\n\n") {
		if !strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "testing.(*M)") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}
