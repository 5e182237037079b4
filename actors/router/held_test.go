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
