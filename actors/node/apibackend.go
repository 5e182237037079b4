package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/messages"
)

// This file is the node's side of the admin API (api.Backend).

// SendMessage is POST /v1/send.
func (n *Node) SendMessage(ctx context.Context, req api.SendRequest) (api.SendResponse, error) {
	if err := textSize(req.Text); err != nil {
		return api.SendResponse{}, err
	}
	to, err := crypto.ParseAddress(req.To)
	if err != nil {
		return api.SendResponse{}, &api.BadRequest{Err: err}
	}
	if req.Text == "" {
		return api.SendResponse{}, &api.BadRequest{Err: errors.New("text is empty")}
	}
	res, err := n.SendText(ctx, to, []byte(req.Text))
	switch {
	case errors.Is(err, ErrBadSend):
		return api.SendResponse{}, &api.BadRequest{Err: err}
	case errors.Is(err, router.ErrUnknownDestination):
		return api.SendResponse{}, &api.BadRequest{Err: err}
	case errors.Is(err, router.ErrTooLargeForLink):
		return api.SendResponse{}, &api.TooLarge{Err: err}
	case errors.Is(err, router.ErrOutboxFull):
		// Receipts free the outbox as fast as the mesh delivers; a second
		// is a fair first wait.
		return api.SendResponse{}, &api.Busy{Code: "outbox_full", Err: err, RetryAfter: time.Second}
	case errors.Is(err, router.ErrDraining):
		return api.SendResponse{}, &api.Unavailable{Err: err}
	case err != nil:
		return api.SendResponse{}, err
	}
	return api.SendResponse{ID: crypto.Address(res.ID).String(), Status: res.Status}, nil
}

// SendMessages is POST /v1/send with messages: one group commit for all.
func (n *Node) SendMessages(ctx context.Context, reqs []api.SendRequest) (api.SendBatchResponse, error) {
	out := api.SendBatchResponse{Results: make([]api.SendResult, len(reqs))}
	var to []crypto.Address
	var texts [][]byte
	var idx []int // which request each valid message is
	for i, r := range reqs {
		addr, err := crypto.ParseAddress(r.To)
		switch {
		case textSize(r.Text) != nil:
			out.Results[i].Error = &api.Error{Code: "too_large", Message: textSize(r.Text).Error()}
		case err != nil:
			out.Results[i].Error = &api.Error{Code: "bad_request", Message: err.Error()}
		case r.Text == "":
			out.Results[i].Error = &api.Error{Code: "bad_request", Message: "text is empty"}
		case n.checkSend(addr, []byte(r.Text)) != nil:
			out.Results[i].Error = &api.Error{Code: "bad_request", Message: n.checkSend(addr, []byte(r.Text)).Error()}
		default:
			to, texts, idx = append(to, addr), append(texts, []byte(r.Text)), append(idx, i)
		}
	}
	if len(to) == 0 {
		return out, nil
	}
	res, err := n.SendBatch(ctx, to, texts)
	if err != nil {
		return api.SendBatchResponse{}, err
	}
	for k, r := range res {
		i := idx[k]
		switch {
		case errors.Is(r.Err, router.ErrUnknownDestination):
			out.Results[i].Error = &api.Error{Code: "bad_request", Message: r.Err.Error()}
		case errors.Is(r.Err, router.ErrTooLargeForLink):
			out.Results[i].Error = &api.Error{Code: "too_large", Message: r.Err.Error()}
		case errors.Is(r.Err, router.ErrOutboxFull):
			out.Results[i].Error = &api.Error{Code: "outbox_full", Message: r.Err.Error()}
		case errors.Is(r.Err, router.ErrDraining):
			out.Results[i].Error = &api.Error{Code: "unavailable", Message: r.Err.Error()}
		case r.Err != nil:
			out.Results[i].Error = &api.Error{Code: "failed", Message: r.Err.Error()}
		default:
			out.Results[i].ID, out.Results[i].Status = crypto.Address(r.ID).String(), r.Status
		}
	}
	return out, nil
}

// textSize refuses a text longer than a message carries (413), before
// anything else is done with it.
func textSize(text string) error {
	if len(text) > MaxTextSize {
		return &api.TooLarge{Err: fmt.Errorf("%w: text of %d bytes, at most %d bytes", ErrBadSend, len(text), MaxTextSize)}
	}
	return nil
}

// MessageState is GET /v1/messages/{id}.
func (n *Node) MessageState(ctx context.Context, id string) (api.Message, error) {
	a, err := crypto.ParseAddress(id)
	if err != nil {
		return api.Message{}, &api.BadRequest{Err: fmt.Errorf("message id: %w", err)}
	}
	st, err := n.Message(ctx, a)
	if err != nil {
		return api.Message{}, err
	}
	if !st.Found {
		return api.Message{}, &api.NotFound{Err: fmt.Errorf("no message %s in the outbox (never sent from this node, or finished long ago)", id)}
	}
	return apiMessage(*st), nil
}

// Outbox is GET /v1/outbox.
func (n *Node) Outbox(ctx context.Context) (api.OutboxResponse, error) {
	res, err := n.ask(ctx, router.Name, &messages.OutboxRequest{}, 5*time.Second)
	if err != nil {
		return api.OutboxResponse{}, fmt.Errorf("node: outbox: %w", err)
	}
	r, ok := res.(*messages.OutboxReply)
	if !ok {
		return api.OutboxResponse{}, fmt.Errorf("node: unexpected outbox reply %T", res)
	}
	out := api.OutboxResponse{Pending: r.Pending, Messages: make([]api.Message, 0, len(r.Messages))}
	for _, m := range r.Messages {
		out.Messages = append(out.Messages, apiMessage(m))
	}
	return out, nil
}

func apiMessage(m messages.MessageStatus) api.Message {
	out := api.Message{
		ID: crypto.Address(m.ID).String(), To: crypto.Address(m.To).String(), State: m.State,
		Attempts: m.Attempts, Seq: m.Seq, Created: m.Created.UTC(), Expiry: m.Expiry.UTC(), Reason: m.Reason,
	}
	if !m.NextRetry.IsZero() {
		t := m.NextRetry.UTC()
		out.NextRetry = &t
	}
	if !m.Done.IsZero() {
		t := m.Done.UTC()
		out.Done = &t
	}
	return out
}

// InboxSince is GET /v1/inbox: messages after the given number, waiting up to
// wait for the first one when there are none yet.
func (n *Node) InboxSince(ctx context.Context, after uint64, wait time.Duration) (api.InboxResponse, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		msgs, changed, err := n.box.List(after, 1000)
		if err != nil {
			return api.InboxResponse{}, err
		}
		if len(msgs) > 0 || wait == 0 {
			res := api.InboxResponse{Messages: msgs, Last: after}
			if len(msgs) > 0 {
				res.Last = msgs[len(msgs)-1].Seq
			}
			if res.Messages == nil {
				res.Messages = []api.InboxEntry{}
			}
			return res, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			wait = 0
		case <-ctx.Done():
			return api.InboxResponse{}, ctx.Err()
		case <-n.draining:
			// The node is shutting down: answer now (with what there is),
			// the client reconnects to this node once it is back or reads
			// another.
			wait = 0
		case <-n.done:
			return api.InboxResponse{}, ErrNotRunning
		}
	}
}

// InboxDelete is DELETE /v1/inbox/{seq}.
func (n *Node) InboxDelete(_ context.Context, seq uint64) error {
	ok, err := n.box.Delete(seq)
	if err != nil {
		return err
	}
	if !ok {
		return &api.NotFound{Err: fmt.Errorf("no message #%d in the inbox", seq)}
	}
	return nil
}

// InboxClear is DELETE /v1/inbox.
func (n *Node) InboxClear(context.Context) (int, error) { return n.box.Clear() }

// RouteTable is GET /v1/routes.
func (n *Node) RouteTable(ctx context.Context) ([]api.Route, error) {
	rs, err := n.Routes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Route, 0, len(rs))
	for _, r := range rs {
		out = append(out, api.Route{
			Address: crypto.Address(r.Address).String(), NextHop: crypto.Address(r.NextHop).String(),
			Hops: r.Hops, Link: r.Link, Capabilities: r.Capabilities.Names(), Refreshed: r.Refreshed,
		})
	}
	return out, nil
}

// TraceTo is GET /v1/trace.
func (n *Node) TraceTo(ctx context.Context, to string, timeout time.Duration) (api.TraceResponse, error) {
	addr, err := crypto.ParseAddress(to)
	if err != nil {
		return api.TraceResponse{}, &api.BadRequest{Err: err}
	}
	if n.id != nil && addr == n.id.Address() {
		return api.TraceResponse{}, &api.BadRequest{Err: fmt.Errorf("%s is this node's own address: trace another node", addr)}
	}
	res, err := n.Trace(ctx, addr, timeout)
	if errors.Is(err, router.ErrUnknownDestination) {
		return api.TraceResponse{}, &api.BadRequest{Err: err}
	}
	if errors.Is(err, router.ErrNoRoute) {
		return api.TraceResponse{}, &api.NotFound{Err: err}
	}
	out := api.TraceResponse{To: to, Hops: []api.TraceHop{}}
	if res != nil {
		out.Reached = res.Reached
		for _, h := range res.Hops {
			out.Hops = append(out.Hops, api.TraceHop{Hop: h.Hop, Address: crypto.Address(h.Address).String(), RTTms: float64(h.RTT.Microseconds()) / 1000})
		}
	}
	if err != nil && len(out.Hops) == 0 {
		return out, fmt.Errorf("trace %s: %w", to, err)
	}
	return out, nil
}
