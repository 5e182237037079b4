package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// Limits of the /v1/groups handlers (groups.go has the routes).
const (
	// DefaultGroupAddWait and MaxGroupAddWait bound the wait of an add:
	// how long the node waits for the member's KeyPackage.
	DefaultGroupAddWait = 30 * time.Second
	MaxGroupAddWait     = 5 * time.Minute
	// MaxGroupNameSize is the longest group name in bytes (UTF-8, no
	// control characters).
	MaxGroupNameSize = 64
	// MaxGroupTextSize is the longest text of a group message: the limit
	// POST /v1/send has (node.MaxTextSize, the envelope's payload less what
	// sealing adds). A text over it is 413 too_large before the backend
	// sees it; the backend may refuse a shorter one that does not fit once
	// encrypted for the group.
	MaxGroupTextSize = messages.MaxPayloadSize - crypto.SealOverhead
	// groupIDSize is the length of a group id: 32 lower-case hex digits.
	groupIDSize = 32
)

// groupsPaths are the /v1/groups endpoints and their methods (405 for the
// others).
var groupsPaths = map[string][]string{
	"/v1/groups":                        {"GET", "POST"},
	"/v1/groups/{group}":                {"GET"},
	"/v1/groups/{group}/members":        {"POST"},
	"/v1/groups/{group}/members/{addr}": {"DELETE"},
	"/v1/groups/{group}/messages":       {"POST"},
}

// groupsRoutes adds the /v1/groups endpoints to mux: served by the
// backend when it is a GroupsBackend, else 404 groups_off on every one.
func (s *Server) groupsRoutes(mux *http.ServeMux) {
	gb, ok := groupsOf(s.backend)
	if !ok {
		off := func(w http.ResponseWriter, r *http.Request) {
			writeError(w, &Error{Code: "groups_off", Status: http.StatusNotFound, Message: "groups are off on this node: it does not serve MLS groups (/v1/groups)"})
		}
		mux.HandleFunc("/v1/groups", off)
		mux.HandleFunc("/v1/groups/", off)
		return
	}
	mux.HandleFunc("POST /v1/groups", func(w http.ResponseWriter, r *http.Request) {
		var req GroupCreateRequest
		if e := decodeBody(r, &req, `{"name": NAME}`); e != nil {
			writeError(w, e)
			return
		}
		if err := CheckGroupName(req.Name); err != nil {
			writeError(w, badRequest(err.Error()))
			return
		}
		res, err := gb.GroupCreate(r.Context(), req.Name)
		if err != nil {
			writeGroupsError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/groups", func(w http.ResponseWriter, r *http.Request) {
		res, err := gb.GroupList(r.Context())
		if err != nil {
			writeGroupsError(w, err)
			return
		}
		if res.Groups == nil {
			res.Groups = []Group{}
		}
		for i := range res.Groups {
			res.Groups[i] = groupJSON(res.Groups[i])
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/groups/{group}", func(w http.ResponseWriter, r *http.Request) {
		id, e := groupID(r)
		if e != nil {
			writeError(w, e)
			return
		}
		res, err := gb.GroupShow(r.Context(), id)
		if err != nil {
			writeGroupsError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, groupJSON(res))
	})
	mux.HandleFunc("POST /v1/groups/{group}/members", func(w http.ResponseWriter, r *http.Request) {
		id, e := groupID(r)
		if e != nil {
			writeError(w, e)
			return
		}
		var req GroupMemberRequest
		if e := decodeBody(r, &req, `{"address": ADDRESS, "wait": DURATION}`); e != nil {
			writeError(w, e)
			return
		}
		addr, e := memberAddress(req.Address)
		if e != nil {
			writeError(w, e)
			return
		}
		wait, err := ParseGroupAddWait(req.Wait)
		if err != nil {
			writeError(w, badRequest(err.Error()))
			return
		}
		s.allowWait(w, wait)
		res, err := gb.GroupAdd(r.Context(), id, addr, wait)
		if err != nil {
			writeGroupsError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, groupJSON(res))
	})
	mux.HandleFunc("DELETE /v1/groups/{group}/members/{addr}", func(w http.ResponseWriter, r *http.Request) {
		id, e := groupID(r)
		if e != nil {
			writeError(w, e)
			return
		}
		addr, e := memberAddress(r.PathValue("addr"))
		if e != nil {
			writeError(w, e)
			return
		}
		res, err := gb.GroupRemove(r.Context(), id, addr)
		if err != nil {
			writeGroupsError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, groupJSON(res))
	})
	mux.HandleFunc("POST /v1/groups/{group}/messages", func(w http.ResponseWriter, r *http.Request) {
		id, e := groupID(r)
		if e != nil {
			writeError(w, e)
			return
		}
		var req GroupSendRequest
		if e := decodeBody(r, &req, `{"text": TEXT}`); e != nil {
			writeError(w, e)
			return
		}
		// As POST /v1/send: a text over the limit is 413, an empty one 400.
		if len(req.Text) > MaxGroupTextSize {
			writeError(w, &Error{Code: "too_large", Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("text of %d bytes, at most %d bytes", len(req.Text), MaxGroupTextSize)})
			return
		}
		if req.Text == "" {
			writeError(w, badRequest("text is empty"))
			return
		}
		res, err := gb.GroupSend(r.Context(), id, req.Text)
		if err != nil {
			writeGroupsError(w, err)
			return
		}
		if res.Copies == nil {
			res.Copies = []Message{}
		}
		writeJSON(w, http.StatusOK, res)
	})
	for path, methods := range groupsPaths {
		mux.HandleFunc(path, methodNotAllowed(methods))
	}
}

// groupsOf is b's GroupsBackend: b itself, or the backend WithoutFAPP
// wrapped (it hides the FAPP methods, and groups are not FAPP: a node
// with FAPP off serves its groups).
func groupsOf(b Backend) (GroupsBackend, bool) {
	if gb, ok := b.(GroupsBackend); ok {
		return gb, true
	}
	if w, ok := b.(interface{ groupsBackend() (GroupsBackend, bool) }); ok {
		return w.groupsBackend()
	}
	return nil, false
}

// groupsBackend reaches through WithoutFAPP's wrapper (fapp_http.go) to
// the groups of the backend it wraps.
func (b backendOnly) groupsBackend() (GroupsBackend, bool) { return groupsOf(b.Backend) }

// groupJSON is g as the API prints it: members a list, never null.
func groupJSON(g Group) Group {
	if g.Members == nil {
		g.Members = []GroupMember{}
	}
	return g
}

// CheckGroupID refuses what is not a group id: 32 lower-case hex digits.
func CheckGroupID(s string) error {
	ok := len(s) == groupIDSize
	for i := 0; ok && i < len(s); i++ {
		ok = ('0' <= s[i] && s[i] <= '9') || ('a' <= s[i] && s[i] <= 'f')
	}
	if !ok {
		return fmt.Errorf("group %q: want a group id, %d lower-case hex digits (as qpc group list prints it)", s, groupIDSize)
	}
	return nil
}

// CheckGroupName refuses a group name that is empty, over
// MaxGroupNameSize bytes, not UTF-8 or with a control character.
func CheckGroupName(name string) error {
	switch {
	case name == "":
		return errors.New("name is missing: a group needs a name of 1 to 64 bytes")
	case len(name) > MaxGroupNameSize:
		return fmt.Errorf("name of %d bytes is over the limit of %d", len(name), MaxGroupNameSize)
	case !utf8.ValidString(name):
		return errors.New("name is not UTF-8")
	}
	for i, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("name has a control character (%U at byte %d): a name is one line of printable text", r, i)
		}
	}
	return nil
}

// ParseGroupAddWait parses the wait of an add: a Go duration from 0s to
// MaxGroupAddWait; empty is DefaultGroupAddWait. The error names wait.
func ParseGroupAddWait(v string) (time.Duration, error) {
	if v == "" {
		return DefaultGroupAddWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > MaxGroupAddWait {
		return 0, fmt.Errorf("wait %q: want a duration from 0s to %s (default %s)", v, MaxGroupAddWait, DefaultGroupAddWait)
	}
	return d, nil
}

// groupID is the {group} of a path, checked.
func groupID(r *http.Request) (string, *Error) {
	id := r.PathValue("group")
	if err := CheckGroupID(id); err != nil {
		return "", badRequest(err.Error())
	}
	return id, nil
}

// memberAddress checks a member's address and returns it as the node
// prints addresses (lower case).
func memberAddress(s string) (string, *Error) {
	if s == "" {
		return "", badRequest("address is missing: want the member's node address, 32 hex digits")
	}
	a, err := crypto.ParseAddress(s)
	if err != nil {
		return "", badRequest("address: " + err.Error())
	}
	return a.String(), nil
}

// writeGroupsError is writeBackendError with the groups' own: the API's
// error types first (BadRequest 400, NotFound 404, Unavailable 503, ...),
// then membership (409 group_member), a KeyPackage the mesh did not
// deliver (504 keypackage_unavailable), a change only the creator may
// commit (409 group_not_creator); anything else 500.
func writeGroupsError(w http.ResponseWriter, err error) {
	var br *BadRequest
	var nf *NotFound
	var un *Unavailable
	var tl *TooLarge
	var busy *Busy
	switch {
	case errors.As(err, &br), errors.As(err, &nf), errors.As(err, &un), errors.As(err, &tl), errors.As(err, &busy):
		writeBackendError(w, err)
	case errors.Is(err, ErrGroupMember):
		writeError(w, &Error{Code: "group_member", Message: err.Error(), Status: http.StatusConflict})
	case errors.Is(err, ErrKeyPackageUnavailable):
		writeError(w, &Error{Code: "keypackage_unavailable", Message: err.Error(), Status: http.StatusGatewayTimeout})
	case errors.Is(err, ErrGroupNotCreator):
		writeError(w, &Error{Code: "group_not_creator", Message: err.Error(), Status: http.StatusConflict})
	default:
		writeBackendError(w, err)
	}
}

// groupsMetricPath is the path label of a /v1/groups request: the
// endpoint's pattern, or "other" (the label's values stay bounded).
func groupsMetricPath(path string) string {
	if path == "/v1/groups" {
		return path
	}
	rest, ok := strings.CutPrefix(path, "/v1/groups/")
	if !ok {
		return "other"
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return "/v1/groups/{group}"
	case len(parts) == 2 && (parts[1] == "members" || parts[1] == "messages"):
		return "/v1/groups/{group}/" + parts[1]
	case len(parts) == 3 && parts[1] == "members":
		return "/v1/groups/{group}/members/{addr}"
	}
	return "other"
}
