package api

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/metrics"
)

// Issue 10 item 3, ReadHeaderTimeout (review gap 8): a client that
// trickles the request's headers is cut off when ReadHeaderTimeout has
// passed, before they are complete. The request is a valid GET /healthz
// whose last byte arrives ReadHeaderTimeout + 2 s after the first, still
// within ReadTimeout: a server without a header timeout would read it
// whole and answer 200; this one must hang up without answering it.
func TestTrickledHeadersCutOff(t *testing.T) {
	t.Parallel()
	const spread = ReadHeaderTimeout + 2*time.Second
	if spread >= ReadTimeout {
		t.Fatalf("the test needs ReadHeaderTimeout + 2 s (%v) below ReadTimeout (%v) to tell the two apart", spread, ReadTimeout)
	}
	m := metrics.New(metrics.Options{})
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, &fakeBackend{reg: m})
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := []byte(fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\nUser-Agent: slow\r\n\r\n", s.Addr()))
	start := time.Now()

	// The reader reports what the server answered so far, each time it
	// answers and when it hangs up (a kept-alive answer does not).
	type result struct {
		after  time.Duration
		answer string
		err    error // nil: an answer, the connection still open
	}
	closed := make(chan result, 16)
	go func() {
		var answer []byte
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			answer = append(answer, buf[:n]...)
			if err != nil || n > 0 {
				closed <- result{time.Since(start), string(answer), err}
			}
			if err != nil {
				return
			}
		}
	}()
	// One byte at a time, the last one `spread` after the first.
	tick := time.NewTicker(spread / time.Duration(len(req)-1))
	defer tick.Stop()
	limit := time.After(spread + 8*time.Second) // generous: only for a server that never hangs up
	sent := 0
	for {
		select {
		case r := <-closed:
			if strings.HasPrefix(r.answer, "HTTP/1.1 200") {
				t.Fatalf("the server read the trickled headers whole (%d of %d bytes sent) and answered after %.1fs: %q",
					sent, len(req), r.after.Seconds(), r.answer)
			}
			if r.err == nil {
				continue // an answer (not 200); wait for the hang-up
			}
			t.Logf("headers trickled over %v: connection closed after %.1fs with %d of %d bytes sent (ReadHeaderTimeout %v), answer %q",
				spread, r.after.Seconds(), sent, len(req), ReadHeaderTimeout, r.answer)
			if sent == len(req) {
				t.Fatalf("the connection stayed open until the headers were complete (%.1fs), ReadHeaderTimeout is %v", r.after.Seconds(), ReadHeaderTimeout)
			}
			return
		case <-tick.C:
			if sent < len(req) {
				if _, err := conn.Write(req[sent : sent+1]); err == nil {
					sent++
				}
			}
		case <-limit:
			t.Fatalf("headers trickled over %v: the connection is still open after %v", spread, time.Since(start).Round(time.Second))
		}
	}
}
