package links

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// goodFrame is the smallest frame checkOuter passes: [tag 0x01 (envelope
// v0), 0]. The link does not decode further; the router does.
var goodFrame = []byte{0x82, byte(messages.MakeTag(messages.FrameEnvelope, 0)), 0x00}

// A link that fails stops as designed: a malformed length prefix
// (bad_frame), a declared length over the limit (frame_too_large), any
// other read error (read) and a failed write (write) each close the
// connection, are counted once in qpc_link_errors_total with their reason,
// are logged at warn, and the link is gone from the table with a PeerDown
// naming the reason; a clean close by the peer (io.EOF) and a connection
// closed under the link (net.ErrClosed) are not errors.
func TestLinkFailuresCloseTheLink(t *testing.T) {
	tooLarge := &transports.FrameTooLargeError{Size: 1 << 40, Limit: 1 << 20}
	cases := []struct {
		name   string
		read   error // what ReadFrame returns
		write  error // or what WriteFrame returns
		kind   string
		reason string // PeerDown's, when not kind: err
	}{
		{name: "bad frame", read: fmt.Errorf("fake: read: %w", transports.ErrBadFrame), kind: "bad_frame"},
		{name: "frame too large", read: fmt.Errorf("fake: read: %w", tooLarge), kind: "frame_too_large"},
		{name: "read error", read: errors.New("connection reset by peer"), kind: "read"},
		{name: "write error", write: fmt.Errorf("fake: write: %w", io.ErrClosedPipe), kind: "write"},
		{name: "closed by peer", read: io.EOF, reason: "closed by peer"},
		{name: "closed under it", read: fmt.Errorf("fake: read: %w", net.ErrClosed), reason: "closed"},
	}
	kinds := []string{"bad_frame", "frame_too_large", "read", "write", "bad_tag", "frame_timeout"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln := newChanListener()
			r := startRig(t, Config{Listeners: []Bound{{URI: "mem://fake", Listener: ln}}})
			peer := newIdentity(t).Address()
			c := newFakeConn(peer)
			c.writeErr = tc.write
			ln.conns <- c
			up := r.up(t, "link up")
			if up.Link.Peer != peer || up.Link.Outbound {
				t.Fatalf("PeerUp %+v, want an inbound link from %s", up.Link, peer.Short())
			}

			if tc.write != nil {
				r.sys.Root.Send(r.pid, &messages.SendFrame{Peer: peer, Data: goodFrame})
			} else {
				c.reads <- readResult{err: tc.read}
			}
			reason := tc.reason
			if tc.kind != "" {
				reason = tc.kind + ": " + errors.Join(tc.read, tc.write).Error()
			}
			down := r.down(t, "link down")
			if down.Link.ID != up.Link.ID || down.Reason != reason {
				t.Fatalf("PeerDown link %d reason %q, want link %d reason %q", down.Link.ID, down.Reason, up.Link.ID, reason)
			}
			c.waitClosed(t, "after the failure")
			if n := len(r.reply(t).Links); n != 0 {
				t.Fatalf("%d links left in the table", n)
			}
			for _, k := range kinds {
				want := 0.0
				if k == tc.kind {
					want = 1
				}
				if got := testutil.ToFloat64(r.metrics.Errors.WithLabelValues("mem", k)); got != want {
					t.Errorf("qpc_link_errors_total{reason=%s} = %v, want %v", k, got, want)
				}
			}
			closing := r.logLines("closing link")
			switch {
			case tc.kind == "" && len(closing) != 0:
				t.Errorf("a clean close logged as an error: %q", closing)
			case tc.kind != "" && (len(closing) != 1 || !strings.Contains(closing[0], "level=WARN") ||
				!strings.Contains(closing[0], "reason="+tc.kind)):
				t.Errorf("closing lines %q, want one warn naming %s", closing, tc.kind)
			}
			// The link logs its end after telling the manager.
			probe.Until(t, within, func() bool { return len(r.logLines("link down")) > 0 }, "link down logged")
			if l := r.logLines("link down"); len(l) != 1 || (!strings.HasSuffix(l[0], "reason="+down.Reason) &&
				!strings.HasSuffix(l[0], fmt.Sprintf("reason=%q", down.Reason))) {
				t.Errorf("link down lines %q, want one with reason %q", l, down.Reason)
			}
			select {
			case d := <-r.downs:
				t.Fatalf("a second PeerDown: %+v", d)
			default:
			}
		})
	}
}

// Frames whose outer tag is not a link frame type (empty, not a CBOR
// array, no tag, the LAN beacon, type 0, a tag over a byte) are dropped at
// the link's edge and counted as bad_tag, one by one; the link stays up,
// and the credit each took is given back: more of them than the link's
// whole credit do not stall it, and the good frame after them is the first
// thing that reaches ratelimit.
func TestBadOuterTagIsDroppedAndCounted(t *testing.T) {
	ln := newChanListener()
	r := startRig(t, Config{Listeners: []Bound{{URI: "mem://fake", Listener: ln}}})
	peer := newIdentity(t).Address()
	c := newFakeConn(peer)
	ln.conns <- c
	up := r.up(t, "link up")

	bad := [][]byte{
		{},           // empty
		{0x01, 0x02}, // an integer, not an array
		{0x80},       // an empty array
		{0x81},       // no tag
		{0x81, 0x40}, // a byte string where the tag belongs
		{0x82, byte(messages.MakeTag(messages.FrameBeacon, 0)), 0x00}, // the LAN beacon never travels on links
		{0x82, 0x10, 0x00},       // type 0 (version 1)
		{0x82, 0x19, 0x01, 0x01}, // a tag over a byte
	}
	// A type this build does not know: the highest that does not travel
	// on links, below the beacon's.
	for ty := messages.FrameBeacon - 1; ty > 0; ty-- {
		if !ty.OnLinks() {
			bad = append(bad, []byte{0x82, byte(messages.MakeTag(ty, 0)), 0x00})
			break
		}
	}
	n := 0
	for n < InboundCredit+len(bad) {
		for _, f := range bad {
			if err := checkOuter(f); err == nil {
				t.Fatalf("checkOuter passes %x: not a bad tag", f)
			}
			c.send(f)
			n++
		}
	}
	c.send(goodFrame)

	select {
	case f := <-r.received:
		if !bytes.Equal(f.Data, goodFrame) {
			t.Fatalf("ratelimit got %x first, want the good frame %x", f.Data, goodFrame)
		}
		if f.From != peer || f.Link != "mem:"+c.remote || f.Release == nil {
			t.Fatalf("frame from %v on %q (release %v), want from %s on mem:%s with credit", f.From, f.Link, f.Release != nil, peer.Short(), c.remote)
		}
		f.Release()
	case <-time.After(within):
		t.Fatalf("the good frame after %d bad ones never reached ratelimit (bad_tag %v, backpressure %v)", n,
			testutil.ToFloat64(r.metrics.Errors.WithLabelValues("mem", "bad_tag")),
			testutil.ToFloat64(r.metrics.Backpressure.WithLabelValues("mem")))
	}
	if got := testutil.ToFloat64(r.metrics.Errors.WithLabelValues("mem", "bad_tag")); got != float64(n) {
		t.Fatalf("qpc_link_errors_total{reason=bad_tag} = %v, want %d", got, n)
	}
	if got := testutil.ToFloat64(r.metrics.Backpressure.WithLabelValues("mem")); got != 0 {
		t.Fatalf("the reader waited for credit %v times: dropped frames kept theirs", got)
	}
	if got := testutil.ToFloat64(r.metrics.FramesReceived.WithLabelValues("mem")); got != float64(n+1) {
		t.Fatalf("qpc_link_frames_received_total = %v, want %d", got, n+1)
	}
	if ls := r.reply(t).Links; len(ls) != 1 || ls[0].ID != up.Link.ID {
		t.Fatalf("links %+v, want link %d still up", ls, up.Link.ID)
	}
	select {
	case d := <-r.downs:
		t.Fatalf("a bad tag took the link down: %+v", d)
	case f := <-r.received:
		t.Fatalf("a second frame reached ratelimit: %x", f.Data)
	default:
	}
	if c.isClosed() {
		t.Fatal("a bad tag closed the connection")
	}
}

// A connection that authenticated as this node itself is refused by the
// listener: closed, logged at warn, no link and no PeerUp, and it takes no
// inbound slot (with a cap of one, the next peer still links).
func TestInboundConnectionFromOurselvesIsRefused(t *testing.T) {
	ln := newChanListener()
	r := startRig(t, Config{Listeners: []Bound{{URI: "mem://fake", Listener: ln}}, MaxInboundLinks: 1})
	self := newFakeConn(r.id.Address())
	other := newFakeConn(newIdentity(t).Address())
	ln.conns <- self
	ln.conns <- other

	// The listener handles its connections in order: once the other
	// peer's link is up, ours has been dealt with.
	up := r.up(t, "the other peer's link")
	if up.Link.Peer != other.peer {
		t.Fatalf("PeerUp for %s, want the other peer %s", crypto16(up.Link.Peer), other.peer.Short())
	}
	if !self.isClosed() {
		t.Fatal("the connection from ourselves was not closed")
	}
	if ls := r.reply(t).Links; len(ls) != 1 || ls[0].Peer != other.peer {
		t.Fatalf("links %+v, want the other peer's only", ls)
	}
	if got := testutil.ToFloat64(r.metrics.Refused.WithLabelValues("mem", "max_inbound_links")); got != 0 {
		t.Fatalf("%v links refused by the cap: the connection from ourselves took the slot", got)
	}
	if got := testutil.ToFloat64(r.metrics.Refused.WithLabelValues("mem", "self")); got != 1 {
		t.Fatalf("refused_total{reason=self} = %v, want 1", got)
	}
	if l := r.logLines("refusing a connection from ourselves"); len(l) != 1 || !strings.Contains(l[0], "level=WARN") ||
		!strings.Contains(l[0], "remote="+self.remote) {
		t.Fatalf("refusal lines %q, want one warn naming %s", l, self.remote)
	}
	if other.isClosed() {
		t.Fatal("the other peer's connection was closed")
	}
	select {
	case u := <-r.ups:
		t.Fatalf("a second PeerUp: %+v", u.Link)
	default:
	}
}

func crypto16(a [16]byte) string { return fmt.Sprintf("%x", a[:4]) }

// A failed Accept is logged at warn and the listener goes on accepting.
func TestAcceptErrorIsLoggedAndAcceptingGoesOn(t *testing.T) {
	ln := newChanListener()
	r := startRig(t, Config{Listeners: []Bound{{URI: "mem://fake", Listener: ln}}})
	ln.errs <- errors.New("too many open files")
	c := newFakeConn(newIdentity(t).Address())
	ln.conns <- c
	if up := r.up(t, "the link after the failed accept"); up.Link.Peer != c.peer {
		t.Fatalf("PeerUp %+v", up.Link)
	}
	if l := r.logLines("accept failed"); len(l) != 1 || !strings.Contains(l[0], "level=WARN") ||
		!strings.Contains(l[0], `err="too many open files"`) || !strings.Contains(l[0], "listener=mem://fake") {
		t.Fatalf("accept lines %q, want one warn with the error", l)
	}
}
