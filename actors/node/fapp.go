package node

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	fappactor "github.com/quicprochat/qpc/actors/fapp"
	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/messages"
)

// This file is the node's FAPP side: the fapp actor's configuration from
// [fapp], the capability bits, and api.FAPPBackend (docs/fapp.md).

var _ api.FAPPBackend = (*Node)(nil)

// fappRoles are the FAPP roles of the configuration.
func fappRoles(c config.FAPPConfig) fappactor.Roles {
	return fappactor.Roles{
		Therapist: c.HasRole(config.FAPPTherapist),
		Relay:     c.HasRole(config.FAPPRelay),
		Patient:   c.HasRole(config.FAPPPatient),
	}
}

// fappCaps are the capability bits the node's announce carries for its
// FAPP roles.
func fappCaps(c config.FAPPConfig) messages.Capabilities {
	r := fappRoles(c)
	var caps messages.Capabilities
	if r.Therapist {
		caps |= messages.CapFAPPTherapist
	}
	if r.Relay {
		caps |= messages.CapFAPPRelay
	}
	if r.Patient {
		caps |= messages.CapFAPPPatient
	}
	return caps
}

// fappConfig is the fapp actor's configuration.
func (n *Node) fappConfig(linksPID, routerPID *actor.PID) fappactor.Config {
	f := n.cfg.FAPP
	plz, _ := fapp.ParsePLZ(f.PLZ) // checked by config.Validate for a therapist
	return fappactor.Config{
		Identity: n.id, Roles: fappRoles(f), DB: n.db.DB, Links: linksPID, Router: routerPID, Clock: n.clock, Metrics: n.metrics.FAPP,
		PLZ: plz, Licence: f.Approbation, AnnounceTTL: f.AnnounceTTL.D(), QueryHops: f.QueryHops, MaxSlots: f.MaxSlots,
		Notify: n.fappChanged.notify, Log: n.log.With("component", "fapp"), Engine: n.opts.fappEngine,
	}
}

// changeFeed wakes whoever waits for a FAPP status change.
type changeFeed struct {
	mu sync.Mutex
	ch chan struct{}
}

func (c *changeFeed) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changeFeed) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// fappErr turns the actor's errors into the API's: a role the node does
// not have wraps api.ErrFAPPRole; the domain's errors (fapp.ErrBadValue,
// ErrUnknownSlot, ErrUnknownReservation, ErrNotPending,
// ErrAlreadyConfirmed) are returned as they are, for the handlers to map
// (400, 404, 409 fapp_answered).
func fappErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fappactor.ErrRole):
		return fmt.Errorf("%w: %w", api.ErrFAPPRole, err)
	case errors.Is(err, fappactor.ErrUnknownSearch):
		return &api.NotFound{Err: err}
	}
	return err
}

func (n *Node) askFAPP(ctx context.Context, msg any) (any, error) {
	res, err := n.ask(ctx, fappactor.Name, msg, 10*time.Second)
	if err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil, &api.Unavailable{Err: err}
		}
		return nil, fmt.Errorf("node: fapp: %w", err)
	}
	return res, nil
}

// SlotIDFor is the id a slot without one gets: stable for the slot's
// whole content (start, minutes, type, Fachrichtung, Modalitaet,
// Kostentraeger; its own ID is not part of it), so the same slot published
// again keeps its id and two parallel slots that differ in any field get
// different ones; never zero.
func SlotIDFor(s fapp.Slot) uint32 {
	h := fnv.New32a()
	var b [10]byte
	binary.BigEndian.PutUint32(b[0:], s.Start)
	binary.BigEndian.PutUint16(b[4:], s.Minutes)
	b[6] = byte(s.Type)
	b[7] = byte(s.Fachrichtung)
	b[8] = byte(s.Modalitaet)
	b[9] = byte(s.Kostentraeger)
	h.Write(b[:])
	if id := h.Sum32(); id != 0 {
		return id
	}
	return 1
}

// fappDefaults fills a slot's zero id, Fachrichtung and Kostentraeger
// from its content and the config.
func (n *Node) fappDefaults(s fapp.Slot) fapp.Slot {
	f := n.cfg.FAPP
	if s.Fachrichtung == 0 && len(f.Fachrichtung) > 0 {
		s.Fachrichtung, _ = fapp.ParseFachrichtung(f.Fachrichtung[0])
	}
	if s.Kostentraeger == 0 {
		s.Kostentraeger, _ = fapp.ParseKostentraeger(f.Kostentraeger...)
	}
	if s.ID == 0 {
		s.ID = SlotIDFor(s)
	}
	return s
}

// FAPPPublish implements api.FAPPBackend.
func (n *Node) FAPPPublish(ctx context.Context, slots []fapp.Slot) (api.FAPPPublishResponse, error) {
	in := make([]fapp.Slot, len(slots))
	seen := make(map[fapp.Slot]struct{}, len(slots))
	for i, s := range slots {
		in[i] = n.fappDefaults(s)
		if _, dup := seen[in[i]]; dup {
			// Named by what the user wrote (its start), not by an id
			// the node derived.
			at := time.Unix(int64(in[i].Start), 0).UTC().Format(time.RFC3339)
			return api.FAPPPublishResponse{}, fmt.Errorf("%w: the slot starting at %s is given twice (the same slot twice: every field alike)", fapp.ErrBadValue, at)
		}
		seen[in[i]] = struct{}{}
	}
	res, err := n.askFAPP(ctx, &fappactor.Publish{Slots: in})
	if err != nil {
		return api.FAPPPublishResponse{}, err
	}
	r := res.(*fappactor.PublishReply)
	if r.Err != nil {
		return api.FAPPPublishResponse{}, fappErr(r.Err)
	}
	out := api.FAPPPublishResponse{Seq: r.Seq, Expires: r.Expires.UTC(), Slots: []api.FAPPSlotJSON{}}
	plz, _ := fapp.ParsePLZ(n.cfg.FAPP.PLZ)
	for _, s := range r.Slots {
		j := api.SlotJSON(fapp.Result{ID: fapp.SlotID{Therapist: n.Address(), Slot: s.ID}, Slot: s})
		j.PLZ = plz.String()
		out.Slots = append(out.Slots, j)
	}
	return out, nil
}

// clockAfter returns a channel closed once d has passed on the node's clock
// (at once for d <= 0), and the function that stops the timer.
func (n *Node) clockAfter(d time.Duration) (<-chan struct{}, func()) {
	done := make(chan struct{})
	if d <= 0 {
		close(done)
		return done, func() {}
	}
	t := n.clock.AfterFunc(d, func() { close(done) })
	return done, func() { t.Stop() }
}

// FAPPSearch implements api.FAPPBackend: one fresh query, responses
// gathered for wait (or until ctx ends or the node drains).
func (n *Node) FAPPSearch(ctx context.Context, f fapp.Filter, wait time.Duration) (api.FAPPSearchResponse, error) {
	if err := f.Validate(); err != nil {
		return api.FAPPSearchResponse{}, &api.BadRequest{Err: err}
	}
	res, err := n.askFAPP(ctx, &fappactor.SearchStart{Filter: f})
	if err != nil {
		return api.FAPPSearchResponse{}, err
	}
	st := res.(*fappactor.SearchStarted)
	if st.Err != nil {
		return api.FAPPSearchResponse{}, fappErr(st.Err)
	}
	done, stop := n.clockAfter(wait)
	select {
	case <-done:
	case <-ctx.Done():
	case <-n.draining:
	}
	stop()
	// The search is ended even when ctx ended: the actor forgets it.
	ectx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err = n.askFAPP(ectx, &fappactor.SearchEnd{ID: st.ID})
	if err != nil {
		return api.FAPPSearchResponse{}, err
	}
	rs := res.(*fappactor.SearchResults)
	if rs.Err != nil {
		return api.FAPPSearchResponse{}, fappErr(rs.Err)
	}
	out := api.FAPPSearchResponse{Slots: make([]api.FAPPSlotJSON, 0, len(rs.Results))}
	for _, r := range rs.Results {
		out.Slots = append(out.Slots, api.SlotJSON(r))
	}
	return out, nil
}

func reservationJSON(i fappactor.ReservationInfo) api.FAPPReservation {
	out := api.FAPPReservation{Reservation: hex.EncodeToString(i.ID[:]), Status: i.Status.String(), Text: i.Text}
	if i.Slot != (fapp.SlotID{}) {
		out.Slot = i.Slot.String()
	}
	return out
}

func parseReservationID(id string) ([16]byte, error) {
	var out [16]byte
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != len(out) {
		return out, &api.BadRequest{Err: fmt.Errorf("reservation id %q: want 32 hex digits", id)}
	}
	copy(out[:], b)
	return out, nil
}

func (n *Node) reservationAsk(ctx context.Context, msg any) (api.FAPPReservation, error) {
	res, err := n.askFAPP(ctx, msg)
	if err != nil {
		return api.FAPPReservation{}, err
	}
	r := res.(*fappactor.ReservationReply)
	if r.Err != nil {
		return api.FAPPReservation{}, fappErr(r.Err)
	}
	return reservationJSON(r.Info), nil
}

// FAPPReserve implements api.FAPPBackend.
func (n *Node) FAPPReserve(ctx context.Context, slot fapp.SlotID, note string) (api.FAPPReservation, error) {
	return n.reservationAsk(ctx, &fappactor.Reserve{Slot: slot, Note: note})
}

// FAPPStatus implements api.FAPPBackend.
func (n *Node) FAPPStatus(ctx context.Context, id string, wait time.Duration) (api.FAPPReservation, error) {
	rid, err := parseReservationID(id)
	if err != nil {
		return api.FAPPReservation{}, err
	}
	var deadline <-chan struct{}
	if wait > 0 {
		done, stop := n.clockAfter(wait)
		defer stop()
		deadline = done
	}
	for {
		changed := n.fappChanged.wait()
		r, err := n.reservationAsk(ctx, &fappactor.StatusRequest{ID: rid})
		if err != nil || r.Status != fapp.Pending.String() || deadline == nil {
			return r, err
		}
		select {
		case <-changed:
		case <-deadline:
			deadline = nil
		case <-ctx.Done():
			return r, nil
		case <-n.draining:
			return r, nil
		}
	}
}

// FAPPRequests implements api.FAPPBackend.
func (n *Node) FAPPRequests(ctx context.Context) (api.FAPPRequestsResponse, error) {
	res, err := n.askFAPP(ctx, &fappactor.RequestsRequest{})
	if err != nil {
		return api.FAPPRequestsResponse{}, err
	}
	r := res.(*fappactor.RequestsReply)
	if r.Err != nil {
		return api.FAPPRequestsResponse{}, fappErr(r.Err)
	}
	out := api.FAPPRequestsResponse{Requests: make([]api.FAPPRequest, 0, len(r.Requests))}
	for _, q := range r.Requests {
		out.Requests = append(out.Requests, api.FAPPRequest{
			Reservation: hex.EncodeToString(q.ID[:]), Slot: fapp.SlotID{Therapist: n.Address(), Slot: q.Slot}.String(),
			Note: q.Note, At: q.At.UTC(), Status: q.Status.String(),
		})
	}
	return out, nil
}

func (n *Node) fappAnswer(ctx context.Context, id, text string, confirm bool) (api.FAPPReservation, error) {
	rid, err := parseReservationID(id)
	if err != nil {
		return api.FAPPReservation{}, err
	}
	if confirm && text == "" {
		text = n.cfg.FAPP.Name
	}
	r, err := n.reservationAsk(ctx, &fappactor.AnswerRequest{ID: rid, Confirm: confirm, Text: text})
	if err != nil {
		return r, err
	}
	r.Reservation, r.Text = id, text
	return r, nil
}

// FAPPConfirm implements api.FAPPBackend. An empty text sends the
// practice's name (fapp.name).
func (n *Node) FAPPConfirm(ctx context.Context, id, text string) (api.FAPPReservation, error) {
	return n.fappAnswer(ctx, id, text, true)
}

// FAPPDecline implements api.FAPPBackend.
func (n *Node) FAPPDecline(ctx context.Context, id, reason string) (api.FAPPReservation, error) {
	return n.fappAnswer(ctx, id, reason, false)
}
