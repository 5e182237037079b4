package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/metrics"
)

// fakeFAPP is a Backend that also serves FAPP; it records what the
// handlers passed and answers with err when set.
type fakeFAPP struct {
	fakeBackend
	err error

	published []fapp.Slot
	filter    fapp.Filter
	wait      time.Duration
	reserved  fapp.SlotID
	note      string
	statusID  string
	answerID  string
	text      string
}

const fakeTherapist = "00112233445566778899aabbccddeeff"

func (f *fakeFAPP) FAPPPublish(_ context.Context, slots []fapp.Slot) (FAPPPublishResponse, error) {
	f.published = slots
	return FAPPPublishResponse{Seq: 7, Slots: []FAPPSlotJSON{}}, f.err
}
func (f *fakeFAPP) FAPPSearch(_ context.Context, fl fapp.Filter, wait time.Duration) (FAPPSearchResponse, error) {
	f.filter, f.wait = fl, wait
	if f.err != nil {
		return FAPPSearchResponse{}, f.err
	}
	return FAPPSearchResponse{Slots: []FAPPSlotJSON{{Slot: fakeTherapist + "-1", Therapist: fakeTherapist, Minutes: 50,
		Fachrichtung: "verhaltenstherapie", Modalitaet: []string{"video"}, Kostentraeger: []string{"gkv"}, PLZ: "80331", Type: "therapieplatz"}}}, nil
}
func (f *fakeFAPP) FAPPReserve(_ context.Context, slot fapp.SlotID, note string) (FAPPReservation, error) {
	f.reserved, f.note = slot, note
	return FAPPReservation{Reservation: "r1", Status: "pending", Slot: slot.String()}, f.err
}
func (f *fakeFAPP) FAPPStatus(_ context.Context, id string, wait time.Duration) (FAPPReservation, error) {
	f.statusID, f.wait = id, wait
	return FAPPReservation{Reservation: id, Status: "confirmed"}, f.err
}
func (f *fakeFAPP) FAPPRequests(context.Context) (FAPPRequestsResponse, error) {
	return FAPPRequestsResponse{}, f.err
}
func (f *fakeFAPP) FAPPConfirm(_ context.Context, id, text string) (FAPPReservation, error) {
	f.answerID, f.text = id, text
	return FAPPReservation{Reservation: id, Status: "confirmed", Text: text}, f.err
}
func (f *fakeFAPP) FAPPDecline(_ context.Context, id, reason string) (FAPPReservation, error) {
	f.answerID, f.text = id, reason
	return FAPPReservation{Reservation: id, Status: "declined", Text: reason}, f.err
}

var _ FAPPBackend = (*fakeFAPP)(nil)

func fappServer(t *testing.T, b Backend) string {
	t.Helper()
	return "http://" + listen(t, Options{Addr: "127.0.0.1:0"}, b).Addr()
}

// call makes one request and returns the status, the error code (if the
// answer is an error) and the body.
func call(t *testing.T, method, url, body string) (int, string, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error *Error `json:"error"`
	}
	code := ""
	if json.Unmarshal(b, &e) == nil && e.Error != nil {
		code = e.Error.Code
	}
	return resp.StatusCode, code, string(b)
}

func TestFAPPOffIsNotFoundOnEveryPath(t *testing.T) {
	base := fappServer(t, &fakeBackend{reg: metrics.New(metrics.Options{})})
	for _, p := range []struct{ method, path string }{
		{"POST", "/v1/fapp/publish"}, {"GET", "/v1/fapp/search"}, {"POST", "/v1/fapp/reserve"},
		{"GET", "/v1/fapp/reservations/x"}, {"GET", "/v1/fapp/requests"}, {"POST", "/v1/fapp/requests/x/confirm"},
		{"POST", "/v1/fapp/requests/x/decline"}, {"DELETE", "/v1/fapp/search"}, {"GET", "/v1/fapp/nothing"},
	} {
		code, ecode, body := call(t, p.method, base+p.path, "")
		if code != 404 || ecode != "fapp_off" || !strings.Contains(body, "fapp.role") {
			t.Errorf("%s %s with FAPP off: %d %s %s, want 404 fapp_off naming fapp.role", p.method, p.path, code, ecode, body)
		}
	}
}

func TestFAPPPublish(t *testing.T) {
	b := &fakeFAPP{fakeBackend: fakeBackend{reg: metrics.New(metrics.Options{})}}
	base := fappServer(t, b)
	body := `{"slots":[{"start":"2026-12-03T10:00:00+01:00","minutes":50,"type":"therapieplatz","modalitaet":["praxis","video"]},
		{"start":"2026-12-04T09:00:00Z","minutes":25,"type":"sprechstunde","modalitaet":["telefon"],"fachrichtung":"systemisch+kjp","kostentraeger":["pkv","beihilfe"]}]}`
	code, _, resp := call(t, "POST", base+"/v1/fapp/publish", body)
	if code != 200 || !strings.Contains(resp, `"seq":7`) {
		t.Fatalf("publish: %d %s", code, resp)
	}
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	want := []fapp.Slot{
		{Start: uint32(start.Unix()), Minutes: 50, Type: fapp.Therapieplatz, Modalitaet: fapp.Praxis | fapp.Video},
		{Start: uint32(start.Add(24 * time.Hour).Unix()), Minutes: 25, Type: fapp.Sprechstunde, Modalitaet: fapp.Telefon,
			Fachrichtung: fapp.Systemisch | fapp.KJP, Kostentraeger: fapp.PKV | fapp.Beihilfe},
	}
	if fmt.Sprint(b.published) != fmt.Sprint(want) {
		t.Errorf("published %v, want %v", b.published, want)
	}
	// An empty set withdraws every slot.
	if code, _, resp := call(t, "POST", base+"/v1/fapp/publish", `{"slots":[]}`); code != 200 || len(b.published) != 0 {
		t.Errorf("publish []: %d %s, %d slots", code, resp, len(b.published))
	}
	many := `{"slots":[` + strings.Repeat(`{"start":"2026-12-03T10:00:00Z","minutes":50,"type":"gruppe","modalitaet":["praxis"]},`, fapp.MaxSlotsPerAnnounce) +
		`{"start":"2026-12-03T10:00:00Z","minutes":50,"type":"gruppe","modalitaet":["praxis"]}]}`
	for _, c := range []struct{ body, want string }{
		{`{}`, "slots is missing"},
		{`{"slots":[{"minutes":50,"type":"gruppe","modalitaet":["praxis"]}]}`, "slot 1: fapp: bad value: start is missing"},
		{`{"slots":[{"start":"2026-12-03T10:00:00Z","minutes":0,"type":"gruppe","modalitaet":["praxis"]}]}`, "minutes 0, want 1 to 480"},
		{`{"slots":[{"start":"2026-12-03T10:00:00Z","minutes":50,"type":"gruppe","modalitaet":["praxis"]},{"start":"2026-12-03T10:00:00Z","minutes":50,"type":"massage","modalitaet":["praxis"]}]}`, `slot 2: fapp: bad value: type \"massage\", want one of sprechstunde`},
		{`{"slots":[{"start":"2026-12-03T10:00:00Z","minutes":50,"modalitaet":["praxis"]}]}`, "type is missing"},
		{`{"slots":[{"start":"2026-12-03T10:00:00Z","minutes":50,"type":"gruppe"}]}`, "modalitaet is missing"},
		{`{"slots":[{"start":"2026-12-03T10:00:00Z","minutes":50,"type":"gruppe","modalitaet":["hausbesuch"]}]}`, "want one or more of praxis, video, telefon"},
		{`{"slots":[{"start":"2026-12-03T10:00:00Z","minutes":50,"type":"gruppe","modalitaet":["praxis"],"fachrichtung":"yoga"}]}`, "fachrichtung"},
		{`{"slots":[{"start":"2026-12-03T10:00:00Z","minutes":50,"type":"gruppe","modalitaet":["praxis"],"kostentraeger":["aok"]}]}`, "gkv, pkv, selbstzahler, beihilfe"},
		{`{"slots":[{"start":"1960-12-03T10:00:00Z","minutes":50,"type":"gruppe","modalitaet":["praxis"]}]}`, "from 1970"},
		{many, "33 slots, at most 32"},
		{`{"slots":[]} {}`, "nothing after it"},
		{"{\"slots\":[{\"type\":\"\xff\"}]}", "not valid UTF-8"},
	} {
		code, ecode, resp := call(t, "POST", base+"/v1/fapp/publish", c.body)
		if code != 400 || ecode != "bad_request" || !strings.Contains(resp, c.want) {
			t.Errorf("publish %.60s: %d %s %s, want 400 bad_request with %q", c.body, code, ecode, resp, c.want)
		}
	}
	big := `{"slots":[],"x":"` + strings.Repeat("a", MaxBodySize) + `"}`
	if code, ecode, _ := call(t, "POST", base+"/v1/fapp/publish", big); code != 413 || ecode != "too_large" {
		t.Errorf("publish over MaxBodySize: %d %s, want 413 too_large", code, ecode)
	}
}

func TestFAPPSearch(t *testing.T) {
	b := &fakeFAPP{fakeBackend: fakeBackend{reg: metrics.New(metrics.Options{})}}
	base := fappServer(t, b)
	code, _, resp := call(t, "GET", base+"/v1/fapp/search?fachrichtung=verhaltenstherapie&modalitaet=video,praxis&kostentraeger=gkv&plz=803&from=2026-12-03T00:00:00Z&to=2026-12-17&type=therapieplatz&max=10&wait=1500ms", "")
	if code != 200 || !strings.Contains(resp, `{"slots":[{"slot":"`+fakeTherapist+`-1"`) {
		t.Fatalf("search: %d %s", code, resp)
	}
	want := fapp.Filter{Fachrichtung: fapp.Verhaltenstherapie, Modalitaet: fapp.Video | fapp.Praxis, Kostentraeger: fapp.GKV,
		PLZPrefix: "803", Type: fapp.Therapieplatz, From: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 12, 17, 0, 0, 0, 0, time.Local), Max: 10}
	if !b.filter.From.Equal(want.From) || !b.filter.To.Equal(want.To) {
		t.Errorf("window [%s, %s), want [%s, %s)", b.filter.From, b.filter.To, want.From, want.To)
	}
	b.filter.From, b.filter.To, want.From, want.To = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if b.filter != want || b.wait != 1500*time.Millisecond {
		t.Errorf("filter %+v wait %s, want %+v 1.5s", b.filter, b.wait, want)
	}
	if code, _, _ := call(t, "GET", base+"/v1/fapp/search", ""); code != 200 || b.wait != DefaultFAPPSearchWait || b.filter != (fapp.Filter{}) {
		t.Errorf("search without parameters: %d, filter %+v, wait %s (want any, %s)", code, b.filter, b.wait, DefaultFAPPSearchWait)
	}
	for _, c := range []struct{ query, want string }{
		{"fachrichtung=yoga", "parameter fachrichtung: fapp: bad value: fachrichtung \\\"yoga\\\", want one of verhaltenstherapie, tiefenpsychologisch, analytisch, systemisch"},
		{"modalitaet=video,hausbesuch", "parameter modalitaet: fapp: bad value: modalitaet \\\"hausbesuch\\\", want one or more of praxis, video, telefon"},
		{"kostentraeger=aok", "parameter kostentraeger: fapp: bad value: kostentraeger \\\"aok\\\", want one or more of gkv, pkv, selbstzahler, beihilfe"},
		{"plz=8a", "parameter plz: fapp: bad value: PLZ prefix"},
		{"plz=803311", "1 to 5 digits"},
		{"type=massage", "parameter type: fapp: bad value: type \\\"massage\\\", want one of sprechstunde, probatorik, therapieplatz, akutbehandlung, gruppe"},
		{"from=tomorrow", "parameter from: fapp: bad value: time \\\"tomorrow\\\", want RFC 3339"},
		{"to=2026-13-01", "parameter to:"},
		{"from=2026-12-10&to=2026-12-03", "is empty"},
		{"max=0", "parameter max \\\"0\\\": want a number from 1 to 64"},
		{"max=65", "from 1 to 64"},
		{"wait=61s", "parameter wait \\\"61s\\\": want a duration from 0s to 1m0s"},
		{"wait=soon", "parameter wait"},
		{"fachrichtug=systemisch", "unknown parameter \\\"fachrichtug\\\": search takes fachrichtung, modalitaet"},
		{"type=gruppe&type=probatorik", "given 2 times"},
	} {
		code, ecode, resp := call(t, "GET", base+"/v1/fapp/search?"+c.query, "")
		if code != 400 || ecode != "bad_request" || !strings.Contains(resp, c.want) {
			t.Errorf("search?%s: %d %s %s, want 400 bad_request with %s", c.query, code, ecode, resp, c.want)
		}
	}
}

func TestFAPPReserveStatusRequestsAnswers(t *testing.T) {
	b := &fakeFAPP{fakeBackend: fakeBackend{reg: metrics.New(metrics.Options{})}}
	base := fappServer(t, b)
	slot := fakeTherapist + "-3"
	code, _, resp := call(t, "POST", base+"/v1/fapp/reserve", `{"slot":"`+slot+`","note":"Grüße"}`)
	if code != 200 || !strings.Contains(resp, `"reservation":"r1","status":"pending"`) || b.reserved.String() != slot || b.note != "Grüße" {
		t.Errorf("reserve: %d %s, backend got %s %q", code, resp, b.reserved, b.note)
	}
	for _, c := range []struct{ body, want string }{
		{`{"slot":"nope"}`, "as search lists it"},
		{`{"slot":"` + slot + `","note":"` + strings.Repeat("x", fapp.MaxNoteSize+1) + `"}`, "note of 201 bytes is over the limit of 200"},
		{``, "body must be JSON"},
	} {
		code, ecode, resp := call(t, "POST", base+"/v1/fapp/reserve", c.body)
		if code != 400 || ecode != "bad_request" || !strings.Contains(resp, c.want) {
			t.Errorf("reserve %.40s: %d %s %s, want 400 with %q", c.body, code, ecode, resp, c.want)
		}
	}

	if code, _, resp := call(t, "GET", base+"/v1/fapp/reservations/r1?wait=10s", ""); code != 200 || !strings.Contains(resp, `"status":"confirmed"`) || b.statusID != "r1" || b.wait != 10*time.Second {
		t.Errorf("status: %d %s, backend got %q %s", code, resp, b.statusID, b.wait)
	}
	if code, _, _ := call(t, "GET", base+"/v1/fapp/reservations/r2", ""); code != 200 || b.wait != 0 {
		t.Errorf("status without wait: %d, wait %s, want 0", code, b.wait)
	}
	for _, q := range []string{"r1?wait=2m", "r1?wait=-1s", "r1?after=3", url.PathEscape(strings.Repeat("a", 65))} {
		if code, ecode, resp := call(t, "GET", base+"/v1/fapp/reservations/"+q, ""); code != 400 || ecode != "bad_request" {
			t.Errorf("status %s: %d %s %s, want 400", q, code, ecode, resp)
		}
	}

	if code, _, resp := call(t, "GET", base+"/v1/fapp/requests", ""); code != 200 || strings.TrimSpace(resp) != `{"requests":[]}` {
		t.Errorf("requests: %d %s, want {\"requests\":[]}", code, resp)
	}

	if code, _, resp := call(t, "POST", base+"/v1/fapp/requests/r1/confirm", ""); code != 200 || !strings.Contains(resp, `"status":"confirmed"`) || b.answerID != "r1" || b.text != "" {
		t.Errorf("confirm without a body: %d %s (%q %q)", code, resp, b.answerID, b.text)
	}
	if code, _, resp := call(t, "POST", base+"/v1/fapp/requests/r2/confirm", `{"text":"Praxis, 2. Stock"}`); code != 200 || b.answerID != "r2" || b.text != "Praxis, 2. Stock" {
		t.Errorf("confirm with text: %d %s (%q %q)", code, resp, b.answerID, b.text)
	}
	if code, _, resp := call(t, "POST", base+"/v1/fapp/requests/r3/decline", `{"text":"leider belegt"}`); code != 200 || !strings.Contains(resp, `"status":"declined"`) || b.answerID != "r3" || b.text != "leider belegt" {
		t.Errorf("decline: %d %s (%q %q)", code, resp, b.answerID, b.text)
	}
	for _, body := range []string{`{"text":"` + strings.Repeat("x", fapp.MaxNoteSize+1) + `"}`, `{"text":1}`, `[]x`} {
		if code, ecode, resp := call(t, "POST", base+"/v1/fapp/requests/r3/decline", body); code != 400 || ecode != "bad_request" {
			t.Errorf("decline %.30s: %d %s %s, want 400", body, code, ecode, resp)
		}
	}
}

func TestFAPPMethodsAndUnknownPaths(t *testing.T) {
	base := fappServer(t, &fakeFAPP{fakeBackend: fakeBackend{reg: metrics.New(metrics.Options{})}})
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/v1/fapp/publish", "POST"}, {"POST", "/v1/fapp/search", "GET, HEAD"}, {"GET", "/v1/fapp/reserve", "POST"},
		{"DELETE", "/v1/fapp/reservations/r1", "GET, HEAD"}, {"POST", "/v1/fapp/requests", "GET, HEAD"},
		{"GET", "/v1/fapp/requests/r1/confirm", "POST"}, {"PUT", "/v1/fapp/requests/r1/decline", "POST"},
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
	if code, ecode, _ := call(t, "GET", base+"/v1/fapp/nothing", ""); code != 404 || ecode != "not_found" {
		t.Errorf("GET /v1/fapp/nothing: %d %s, want 404 not_found", code, ecode)
	}
}

func TestFAPPBackendErrorCodes(t *testing.T) {
	b := &fakeFAPP{fakeBackend: fakeBackend{reg: metrics.New(metrics.Options{})}}
	base := fappServer(t, b)
	slot := fakeTherapist + "-3"
	calls := []struct{ method, path, body string }{
		{"POST", "/v1/fapp/publish", `{"slots":[]}`}, {"GET", "/v1/fapp/search", ""}, {"POST", "/v1/fapp/reserve", `{"slot":"` + slot + `"}`},
		{"GET", "/v1/fapp/reservations/r1", ""}, {"GET", "/v1/fapp/requests", ""},
		{"POST", "/v1/fapp/requests/r1/confirm", ""}, {"POST", "/v1/fapp/requests/r1/decline", ""},
	}
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: this node is not a therapist", ErrFAPPRole), 409, "fapp_role"},
		{&BadRequest{Err: errors.New("no")}, 400, "bad_request"},
		{fmt.Errorf("x: %w", fapp.ErrBadValue), 400, "bad_request"},
		{&NotFound{Err: errors.New("no such reservation")}, 404, "not_found"},
		{fmt.Errorf("x: %w", fapp.ErrUnknownReservation), 404, "not_found"},
		{fmt.Errorf("x: %w", fapp.ErrUnknownSlot), 404, "not_found"},
		{&Unavailable{Err: errors.New("stopping")}, 503, "unavailable"},
		{&TooLarge{Err: errors.New("big")}, 413, "too_large"},
		{fmt.Errorf("x: %w", fapp.ErrNotPending), 409, "fapp_answered"},
		{fmt.Errorf("x: %w", fapp.ErrAlreadyConfirmed), 409, "fapp_answered"},
		{errors.New("boom"), 500, "failed"},
	} {
		b.err = c.err
		for _, k := range calls {
			code, ecode, resp := call(t, k.method, base+k.path, k.body)
			if code != c.status || ecode != c.code {
				t.Errorf("%s %s with backend error %v: %d %s %s, want %d %s", k.method, k.path, c.err, code, ecode, resp, c.status, c.code)
			}
		}
	}
}

func TestParseFAPPTimeDateIsLocalMidnight(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	got, err := ParseFAPPTime("2026-12-03", loc)
	if err != nil || !got.Equal(time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("2026-12-03 in CET: %s %v, want 2026-12-02T23:00:00Z", got, err)
	}
	got, err = ParseFAPPTime("2026-12-03T10:00:00+01:00", loc)
	if err != nil || !got.Equal(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("RFC 3339: %s %v", got, err)
	}
}

func TestFAPPMetricPathIsBounded(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/fapp/search": "/v1/fapp/search", "/v1/fapp/reservations/abc": "/v1/fapp/reservations/{id}",
		"/v1/fapp/requests/abc/confirm": "/v1/fapp/requests/{id}/confirm", "/v1/fapp/requests/abc/x": "other",
		"/v1/fapp/zzz": "other", "/v1/fapp/reservations/a/b": "other",
	} {
		if got := fappMetricPath(in); got != want {
			t.Errorf("fappMetricPath(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestWithoutFAPPHidesTheFAPPMethods(t *testing.T) {
	b := &fakeFAPP{fakeBackend: fakeBackend{reg: metrics.New(metrics.Options{}), ready: true}}
	if _, ok := WithoutFAPP(b).(FAPPBackend); ok {
		t.Fatal("WithoutFAPP(b) is still a FAPPBackend")
	}
	base := fappServer(t, WithoutFAPP(b))
	if code, ecode, _ := call(t, "GET", base+"/v1/fapp/requests", ""); code != 404 || ecode != "fapp_off" {
		t.Errorf("FAPP hidden: %d %s, want 404 fapp_off", code, ecode)
	}
	if code, _, _ := call(t, "GET", base+"/v1/status", ""); code != 200 {
		t.Errorf("/v1/status through WithoutFAPP: %d", code)
	}
	d := &detailFAPP{fakeFAPP: b}
	if _, ok := WithoutFAPP(d).(ReadyDetailer); !ok {
		t.Error("WithoutFAPP drops ReadyDetail")
	}
}

type detailFAPP struct{ *fakeFAPP }

func (detailFAPP) ReadyDetail(context.Context) []string { return []string{"radio down"} }
