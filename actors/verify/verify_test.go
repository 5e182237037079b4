package verify

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

type world struct {
	self, src *crypto.Identity
	seal      *crypto.SealingKey
	dir       *Directory
}

func newWorld(t *testing.T) *world {
	w := &world{}
	w.self, _ = crypto.NewIdentity(nil)
	w.src, _ = crypto.NewIdentity(nil)
	w.seal, _ = crypto.SealingKeyFor(w.self)
	w.dir = NewDirectory(w.self.PublicKey())
	return w
}

func (w *world) frame(t *testing.T, from *crypto.Identity, to [16]byte, text string) []byte {
	t.Helper()
	var payload []byte
	if to == w.self.Address() {
		var err error
		if payload, err = crypto.Seal(w.seal.Public(), []byte(text), crypto.SealAAD(from.Address(), to)); err != nil {
			t.Fatal(err)
		}
	} else {
		payload = []byte(text)
	}
	e := messages.NewEnvelope(from.Address(), to, 8, time.Now().Add(time.Hour), messages.PayloadSealed, payload)
	e.Seq = 1
	if err := e.Sign(from.Sign); err != nil {
		t.Fatal(err)
	}
	f, err := messages.EncodeEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCheck(t *testing.T) {
	w := newWorld(t)
	good := w.frame(t, w.src, w.self.Address(), "hi")

	// Unknown key: handed on unverified, no drop.
	if v, reason := Check(&messages.InboundFrame{Data: good}, w.dir, w.self.Address(), w.seal); v != nil || reason != "" {
		t.Fatalf("unknown sender: %v %q", v, reason)
	}
	w.dir.Publish(Keys{w.src.Address(): {Signing: w.src.PublicKey()}})
	v, reason := Check(&messages.InboundFrame{Data: good}, w.dir, w.self.Address(), w.seal)
	if v == nil || reason != "" || string(v.Opened) != "hi" || v.ID != v.Env.ID() {
		t.Fatalf("good: %+v %q", v, reason)
	}
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-70] ^= 1
	if v, reason := Check(&messages.InboundFrame{Data: tampered}, w.dir, w.self.Address(), w.seal); v != nil || reason != DropBadSignature {
		t.Fatalf("tampered: %v %q", v, reason)
	}
	if v, reason := Check(&messages.InboundFrame{Data: []byte{0x80}}, w.dir, w.self.Address(), w.seal); v != nil || reason != DropMalformed {
		t.Fatalf("malformed: %v %q", v, reason)
	}
	// Signed by src but not sealed to us: verified, and the open failure
	// is the router's to count.
	other, _ := crypto.NewIdentity(nil)
	notOurs := w.frame(t, w.src, other.Address(), "")
	if v, _ := Check(&messages.InboundFrame{Data: notOurs}, w.dir, w.self.Address(), w.seal); v == nil || v.OpenFailed || v.Opened != nil {
		t.Fatalf("for someone else: %+v", v)
	}
	junk := messages.NewEnvelope(w.src.Address(), w.self.Address(), 8, time.Now().Add(time.Hour), messages.PayloadSealed, make([]byte, 80))
	junk.Seq = 2
	junk.Sign(w.src.Sign)
	jf, _ := messages.EncodeEnvelope(junk)
	if v, _ := Check(&messages.InboundFrame{Data: jf}, w.dir, w.self.Address(), w.seal); v == nil || !v.OpenFailed {
		t.Fatalf("junk sealed to us: %+v", v)
	}
}

func TestPoolHandsOnAndReleasesCredit(t *testing.T) {
	w := newWorld(t)
	w.dir.Publish(Keys{w.src.Address(): {Signing: w.src.PublicKey()}})
	var mu sync.Mutex
	var out []any
	done := make(chan struct{}, 1000)
	var drops sync.Map
	p := NewPool(PoolConfig{Workers: 2, Dir: w.dir, Self: w.self.Address(), Seal: w.seal,
		Out: func(m any) {
			mu.Lock()
			out = append(out, m)
			mu.Unlock()
			done <- struct{}{}
		},
		Drop: func(reason string) {
			v, _ := drops.LoadOrStore(reason, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
			done <- struct{}{}
		},
	})
	defer p.Close()
	var released atomic.Int64
	rel := func() { released.Add(1) }
	stranger, _ := crypto.NewIdentity(nil)
	frames := [][]byte{w.frame(t, w.src, w.self.Address(), "a"), {0x80}, w.frame(t, stranger, w.self.Address(), "b")}
	for _, f := range frames {
		if !p.Submit(&messages.InboundFrame{Data: f, Release: rel}) {
			t.Fatal("submit refused")
		}
	}
	for range frames {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("pool did not finish")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var verified, unverified int
	for _, m := range out {
		switch m.(type) {
		case *messages.VerifiedEnvelope:
			verified++
		case *messages.InboundFrame:
			unverified++
		}
	}
	if verified != 1 || unverified != 1 {
		t.Fatalf("verified %d unverified %d", verified, unverified)
	}
	// Only the dropped frame's credit is released by the pool; the others
	// travel on to the router, which releases them.
	if released.Load() != 1 {
		t.Fatalf("released %d", released.Load())
	}
	if v, ok := drops.Load(DropMalformed); !ok || v.(*atomic.Int64).Load() != 1 {
		t.Fatal("malformed drop not counted")
	}
}

func TestPoolFullDropsOnlyUncreditedFrames(t *testing.T) {
	w := newWorld(t)
	block := make(chan struct{})
	var overload atomic.Int64
	p := NewPool(PoolConfig{Workers: 1, Queue: 1, Dir: w.dir, Self: w.self.Address(),
		Out:  func(any) { <-block },
		Drop: func(reason string) { overload.Add(1) },
	})
	stranger, _ := crypto.NewIdentity(nil)
	f := w.frame(t, stranger, w.self.Address(), "x")
	// Without credit (a radio, the Go API): at most one waits in the
	// queue (plus one in the blocked worker); the rest are dropped.
	taken := 0
	for range 4 {
		if p.Submit(&messages.InboundFrame{Data: f}) {
			taken++
		}
	}
	if taken > 2 || overload.Load() < 2 {
		t.Fatalf("uncredited: taken %d, overload %d", taken, overload.Load())
	}
	// With credit: always taken, however many wait — the links' credit
	// bounds them — and no credit is released by the pool.
	var released atomic.Int64
	before := overload.Load()
	for range 100 {
		if !p.Submit(&messages.InboundFrame{Data: f, Release: func() { released.Add(1) }}) {
			t.Fatal("a credited frame was refused")
		}
	}
	if overload.Load() != before || released.Load() != 0 {
		t.Fatalf("credited: overload %d, released %d", overload.Load()-before, released.Load())
	}
	close(block)
	p.Close()
	if p.Submit(&messages.InboundFrame{Data: f}) {
		t.Fatal("a closed pool took a frame")
	}
}
