package links

// BroadcastPlan is how one frame meant for every neighbour goes out: one
// broadcast on each transport in Broadcasts, and one frame on each link
// in Unicast.
type BroadcastPlan[H any, B comparable] struct {
	Broadcasts []B
	Unicast    []H
}

// PlanBroadcast plans a frame of size bytes for every connected peer but
// except. Each peer's best link is Table.Pick's; when via says that
// link's transport broadcasts (it returns the transport's handle and
// true), the peer is reached by one broadcast of that transport, shared
// with all its other peers, else by a frame on that link. skipBroadcast
// leaves the peers reached by broadcast out altogether (a re-broadcast
// that a neighbour on the radio made already). The order is stable: by
// peer address, each broadcaster where its first peer comes.
//
// A broadcast also reaches except (a radio cannot leave one receiver
// out): its deduplication drops the copy.
func PlanBroadcast[H any, B comparable](t *Table[H], except [16]byte, size int, via func(linkID uint64) (B, bool), skipBroadcast bool) BroadcastPlan[H, B] {
	var plan BroadcastPlan[H, B]
	seen := map[B]bool{}
	for _, peer := range t.Peers() {
		if peer == except {
			continue
		}
		h, info, ok := t.Pick(peer, size)
		if !ok {
			continue
		}
		if via != nil {
			if b, ok := via(info.ID); ok {
				if !skipBroadcast && !seen[b] {
					seen[b] = true
					plan.Broadcasts = append(plan.Broadcasts, b)
				}
				continue
			}
		}
		plan.Unicast = append(plan.Unicast, h)
	}
	return plan
}
