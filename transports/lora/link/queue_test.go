package link

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quicprochat/qpc/messages"
)

func TestQueueTable(t *testing.T) {
	f := func(p messages.Priority, n int) *outFrame { return &outFrame{data: make([]byte, n), prio: p} }
	q := outQueue{maxN: 3, maxB: 100}
	b1, b2, d1 := f(messages.Bulk, 10), f(messages.Bulk, 10), f(messages.Data, 10)
	for _, x := range []*outFrame{b1, b2, d1} {
		if ok, shed := q.push(x); !ok || shed != nil {
			t.Fatal("push into room failed")
		}
	}
	// Full by count: a control frame sheds the newest bulk one.
	c1 := f(messages.Control, 10)
	if ok, shed := q.push(c1); !ok || len(shed) != 1 || shed[0] != b2 {
		t.Fatalf("push control into a full queue: %v %v, want b2 shed", ok, shed)
	}
	// A bulk frame has nothing lower: refused, nothing shed.
	if ok, shed := q.push(f(messages.Bulk, 1)); ok || shed != nil {
		t.Fatal("bulk push into a full queue of higher frames succeeded")
	}
	// Full by bytes: a 90-byte data frame needs the remaining bulk frame
	// (10) and cannot shed data or control: refused.
	if ok, _ := q.push(f(messages.Data, 90)); ok {
		t.Fatal("push over the byte bound succeeded")
	}
	if got := []*outFrame{q.pop(), q.pop(), q.pop(), q.pop()}; got[0] != c1 || got[1] != d1 || got[2] != b1 || got[3] != nil {
		t.Fatal("pop order is not priority then FIFO")
	}
	// An empty queue takes a frame larger than its byte bound.
	if ok, _ := q.push(f(messages.Bulk, 500)); !ok {
		t.Fatal("an empty queue refused a large frame")
	}
}

// The queue against a naive model: a list in arrival order.
func TestQueueModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		maxN, maxB := 1+rng.IntN(8), 1+rng.IntN(200)
		q := outQueue{maxN: maxN, maxB: maxB}
		var model []*outFrame
		size := func(fs []*outFrame) (b int) {
			for _, f := range fs {
				b += len(f.data)
			}
			return b
		}
		for op := range 300 {
			if rng.IntN(3) == 0 {
				var want *outFrame
				for p := messages.Control; ; p-- {
					if i := slices.IndexFunc(model, func(f *outFrame) bool { return f.prio == p }); i >= 0 {
						want = model[i]
						model = slices.Delete(model, i, i+1)
						break
					}
					if p == messages.Bulk {
						break
					}
				}
				if got := q.pop(); got != want {
					t.Fatalf("round %d op %d: pop differs from the model", round, op)
				}
				continue
			}
			f := &outFrame{data: make([]byte, rng.IntN(60)), prio: messages.Priority(rng.IntN(3))}
			// Model: fits, or shed the newest of the lowest priorities
			// below f's while that makes room; else refuse.
			fits := func(fs []*outFrame) bool { return len(fs)+1 <= maxN && size(fs)+len(f.data) <= maxB }
			wantOK, rest, wantShed := true, slices.Clone(model), []*outFrame(nil)
			if len(model) > 0 && !fits(model) {
				for !fits(rest) {
					i := -1
					for j, g := range rest {
						if g.prio < f.prio && (i < 0 || g.prio < rest[i].prio || (g.prio == rest[i].prio && j > i)) {
							i = j
						}
					}
					if i < 0 {
						wantOK = false
						break
					}
					wantShed = append(wantShed, rest[i])
					rest = slices.Delete(rest, i, i+1)
				}
			}
			ok, shed := q.push(f)
			if ok != wantOK {
				t.Fatalf("round %d op %d: push = %v, model %v", round, op, ok, wantOK)
			}
			if ok {
				if !slices.Equal(shed, wantShed) {
					t.Fatalf("round %d op %d: shed %d frames, model %d", round, op, len(shed), len(wantShed))
				}
				model = append(rest, f)
			} else if shed != nil {
				t.Fatalf("round %d op %d: a refused push shed frames", round, op)
			}
			if q.n != len(model) || q.b != size(model) {
				t.Fatalf("round %d op %d: queue holds %d frames %d bytes, model %d %d", round, op, q.n, q.b, len(model), size(model))
			}
		}
	}
}
