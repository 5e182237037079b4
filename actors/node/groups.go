package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/actors/keys"
	"github.com/quicprochat/qpc/actors/router"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/crypto/pq"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// This file is the node's groups side: the keys actor's configuration
// from [groups], and api.GroupsBackend (docs/crypto.md).

var _ api.GroupsBackend = (*Node)(nil)

// keysConfig is the keys actor's configuration.
func (n *Node) keysConfig(routerPID, announcerPID *actor.PID) keys.Config {
	g := n.cfg.Groups
	return keys.Config{
		Enabled: g.Enabled, Router: routerPID, Announcer: announcerPID, Clock: n.clock, Log: n.log.With("component", "keys"),
		Engine: keys.EngineConfig{
			Identity: n.id, DB: n.db, Inbox: n.box, Directory: n.keys, KeyPackageLifetime: g.KeyPackageLifetime.D(),
			PQ: n.pqKey(), Metrics: n.metrics.Groups,
		},
	}
}

// askKeys asks the keys actor.
func (n *Node) askKeys(ctx context.Context, msg any, timeout time.Duration) (any, error) {
	res, err := n.ask(ctx, keys.Name, msg, timeout)
	if err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil, &api.Unavailable{Err: err}
		}
		return nil, fmt.Errorf("node: groups: %w", err)
	}
	return res, nil
}

// groupErr maps the keys actor's errors to the API's.
func groupErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keys.ErrOff):
		return &api.Unavailable{Err: err}
	case errors.Is(err, keys.ErrUnknownGroup):
		return &api.NotFound{Err: err}
	case errors.Is(err, keys.ErrMember):
		return fmt.Errorf("%w: %w", api.ErrGroupMember, err)
	case errors.Is(err, keys.ErrNotCreator):
		return fmt.Errorf("%w: %w", api.ErrGroupNotCreator, err)
	case errors.Is(err, keys.ErrKeyPackageUnavailable):
		return fmt.Errorf("%w: %w", api.ErrKeyPackageUnavailable, err)
	}
	return err
}

// ParseGroupID reads a group id: 32 hex digits.
func ParseGroupID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("group id %q: want 32 hex digits", s)
	}
	copy(id[:], b)
	return id, nil
}

func apiGroup(gi keys.GroupInfo, modes map[crypto.Address]keys.Mode) api.Group {
	g := api.Group{Group: hex.EncodeToString(gi.ID[:]), Name: gi.Name, Epoch: gi.Epoch, Creator: gi.Creator.String(), PQ: gi.PQ}
	for _, m := range gi.Members {
		gm := api.GroupMember{Address: m.String()}
		if m == gi.Self {
			gm.Self = true
		} else {
			gm.Mode = keys.ModeFor(0).String()
			if md, ok := modes[m]; ok {
				gm.Mode = md.String()
			}
		}
		g.Members = append(g.Members, gm)
	}
	return g
}

// groupModes asks the router how each member is reached and picks the
// mode of its copies (keys.ModeFor). Without an answer every member gets
// MLS, which every link carries.
func (n *Node) groupModes(ctx context.Context, members []crypto.Address) map[crypto.Address]keys.Mode {
	modes, _ := n.groupRoutes(ctx, members)
	return modes
}

// groupRoutes is groupModes with, when groups.pq is on, the X-Wing keys
// of the members the PQ option may reach (the router asks the others for
// their PQ key record, so a later call may find them).
func (n *Node) groupRoutes(ctx context.Context, members []crypto.Address) (map[crypto.Address]keys.Mode, keys.PQKeys) {
	modes := make(map[crypto.Address]keys.Mode, len(members))
	dests := make([][16]byte, len(members))
	for i, m := range members {
		dests[i] = m
		modes[m] = keys.ModeFor(0)
	}
	res, err := n.ask(ctx, router.Name, &messages.ClassesRequest{Dests: dests}, 5*time.Second)
	if err != nil {
		return modes, nil
	}
	r, ok := res.(*messages.ClassesReply)
	if !ok {
		return modes, nil
	}
	for d, c := range r.Classes {
		modes[d] = keys.ModeFor(transports.Class(c))
	}
	var pqk keys.PQKeys
	for d, k := range r.PQ {
		if pqk == nil {
			pqk = keys.PQKeys{}
		}
		pqk[d] = k
	}
	return modes, pqk
}

// others is the members of g but this node.
func others(g api.Group) []crypto.Address {
	var out []crypto.Address
	for _, m := range g.Members {
		if a, err := crypto.ParseAddress(m.Address); err == nil && !m.Self {
			out = append(out, a)
		}
	}
	return out
}

// GroupCreate is POST /v1/groups.
func (n *Node) GroupCreate(ctx context.Context, name string) (api.GroupCreateResponse, error) {
	res, err := n.askKeys(ctx, &keys.CreateRequest{Name: name}, 10*time.Second)
	if err != nil {
		return api.GroupCreateResponse{}, err
	}
	r := res.(*keys.GroupReply)
	if r.Err != nil {
		return api.GroupCreateResponse{}, groupErr(r.Err)
	}
	return api.GroupCreateResponse{Group: hex.EncodeToString(r.Info.ID[:])}, nil
}

// GroupList is GET /v1/groups.
func (n *Node) GroupList(ctx context.Context) (api.GroupListResponse, error) {
	res, err := n.askKeys(ctx, &keys.ListRequest{}, 10*time.Second)
	if err != nil {
		return api.GroupListResponse{}, err
	}
	r := res.(*keys.ListReply)
	if r.Err != nil {
		return api.GroupListResponse{}, groupErr(r.Err)
	}
	out := api.GroupListResponse{Groups: []api.Group{}}
	for _, gi := range r.Groups {
		out.Groups = append(out.Groups, apiGroup(gi, n.groupModes(ctx, gi.Members)))
	}
	return out, nil
}

// GroupShow is GET /v1/groups/{group}.
func (n *Node) GroupShow(ctx context.Context, group string) (api.Group, error) {
	id, err := ParseGroupID(group)
	if err != nil {
		return api.Group{}, &api.BadRequest{Err: err}
	}
	res, err := n.askKeys(ctx, &keys.ShowRequest{ID: id}, 10*time.Second)
	if err != nil {
		return api.Group{}, err
	}
	r := res.(*keys.GroupReply)
	if r.Err != nil {
		return api.Group{}, groupErr(r.Err)
	}
	return apiGroup(r.Info, n.groupModes(ctx, r.Info.Members)), nil
}

// GroupAdd is POST /v1/groups/{group}/members: the member's KeyPackage is
// fetched over the mesh (the keys actor waits up to wait, on the node's
// clock), the addition committed, and the Welcome and the commit sent.
func (n *Node) GroupAdd(ctx context.Context, group, addr string, wait time.Duration) (api.Group, error) {
	id, err := ParseGroupID(group)
	if err != nil {
		return api.Group{}, &api.BadRequest{Err: err}
	}
	who, err := crypto.ParseAddress(addr)
	if err != nil {
		return api.Group{}, &api.BadRequest{Err: err}
	}
	// Refuse what cannot work before asking the mesh for anything.
	g, err := n.GroupShow(ctx, group)
	if err != nil {
		return api.Group{}, err
	}
	members := append(others(g), who)
	// With groups.pq on, this asks the joiner for its PQ key record while
	// its KeyPackage is fetched, so that the commit may be PQ.
	n.groupRoutes(ctx, members)
	res, err := n.askKeys(ctx, &keys.FetchRequest{Owner: who, Wait: wait}, wait+10*time.Second)
	if err != nil {
		return api.Group{}, err
	}
	f := res.(*keys.FetchReply)
	if f.Err != nil {
		return api.Group{}, groupErr(f.Err)
	}
	_, pqk := n.groupRoutes(ctx, members)
	return n.groupChange(ctx, &keys.AddRequest{ID: id, KP: f.KP, PQ: pqk})
}

// GroupRemove is DELETE /v1/groups/{group}/members/{addr}.
func (n *Node) GroupRemove(ctx context.Context, group, addr string) (api.Group, error) {
	id, err := ParseGroupID(group)
	if err != nil {
		return api.Group{}, &api.BadRequest{Err: err}
	}
	who, err := crypto.ParseAddress(addr)
	if err != nil {
		return api.Group{}, &api.BadRequest{Err: err}
	}
	g, err := n.GroupShow(ctx, group)
	if err != nil {
		return api.Group{}, err
	}
	_, pqk := n.groupRoutes(ctx, others(g))
	return n.groupChange(ctx, &keys.RemoveRequest{ID: id, Addr: who, PQ: pqk})
}

// groupChange asks the keys actor for a membership change and sends the
// messages it made.
func (n *Node) groupChange(ctx context.Context, req any) (api.Group, error) {
	res, err := n.askKeys(ctx, req, 10*time.Second)
	if err != nil {
		return api.Group{}, err
	}
	r := res.(*keys.ChangeReply)
	if r.Err != nil {
		return api.Group{}, groupErr(r.Err)
	}
	results, err := n.sendGroup(ctx, r.Sends)
	if err != nil {
		return api.Group{}, err
	}
	var refused []string
	for i, sr := range results {
		if sr.Err != nil {
			refused = append(refused, fmt.Sprintf("%s (%v)", crypto.Address(r.Sends[i].To).Short(), sr.Err))
		}
	}
	if len(refused) > 0 {
		// The group moved to its next epoch; these members do not get
		// the commit (or the Welcome) and must be removed and added again.
		return api.Group{}, fmt.Errorf("node: group %x at epoch %d, but the router refused the copies to %s", r.Info.ID, r.Info.Epoch, strings.Join(refused, ", "))
	}
	return apiGroup(r.Info, n.groupModes(ctx, r.Info.Members)), nil
}

// GroupSend is POST /v1/groups/{group}/messages.
func (n *Node) GroupSend(ctx context.Context, group, text string) (api.GroupSendResponse, error) {
	if err := textSize(text); err != nil {
		return api.GroupSendResponse{}, err
	}
	if text == "" {
		return api.GroupSendResponse{}, &api.BadRequest{Err: errors.New("text is empty")}
	}
	id, err := ParseGroupID(group)
	if err != nil {
		return api.GroupSendResponse{}, &api.BadRequest{Err: err}
	}
	g, err := n.GroupShow(ctx, group)
	if err != nil {
		return api.GroupSendResponse{}, err
	}
	res, err := n.askKeys(ctx, &keys.SendRequest{ID: id, Text: []byte(text), Modes: n.groupModes(ctx, others(g))}, 10*time.Second)
	if err != nil {
		return api.GroupSendResponse{}, err
	}
	r := res.(*keys.ChangeReply)
	if r.Err != nil {
		return api.GroupSendResponse{}, groupErr(r.Err)
	}
	out := api.GroupSendResponse{Group: group, Epoch: r.Info.Epoch, Copies: []api.Message{}}
	results, err := n.sendGroup(ctx, r.Sends)
	if err != nil {
		return api.GroupSendResponse{}, err
	}
	for i, sr := range results {
		m := api.Message{ID: crypto.Address(sr.ID).String(), To: crypto.Address(r.Sends[i].To).String(), State: sr.Status}
		if sr.Err != nil {
			m.State, m.Reason = router.StateFailed, sr.Err.Error()
		}
		out.Copies = append(out.Copies, m)
	}
	return out, nil
}

// sendGroup hands group messages to the router in one commit. A copy the
// router refuses (no announce of the member heard, outbox full) has its
// Err set; the others go.
func (n *Node) sendGroup(ctx context.Context, sends []messages.SendText) ([]messages.SendResult, error) {
	if len(sends) == 0 {
		return nil, nil
	}
	var out []messages.SendResult
	for len(sends) > 0 {
		k := min(len(sends), MaxSendBatch)
		res, err := n.ask(ctx, router.Name, &messages.SendBatch{Items: sends[:k]}, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("node: group send: %w", err)
		}
		r, ok := res.(*messages.SendBatchResult)
		if !ok {
			return nil, fmt.Errorf("node: unexpected send batch reply %T", res)
		}
		out = append(out, r.Results...)
		sends = sends[k:]
	}
	return out, nil
}

// pqKey is the node's X-Wing key when groups.pq is on (nil: off).
func (n *Node) pqKey() *pq.PrivateKey {
	if !n.cfg.Groups.PQ {
		return nil
	}
	return pq.KeyFor(n.id)
}
