package mailbox

import (
	"fmt"
	"slices"
	"testing"
)

// op is one step of a table test: push a prioritized message ("push"),
// push an exempt one ("exempt"), or pop ("pop").
type op struct {
	kind string
	name string
	p    Priority
	size int
	// For push: the names shed by this push, in order ("" entries ignored).
	shed []string
	// For pop: the name expected; "" means the queue must be empty.
}

func push(name string, p Priority, size int, shed ...string) op {
	return op{kind: "push", name: name, p: p, size: size, shed: shed}
}
func exempt(name string) op { return op{kind: "exempt", name: name} }
func pop(name string) op    { return op{kind: "pop", name: name} }

func TestQueueTable(t *testing.T) {
	cases := []struct {
		name     string
		maxN     int
		maxBytes int
		ops      []op
	}{
		{"priority order, FIFO within a class", 10, 0, []op{
			push("b1", Bulk, 0), push("d1", Data, 0), push("c1", Control, 0),
			push("b2", Bulk, 0), push("d2", Data, 0), push("c2", Control, 0),
			pop("c1"), pop("c2"), pop("d1"), pop("d2"), pop("b1"), pop("b2"), pop(""),
		}},
		{"full of bulk: data sheds the newest bulk", 3, 0, []op{
			push("b1", Bulk, 0), push("b2", Bulk, 0), push("b3", Bulk, 0),
			push("d1", Data, 0, "b3"), push("d2", Data, 0, "b2"),
			pop("d1"), pop("d2"), pop("b1"), pop(""),
		}},
		{"incoming of the lowest class present is shed", 2, 0, []op{
			push("d1", Data, 0), push("d2", Data, 0),
			push("d3", Data, 0, "d3"), push("b1", Bulk, 0, "b1"),
			pop("d1"), pop("d2"), pop(""),
		}},
		{"control sheds bulk before data", 3, 0, []op{
			push("d1", Data, 0), push("b1", Bulk, 0), push("d2", Data, 0),
			push("c1", Control, 0, "b1"), push("c2", Control, 0, "d2"), push("c3", Control, 0, "d1"),
			push("c4", Control, 0, "c4"),
			pop("c1"), pop("c2"), pop("c3"), pop(""),
		}},
		{"exempt messages are never shed and take no slot", 2, 0, []op{
			push("d1", Data, 0), exempt("x1"), exempt("x2"), exempt("x3"), push("d2", Data, 0),
			push("c1", Control, 0, "d2"), push("c2", Control, 0, "d1"),
			push("c3", Control, 0, "c3"), // only exempt and control left: nothing lower
			pop("x1"), pop("x2"), pop("x3"), pop("c1"), pop("c2"), pop(""),
		}},
		{"exempt messages take no bytes from the bound", 10, 10, []op{
			exempt("x1"), push("d1", Data, 10), exempt("x2"),
			pop("x1"), pop("d1"), pop("x2"), pop(""),
		}},
		{"exempt is a barrier: after what came before, before what came after", 10, 0, []op{
			push("b1", Bulk, 0), push("d1", Data, 0), exempt("pill"), push("c1", Control, 0), push("b2", Bulk, 0),
			pop("d1"), pop("b1"), pop("pill"), pop("c1"), pop("b2"), pop(""),
		}},
		{"shedding reaches back across a barrier for the newest of the class", 3, 0, []op{
			push("b1", Bulk, 0), exempt("x"), push("d1", Data, 0), push("b2", Bulk, 0),
			push("d2", Data, 0, "b2"), push("d3", Data, 0, "b1"),
			pop("x"), pop("d1"), pop("d2"), pop("d3"), pop(""),
		}},
		{"bytes: sheds as many lower messages as make room, newest first", 100, 100, []op{
			push("b1", Bulk, 40), push("b2", Bulk, 30), push("b3", Bulk, 20),
			push("d1", Data, 55, "b3", "b2"),
			pop("d1"), pop("b1"), pop(""),
		}},
		{"bytes: a message larger than the bound is shed alone", 100, 100, []op{
			push("b1", Bulk, 10), push("c1", Control, 101, "c1"),
			pop("b1"), pop(""),
		}},
		{"bytes: not enough lower bytes, nothing lower is shed", 100, 100, []op{
			push("d1", Data, 60), push("b1", Bulk, 30), push("d2", Data, 50, "d2"),
			pop("d1"), pop("b1"), pop(""),
		}},
		{"bytes: exactly at the bound fits", 100, 100, []op{
			push("d1", Data, 60), push("d2", Data, 40),
			pop("d1"), pop("d2"), pop(""),
		}},
		{"zero-size messages fill only the count", 2, 10, []op{
			push("b1", Bulk, 0), push("b2", Bulk, 0), push("d1", Data, 0, "b2"),
			pop("d1"), pop("b1"),
		}},
		{"priority above Control counts as Control", 10, 0, []op{
			push("d1", Data, 0), push("x9", Priority(9), 0), pop("x9"), pop("d1"),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := NewQueue(c.maxN, c.maxBytes)
			for i, o := range c.ops {
				switch o.kind {
				case "push":
					queued, shed := q.Push(o.name, o.p, o.size)
					got := names(shed)
					if !slices.Equal(got, o.shed) {
						t.Fatalf("op %d push %s: shed %v, want %v", i, o.name, got, o.shed)
					}
					if wantQueued := !slices.Contains(o.shed, o.name); queued != wantQueued {
						t.Fatalf("op %d push %s: queued = %v", i, o.name, queued)
					}
				case "exempt":
					q.PushExempt(o.name, 7)
				case "pop":
					msg, ok := q.Pop()
					if o.name == "" {
						if ok {
							t.Fatalf("op %d: popped %v from what should be empty", i, msg)
						}
						continue
					}
					if !ok || msg != o.name {
						t.Fatalf("op %d: popped %v (%v), want %s", i, msg, ok, o.name)
					}
				}
				checkBounds(t, q, c.maxN, c.maxBytes)
			}
		})
	}
}

func names(shed []Shed) []string {
	var out []string
	for _, s := range shed {
		out = append(out, s.Msg.(string))
	}
	return out
}

// checkBounds: prioritized messages never take the queue past its bounds
// (exempt ones may).
func checkBounds(t *testing.T, q *Queue, maxN, maxBytes int) {
	t.Helper()
	prio, prioBytes := 0, 0
	for c := range numPriorities {
		prio += q.LenPriority(Priority(c))
		prioBytes += q.classBytes[c]
	}
	if prio > maxN {
		t.Fatalf("%d prioritized messages queued, bound %d", prio, maxN)
	}
	if maxBytes > 0 && prioBytes > maxBytes {
		t.Fatalf("%d bytes queued, bound %d", prioBytes, maxBytes)
	}
}

func TestQueueShedReportsPriority(t *testing.T) {
	q := NewQueue(1, 0)
	q.Push("b", Bulk, 0)
	queued, shed := q.Push("c", Control, 0)
	if !queued || len(shed) != 1 || shed[0].Priority != Bulk || shed[0].Msg != "b" {
		t.Fatalf("queued %v, shed %+v", queued, shed)
	}
	if q.Len() != 1 || q.LenPriority(Control) != 1 || q.LenPriority(Bulk) != 0 {
		t.Fatalf("len %d", q.Len())
	}
}

func TestQueueRingGrowsAndWraps(t *testing.T) {
	q := NewQueue(1000, 0)
	next := 0
	for round := range 50 {
		for range round % 17 {
			q.Push(next, Data, 1)
			next++
		}
		for range round % 13 {
			q.Pop()
		}
	}
	// What is left comes out in FIFO order.
	prev := -1
	for {
		m, ok := q.Pop()
		if !ok {
			break
		}
		if m.(int) <= prev {
			t.Fatalf("out of order: %d after %d", m, prev)
		}
		prev = m.(int)
	}
	if q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("empty queue reports len %d bytes %d", q.Len(), q.Bytes())
	}
}

func ExampleQueue() {
	q := NewQueue(2, 0)
	q.Push("bulk", Bulk, 0)
	q.Push("data", Data, 0)
	_, shed := q.Push("control", Control, 0) // full: the bulk message makes room
	fmt.Println("shed:", shed[0].Msg)
	for m, ok := q.Pop(); ok; m, ok = q.Pop() {
		fmt.Println(m)
	}
	// Output:
	// shed: bulk
	// control
	// data
}
