package mailbox

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// modelQueue is the slow, obviously-right reference for Queue (CONVENTIONS
// 13): one flat slice in arrival order, searched on every operation.
type modelQueue struct {
	maxN, maxBytes int
	items          []modelItem
}

type modelItem struct {
	id     int
	p      Priority
	exempt bool
	size   int
}

func (m *modelQueue) push(it modelItem) (queued bool, shed []modelItem) {
	n, b := 0, 0
	for _, x := range m.items {
		if !x.exempt {
			n, b = n+1, b+x.size
		}
	}
	needN, needB := n+1-m.maxN, 0
	if m.maxBytes > 0 {
		needB = b + it.size - m.maxBytes
	}
	if needN > 0 || needB > 0 {
		lowN, lowB := 0, 0
		for _, x := range m.items {
			if !x.exempt && x.p < it.p {
				lowN, lowB = lowN+1, lowB+x.size
			}
		}
		if lowN < needN || lowB < needB {
			return false, []modelItem{it}
		}
		for needN > 0 || needB > 0 {
			// The newest message of the lowest priority present.
			victim := -1
			for i, x := range m.items {
				if x.exempt {
					continue
				}
				if victim < 0 || x.p < m.items[victim].p || (x.p == m.items[victim].p && x.id > m.items[victim].id) {
					victim = i
				}
			}
			shed = append(shed, m.items[victim])
			needN--
			needB -= m.items[victim].size
			m.items = slices.Delete(m.items, victim, victim+1)
		}
	}
	m.items = append(m.items, it)
	return true, shed
}

func (m *modelQueue) pushExempt(it modelItem) {
	it.exempt = true
	m.items = append(m.items, it)
}

func (m *modelQueue) pop() (modelItem, bool) {
	// Everything before the first exempt message goes first, highest
	// priority first, oldest first; then that exempt message.
	barrier := slices.IndexFunc(m.items, func(x modelItem) bool { return x.exempt })
	if barrier < 0 {
		barrier = len(m.items)
	}
	best := -1
	for i := range barrier {
		if best < 0 || m.items[i].p > m.items[best].p {
			best = i
		}
	}
	if best < 0 {
		if barrier == len(m.items) {
			return modelItem{}, false
		}
		best = barrier
	}
	it := m.items[best]
	m.items = slices.Delete(m.items, best, best+1)
	return it, true
}

func (m *modelQueue) len() (n, bytes int) {
	for _, x := range m.items {
		n, bytes = n+1, bytes+x.size
	}
	return n, bytes
}

func TestQueueMatchesModel(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		maxN := 1 + rng.IntN(12)
		maxBytes := 0
		if rng.IntN(2) == 0 {
			maxBytes = 1 + rng.IntN(200)
		}
		q := NewQueue(maxN, maxBytes)
		m := &modelQueue{maxN: maxN, maxBytes: maxBytes}
		popBias := rng.IntN(60) // some runs mostly fill, some mostly drain

		for step := range 2000 {
			it := modelItem{id: step, p: Priority(rng.IntN(numPriorities)), size: rng.IntN(60)}
			switch r := rng.IntN(100); {
			case r < popBias:
				got, gotOK := q.Pop()
				want, wantOK := m.pop()
				if gotOK != wantOK || (gotOK && got.(modelItem).id != want.id) {
					t.Fatalf("seed %d step %d: Pop = %v %v, model %v %v", seed, step, got, gotOK, want, wantOK)
				}
			case r < popBias+3:
				q.PushExempt(it, it.size)
				m.pushExempt(it)
			default:
				gotQ, gotShed := q.Push(it, it.p, it.size)
				wantQ, wantShed := m.push(it)
				if gotQ != wantQ || !sameShed(gotShed, wantShed) {
					t.Fatalf("seed %d step %d (max %d/%dB): Push(%+v) = %v %v, model %v %v",
						seed, step, maxN, maxBytes, it, gotQ, gotShed, wantQ, wantShed)
				}
			}
			wn, wb := m.len()
			if q.Len() != wn || q.Bytes() != wb {
				t.Fatalf("seed %d step %d: Len %d Bytes %d, model %d %d", seed, step, q.Len(), q.Bytes(), wn, wb)
			}
		}
	}
}

func sameShed(got []Shed, want []modelItem) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Msg.(modelItem).id != want[i].id || got[i].Priority != want[i].p {
			return false
		}
	}
	return true
}
