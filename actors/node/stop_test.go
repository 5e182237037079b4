package node

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestStopWithLongPollAndSilentClient: a long poll (qpc inbox --follow)
// ends when draining begins, and a client that connected to the API and
// never sent a request is cut at the deadline: the node stops cleanly, in
// its usual time, without an error. Before, Stop failed with "close api:
// context deadline exceeded" after 5 s.
func TestStopWithLongPollAndSilentClient(t *testing.T) {
	n, _ := startNode(t, testConfig(t))
	silent, err := net.Dial("tcp", n.APIAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	polled := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + n.APIAddr() + "/v1/inbox?wait=60s")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = &net.AddrError{Err: resp.Status}
			}
		}
		polled <- err
	}()
	// The poll is in flight once the handler waits; give it a moment by
	// asking the node something else through the API first.
	if resp, err := http.Get("http://" + n.APIAddr() + "/healthz"); err == nil {
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Shutdown.Timeout.D()+time.Second)
	defer cancel()
	start := time.Now()
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := time.Since(start); took > n.cfg.Shutdown.Timeout.D()+time.Second {
		t.Fatalf("stop took %s", took)
	}
	select {
	case err := <-polled:
		if err != nil {
			t.Fatalf("long poll: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll did not end with the shutdown")
	}
}
