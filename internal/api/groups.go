package api

import (
	"context"
	"errors"
	"time"
)

// The groups part of the admin API (docs/operations.md, docs/crypto.md).
// A Backend that also implements GroupsBackend serves it; one that does
// not answers 404 with code groups_off on every /v1/groups path.
//
//	POST   /v1/groups                        GroupCreateRequest → GroupCreateResponse
//	GET    /v1/groups                                           → GroupListResponse
//	GET    /v1/groups/{group}                                   → Group
//	POST   /v1/groups/{group}/members        GroupMemberRequest → Group   (add: fetches the KeyPackage over the mesh)
//	DELETE /v1/groups/{group}/members/{addr}                    → Group   (remove)
//	POST   /v1/groups/{group}/messages       GroupSendRequest   → GroupSendResponse
//
// {group} is the group id (32 hex digits). Group messages arrive in the
// inbox (GET /v1/inbox) with InboxEntry.Group set. Errors: a malformed id
// or address is 400; an unknown group 404 (code not_found); a member that
// is not in the group, or one already in it, 409 (code group_member); a
// KeyPackage the mesh did not deliver within the wait 504 (code
// keypackage_unavailable, the message says whether its owner said it has
// none or nobody answered); a call only the group's creator may make 409
// (code group_not_creator).

// Errors a GroupsBackend wraps for the handlers to map.
var (
	// ErrGroupMember: the address is already a member (add) or is not one
	// (remove). 409, code group_member.
	ErrGroupMember = errors.New("groups: membership does not allow that")
	// ErrKeyPackageUnavailable: no KeyPackage of the address could be
	// fetched. 504, code keypackage_unavailable.
	ErrKeyPackageUnavailable = errors.New("groups: KeyPackage unavailable")
	// ErrGroupNotCreator: membership changes are committed by the group's
	// creator only. 409, code group_not_creator.
	ErrGroupNotCreator = errors.New("groups: only the group's creator commits membership changes")
)

// GroupsBackend is what the /v1/groups handlers need from the node.
// Errors take the API's types (BadRequest, NotFound, Unavailable) or wrap
// the errors above; anything else is 500.
type GroupsBackend interface {
	// GroupCreate creates a group with this node as its one member.
	GroupCreate(ctx context.Context, name string) (GroupCreateResponse, error)
	// GroupList lists the groups this node is in.
	GroupList(ctx context.Context) (GroupListResponse, error)
	// GroupShow describes one group (NotFound for a group the node is not in).
	GroupShow(ctx context.Context, group string) (Group, error)
	// GroupAdd fetches addr's KeyPackage over the mesh (waiting up to
	// wait), commits its addition and sends the Welcome.
	GroupAdd(ctx context.Context, group, addr string, wait time.Duration) (Group, error)
	// GroupRemove commits addr's removal.
	GroupRemove(ctx context.Context, group, addr string) (Group, error)
	// GroupSend encrypts text for the group and sends it to every other
	// member, each copy retransmitted until that member's receipt.
	GroupSend(ctx context.Context, group, text string) (GroupSendResponse, error)
}

// GroupCreateRequest is the body of POST /v1/groups.
type GroupCreateRequest struct {
	Name string `json:"name"`
}

// GroupCreateResponse is the answer of POST /v1/groups and of
// `qpc group create --json`.
type GroupCreateResponse struct {
	Group string `json:"group"`
}

// GroupMemberRequest is the body of POST /v1/groups/{group}/members. Wait
// is a Go duration (default 30s, at most 5m): how long to wait for the
// member's KeyPackage.
type GroupMemberRequest struct {
	Address string `json:"address"`
	Wait    string `json:"wait,omitempty"`
}

// GroupSendRequest is the body of POST /v1/groups/{group}/messages.
type GroupSendRequest struct {
	Text string `json:"text"`
}

// GroupSendResponse names the copies sent, one per other member, each
// with its message id and state as in /v1/messages/{id}.
type GroupSendResponse struct {
	Group  string    `json:"group"`
	Epoch  uint64    `json:"epoch"`
	Copies []Message `json:"copies"`
}

// Group is one group as `qpc group list --json` and GET /v1/groups/{group}
// print it. Each member's Mode says how this node's copies to it are
// protected, chosen by the class of the first link of the route to it
// (transports.CryptoMode names): "mls" (medium and unconstrained links,
// and no route yet), "mls-lite" (constrained: MLS-Lite, signed),
// "mls-lite-compact" (severely constrained: MLS-Lite without a
// signature). "mls-hybrid-pq" is reserved for the post-quantum mode.
type Group struct {
	Group   string `json:"group"`
	Name    string `json:"name"`
	Epoch   uint64 `json:"epoch"`
	Creator string `json:"creator"`
	// PQ: the commit that began the epoch injected a post-quantum PSK
	// (groups.pq, every member reachable over a PQ-capable route).
	PQ      bool          `json:"pq"`
	Members []GroupMember `json:"members"`
}

// GroupMember is one member of a Group.
type GroupMember struct {
	Address string `json:"address"`
	Self    bool   `json:"self,omitempty"`
	// Mode is how this node's copies to the member are protected now
	// (empty for Self).
	Mode string `json:"mode,omitempty"`
}

// GroupListResponse is the answer of GET /v1/groups.
type GroupListResponse struct {
	Groups []Group `json:"groups"`
}
