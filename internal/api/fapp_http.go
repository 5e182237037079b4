package api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quicprochat/qpc/fapp"
)

// FAPP search and status waits (the wait parameter).
const (
	DefaultFAPPSearchWait = 3 * time.Second
	MaxFAPPWait           = 60 * time.Second
	// maxFAPPIDSize bounds a reservation id in a path.
	maxFAPPIDSize = 64
)

// fappPaths are the /v1/fapp/ endpoints and their methods (405 for the
// others).
var fappPaths = map[string][]string{
	"/v1/fapp/publish":               {"POST"},
	"/v1/fapp/search":                {"GET"},
	"/v1/fapp/reserve":               {"POST"},
	"/v1/fapp/reservations/{id}":     {"GET"},
	"/v1/fapp/requests":              {"GET"},
	"/v1/fapp/requests/{id}/confirm": {"POST"},
	"/v1/fapp/requests/{id}/decline": {"POST"},
}

// fappSearchParams are the query parameters of GET /v1/fapp/search.
var fappSearchParams = []string{"fachrichtung", "modalitaet", "kostentraeger", "plz", "from", "to", "type", "max", "wait"}

// fappRoutes adds the /v1/fapp/ endpoints to mux: served by the backend
// when it is a FAPPBackend, else 404 fapp_off on every one of them.
func (s *Server) fappRoutes(mux *http.ServeMux) {
	fb, ok := s.backend.(FAPPBackend)
	if !ok {
		mux.HandleFunc("/v1/fapp/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, &Error{Code: "fapp_off", Status: http.StatusNotFound, Message: "FAPP is off on this node: set fapp.role (therapist, relay, patient) in its config, or qpc node --fapp ROLE,..."})
		})
		return
	}
	mux.HandleFunc("POST /v1/fapp/publish", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Slots *[]FAPPSlotInput `json:"slots"`
		}
		if e := decodeBody(r, &req, `{"slots": [{"start": RFC3339, "minutes": N, "type": T, "modalitaet": [...]}, ...]}`); e != nil {
			writeError(w, e)
			return
		}
		if req.Slots == nil {
			writeError(w, badRequest("slots is missing: publish takes the whole set of free slots ([] withdraws every one)"))
			return
		}
		slots, err := FAPPSlots(*req.Slots)
		if err != nil {
			writeError(w, badRequest(err.Error()))
			return
		}
		res, err := fb.FAPPPublish(r.Context(), slots)
		if err != nil {
			writeFAPPError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/fapp/search", func(w http.ResponseWriter, r *http.Request) {
		f, wait, err := ParseFAPPSearch(r.URL.Query(), time.Now())
		if err != nil {
			writeError(w, badRequest(err.Error()))
			return
		}
		s.allowWait(w, wait)
		res, err := fb.FAPPSearch(r.Context(), f, wait)
		if err != nil {
			writeFAPPError(w, err)
			return
		}
		if res.Slots == nil {
			res.Slots = []FAPPSlotJSON{}
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST /v1/fapp/reserve", func(w http.ResponseWriter, r *http.Request) {
		var req FAPPReserveRequest
		if e := decodeBody(r, &req, `{"slot": SLOT, "note": TEXT}`); e != nil {
			writeError(w, e)
			return
		}
		id, err := fapp.ParseSlotID(req.Slot)
		if err != nil {
			writeError(w, badRequest(err.Error()))
			return
		}
		if len(req.Note) > fapp.MaxNoteSize {
			writeError(w, badRequest(fmt.Sprintf("note of %d bytes is over the limit of %d", len(req.Note), fapp.MaxNoteSize)))
			return
		}
		res, err := fb.FAPPReserve(r.Context(), id, req.Note)
		if err != nil {
			writeFAPPError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/fapp/reservations/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, e := fappID(r)
		if e != nil {
			writeError(w, e)
			return
		}
		for k := range r.URL.Query() {
			if k != "wait" {
				writeError(w, badRequest(fmt.Sprintf("unknown parameter %q: a reservation's status takes only wait", k)))
				return
			}
		}
		wait, err := parseFAPPWait(r.URL.Query(), 0)
		if err != nil {
			writeError(w, badRequest(err.Error()))
			return
		}
		s.allowWait(w, wait)
		res, err := fb.FAPPStatus(r.Context(), id, wait)
		if err != nil {
			writeFAPPError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/fapp/requests", func(w http.ResponseWriter, r *http.Request) {
		res, err := fb.FAPPRequests(r.Context())
		if err != nil {
			writeFAPPError(w, err)
			return
		}
		if res.Requests == nil {
			res.Requests = []FAPPRequest{}
		}
		writeJSON(w, http.StatusOK, res)
	})
	answer := func(confirm bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id, e := fappID(r)
			if e != nil {
				writeError(w, e)
				return
			}
			var req FAPPAnswerRequest
			if e := decodeOptionalBody(r, &req, `{"text": TEXT} or none`); e != nil {
				writeError(w, e)
				return
			}
			if len(req.Text) > fapp.MaxNoteSize {
				writeError(w, badRequest(fmt.Sprintf("text of %d bytes is over the limit of %d", len(req.Text), fapp.MaxNoteSize)))
				return
			}
			var res FAPPReservation
			var err error
			if confirm {
				res, err = fb.FAPPConfirm(r.Context(), id, req.Text)
			} else {
				res, err = fb.FAPPDecline(r.Context(), id, req.Text)
			}
			if err != nil {
				writeFAPPError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, res)
		}
	}
	mux.HandleFunc("POST /v1/fapp/requests/{id}/confirm", answer(true))
	mux.HandleFunc("POST /v1/fapp/requests/{id}/decline", answer(false))
	for path, methods := range fappPaths {
		mux.HandleFunc(path, methodNotAllowed(methods))
	}
}

func badRequest(msg string) *Error {
	return &Error{Code: "bad_request", Message: msg, Status: http.StatusBadRequest}
}

// fappID is the {id} of a reservation path: not empty, at most
// maxFAPPIDSize printable ASCII characters.
func fappID(r *http.Request) (string, *Error) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxFAPPIDSize {
		return "", badRequest(fmt.Sprintf("reservation id %q: want the id reserve printed (at most %d characters)", id, maxFAPPIDSize))
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f {
			return "", badRequest(fmt.Sprintf("reservation id %q: want the id reserve printed", id))
		}
	}
	return id, nil
}

// decodeOptionalBody is decodeBody for a body that may be left out.
func decodeOptionalBody(r *http.Request, v any, what string) *Error {
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); errors.Is(err, io.EOF) {
		return nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return decodeBody(r, v, what)
}

// writeFAPPError is writeBackendError with FAPP's own: a role the node
// does not have (409 fapp_role), a bad value (400), an unknown slot or
// reservation (404), a reservation already answered (409 fapp_answered).
func writeFAPPError(w http.ResponseWriter, err error) {
	var br *BadRequest
	var nf *NotFound
	switch {
	case errors.Is(err, ErrFAPPRole):
		writeError(w, &Error{Code: "fapp_role", Message: err.Error(), Status: http.StatusConflict})
	case errors.As(err, &br), errors.As(err, &nf):
		writeBackendError(w, err)
	case errors.Is(err, fapp.ErrBadValue):
		writeError(w, badRequest(err.Error()))
	case errors.Is(err, fapp.ErrUnknownSlot), errors.Is(err, fapp.ErrUnknownReservation):
		writeError(w, &Error{Code: "not_found", Message: err.Error(), Status: http.StatusNotFound})
	case errors.Is(err, fapp.ErrNotPending), errors.Is(err, fapp.ErrAlreadyConfirmed):
		writeError(w, &Error{Code: "fapp_answered", Message: err.Error(), Status: http.StatusConflict})
	default:
		writeBackendError(w, err)
	}
}

// FAPPSlots turns the slots of a publish request into fapp.Slots (ID 0;
// Fachrichtung and Kostentraeger zero where the request leaves them to
// the config). The error names the slot (from 1) and the field.
func FAPPSlots(in []FAPPSlotInput) ([]fapp.Slot, error) {
	if len(in) > fapp.MaxSlotsPerAnnounce {
		return nil, fmt.Errorf("%d slots, at most %d in one set", len(in), fapp.MaxSlotsPerAnnounce)
	}
	out := make([]fapp.Slot, 0, len(in))
	for i, s := range in {
		si, err := ParseFAPPSlotInput(s)
		if err == nil {
			var sl fapp.Slot
			if sl, err = si.Slot(); err == nil {
				out = append(out, sl)
				continue
			}
		}
		return nil, fmt.Errorf("slot %d: %w", i+1, err)
	}
	return out, nil
}

// ParseFAPPSlotInput parses the names of a publish request's slot.
func ParseFAPPSlotInput(s FAPPSlotInput) (fapp.SlotInput, error) {
	in := fapp.SlotInput{Start: s.Start, Minutes: s.Minutes}
	var err error
	if s.Type == "" {
		return in, fmt.Errorf("%w: type is missing, want one of %s", fapp.ErrBadValue, strings.Join(fapp.SlotTypeNames(), ", "))
	}
	if in.Type, err = fapp.ParseSlotType(s.Type); err != nil {
		return in, err
	}
	if len(s.Modalitaet) == 0 {
		return in, fmt.Errorf("%w: modalitaet is missing, want one or more of %s", fapp.ErrBadValue, strings.Join(fapp.ModalitaetNames(), ", "))
	}
	if in.Modalitaet, err = fapp.ParseModalitaet(s.Modalitaet...); err != nil {
		return in, err
	}
	if s.Fachrichtung != "" {
		if in.Fachrichtung, err = fapp.ParseFachrichtung(s.Fachrichtung); err != nil {
			return in, err
		}
	}
	if len(s.Kostentraeger) > 0 {
		if in.Kostentraeger, err = fapp.ParseKostentraeger(s.Kostentraeger...); err != nil {
			return in, err
		}
	}
	return in, nil
}

// FAPPSlotInputOf is the publish request's form of a slot.
func FAPPSlotInputOf(in fapp.SlotInput) FAPPSlotInput {
	out := FAPPSlotInput{Start: in.Start, Minutes: in.Minutes, Type: in.Type.String(), Modalitaet: in.Modalitaet.Names()}
	if in.Fachrichtung != 0 {
		out.Fachrichtung = in.Fachrichtung.String()
	}
	if in.Kostentraeger != 0 {
		out.Kostentraeger = in.Kostentraeger.Names()
	}
	return out
}

// ParseFAPPSearch parses the query parameters of GET /v1/fapp/search
// into a filter and the wait (default DefaultFAPPSearchWait). A date
// (YYYY-MM-DD) in from or to is midnight in now's location. The error
// names the parameter and the allowed values.
func ParseFAPPSearch(q url.Values, now time.Time) (fapp.Filter, time.Duration, error) {
	var f fapp.Filter
	for k, v := range q {
		if !slices.Contains(fappSearchParams, k) {
			return f, 0, fmt.Errorf("unknown parameter %q: search takes %s", k, strings.Join(fappSearchParams, ", "))
		}
		if len(v) > 1 {
			return f, 0, fmt.Errorf("parameter %s given %d times: give it once (a set as a,b)", k, len(v))
		}
	}
	param := func(name string, err error) error { return fmt.Errorf("parameter %s: %w", name, err) }
	var err error
	if v := q.Get("fachrichtung"); v != "" {
		if f.Fachrichtung, err = fapp.ParseFachrichtung(v); err != nil {
			return f, 0, param("fachrichtung", err)
		}
	}
	if v := q.Get("modalitaet"); v != "" {
		if f.Modalitaet, err = fapp.ParseModalitaet(v); err != nil {
			return f, 0, param("modalitaet", err)
		}
	}
	if v := q.Get("kostentraeger"); v != "" {
		if f.Kostentraeger, err = fapp.ParseKostentraeger(v); err != nil {
			return f, 0, param("kostentraeger", err)
		}
	}
	if v := q.Get("plz"); v != "" {
		if f.PLZPrefix, err = fapp.ParsePLZPrefix(v); err != nil {
			return f, 0, param("plz", err)
		}
	}
	if v := q.Get("type"); v != "" {
		if f.Type, err = fapp.ParseSlotType(v); err != nil {
			return f, 0, param("type", err)
		}
	}
	if v := q.Get("from"); v != "" {
		if f.From, err = ParseFAPPTime(v, now.Location()); err != nil {
			return f, 0, param("from", err)
		}
	}
	if v := q.Get("to"); v != "" {
		if f.To, err = ParseFAPPTime(v, now.Location()); err != nil {
			return f, 0, param("to", err)
		}
	}
	if v := q.Get("max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > fapp.MaxQueryResults {
			return f, 0, fmt.Errorf("parameter max %q: want a number from 1 to %d", v, fapp.MaxQueryResults)
		}
		f.Max = n
	}
	if err := f.Validate(); err != nil {
		return f, 0, err
	}
	wait, err := parseFAPPWait(q, DefaultFAPPSearchWait)
	return f, wait, err
}

// ParseFAPPTime parses a search's from or to: RFC 3339, or a date
// YYYY-MM-DD meaning midnight in loc.
func ParseFAPPTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: time %q, want RFC 3339 (2026-12-03T10:00:00+01:00) or a date (2026-12-03, midnight)", fapp.ErrBadValue, s)
}

func parseFAPPWait(q url.Values, def time.Duration) (time.Duration, error) {
	v := q.Get("wait")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > MaxFAPPWait {
		return 0, fmt.Errorf("parameter wait %q: want a duration from 0s to %s", v, MaxFAPPWait)
	}
	return d, nil
}

// fappMetricPath is the path label of a /v1/fapp/ request: the endpoint's
// pattern, or "other" (the label's values stay bounded).
func fappMetricPath(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/v1/fapp/"), "/")
	switch {
	case len(parts) == 1 && (parts[0] == "publish" || parts[0] == "search" || parts[0] == "reserve" || parts[0] == "requests"):
		return path
	case len(parts) == 2 && parts[0] == "reservations":
		return "/v1/fapp/reservations/{id}"
	case len(parts) == 3 && parts[0] == "requests" && (parts[2] == "confirm" || parts[2] == "decline"):
		return "/v1/fapp/requests/{id}/" + parts[2]
	}
	return "other"
}

// WithoutFAPP is b without its FAPP methods (and with its ReadyDetail, if
// it has one): for a node whose type implements FAPPBackend but that runs
// with FAPP off (no fapp.role), so that /v1/fapp/ answers 404 fapp_off.
func WithoutFAPP(b Backend) Backend {
	if d, ok := b.(ReadyDetailer); ok {
		return struct {
			backendOnly
			ReadyDetailer
		}{backendOnly{b}, d}
	}
	return backendOnly{b}
}

// backendOnly hides every method of its Backend but Backend's.
type backendOnly struct{ Backend }
