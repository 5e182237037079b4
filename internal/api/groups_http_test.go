package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quicprochat/qpc/internal/metrics"
)

// fakeGroups is a Backend that also serves groups; it records what the
// handlers passed and answers with err when set.
type fakeGroups struct {
	fakeBackend
	mu    sync.Mutex
	err   error
	calls int

	name, group, addr, text string
	wait                    time.Duration
}

const (
	fakeGroupID = "0123456789abcdef0123456789abcdef"
	fakeSelf    = "00112233445566778899aabbccddeeff"
	fakeMember  = "ffeeddccbbaa99887766554433221100"
)

func (f *fakeGroups) record(group, addr, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.group, f.addr, f.text = group, addr, text
	return f.err
}

func (f *fakeGroups) group2() Group {
	return Group{Group: fakeGroupID, Name: "ops", Epoch: 2, Creator: fakeSelf, Members: []GroupMember{
		{Address: fakeSelf, Self: true}, {Address: fakeMember, Mode: "mls+pq"}}}
}

func (f *fakeGroups) GroupCreate(_ context.Context, name string) (GroupCreateResponse, error) {
	err := f.record("", "", "")
	f.mu.Lock()
	f.name = name
	f.mu.Unlock()
	return GroupCreateResponse{Group: fakeGroupID}, err
}
func (f *fakeGroups) GroupList(context.Context) (GroupListResponse, error) {
	if err := f.record("", "", ""); err != nil {
		return GroupListResponse{}, err
	}
	// A group the backend left without members prints "members": [].
	return GroupListResponse{Groups: []Group{f.group2(), {Group: fakeGroupID, Name: "empty"}}}, nil
}
func (f *fakeGroups) GroupShow(_ context.Context, group string) (Group, error) {
	return f.group2(), f.record(group, "", "")
}
func (f *fakeGroups) GroupAdd(_ context.Context, group, addr string, wait time.Duration) (Group, error) {
	err := f.record(group, addr, "")
	f.mu.Lock()
	f.wait = wait
	f.mu.Unlock()
	return f.group2(), err
}
func (f *fakeGroups) GroupRemove(_ context.Context, group, addr string) (Group, error) {
	g := f.group2()
	g.Epoch, g.Members = 3, g.Members[:1]
	return g, f.record(group, addr, "")
}
func (f *fakeGroups) GroupSend(_ context.Context, group, text string) (GroupSendResponse, error) {
	if err := f.record(group, "", text); err != nil {
		return GroupSendResponse{}, err
	}
	return GroupSendResponse{Group: group, Epoch: 2, Copies: []Message{{ID: "m1", To: fakeMember, State: "queued",
		Created: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC), Expiry: time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)}}}, nil
}

var _ GroupsBackend = (*fakeGroups)(nil)

func newFakeGroups() *fakeGroups {
	return &fakeGroups{fakeBackend: fakeBackend{reg: metrics.New(metrics.Options{})}}
}

func TestGroupsOffIsNotFoundOnEveryPath(t *testing.T) {
	base := fappServer(t, &fakeBackend{reg: metrics.New(metrics.Options{})})
	g := "/v1/groups/" + fakeGroupID
	for _, p := range []struct{ method, path, body string }{
		{"POST", "/v1/groups", `{"name":"ops"}`}, {"GET", "/v1/groups", ""}, {"GET", g, ""},
		{"POST", g + "/members", `{"address":"` + fakeMember + `"}`}, {"DELETE", g + "/members/" + fakeMember, ""},
		{"POST", g + "/messages", `{"text":"hi"}`}, {"PUT", "/v1/groups", ""}, {"GET", "/v1/groups/nothing/here", ""},
	} {
		code, ecode, body := call(t, p.method, base+p.path, p.body)
		if code != 404 || ecode != "groups_off" || !strings.Contains(body, "groups are off") {
			t.Errorf("%s %s without groups: %d %s %s, want 404 groups_off", p.method, p.path, code, ecode, body)
		}
	}
	// The rest of the API is still there.
	if code, _, _ := call(t, "GET", base+"/v1/status", ""); code != 200 {
		t.Errorf("/v1/status beside groups_off: %d", code)
	}
}

// WithoutFAPP (a node with FAPP off, the default) hides the FAPP methods
// only: the groups are still served.
func TestGroupsServedThroughWithoutFAPP(t *testing.T) {
	b := newFakeGroups()
	for _, wrapped := range []Backend{WithoutFAPP(b), WithoutFAPP(&detailGroups{b})} {
		base := fappServer(t, wrapped)
		if code, _, resp := call(t, "GET", base+"/v1/groups/"+fakeGroupID, ""); code != 200 || !strings.Contains(resp, `"name":"ops"`) {
			t.Errorf("%T: GET /v1/groups/ID through WithoutFAPP: %d %s, want the group", wrapped, code, resp)
		}
		if code, ecode, _ := call(t, "GET", base+"/v1/fapp/requests", ""); code != 404 || ecode != "fapp_off" {
			t.Errorf("%T: FAPP through WithoutFAPP: %d %s, want 404 fapp_off", wrapped, code, ecode)
		}
	}
	if _, ok := groupsOf(WithoutFAPP(&fakeBackend{})); ok {
		t.Error("WithoutFAPP of a backend without groups has groups")
	}
}

type detailGroups struct{ *fakeGroups }

func (detailGroups) ReadyDetail(context.Context) []string { return nil }

func TestGroupsRoutesAnswer(t *testing.T) {
	b := newFakeGroups()
	base := fappServer(t, b)
	g := base + "/v1/groups/" + fakeGroupID
	member := `{"group":"` + fakeGroupID + `","name":"ops","epoch":2,"creator":"` + fakeSelf + `","pq":false,"members":[{"address":"` + fakeSelf + `","self":true},{"address":"` + fakeMember + `","mode":"mls+pq"}]}`

	code, _, resp := call(t, "POST", base+"/v1/groups", `{"name":"Ärzte Nord"}`)
	if code != 200 || strings.TrimSpace(resp) != `{"group":"`+fakeGroupID+`"}` || b.name != "Ärzte Nord" {
		t.Errorf("create: %d %s, backend got name %q", code, resp, b.name)
	}
	code, _, resp = call(t, "GET", base+"/v1/groups", "")
	if want := `{"groups":[` + member + `,{"group":"` + fakeGroupID + `","name":"empty","epoch":0,"creator":"","pq":false,"members":[]}]}`; code != 200 || strings.TrimSpace(resp) != want {
		t.Errorf("list: %d\n%s\nwant\n%s", code, resp, want)
	}
	if code, _, resp := call(t, "GET", g, ""); code != 200 || strings.TrimSpace(resp) != member || b.group != fakeGroupID {
		t.Errorf("show: %d %s, backend got %q", code, resp, b.group)
	}

	// Add: the wait defaults to 30s; the address is passed as the node
	// prints addresses (lower case).
	code, _, resp = call(t, "POST", g+"/members", `{"address":"`+strings.ToUpper(fakeMember)+`"}`)
	if code != 200 || strings.TrimSpace(resp) != member || b.group != fakeGroupID || b.addr != fakeMember || b.wait != DefaultGroupAddWait {
		t.Errorf("add: %d %s, backend got %q %q %s", code, resp, b.group, b.addr, b.wait)
	}
	if code, _, resp := call(t, "POST", g+"/members", `{"address":"`+fakeMember+`","wait":"2m30s"}`); code != 200 || b.wait != 150*time.Second {
		t.Errorf("add with wait 2m30s: %d %s, backend got wait %s", code, resp, b.wait)
	}
	if code, _, _ := call(t, "POST", g+"/members", `{"address":"`+fakeMember+`","wait":"0s"}`); code != 200 || b.wait != 0 {
		t.Errorf("add with wait 0s: %d, backend got wait %s", code, b.wait)
	}

	code, _, resp = call(t, "DELETE", g+"/members/"+fakeMember, "")
	if want := `{"group":"` + fakeGroupID + `","name":"ops","epoch":3,"creator":"` + fakeSelf + `","pq":false,"members":[{"address":"` + fakeSelf + `","self":true}]}`; code != 200 || strings.TrimSpace(resp) != want || b.addr != fakeMember {
		t.Errorf("remove: %d %s (backend got %q), want %s", code, resp, b.addr, want)
	}

	code, _, resp = call(t, "POST", g+"/messages", `{"text":"Übergabe um 7 \u2603"}`)
	want := `{"group":"` + fakeGroupID + `","epoch":2,"copies":[{"id":"m1","to":"` + fakeMember + `","state":"queued","attempts":0,"seq":0,"created_at":"2026-12-02T08:00:00Z","expires_at":"2026-12-03T08:00:00Z"}]}`
	if code != 200 || strings.TrimSpace(resp) != want || b.text != "Übergabe um 7 ☃" {
		t.Errorf("send: %d %s (backend got %q), want %s", code, resp, b.text, want)
	}
	long := strings.Repeat("x", MaxGroupTextSize)
	if code, _, resp := call(t, "POST", g+"/messages", `{"text":"`+long+`"}`); code != 200 || b.text != long {
		t.Errorf("send of exactly MaxGroupTextSize bytes: %d %.100s", code, resp)
	}
}

func TestGroupsRefuseBadInputBeforeTheBackend(t *testing.T) {
	b := newFakeGroups()
	base := fappServer(t, b)
	g := "/v1/groups/" + fakeGroupID
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1/groups", `{}`, 400, "name is missing"},
		{"POST", "/v1/groups", `{"name":""}`, 400, "name is missing"},
		{"POST", "/v1/groups", `{"name":"` + strings.Repeat("ä", 33) + `"}`, 400, "name of 66 bytes is over the limit of 64"},
		{"POST", "/v1/groups", `{"name":"a\nb"}`, 400, "name has a control character (U+000A at byte 1)"},
		{"POST", "/v1/groups", `{"name":"a\u0085"}`, 400, "name has a control character (U+0085"},
		{"POST", "/v1/groups", `{"name":"\u0000"}`, 400, "name has a control character"},
		{"POST", "/v1/groups", `{"name":1}`, 400, "body must be JSON"},
		{"POST", "/v1/groups", `{"name":"a"} {}`, 400, "nothing after it"},
		{"POST", "/v1/groups", "{\"name\":\"\xff\"}", 400, "not valid UTF-8"},
		{"GET", "/v1/groups/" + strings.ToUpper(fakeGroupID), "", 400, "want a group id, 32 lower-case hex digits"},
		{"GET", "/v1/groups/0123", "", 400, `group \"0123\"`},
		{"GET", "/v1/groups/" + fakeGroupID + "0", "", 400, "group"},
		{"GET", "/v1/groups/0123456789abcdef0123456789abcdeg", "", 400, "lower-case hex"},
		{"POST", "/v1/groups/xyz/members", `{"address":"` + fakeMember + `"}`, 400, `group \"xyz\"`},
		{"POST", g + "/members", `{}`, 400, "address is missing"},
		{"POST", g + "/members", `{"address":"nope"}`, 400, `address: crypto: bad address: \"nope\" has 4 characters`},
		{"POST", g + "/members", `{"address":"` + fakeMember + `","wait":"6m"}`, 400, `wait \"6m\": want a duration from 0s to 5m0s`},
		{"POST", g + "/members", `{"address":"` + fakeMember + `","wait":"soon"}`, 400, `wait \"soon\"`},
		{"POST", g + "/members", `{"address":"` + fakeMember + `","wait":"-1s"}`, 400, `wait \"-1s\"`},
		{"POST", g + "/members", `{"address":"` + fakeMember + `","wait":30}`, 400, "body must be JSON"},
		{"POST", g + "/members", ``, 400, "body must be JSON"},
		{"DELETE", "/v1/groups/nope/members/" + fakeMember, "", 400, `group \"nope\"`},
		{"DELETE", g + "/members/zz", "", 400, `address: crypto: bad address: \"zz\"`},
		{"POST", "/v1/groups/NOPE/messages", `{"text":"hi"}`, 400, "group"},
		{"POST", g + "/messages", `{"text":""}`, 400, "text is empty"},
		{"POST", g + "/messages", `{}`, 400, "text is empty"},
		{"POST", g + "/messages", `{"text":"` + strings.Repeat("x", MaxGroupTextSize+1) + `"}`, 413, fmt.Sprintf("text of %d bytes, at most %d bytes", MaxGroupTextSize+1, MaxGroupTextSize)},
		{"POST", g + "/messages", `{"text":"\ud800"}`, 400, "surrogate"},
	} {
		code, ecode, resp := call(t, c.method, base+c.path, c.body)
		wantCode := map[int]string{400: "bad_request", 413: "too_large"}[c.status]
		if code != c.status || ecode != wantCode || !strings.Contains(resp, c.want) {
			t.Errorf("%s %s %.60s: %d %s %s, want %d %s with %q", c.method, c.path, c.body, code, ecode, resp, c.status, wantCode, c.want)
		}
	}
	if b.calls != 0 {
		t.Errorf("%d calls reached the backend; bad input is refused before it", b.calls)
	}
	// The limits themselves are allowed.
	if code, _, resp := call(t, "POST", base+"/v1/groups", `{"name":"`+strings.Repeat("ä", 32)+`"}`); code != 200 {
		t.Errorf("a name of 64 bytes: %d %s", code, resp)
	}
	if code, _, resp := call(t, "POST", base+g+"/members", `{"address":"`+fakeMember+`","wait":"5m"}`); code != 200 || b.wait != MaxGroupAddWait {
		t.Errorf("wait 5m: %d %s, backend got %s", code, resp, b.wait)
	}
}

func TestGroupsBackendErrorCodes(t *testing.T) {
	b := newFakeGroups()
	base := fappServer(t, b)
	g := "/v1/groups/" + fakeGroupID
	calls := []struct{ method, path, body string }{
		{"POST", "/v1/groups", `{"name":"ops"}`}, {"GET", "/v1/groups", ""}, {"GET", g, ""},
		{"POST", g + "/members", `{"address":"` + fakeMember + `"}`}, {"DELETE", g + "/members/" + fakeMember, ""},
		{"POST", g + "/messages", `{"text":"hi"}`},
	}
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: %s is already a member", ErrGroupMember, fakeMember), 409, "group_member"},
		{fmt.Errorf("%w: %s said it has none", ErrKeyPackageUnavailable, fakeMember), 504, "keypackage_unavailable"},
		{fmt.Errorf("%w: the creator is %s", ErrGroupNotCreator, fakeSelf), 409, "group_not_creator"},
		{&NotFound{Err: errors.New("no such group")}, 404, "not_found"},
		{&BadRequest{Err: errors.New("no")}, 400, "bad_request"},
		{&Unavailable{Err: errors.New("stopping")}, 503, "unavailable"},
		{&TooLarge{Err: errors.New("does not fit once encrypted")}, 413, "too_large"},
		{&Busy{Code: "outbox_full", Err: errors.New("outbox full"), RetryAfter: time.Second}, 429, "outbox_full"},
		{errors.New("boom"), 500, "failed"},
	} {
		b.err = c.err
		for _, k := range calls {
			code, ecode, resp := call(t, k.method, base+k.path, k.body)
			if code != c.status || ecode != c.code || !strings.Contains(resp, strings.ReplaceAll(c.err.Error(), `"`, `\"`)) {
				t.Errorf("%s %s with backend error %v: %d %s %s, want %d %s with the error's message", k.method, k.path, c.err, code, ecode, resp, c.status, c.code)
			}
		}
	}
}

func TestGroupsMethodsAndUnknownPaths(t *testing.T) {
	base := fappServer(t, newFakeGroups())
	g := "/v1/groups/" + fakeGroupID
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/v1/groups", "GET, HEAD, POST"}, {"DELETE", g, "GET, HEAD"}, {"GET", g + "/members", "POST"},
		{"GET", g + "/members/" + fakeMember, "DELETE"}, {"GET", g + "/messages", "POST"},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.allow)
		}
	}
	for _, p := range []string{g + "/nothing", g + "/members/" + fakeMember + "/x", "/v1/groupsx"} {
		if code, ecode, _ := call(t, "GET", base+p, ""); code != 404 || ecode != "not_found" {
			t.Errorf("GET %s: %d %s, want 404 not_found", p, code, ecode)
		}
	}
}

// The guard in front of the API (token, Origin, Host, JSON bodies) is in
// front of /v1/groups too.
func TestGroupsBehindTheGuard(t *testing.T) {
	b := newFakeGroups()
	s := listen(t, Options{Addr: "127.0.0.1:0", Token: "s3cret"}, b)
	js := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer s3cret"}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for kk, vv := range js {
			h[kk] = vv
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	create := `{"name":"ops"}`
	for _, c := range []struct {
		what   string
		method string
		path   string
		hdr    map[string]string
		body   string
		status int
		code   string
	}{
		{"no token", "POST", "/v1/groups", with("Authorization", ""), create, 401, "unauthorized"},
		{"a wrong token", "GET", "/v1/groups", with("Authorization", "Bearer nope"), "", 401, "unauthorized"},
		{"another site's page", "POST", "/v1/groups", with("Origin", "http://evil.example"), create, 403, "cross_origin"},
		{"another site's page", "DELETE", "/v1/groups/" + fakeGroupID + "/members/" + fakeMember, with("Origin", "null"), "", 403, "cross_origin"},
		{"a rebinding name", "GET", "/v1/groups", js, "", 403, "host_not_allowed"},
		{"a form", "POST", "/v1/groups/" + fakeGroupID + "/messages", with("Content-Type", "text/plain"), `{"text":"hi"}`, 415, "unsupported_media_type"},
	} {
		host := ""
		if c.code == "host_not_allowed" {
			host = "evil.example:" + port(s.Addr())
		}
		if code, ecode, body := raw(t, s.Addr(), c.method, c.path, host, c.hdr, c.body); code != c.status || ecode != c.code {
			t.Errorf("%s %s from %s: %d %s %s, want %d %s", c.method, c.path, c.what, code, ecode, body, c.status, c.code)
		}
	}
	if b.calls != 0 {
		t.Errorf("%d refused requests reached the backend", b.calls)
	}
	own := with("Origin", "http://"+s.Addr())
	if code, _, body := raw(t, s.Addr(), "POST", "/v1/groups", "", own, create); code != 200 || b.calls != 1 {
		t.Errorf("POST /v1/groups from the node's own origin with the token: %d %s", code, body)
	}
}

func TestGroupsMetricPathIsBounded(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/groups": "/v1/groups", "/v1/groups/" + fakeGroupID: "/v1/groups/{group}",
		"/v1/groups/x/members": "/v1/groups/{group}/members", "/v1/groups/x/messages": "/v1/groups/{group}/messages",
		"/v1/groups/x/members/y": "/v1/groups/{group}/members/{addr}", "/v1/groups/": "other", "/v1/groupsx": "other",
		"/v1/groups/x/y": "other", "/v1/groups/x/members/y/z": "other", "/v1/groups/x/messages/y": "other",
	} {
		if got := groupsMetricPath(in); got != want {
			t.Errorf("groupsMetricPath(%s) = %s, want %s", in, got, want)
		}
	}
	// Through the server: the request counter's path is the pattern, not
	// the group id.
	m := metrics.New(metrics.Options{})
	b := newFakeGroups()
	b.reg = m
	s := listen(t, Options{Addr: "127.0.0.1:0", Metrics: m}, b)
	if code, _, _ := call(t, "GET", "http://"+s.Addr()+"/v1/groups/"+fakeGroupID, ""); code != 200 {
		t.Fatalf("show: %d", code)
	}
	_, body := do(t, "http://"+s.Addr()+"/metrics", "")
	if !strings.Contains(body, `path="/v1/groups/{group}"`) || strings.Contains(body, fakeGroupID) {
		t.Errorf("/metrics after GET /v1/groups/ID: want path=\"/v1/groups/{group}\" and no group id:\n%s", grepLines(body, "api_requests"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
