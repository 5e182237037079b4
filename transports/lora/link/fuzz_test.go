package link

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/transports/lora"
)

// FuzzParsePacket: every decoder takes any bytes without panicking, and
// what parses re-encodes to the same bytes (one encoding per packet).
func FuzzParsePacket(f *testing.F) {
	for _, g := range goldenPackets(f) {
		for _, p := range g.pkts {
			f.Add(p)
		}
	}
	f.Add([]byte{0xC4, 1, 2, 3, 4, 0, 1, 0x80, 0x01})
	f.Add([]byte{0x82, 0x01})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		h, body, err := parseHeader(pkt)
		if err != nil {
			return
		}
		if got := appendHeader(nil, h); !bytes.Equal(got, pkt[:HeaderSize]) {
			t.Fatalf("header % x re-encodes to % x", pkt[:HeaderSize], got)
		}
		switch h.kind {
		case KindHello:
			if hl, err := parseHello(h, pkt); err == nil && HintOf(hl.addr) != h.src {
				t.Fatal("a HELLO verified with another key's hint")
			}
		case KindAck, KindNack:
			r, err := parseReport(h.kind, body)
			if err != nil {
				return
			}
			var again []byte
			if r.ack {
				again = ackPacket(h.dst, h.src, r.id)
			} else {
				again = nackPacket(h.dst, h.src, r.id, r.missing)
			}
			if !bytes.Equal(again, pkt[:len(pkt)-MACSize]) {
				t.Fatalf("report % x re-encodes to % x (and its MAC)", pkt, again)
			}
		case KindData:
			lora.ParseFragment(body) // must not panic
		}
	})
}

// idleRadio hears nothing and swallows what it is given.
type idleRadio struct {
	p    RadioParams
	mu   sync.Mutex
	sent int
	done chan struct{}
	once sync.Once
}

func (r *idleRadio) Send([]byte) error { r.mu.Lock(); r.sent++; r.mu.Unlock(); return nil }
func (r *idleRadio) Recv(ctx context.Context) ([]byte, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
		return nil, net.ErrClosed
	}
}
func (r *idleRadio) Params() RadioParams { return r.p }
func (r *idleRadio) Close() error        { r.once.Do(func() { close(r.done) }); return nil }

// FuzzReceive feeds a listening transport a sequence of packets (each
// a length byte and that many bytes; a zero length advances the clock a
// second) among valid HELLOs and data from a known peer. It checks that
// nothing panics and that the transport's accounting holds.
func FuzzReceive(f *testing.F) {
	peer := goldenID(f)
	src := HintOf(peer.Address())
	withLen := func(pkts ...[]byte) []byte {
		var b []byte
		for _, p := range pkts {
			b = append(b, byte(len(p)))
			b = append(b, p...)
		}
		return b
	}
	f.Add(withLen([]byte{0xD1, 1, 2, 3}))
	f.Add(withLen(helloPacket(peer, Broadcast, 1_750_000_000, true, true), []byte{}, []byte{0xD5, 0, 0, src[0], src[1]}))
	f.Add(withLen([]byte{0xD9, 0, 0, 0, 0, 3, 0, 7, 0, 0, 'q'}, []byte{0xD4, 0, 0, 0, 0, 0, 7}))
	f.Fuzz(func(t *testing.T, in []byte) {
		clk := clock.NewManual(time.Unix(1_750_000_000, 0))
		id, _ := crypto.NewIdentity(rand.NewChaCha8([32]byte{1}))
		radio := &idleRadio{p: RadioParams{}.withDefaults(), done: make(chan struct{})}
		tr, err := New(radio, Options{Identity: id, Clock: clk, Rand: rand.New(rand.NewPCG(1, 2)), MaxClockSkew: -1, RecvQueue: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		ln, err := tr.Listen(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		// The fuzzed packets are addressed to the transport where they
		// claim to be data, reports or BYEs from the known peer, and end
		// in the peer's true MAC (bad MACs: FuzzOpenPacket).
		me := tr.hint
		keys := pairKeysOf(t, peer, id)
		tr.mu.Lock()
		tr.handlePacketLocked(helloPacket(peer, Broadcast, 1_750_000_000, true, false))
		for len(in) > 0 {
			n := int(in[0])
			in = in[1:]
			if n == 0 {
				tr.mu.Unlock()
				clk.Advance(time.Second)
				tr.mu.Lock()
				continue
			}
			n = min(n, len(in))
			pkt := bytes.Clone(in[:n])
			in = in[n:]
			if len(pkt) >= HeaderSize && pkt[0]&markMask == mark && Kind(pkt[0]&kindMask) != KindHello {
				pkt[1], pkt[2], pkt[3], pkt[4] = me[0], me[1], src[0], src[1]
				if macked(Kind(pkt[0] & kindMask)) {
					pkt = keys.tx.seal(pkt)
				}
			}
			tr.handlePacketLocked(pkt)
			tr.pumpLocked()
			if len(tr.st.ctl) > maxCtl {
				t.Fatalf("%d control packets queued, bound %d", len(tr.st.ctl), maxCtl)
			}
			if p := tr.st.peers[peer.Address()]; p != nil && p.conn != nil && len(p.conn.rx) > 4 {
				t.Fatalf("%d frames buffered, RecvQueue 4", len(p.conn.rx))
			}
		}
		tr.mu.Unlock()
		st := tr.Stats()
		if st.Reassembly.Buffered > lora.DefaultMaxBufferedBytes || st.Peers > 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}
