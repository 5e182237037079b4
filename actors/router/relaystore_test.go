package router

import (
	"testing"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// store.relay = false: another node's envelope without a route is not
// held but dropped with its own counted reason (its sender retransmits);
// with a route it is still forwarded; the receipts this node sends itself
// are still held. With the store off nothing is held (no_route).
func TestCoreRelayStoreOff(t *testing.T) {
	w := newCoreWorld(t)
	nowhere, _ := crypto.NewIdentity(nil) // no route to it
	others := w.envelope(w.src, nowhere.Address(), 8, messages.PayloadSealed, make([]byte, 80))
	if acts := w.core.HandleEnvelope(others, w.src.Address(), w.now); len(acts) != 1 || acts[0].Kind != Store {
		t.Fatalf("relay store on: %+v", acts)
	}

	w.core.RelayStore = false
	w.core.Loops = nil // the same envelope again is not a loop's copy here
	if acts := w.core.HandleEnvelope(others, w.src.Address(), w.now); len(acts) != 1 || acts[0].Kind != Drop || acts[0].Reason != DropStoreRelayOff {
		t.Fatalf("relay store off, no route: %+v", acts)
	}
	fwd := w.envelope(w.src, w.dst.Address(), 8, messages.PayloadSealed, make([]byte, 80))
	if acts := w.core.HandleEnvelope(fwd, w.src.Address(), w.now); len(acts) != 1 || acts[0].Kind != Forward || acts[0].NextHop != w.via.Address() {
		t.Fatalf("relay store off, with a route: %+v", acts)
	}
	own := w.core.Receipts(nowhere.Address(), [][16]byte{{1}, {2}}, w.now)
	if len(own) != 1 || own[0].Kind != Store || own[0].Dest != nowhere.Address() {
		t.Fatalf("own receipt without a route, relay store off: %+v", own)
	}

	w.core.StoreOn = false
	if acts := w.core.HandleEnvelope(others, w.src.Address(), w.now); len(acts) != 1 || acts[0].Reason != DropNoRoute {
		t.Fatalf("store off: %+v", acts)
	}
	if own := w.core.Receipts(nowhere.Address(), [][16]byte{{3}}, w.now); len(own) != 1 || own[0].Reason != DropNoRoute {
		t.Fatalf("own receipt, store off: %+v", own)
	}
}
