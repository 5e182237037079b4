package router

import (
	"testing"
	"time"
)

func TestHeld(t *testing.T) {
	h := &Held{Max: 3, MaxAge: 10 * time.Second}
	now := time.Unix(1_800_000_000, 0)
	a, b := [16]byte{1}, [16]byte{2}
	for i := range 2 {
		if d := h.Add(a, []byte{byte(i)}, [16]byte{9}, now); d != 0 {
			t.Fatalf("add %d dropped %d", i, d)
		}
	}
	if d := h.Add(b, []byte{7}, [16]byte{9}, now.Add(5*time.Second)); d != 0 || h.Len() != 3 {
		t.Fatalf("third: dropped %d, len %d", d, h.Len())
	}
	// Full: the next one is refused.
	if d := h.Add(b, []byte{8}, [16]byte{9}, now.Add(5*time.Second)); d != 1 || h.Len() != 3 {
		t.Fatalf("over the cap: dropped %d, len %d", d, h.Len())
	}
	// a's two age out and make room.
	if d := h.Add(b, []byte{8}, [16]byte{9}, now.Add(10*time.Second)); d != 2 || h.Len() != 2 {
		t.Fatalf("after ageing: dropped %d, len %d", d, h.Len())
	}
	if fs := h.Take(a); fs != nil {
		t.Fatalf("a's aged-out frames came back: %v", fs)
	}
	fs := h.Take(b)
	if len(fs) != 2 || fs[0].Frame[0] != 7 || fs[1].Frame[0] != 8 || h.Len() != 0 {
		t.Fatalf("take b: %+v, len %d", fs, h.Len())
	}
	if h.Take(b) != nil {
		t.Fatal("taken twice")
	}
}

// The defaults: 256 frames at most, each waits less than 30 s; a frame
// exactly MaxAge old is gone. Expire alone (the router's GC tick and
// release) forgets aged frames, so Take never returns one.
func TestHeldDefaultsAndExpire(t *testing.T) {
	var h Held
	now := time.Unix(1_800_000_000, 0)
	for i := range 256 {
		if d := h.Add([16]byte{byte(i)}, []byte{byte(i)}, [16]byte{9}, now.Add(time.Duration(i)*time.Millisecond)); d != 0 {
			t.Fatalf("add %d dropped %d", i, d)
		}
	}
	if d := h.Add([16]byte{255}, []byte{0}, [16]byte{9}, now.Add(time.Second)); d != 1 || h.Len() != 256 {
		t.Fatalf("257th: dropped %d, len %d; want 1, 256", d, h.Len())
	}
	if d := h.Expire(now.Add(30*time.Second - time.Nanosecond)); d != 0 || h.Len() != 256 {
		t.Fatalf("just under 30 s: expired %d, len %d", d, h.Len())
	}
	// At now+30s+1ms the first two (at +0 and +1ms) have waited 30 s.
	if d := h.Expire(now.Add(30*time.Second + time.Millisecond)); d != 2 || h.Len() != 254 {
		t.Fatalf("at 30 s: expired %d, len %d; want 2, 254", d, h.Len())
	}
	if fs := h.Take([16]byte{0}); fs != nil {
		t.Fatalf("aged-out frame taken: %+v", fs)
	}
	if fs := h.Take([16]byte{2}); len(fs) != 1 || fs[0].Frame[0] != 2 || h.Len() != 253 {
		t.Fatalf("take 2: %+v, len %d", fs, h.Len())
	}
	if d := h.Expire(now.Add(time.Hour)); d != 253 || h.Len() != 0 {
		t.Fatalf("after an hour: expired %d, len %d", d, h.Len())
	}
	if d := h.Expire(now.Add(2 * time.Hour)); d != 0 {
		t.Fatalf("expired %d from an empty buffer", d)
	}
}
