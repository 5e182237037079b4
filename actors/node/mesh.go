package node

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/quicprochat/qpc/actors/ratelimit"
	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// rateLimits turns the config into the limiter's per-peer buckets.
func (n *Node) rateLimits() ratelimit.PerPeerConfig {
	rl := n.cfg.RateLimit
	c := ratelimit.DefaultPerPeerConfig
	c.Limits[ratelimit.ClassEnvelope] = ratelimit.Limit{Rate: rl.EnvelopesPerSec, Burst: rl.EnvelopeBurst}
	// A neighbour that comes up relays every announce it knows at once, so
	// the announce burst is half a minute's worth.
	c.Limits[ratelimit.ClassAnnounce] = ratelimit.Limit{Rate: rl.AnnouncesPerMin / 60, Burst: max(int(rl.AnnouncesPerMin/2), 8)}
	c.Limits[ratelimit.ClassKeyPackage] = ratelimit.Limit{Rate: rl.KeyPackagesPerMn / 60, Burst: max(int(rl.KeyPackagesPerMn/10), 2)}
	return c
}

// ask sends msg to the named child and waits for its answer.
func (n *Node) ask(ctx context.Context, child string, msg any, timeout time.Duration) (any, error) {
	if !n.running.Load() {
		return nil, ErrNotRunning
	}
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	return n.system.Root.RequestFuture(n.childPID(child), msg, timeout).Result()
}

// SendText seals text to the node to and sends it through the mesh. It
// returns once the message is durable in the outbox, which retransmits it
// until to's receipt arrives or it expires (follow it with Message). The
// result's Status is its state then: queued or sent. An outbox that is full
// refuses with router.ErrOutboxFull: try again later.
func (n *Node) SendText(ctx context.Context, to crypto.Address, text []byte) (*messages.SendResult, error) {
	if err := n.checkSend(to, text); err != nil {
		return nil, err
	}
	msg := &messages.SendText{To: to, Text: text}
	// Seal here, on the caller's goroutine, when the destination's key is
	// known already: the router then only numbers, signs and records it.
	if key, ok := n.sealingKey(to); ok {
		sealed, err := crypto.Seal(key, text, crypto.SealAAD(n.id.Address(), to))
		if err != nil {
			return nil, fmt.Errorf("node: send: %w", err)
		}
		msg.Sealed = sealed
	}
	res, err := n.ask(ctx, router.Name, msg, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("node: send: %w", err)
	}
	r, ok := res.(*messages.SendResult)
	if !ok {
		return nil, fmt.Errorf("node: unexpected send reply %T", res)
	}
	return r, r.Err
}

// MaxSendBatch is how many messages SendBatch takes at once.
const MaxSendBatch = 256

// SendBatch sends several texts at once: the router commits them in one
// transaction (one fsync for all), so a bulk sender pays for durability
// once per batch instead of once per message. It returns one result per
// message, in order; a message refused (unknown destination, outbox full)
// has its Err set and the others go on.
func (n *Node) SendBatch(ctx context.Context, to []crypto.Address, texts [][]byte) ([]messages.SendResult, error) {
	if len(to) != len(texts) || len(to) == 0 || len(to) > MaxSendBatch {
		return nil, fmt.Errorf("node: send batch of %d destinations and %d texts: want 1 to %d of each", len(to), len(texts), MaxSendBatch)
	}
	for i := range to {
		if err := n.checkSend(to[i], texts[i]); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
	}
	b := &messages.SendBatch{Items: make([]messages.SendText, len(to))}
	for i := range to {
		b.Items[i] = messages.SendText{To: to[i], Text: texts[i]}
	}
	if err := n.sealBatch(b.Items); err != nil {
		return nil, err
	}
	res, err := n.ask(ctx, router.Name, b, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("node: send batch: %w", err)
	}
	r, ok := res.(*messages.SendBatchResult)
	if !ok {
		return nil, fmt.Errorf("node: unexpected send batch reply %T", res)
	}
	return r.Results, nil
}

// sealBatch seals each item to its destination's key (an item whose key
// is unknown is left for the router to refuse). A batch is sealed on all
// cores: sealing is most of a send's cost, and one request's answer waits
// for all of its items.
func (n *Node) sealBatch(items []messages.SendText) error {
	workers := min(runtime.GOMAXPROCS(0), (len(items)+7)/8)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(items); i += workers {
				it := &items[i]
				key, ok := n.sealingKey(it.To)
				if !ok {
					continue
				}
				sealed, err := crypto.Seal(key, it.Text, crypto.SealAAD(n.id.Address(), it.To))
				if err != nil {
					errs[w] = fmt.Errorf("node: send: %w", err)
					return
				}
				it.Sealed = sealed
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Message is the outbox record of a message this node sent (Found false
// when the id is unknown).
func (n *Node) Message(ctx context.Context, id crypto.Address) (*messages.MessageStatus, error) {
	res, err := n.ask(ctx, router.Name, &messages.MessageRequest{ID: id}, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("node: message: %w", err)
	}
	r, ok := res.(*messages.MessageStatus)
	if !ok {
		return nil, fmt.Errorf("node: unexpected message reply %T", res)
	}
	return r, nil
}

// Routes is the routing table, best path per destination.
func (n *Node) Routes(ctx context.Context) ([]messages.RouteInfo, error) {
	res, err := n.ask(ctx, router.Name, &messages.RoutesRequest{}, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("node: routes: %w", err)
	}
	r, ok := res.(*messages.RoutesReply)
	if !ok {
		return nil, fmt.Errorf("node: unexpected routes reply %T", res)
	}
	return r.Routes, nil
}

// Trace finds the path to the node to, hop by hop, with round-trip times.
func (n *Node) Trace(ctx context.Context, to crypto.Address, timeout time.Duration) (*messages.TraceResult, error) {
	res, err := n.ask(ctx, router.Name, &messages.TraceRequest{To: to, Timeout: timeout}, timeout+time.Second)
	if err != nil {
		return nil, fmt.Errorf("node: trace: %w", err)
	}
	r, ok := res.(*messages.TraceResult)
	if !ok {
		return nil, fmt.Errorf("node: unexpected trace reply %T", res)
	}
	return r, r.Err
}

// MaxTextSize is the longest text one message carries: the envelope's
// payload limit less what sealing adds.
const MaxTextSize = messages.MaxPayloadSize - crypto.SealOverhead

// ErrBadSend: a send that can never succeed (to this node itself, a text
// over MaxTextSize); the message was not accepted.
var ErrBadSend = errors.New("node: send refused")

func (n *Node) checkSend(to crypto.Address, text []byte) error {
	if n.id != nil && to == n.id.Address() {
		return fmt.Errorf("%w: %s is this node's own address", ErrBadSend, to)
	}
	if len(text) > MaxTextSize {
		return fmt.Errorf("%w: text of %d bytes, at most %d bytes", ErrBadSend, len(text), MaxTextSize)
	}
	return nil
}

// sealingKey is to's announced sealing key from the edge's directory.
func (n *Node) sealingKey(to crypto.Address) ([]byte, bool) {
	if n.keys == nil {
		return nil, false
	}
	return n.keys.SealingKey(to)
}
