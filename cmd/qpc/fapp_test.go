package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/api"
)

// fappNode is a Backend with FAPP for the CLI's tests: the real admin
// API in front of it, a few slots, reservations in memory.
type fappNode struct {
	mu        sync.Mutex
	requests  int // requests that reached FAPP
	published []fapp.Slot
	filter    fapp.Filter
	wait      time.Duration
	note      string
	status    map[string]string
	answered  string
	text      string
	roleErr   bool
}

const fappTherapist = "00112233445566778899aabbccddeeff"

func (n *fappNode) Status(context.Context) (api.Status, error) { return api.Status{}, nil }
func (n *fappNode) Ready(context.Context) bool                 { return true }
func (n *fappNode) Gatherer() prometheus.Gatherer              { return prometheus.NewRegistry() }
func (n *fappNode) SendMessage(context.Context, api.SendRequest) (api.SendResponse, error) {
	return api.SendResponse{}, nil
}
func (n *fappNode) SendMessages(context.Context, []api.SendRequest) (api.SendBatchResponse, error) {
	return api.SendBatchResponse{}, nil
}
func (n *fappNode) MessageState(context.Context, string) (api.Message, error) {
	return api.Message{}, nil
}
func (n *fappNode) Outbox(context.Context) (api.OutboxResponse, error) {
	return api.OutboxResponse{}, nil
}
func (n *fappNode) InboxSince(context.Context, uint64, time.Duration) (api.InboxResponse, error) {
	return api.InboxResponse{}, nil
}
func (n *fappNode) InboxDelete(context.Context, uint64) error       { return nil }
func (n *fappNode) InboxClear(context.Context) (int, error)         { return 0, nil }
func (n *fappNode) RouteTable(context.Context) ([]api.Route, error) { return nil, nil }
func (n *fappNode) TraceTo(context.Context, string, time.Duration) (api.TraceResponse, error) {
	return api.TraceResponse{}, nil
}

func (n *fappNode) FAPPPublish(_ context.Context, slots []fapp.Slot) (api.FAPPPublishResponse, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.requests++
	if n.roleErr {
		return api.FAPPPublishResponse{}, fmt.Errorf("%w: this node is not a therapist", api.ErrFAPPRole)
	}
	n.published = slots
	res := api.FAPPPublishResponse{Seq: 2, Expires: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), Slots: []api.FAPPSlotJSON{}}
	for i, s := range slots {
		r := fapp.Result{Slot: s}
		r.Slot.ID = uint32(i + 1)
		r.ID.Slot = r.Slot.ID
		res.Slots = append(res.Slots, api.SlotJSON(r))
	}
	return res, nil
}
func (n *fappNode) FAPPSearch(_ context.Context, f fapp.Filter, wait time.Duration) (api.FAPPSearchResponse, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.requests++
	n.filter, n.wait = f, wait
	return api.FAPPSearchResponse{Slots: []api.FAPPSlotJSON{{Slot: fappTherapist + "-1", Therapist: fappTherapist,
		Start: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC), Minutes: 50, Fachrichtung: "verhaltenstherapie",
		Modalitaet: []string{"praxis", "video"}, Kostentraeger: []string{"gkv"}, PLZ: "80331", Type: "therapieplatz"}}}, nil
}
func (n *fappNode) FAPPReserve(_ context.Context, slot fapp.SlotID, note string) (api.FAPPReservation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.requests++
	n.note = note
	n.status["res1"] = "pending"
	return api.FAPPReservation{Reservation: "res1", Status: "pending", Slot: slot.String()}, nil
}
func (n *fappNode) FAPPStatus(_ context.Context, id string, wait time.Duration) (api.FAPPReservation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.requests++
	n.wait = wait
	st, ok := n.status[id]
	if !ok {
		return api.FAPPReservation{}, &api.NotFound{Err: errors.New("no such reservation")}
	}
	return api.FAPPReservation{Reservation: id, Status: st, Text: n.text}, nil
}
func (n *fappNode) FAPPRequests(context.Context) (api.FAPPRequestsResponse, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.requests++
	return api.FAPPRequestsResponse{Requests: []api.FAPPRequest{{Reservation: "res1", Slot: fappTherapist + "-1", Note: "hallo",
		At: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC), Status: "pending"}}}, nil
}
func (n *fappNode) FAPPConfirm(_ context.Context, id, text string) (api.FAPPReservation, error) {
	return n.answer(id, "confirmed", text)
}
func (n *fappNode) FAPPDecline(_ context.Context, id, reason string) (api.FAPPReservation, error) {
	return n.answer(id, "declined", reason)
}
func (n *fappNode) answer(id, st, text string) (api.FAPPReservation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.requests++
	n.answered, n.text = id, text
	n.status[id] = st
	return api.FAPPReservation{Reservation: id, Status: st, Text: text}, nil
}

func startFAPPNode(t *testing.T) (*fappNode, string) {
	t.Helper()
	n := &fappNode{status: map[string]string{}}
	s, err := api.Listen(api.Options{Addr: "127.0.0.1:0"}, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return n, s.Addr()
}

func qpc(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb, nil)
	return code, out.String(), errb.String()
}

func TestFAPPSearchCommand(t *testing.T) {
	n, addr := startFAPPNode(t)
	code, out, errs := qpc(t, "fapp", "search", "--api", addr, "--fachrichtung", "verhaltenstherapie", "--kostentraeger", "gkv",
		"--plz", "803", "--modalitaet", "video,praxis", "--from", "2026-12-02", "--to", "2026-12-16T00:00:00+01:00",
		"--type", "therapieplatz", "--max", "5", "--wait", "2s", "--json")
	if code != exitOK {
		t.Fatalf("search: exit %d: %s", code, errs)
	}
	var body map[string][]map[string]any
	if err := json.Unmarshal([]byte(out), &body); err != nil || len(body) != 1 || len(body["slots"]) != 1 {
		t.Fatalf("search --json printed %s (%v), want {\"slots\": [one]}", out, err)
	}
	s := body["slots"][0]
	for _, k := range []string{"slot", "therapist", "start", "minutes", "fachrichtung", "modalitaet", "kostentraeger", "plz", "type"} {
		if _, ok := s[k]; !ok {
			t.Errorf("a slot has no %q: %v", k, s)
		}
	}
	want := fapp.Filter{Fachrichtung: fapp.Verhaltenstherapie, Kostentraeger: fapp.GKV, PLZPrefix: "803", Modalitaet: fapp.Video | fapp.Praxis,
		Type: fapp.Therapieplatz, Max: 5, From: time.Date(2026, 12, 2, 0, 0, 0, 0, time.Local), To: time.Date(2026, 12, 15, 23, 0, 0, 0, time.UTC)}
	n.mu.Lock()
	got, wait := n.filter, n.wait
	n.mu.Unlock()
	if !got.From.Equal(want.From) || !got.To.Equal(want.To) {
		t.Errorf("window [%s, %s), want [%s, %s)", got.From, got.To, want.From, want.To)
	}
	got.From, got.To, want.From, want.To = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != want || wait != 2*time.Second {
		t.Errorf("the node got %+v wait %s, want %+v 2s", got, wait, want)
	}

	code, out, errs = qpc(t, "fapp", "search", "--api", addr)
	if code != exitOK || !strings.Contains(out, "SLOT") || !strings.Contains(out, fappTherapist+"-1") || !strings.Contains(out, "praxis,video") {
		t.Errorf("search as a table: exit %d\n%s%s", code, out, errs)
	}
}

func TestFAPPBadValuesExit2BeforeAnyRequest(t *testing.T) {
	n, addr := startFAPPNode(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"search", "--fachrichtung", "yoga"}, "--fachrichtung: fapp: bad value: fachrichtung \"yoga\", want one of verhaltenstherapie, tiefenpsychologisch, analytisch, systemisch"},
		{[]string{"search", "--modalitaet", "video,zoom"}, "--modalitaet: fapp: bad value: modalitaet \"zoom\", want one or more of praxis, video, telefon"},
		{[]string{"search", "--kostentraeger", "gkv", "--kostentraeger", "aok"}, "--kostentraeger: fapp: bad value: kostentraeger \"aok\", want one or more of gkv, pkv, selbstzahler, beihilfe"},
		{[]string{"search", "--plz", "80x"}, "--plz: fapp: bad value: PLZ prefix \"80x\", want 1 to 5 digits"},
		{[]string{"search", "--type", "massage"}, "--type: fapp: bad value: type \"massage\", want one of sprechstunde, probatorik, therapieplatz, akutbehandlung, gruppe"},
		{[]string{"search", "--from", "morgen"}, "--from: fapp: bad value: time \"morgen\", want RFC 3339"},
		{[]string{"search", "--to", "2026-02-30"}, "--to:"},
		{[]string{"search", "--from", "2026-12-10", "--to", "2026-12-01"}, "--from 2026-12-10T00:00:00"},
		{[]string{"search", "--from", "2026-12-10", "--to", "2026-12-01"}, "and --to 2026-12-01T00:00:00"},
		{[]string{"search", "--from", "2026-12-10", "--to", "2026-12-01"}, "the time window is empty, want --to after --from"},
		{[]string{"search", "--from", "2026-12-10T10:00:00Z", "--to", "2026-12-10T10:00:00Z"}, "--from 2026-12-10T10:00:00Z and --to 2026-12-10T10:00:00Z: the time window is empty"},
		{[]string{"search", "--max", "65"}, "--max \"65\": want a number from 1 to 64"},
		{[]string{"search", "--wait", "2m"}, "--wait \"2m0s\": want a duration from 0s to 1m0s"},
		{[]string{"search", "--wait", "soon"}, "invalid argument"},
		{[]string{"reserve", "nope"}, "slot \"nope\", want <32 hex digits>-<number>"},
		{[]string{"reserve"}, "takes one SLOT"},
		{[]string{"reserve", fappTherapist + "-1", "--note", strings.Repeat("x", fapp.MaxNoteSize+1)}, "--note of 201 bytes"},
		{[]string{"status"}, "takes one reservation id"},
		{[]string{"status", "a", "b"}, "got 2 arguments"},
		{[]string{"confirm", "res1", "--text", strings.Repeat("x", fapp.MaxNoteSize+1)}, "--text of 201 bytes"},
		{[]string{"decline", "res1", "--reason", strings.Repeat("x", fapp.MaxNoteSize+1)}, "--reason of 201 bytes"},
		{[]string{"requests", "x"}, "takes no arguments"},
		{[]string{"publish"}, "publish needs --file"},
		{[]string{"publish", "--file", "/nonexistent/slots.toml"}, "slots file"},
		{[]string{"publish", "--file", "x.toml", "--type", "massage"}, "--type: fapp: bad value"},
		{[]string{"publish", "--file", "x.toml", "--modalitaet", "zoom"}, "--modalitaet: fapp: bad value"},
	} {
		code, _, errs := qpc(t, append(append([]string{"fapp"}, c.args...), "--api", addr)...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("qpc fapp %s: exit %d %q, want exit 2 with %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.requests != 0 {
		t.Errorf("%d requests reached the node; bad values are refused before asking", n.requests)
	}
}

func TestFAPPPublishCommand(t *testing.T) {
	n, addr := startFAPPNode(t)
	dir := t.TempDir()
	toml := filepath.Join(dir, "slots.toml")
	os.WriteFile(toml, []byte(`
[[slot]]
start = 2026-12-03T10:00:00+01:00
minutes = 50
type = "therapieplatz"
modalitaet = ["praxis", "video"]
fachrichtung = "verhaltenstherapie"
kostentraeger = ["gkv"]
[[slot]]
start = 2026-12-04T10:00:00+01:00
minutes = 25
modalitaet = "telefon"
`), 0o600)
	code, out, errs := qpc(t, "fapp", "publish", "--api", addr, "--file", toml, "--type", "sprechstunde")
	if code != exitOK || !strings.Contains(out, "published 2 slots (set 2") {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	n.mu.Lock()
	got := n.published
	n.mu.Unlock()
	want := []fapp.Slot{
		{Start: uint32(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC).Unix()), Minutes: 50, Type: fapp.Therapieplatz, Modalitaet: fapp.Praxis | fapp.Video, Fachrichtung: fapp.Verhaltenstherapie, Kostentraeger: fapp.GKV},
		{Start: uint32(time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC).Unix()), Minutes: 25, Type: fapp.Sprechstunde, Modalitaet: fapp.Telefon},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the node got %v, want %v", got, want)
	}

	ics := filepath.Join(dir, "slots.ics")
	os.WriteFile(ics, []byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20261205T080000Z\r\nDTEND:20261205T085000Z\r\nX-FAPP-TYPE:probatorik\r\nX-FAPP-MODALITAET:video\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"), 0o600)
	code, out, errs = qpc(t, "fapp", "publish", "--api", addr, "--file", ics, "--json")
	var res api.FAPPPublishResponse
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || len(res.Slots) != 1 || res.Slots[0].Type != "probatorik" {
		t.Errorf("publish .ics --json: exit %d\n%s%s", code, out, errs)
	}

	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[slot]]\nstart = 2026-12-03T10:00:00Z\nminutes = 50\ntype = \"massage\"\nmodalitaet = [\"praxis\"]\n"), 0o600)
	if code, _, errs := qpc(t, "fapp", "publish", "--api", addr, "--file", bad); code != exitUsage || !strings.Contains(errs, "bad.toml: fapp: slots file: slot 1: fapp: bad value: type \"massage\"") {
		t.Errorf("a bad slots file: exit %d %s, want 2 naming the file, slot and field", code, errs)
	}

	n.mu.Lock()
	n.roleErr = true
	n.mu.Unlock()
	if code, _, errs := qpc(t, "fapp", "publish", "--api", addr, "--file", toml, "--type", "gruppe"); code != exitFailure || !strings.Contains(errs, "not a therapist") || !strings.Contains(errs, "fapp_role") {
		t.Errorf("publish on a node that is no therapist: exit %d %s, want 1 with fapp_role", code, errs)
	}
}

func TestFAPPReserveStatusRequestsConfirmDecline(t *testing.T) {
	n, addr := startFAPPNode(t)
	slot := fappTherapist + "-1"
	code, out, errs := qpc(t, "fapp", "reserve", slot, "--note", "bitte Rückruf", "--api", addr, "--json")
	if code != exitOK || strings.Join(strings.Fields(out), "") != `{"reservation":"res1","status":"pending"}` {
		t.Errorf("reserve --json: exit %d %q %s, want {\"reservation\": \"res1\", \"status\": \"pending\"}", code, out, errs)
	}
	if n.note != "bitte Rückruf" {
		t.Errorf("note %q", n.note)
	}
	if code, out, _ := qpc(t, "fapp", "reserve", slot, "--api", addr); code != exitOK || out != "pending res1 (slot "+slot+")\n" {
		t.Errorf("reserve: exit %d %q", code, out)
	}

	code, out, _ = qpc(t, "fapp", "status", "res1", "--api", addr, "--json")
	if code != exitOK || strings.Join(strings.Fields(out), "") != `{"reservation":"res1","status":"pending"}` {
		t.Errorf("status --json: exit %d %q", code, out)
	}
	if code, _, errs := qpc(t, "fapp", "status", "nope", "--api", addr); code != exitFailure || !strings.Contains(errs, "no such reservation") {
		t.Errorf("status of an unknown reservation: exit %d %s", code, errs)
	}

	code, out, _ = qpc(t, "fapp", "requests", "--api", addr, "--json")
	var reqs map[string][]map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &reqs) != nil || len(reqs["requests"]) != 1 || reqs["requests"][0]["note"] != "hallo" || reqs["requests"][0]["at"] != "2026-12-02T08:00:00Z" {
		t.Errorf("requests --json: exit %d %s", code, out)
	}
	if code, out, _ := qpc(t, "fapp", "requests", "--api", addr); code != exitOK || !strings.Contains(out, "res1") || !strings.Contains(out, "hallo") {
		t.Errorf("requests: exit %d %s", code, out)
	}

	if code, out, _ := qpc(t, "fapp", "confirm", "res1", "--text", "Praxis, 2. Stock", "--api", addr); code != exitOK || out != "confirmed res1: Praxis, 2. Stock\n" || n.answered != "res1" {
		t.Errorf("confirm: exit %d %q", code, out)
	}
	code, out, _ = qpc(t, "fapp", "status", "res1", "--wait", "10s", "--api", addr, "--json")
	if code != exitOK || !strings.Contains(out, `"status": "confirmed"`) || n.wait != 10*time.Second {
		t.Errorf("status --wait 10s: exit %d %s, wait passed %s", code, out, n.wait)
	}
	if code, out, _ := qpc(t, "fapp", "decline", "res2", "--reason", "belegt", "--api", addr, "--json"); code != exitOK || !strings.Contains(out, `"status": "declined"`) || n.text != "belegt" {
		t.Errorf("decline: exit %d %s", code, out)
	}
}

func TestFAPPOffNodeSaysSetRole(t *testing.T) {
	s, err := api.Listen(api.Options{Addr: "127.0.0.1:0"}, &noFAPP{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if code, _, errs := qpc(t, "fapp", "requests", "--api", s.Addr()); code != exitFailure || !strings.Contains(errs, "fapp.role") || !strings.Contains(errs, "fapp_off") {
		t.Errorf("requests on a node without FAPP: exit %d %s", code, errs)
	}
}

func TestNodeFAPPFlagSetsRoles(t *testing.T) {
	file := writeFile(t, "[fapp]\nrole = [\"patient\"]\n")
	r, err := resolveConfig(file, nodeFlags(t, "--fapp", "therapist,relay"), []string{"QPC_FAPP_ROLE=patient"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.cfg.FAPP.Role, ","); got != "therapist,relay" || r.sources["fapp.role"].Name != "--fapp" {
		t.Errorf("fapp.role = %s from %s, want therapist,relay from --fapp", got, r.sources["fapp.role"])
	}
	if _, err := loadConfig("", nodeFlags(t, "--fapp", "doctor"), nil); err == nil || !strings.Contains(err.Error(), "therapist, relay or patient") {
		t.Errorf("--fapp doctor: %v", err)
	}
}

// noFAPP is a Backend without FAPP.
type noFAPP struct{ fappNode }

func (*noFAPP) FAPPPublish() {} // shadows the method: noFAPP is no FAPPBackend
