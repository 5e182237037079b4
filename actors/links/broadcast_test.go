package links

import (
	"slices"
	"testing"
	"time"

	"github.com/quicprochat/qpc/messages"
)

// PlanBroadcast: one broadcast per radio for all the peers whose best
// link is on it, a frame per peer on the other links, nothing for
// Except; a peer that has a faster link than the radio gets the frame on
// that link; SkipBroadcast leaves the radios' peers out; without via
// every peer gets its own frame (the fan-out before issue 12).
func TestPlanBroadcast(t *testing.T) {
	t0 := time.Unix(100, 0)
	tab := NewTable[string]()
	add := func(id uint64, peer byte, transport string) {
		info := messages.LinkInfo{ID: id, Peer: [16]byte{peer}, Transport: transport, MTU: 245, Bitrate: 5000, Since: t0}
		if transport == "tcp" {
			info.MTU, info.Bitrate = 1<<20, 1e8
		}
		tab.Add(info, transport+"-"+string('0'+rune(peer)))
	}
	// Radio A reaches peers 1, 2, 3; radio B peers 4, 5; peer 3 also has
	// TCP; peer 6 only TCP.
	for _, p := range []byte{1, 2, 3} {
		add(uint64(p), p, "loraA")
	}
	add(4, 4, "loraB")
	add(5, 5, "loraB")
	add(13, 3, "tcp")
	add(16, 6, "tcp")
	via := func(id uint64) (string, bool) {
		switch {
		case id <= 3:
			return "A", true
		case id <= 5:
			return "B", true
		}
		return "", false
	}
	cases := []struct {
		name       string
		except     byte
		skip       bool
		via        func(uint64) (string, bool)
		bcast, uni []string
	}{
		{"all", 0, false, via, []string{"A", "B"}, []string{"tcp-3", "tcp-6"}},
		{"except the only peer of radio B but one", 4, false, via, []string{"A", "B"}, []string{"tcp-3", "tcp-6"}},
		{"except on TCP", 6, false, via, []string{"A", "B"}, []string{"tcp-3"}},
		{"suppressed on the radios", 0, true, via, nil, []string{"tcp-3", "tcp-6"}},
		{"per peer", 1, false, nil, nil, []string{"loraA-2", "tcp-3", "loraB-4", "loraB-5", "tcp-6"}},
	}
	for _, c := range cases {
		plan := PlanBroadcast(tab, [16]byte{c.except}, 100, c.via, c.skip)
		if !slices.Equal(plan.Broadcasts, c.bcast) || !slices.Equal(plan.Unicast, c.uni) {
			t.Errorf("%s: broadcasts %v unicast %v, want %v %v", c.name, plan.Broadcasts, plan.Unicast, c.bcast, c.uni)
		}
	}
	tab.Remove(4)
	tab.Remove(5)
	if plan := PlanBroadcast(tab, [16]byte{}, 100, via, false); !slices.Equal(plan.Broadcasts, []string{"A"}) {
		t.Errorf("radio B without peers still broadcasts: %v", plan.Broadcasts)
	}
}
