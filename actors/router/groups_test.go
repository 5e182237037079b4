package router

import (
	"testing"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// Group messages are sealed 1:1 messages with their own payload type:
// delivered exactly once, acknowledged, and marked for the keys actor.
func TestCoreGroupMessageDeliveredOnceForTheKeysActor(t *testing.T) {
	w := newCoreWorld(t)
	seal, _ := crypto.SealingKeyFor(w.self)
	s, err := crypto.Seal(seal.Public(), []byte("mls"), crypto.SealAAD(w.src.Address(), w.self.Address()))
	if err != nil {
		t.Fatal(err)
	}
	msg := w.envelopeSeq(w.src, w.self.Address(), 8, messages.PayloadGroup, s, 1)
	acts := w.core.HandleEnvelope(msg, w.src.Address(), w.now)
	if len(acts) != 2 || acts[0].Kind != Deliver || acts[0].Inbox.Payload != messages.PayloadGroup || string(acts[0].Inbox.Text) != "mls" || acts[1].Kind != ReceiptDue {
		t.Fatalf("group message: %v", kinds(acts))
	}
	if acts := w.core.HandleEnvelope(msg, w.src.Address(), w.now); acts[0].Reason != DropDuplicate || acts[1].Kind != ReceiptDue {
		t.Fatalf("second copy: %v %+v", kinds(acts), acts[0])
	}
	// A text stays a text. Texts and group messages share the sender's
	// seq space (one outbox per destination).
	w.seq = 1
	if acts := w.core.HandleEnvelope(w.sealed("hi"), w.src.Address(), w.now); acts[0].Inbox.Payload != 0 {
		t.Fatalf("text marked as %v", acts[0].Inbox.Payload)
	}
	// Own group messages are signed envelopes of their type.
	frame, _, _, err := w.core.SealAs(messages.PayloadGroup, w.dst.Address(), 1, []byte("x"), w.now)
	if err != nil {
		t.Fatal(err)
	}
	env, err := messages.DecodeEnvelope(frame)
	if err != nil || env.PayloadType != messages.PayloadGroup || env.Seq != 1 {
		t.Fatalf("own group message: %v %+v", err, env)
	}
	if _, _, _, err := w.core.SignSealedAs(messages.PayloadReceipt, w.dst.Address(), 1, []byte("x"), w.now); err == nil {
		t.Fatal("a receipt signed as a sealed payload")
	}
}

// KeyPackage requests on their way stop at a node with a keys actor,
// which answers from its cache or hands them back; responses on their
// way are forwarded and copied to it; those for this node go to it.
func TestCoreKeyPackageMessagesGoToTheKeysActor(t *testing.T) {
	w := newCoreWorld(t)
	ref := messages.KeyPackageRef{Owner: w.dst.Address()}.Encode()
	req := w.envelope(w.src, w.dst.Address(), 8, messages.PayloadKeyPackageRequest, ref)

	// Without a keys actor: forwarded like anything else.
	if acts := w.core.HandleEnvelope(req, w.src.Address(), w.now); len(acts) != 1 || acts[0].Kind != Forward {
		t.Fatalf("no keys actor: %v", kinds(acts))
	}
	w.core.KeyPackagesIn = true
	w.core.Loops = NewDedup(0, 0)
	acts := w.core.HandleEnvelope(req, w.src.Address(), w.now)
	if len(acts) != 1 || acts[0].Kind != KeyPackage || !acts[0].KP.Transit || acts[0].KP.Frame == nil || acts[0].KP.From != w.src.Address() {
		t.Fatalf("request in transit: %v %+v", kinds(acts), acts)
	}
	if fe, err := messages.DecodeEnvelope(acts[0].KP.Frame); err != nil || fe.Hops != 1 {
		t.Fatalf("handed-out frame not ready to forward: %v %+v", err, fe)
	}
	payload, _ := messages.EncodeKeyPackagePayload(w.dst.Address(), []byte("kp"))
	resp := w.envelope(w.dst, w.src.Address(), 8, messages.PayloadKeyPackage, payload)
	w.learn(w.dst, w.via.Address(), 2)
	acts = w.core.HandleEnvelope(resp, w.via.Address(), w.now)
	if len(acts) != 2 || acts[0].Kind != KeyPackage || acts[1].Kind != Forward || acts[1].NextHop != w.src.Address() {
		t.Fatalf("response in transit: %v", kinds(acts))
	}
	mine := w.envelope(w.src, w.self.Address(), 8, messages.PayloadKeyPackageRequest, messages.KeyPackageRef{Owner: w.self.Address()}.Encode())
	acts = w.core.HandleEnvelope(mine, w.src.Address(), w.now)
	if len(acts) != 1 || acts[0].Kind != KeyPackage || acts[0].KP.Transit || acts[0].KP.Env.Source != w.src.Address() {
		t.Fatalf("request for us: %v", kinds(acts))
	}
	if acts := w.core.HandleEnvelope(mine, w.src.Address(), w.now); acts[0].Reason != DropDuplicate {
		t.Fatalf("a copy of a request: %+v", acts[0])
	}
	// A control envelope from us is signed and routed, never sealed.
	acts = w.core.Control(w.dst.Address(), messages.PayloadKeyPackage, payload, w.now)
	if len(acts) != 1 || acts[0].Kind != Forward || acts[0].NextHop != w.via.Address() {
		t.Fatalf("control: %v", kinds(acts))
	}
	if acts := w.core.Control(w.dst.Address(), messages.PayloadGroup, payload, w.now); acts[0].Kind != Drop {
		t.Fatalf("a sealed type sent as control: %v", kinds(acts))
	}
}
