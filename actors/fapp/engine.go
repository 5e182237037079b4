package fapp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/quicprochat/qpc/actors/ratelimit"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/messages"
)

// Errors of the engine's own operations (the API's calls).
var (
	// ErrRole: the call needs a FAPP role this node does not have.
	ErrRole = errors.New("fapp: not a role of this node")
	// ErrUnknownSearch: the search ended already (or never started).
	ErrUnknownSearch = errors.New("fapp: unknown search")
)

// Roles are the FAPP roles a node takes (config fapp.role).
type Roles struct{ Therapist, Relay, Patient bool }

// Any reports whether FAPP is on at all.
func (r Roles) Any() bool { return r.Therapist || r.Relay || r.Patient }

// Out is one frame the engine wants sent: to Peer, or with All to every
// linked peer but Except.
type Out struct {
	Peer   [16]byte
	All    bool
	Except [16]byte
	Data   []byte
	Kind   fapp.Kind
}

// State persists what a restart must keep: the therapist's practice and
// the patient's reservations. Nil keeps nothing.
type State interface {
	SavePractice(state []byte) error
	SaveReservation(r *fapp.Reservation) error
}

// PendingReserve is a patient's reservation still waiting for its answer,
// as persisted for retransmission: its SlotReserve frame and the slot's
// start (retransmitted until then).
type PendingReserve struct {
	ID    [16]byte
	Frame []byte
	Until time.Time
}

// RetryState is what a State also keeps when it can: the frames of
// pending reservations, so a restarted patient retransmits them.
type RetryState interface {
	SaveRetry(p PendingReserve) error
	DeleteRetry(id [16]byte) error
}

// Defaults of the engine's bounds.
const (
	// A pending reservation is sent again RetryFirst after it was sent,
	// then after twice as long each time, at most RetryMax apart, until
	// it is answered or its slot has started (checked at each Sweep).
	DefaultRetryFirst     = 30 * time.Second
	DefaultRetryMax       = 10 * time.Minute
	DefaultQueryPathTTL   = 2 * time.Minute
	DefaultReservePathTTL = 24 * time.Hour
	DefaultMaxPaths       = 4096
	DefaultMaxFound       = 1024
	DefaultMaxSearches    = 64
	// DefaultTherapistBurst new sequences of one therapist are admitted
	// at once, then DefaultTherapistPerMin a minute.
	DefaultTherapistBurst  = 5
	DefaultTherapistPerMin = 6
	// DefaultForwardPerSec queries and reservations a relay forwards for
	// one neighbour a second, DefaultForwardBurst at once: well under the
	// per-neighbour FAPP bucket of the next node (ratelimit: 20/s, burst
	// 60), so one patient next to a relay cannot use the relay's whole
	// allowance there and starve the others behind it.
	DefaultForwardPerSec = 2.0
	DefaultForwardBurst  = 10
	// ConstrainedAnnounces is how many announces a relay's response
	// carries to a neighbour reached only over constrained links (LoRa):
	// at most about 2.5 KB (about 10 fragments at MTU 255) instead of up
	// to 6.6 KB for fapp.MaxResponseAnnounces.
	ConstrainedAnnounces = 3
	// HandoffAnnounces is how many of its store's announces a relay
	// hands a neighbour that comes up (over a link that is not
	// constrained): below the receiver's per-neighbour FAPP burst (60),
	// so they are not cut there. A larger store reaches the neighbour
	// through the therapists' renewals.
	HandoffAnnounces = 32
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	Self     crypto.Address
	Roles    Roles
	Store    *fapp.Store    // the relay's cache (Roles.Relay)
	Practice *fapp.Practice // the therapist's state (Roles.Therapist)
	Clock    clock.Clock
	Metrics  *metrics.FAPP
	Rand     io.Reader // crypto/rand.Reader
	State    State
	Log      *slog.Logger // failures to persist (nil: not logged)
	// Reservations restored from State, and the frames of those still
	// pending (RetryState), retransmitted from the first Sweep on.
	Reservations []*fapp.Reservation
	Retries      []PendingReserve
	RetryFirst   time.Duration
	RetryMax     time.Duration

	QueryHops      uint8         // hop limit of own queries (default fapp.DefaultQueryHops)
	AnnounceTTL    time.Duration // validity of own announces (default 24h)
	QueryPathTTL   time.Duration
	ReservePathTTL time.Duration
	MaxPaths       int
	MaxFound       int
	// TherapistBurst and TherapistPerMin bound the new sequences a relay
	// accepts from one therapist.
	TherapistBurst  int
	TherapistPerMin float64
	// ForwardBurst and ForwardPerSec bound the queries and reservations
	// a relay forwards for one neighbour.
	ForwardBurst  int
	ForwardPerSec float64
}

func (c *EngineConfig) defaults() {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.QueryHops == 0 {
		c.QueryHops = fapp.DefaultQueryHops
	}
	if c.AnnounceTTL <= 0 {
		c.AnnounceTTL = 24 * time.Hour
	}
	if c.QueryPathTTL <= 0 {
		c.QueryPathTTL = DefaultQueryPathTTL
	}
	if c.ReservePathTTL <= 0 {
		c.ReservePathTTL = DefaultReservePathTTL
	}
	if c.MaxPaths <= 0 {
		c.MaxPaths = DefaultMaxPaths
	}
	if c.MaxFound <= 0 {
		c.MaxFound = DefaultMaxFound
	}
	if c.TherapistBurst <= 0 {
		c.TherapistBurst = DefaultTherapistBurst
	}
	if c.TherapistPerMin <= 0 {
		c.TherapistPerMin = DefaultTherapistPerMin
	}
	if c.RetryFirst <= 0 {
		c.RetryFirst = DefaultRetryFirst
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.ForwardBurst <= 0 {
		c.ForwardBurst = DefaultForwardBurst
	}
	if c.ForwardPerSec <= 0 {
		c.ForwardPerSec = DefaultForwardPerSec
	}
}

// search is one of this node's queries still gathering responses.
type search struct {
	q       *fapp.PendingQuery
	lists   [][]fapp.Result
	via     map[crypto.Address][16]byte // therapist → the neighbour its announce came back from
	started time.Time
}

// retry is a pending reservation's retransmission schedule.
type retry struct {
	frame   []byte
	via     [16]byte // zero: to every link
	next    time.Time
	backoff time.Duration
	until   time.Time // the slot's start
}

type found struct {
	res fapp.Result
	via [16]byte
}

// Engine is the FAPP node logic as plain state: frames from neighbours
// and the API's calls in, frames to send out (Out). One actor owns it; it
// is not safe for concurrent use.
type Engine struct {
	cfg EngineConfig

	announcePath *paths                   // therapist → the neighbour its newest announce came from
	queryPath    *paths                   // query id → the neighbour the query came from
	reservePath  *paths                   // reservation id → the neighbour the reservation came from
	therapists   *buckets[crypto.Address] // per-therapist rate of new sequences
	forwards     *buckets[[16]byte]       // per-neighbour budget of queries and reservations forwarded

	searches     map[[16]byte]*search
	found        map[fapp.SlotID]found
	foundOrder   []fapp.SlotID
	reservations map[[16]byte]*fapp.Reservation
	retries      map[[16]byte]*retry // pending reservations to send again

	// routeNext: therapists (nodes announcing CapFAPPTherapist) → the
	// next hop of the router's route to them (SetRoutes), for a
	// reservation when no announce path is known.
	routeNext map[crypto.Address][16]byte
	// links: each neighbour's links by id, true for a constrained one.
	links map[[16]byte]map[uint64]bool
	// neighbourCaps: the capabilities direct neighbours announce (routes
	// whose next hop is the destination, SetRoutes).
	neighbourCaps map[[16]byte]messages.Capabilities

	ownFrame   []byte             // the therapist's current announce
	ownAnn     *fapp.SlotAnnounce // ownFrame decoded, for answering queries
	ownExpires time.Time
	// ownPace mirrors the relays' per-therapist bucket: the therapist
	// sends a new set at once while it has a token, else ownDue is set
	// and the newest set goes when a token is back (FlushAnnounce; the
	// sets in between collapse to the newest).
	ownPace *ratelimit.Bucket
	ownDue  bool

	// held: per therapist, the newest set a relay refused for the
	// therapist's rate (at most MaxPaths), applied at a sweep once the
	// therapist has a token again, so a burst of confirms never leaves
	// an old set with confirmed slots in the store.
	held map[crypto.Address]heldAnnounce
}

type heldAnnounce struct {
	from    [16]byte
	data    []byte
	seq     uint64
	expires time.Time
}

// NewEngine builds an engine.
func NewEngine(cfg EngineConfig) *Engine {
	cfg.defaults()
	e := &Engine{
		cfg:           cfg,
		announcePath:  newPaths(cfg.MaxPaths),
		queryPath:     newPaths(cfg.MaxPaths),
		reservePath:   newPaths(cfg.MaxPaths),
		therapists:    newBuckets[crypto.Address](cfg.MaxPaths, cfg.TherapistPerMin/60, cfg.TherapistBurst),
		searches:      map[[16]byte]*search{},
		found:         map[fapp.SlotID]found{},
		reservations:  map[[16]byte]*fapp.Reservation{},
		links:         map[[16]byte]map[uint64]bool{},
		routeNext:     map[crypto.Address][16]byte{},
		neighbourCaps: map[[16]byte]messages.Capabilities{},
		forwards:      newBuckets[[16]byte](cfg.MaxPaths, cfg.ForwardPerSec, cfg.ForwardBurst),
		ownPace:       &ratelimit.Bucket{Rate: cfg.TherapistPerMin / 60, Burst: cfg.TherapistBurst},
		held:          map[crypto.Address]heldAnnounce{},
	}
	for _, r := range cfg.Reservations {
		e.reservations[r.ID] = r
	}
	e.retries = map[[16]byte]*retry{}
	now := e.now()
	for _, p := range cfg.Retries {
		if r := e.reservations[p.ID]; r != nil && r.Status == fapp.Pending && p.Until.After(now) {
			e.retries[p.ID] = &retry{frame: p.Frame, next: now, backoff: cfg.RetryFirst, until: p.Until}
		}
	}
	return e
}

// Roles are the engine's roles.
func (e *Engine) Roles() Roles { return e.cfg.Roles }

func (e *Engine) now() time.Time { return e.cfg.Clock.Now() }

func (e *Engine) drop(kind, reason string) {
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.Dropped.WithLabelValues(kind, reason).Inc()
	}
}

func (e *Engine) own(event string) {
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.Own.WithLabelValues(event).Inc()
	}
}

func (e *Engine) forwarded(k fapp.Kind) {
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.Forwarded.WithLabelValues(k.String()).Inc()
	}
}

func (e *Engine) announceOutcome(o string) {
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.Announces.WithLabelValues(o).Inc()
	}
}

// Handle takes a FAPP frame from neighbour from and returns what to send.
func (e *Engine) Handle(from [16]byte, data []byte) []Out {
	kind, _, _, err := fapp.Peek(data)
	if err != nil || len(data) > fapp.MaxFrameSize {
		if e.cfg.Metrics != nil {
			e.cfg.Metrics.Received.WithLabelValues("malformed").Inc()
		}
		e.drop("unknown", "malformed")
		return nil
	}
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.Received.WithLabelValues(kind.String()).Inc()
	}
	switch kind {
	case fapp.KindAnnounce:
		return e.onAnnounce(from, data)
	case fapp.KindQuery:
		return e.onQuery(from, data)
	case fapp.KindResponse:
		return e.onResponse(from, data)
	case fapp.KindReserve:
		return e.onReserve(from, data)
	case fapp.KindAnswer:
		return e.onAnswer(from, data)
	}
	e.drop(kind.String(), "malformed")
	return nil
}

// AnnounceOutcome names what became of a refused announce, for metrics.
func AnnounceOutcome(err error) string {
	switch {
	case errors.Is(err, fapp.ErrUnbound):
		return "unbound"
	case errors.Is(err, messages.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, fapp.ErrExpired):
		return "expired"
	case errors.Is(err, fapp.ErrTTLTooLong):
		return "ttl_too_long"
	case errors.Is(err, fapp.ErrStale):
		return "stale"
	case errors.Is(err, fapp.ErrSeqConflict):
		return "conflict"
	case errors.Is(err, fapp.ErrStoreFull):
		return "full"
	case errors.Is(err, messages.ErrMalformed), errors.Is(err, messages.ErrTooLarge),
		errors.Is(err, messages.ErrUnknownType), errors.Is(err, messages.ErrUnsupportedVersion), errors.Is(err, messages.ErrHopLimit):
		return "malformed"
	}
	return "error"
}

func (e *Engine) onAnnounce(from [16]byte, data []byte) []Out {
	a, err := fapp.DecodeSlotAnnounce(data)
	if err != nil {
		e.announceOutcome(AnnounceOutcome(err))
		return nil
	}
	addr := a.Therapist()
	now := e.now()
	if addr == e.cfg.Self {
		e.announceOutcome("own")
		return nil
	}
	if !e.cfg.Roles.Relay {
		// Not a cache: only the way back towards the therapist is kept
		// (for a reservation later), and nothing is flooded on.
		if a.ExpiresAt().After(now) {
			e.announcePath.put(addr, from, a.ExpiresAt(), now)
		}
		e.announceOutcome("not_relay")
		return nil
	}
	st := e.cfg.Store
	if a.ExpiresAt().After(now) && a.Seq > st.Seq(addr) && !e.allowTherapist(addr, now) {
		e.announceOutcome("therapist_rate")
		e.hold(addr, from, data, a, now)
		return nil
	}
	if h, ok := e.held[addr]; ok && h.seq <= a.Seq {
		delete(e.held, addr) // this one is as new
	}
	oc, err := st.InsertFrom(data, from) // a new therapist counts against from's share
	if err != nil {
		e.announceOutcome(AnnounceOutcome(err))
		return nil
	}
	e.announceOutcome(oc.String())
	if oc == fapp.Duplicate {
		if _, ok := e.announcePath.get(addr, now); !ok {
			e.announcePath.put(addr, from, a.ExpiresAt(), now)
		}
		return nil
	}
	e.announcePath.put(addr, from, a.ExpiresAt(), now)
	e.storeGauges()
	fwd, err := fapp.Forward(data)
	if err != nil {
		e.drop("announce", "hop_limit")
		return nil
	}
	e.forwarded(fapp.KindAnnounce)
	return e.flood(from, fwd, fapp.KindAnnounce)
}

// flood sends data to every link but except's, leaving out neighbours
// reached over constrained links only (LoRa) whose announce says they are
// neither relay nor therapist: they would drop an announce or a query
// unused, and airtime is scarce. Without such a neighbour, one broadcast.
func (e *Engine) flood(except [16]byte, data []byte, k fapp.Kind) []Out {
	skip := 0
	for p := range e.links {
		if p != except && e.uselessOverLoRa(p) {
			skip++
		}
	}
	if skip == 0 {
		return []Out{{All: true, Except: except, Data: data, Kind: k}}
	}
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.Dropped.WithLabelValues(k.String(), "patient_only_lora").Add(float64(skip))
	}
	var out []Out
	for p := range e.links {
		if p != except && !e.uselessOverLoRa(p) {
			out = append(out, Out{Peer: p, Data: data, Kind: k})
		}
	}
	return out
}

func (e *Engine) uselessOverLoRa(p [16]byte) bool {
	c, ok := e.neighbourCaps[p]
	return ok && c&(messages.CapFAPPRelay|messages.CapFAPPTherapist) == 0 && e.constrained(p)
}

// hold keeps a set refused for its therapist's rate when it is the newest
// seen of that therapist: one per therapist, at most MaxPaths.
func (e *Engine) hold(addr crypto.Address, from [16]byte, data []byte, a fapp.SlotAnnounce, now time.Time) {
	h, ok := e.held[addr]
	if ok && h.seq >= a.Seq {
		return
	}
	if !ok && len(e.held) >= e.cfg.MaxPaths {
		e.drop("announce", "held_full")
		return
	}
	e.held[addr] = heldAnnounce{from: from, data: bytes.Clone(data), seq: a.Seq, expires: a.ExpiresAt()}
}

// applyHeld takes the held sets whose therapist has a token again (the
// sweep): into the store and flooded on, as if they came now.
func (e *Engine) applyHeld(now time.Time) []Out {
	var out []Out
	for addr, h := range e.held {
		if !h.expires.After(now) || (e.cfg.Store != nil && h.seq <= e.cfg.Store.Seq(addr)) {
			delete(e.held, addr)
			continue
		}
		if b := e.therapists.peek(addr); b != nil && b.Tokens(now) < 1 {
			continue
		}
		delete(e.held, addr)
		out = append(out, e.onAnnounce(h.from, h.data)...)
	}
	return out
}

// allowTherapist spends one of therapist's tokens for a new sequence.
// The buckets are bounded (about 2×MaxPaths) in O(1) amortised.
func (e *Engine) allowTherapist(t crypto.Address, now time.Time) bool {
	return e.therapists.allow(t, now)
}

func (e *Engine) storeGauges() {
	if e.cfg.Metrics != nil && e.cfg.Store != nil {
		e.cfg.Metrics.StoreSets.Set(float64(e.cfg.Store.Len()))
		e.cfg.Metrics.StoreSlots.Set(float64(e.cfg.Store.Slots()))
	}
}

func (e *Engine) onQuery(from [16]byte, data []byte) []Out {
	q, err := fapp.DecodeSlotQuery(data)
	if err != nil {
		e.drop("query", "malformed")
		return nil
	}
	now := e.now()
	if _, ours := e.searches[q.QueryID]; ours {
		e.drop("query", "duplicate")
		return nil
	}
	if _, seen := e.queryPath.get(q.QueryID, now); seen {
		e.drop("query", "duplicate")
		return nil
	}
	if !e.cfg.Roles.Relay && !e.cfg.Roles.Therapist {
		e.drop("query", "role")
		return nil
	}
	e.queryPath.put(q.QueryID, from, now.Add(e.cfg.QueryPathTTL), now)
	var out []Out
	var frames [][]byte
	switch {
	case e.cfg.Roles.Relay:
		frames, _ = e.cfg.Store.Answer(&q)
	case e.ownFrame != nil && e.ownMatches(q.Filter(), now):
		frames = [][]byte{e.ownFrame}
	}
	if len(frames) > ConstrainedAnnounces && e.constrained(from) {
		frames = frames[:ConstrainedAnnounces] // the first matching slots' announces
	}
	if len(frames) > 0 {
		resp, err := fapp.NewSlotResponse(&q, frames, q.Hops)
		if err == nil {
			out = append(out, Out{Peer: from, Data: resp, Kind: fapp.KindResponse})
			if e.cfg.Metrics != nil {
				e.cfg.Metrics.Answered.Inc()
				e.cfg.Metrics.AnsweredAnnounces.Add(float64(len(frames)))
			}
		} else {
			e.drop("query", "error")
		}
	}
	if e.cfg.Roles.Relay {
		fwd, err := fapp.Forward(data)
		switch {
		case err != nil:
			e.drop("query", "hop_limit")
		case !e.forwards.allow(from, now):
			// Answered from the store, not forwarded: the neighbour's
			// budget is spent.
			e.drop("query", "forward_budget")
		default:
			out = append(out, e.flood(from, fwd, fapp.KindQuery)...)
			e.forwarded(fapp.KindQuery)
		}
	}
	return out
}

// ownMatches reports whether a slot of the therapist's current set
// matches f and has not started.
func (e *Engine) ownMatches(f fapp.Filter, now time.Time) bool {
	if !e.ownExpires.After(now) {
		return false
	}
	if f.From.Before(now) {
		f.From = now
	}
	a := e.ownAnn
	if a == nil {
		return false
	}
	for _, s := range a.Slots {
		if f.Matches(a.PLZ, s) {
			return true
		}
	}
	return false
}

func (e *Engine) onResponse(from [16]byte, data []byte) []Out {
	r, err := fapp.DecodeSlotResponse(data)
	if err != nil {
		e.drop("response", "malformed")
		return nil
	}
	now := e.now()
	if s := e.searches[r.QueryID]; s != nil {
		rs, _, err := s.q.Open(data, now)
		if err != nil {
			e.drop("response", "not_ours")
			return nil
		}
		e.own("responses")
		s.lists = append(s.lists, rs)
		for _, x := range rs {
			if _, ok := s.via[x.ID.Therapist]; !ok {
				s.via[x.ID.Therapist] = from
			}
		}
		return nil
	}
	if !e.cfg.Roles.Relay {
		e.drop("response", "role")
		return nil
	}
	back, ok := e.queryPath.get(r.QueryID, now)
	if !ok {
		e.drop("response", "no_path")
		return nil
	}
	if back == from {
		// The way back leads to where it came from: a loop.
		e.drop("response", "loop")
		return nil
	}
	fwd, err := fapp.Forward(data)
	if err != nil {
		e.drop("response", "hop_limit")
		return nil
	}
	e.forwarded(fapp.KindResponse)
	return []Out{{Peer: back, Data: fwd, Kind: fapp.KindResponse}}
}

func (e *Engine) onReserve(from [16]byte, data []byte) []Out {
	m, err := fapp.DecodeSlotReserve(data)
	if err != nil {
		e.drop("reserve", "malformed")
		return nil
	}
	now := e.now()
	if m.Therapist == e.cfg.Self {
		if !e.cfg.Roles.Therapist || e.cfg.Practice == nil {
			e.drop("reserve", "role")
			return nil
		}
		_, ans, oc, err := e.cfg.Practice.ReceiveOutcome(data, now)
		if err != nil {
			e.drop("reserve", "not_ours")
			return nil
		}
		e.reservePath.put(m.ReservationID, from, now.Add(e.cfg.ReservePathTTL), now)
		switch oc {
		case fapp.ReceivePending:
			e.own("requests_received")
			// Only a new pending request changes the persisted state
			// (bounded: fapp.MaxPending, MaxDecidedRequests).
			if e.savePractice() != nil {
				e.drop("reserve", "not_persisted")
			}
		case fapp.ReceiveAtOnce:
			e.own("requests_answered_at_once")
		case fapp.ReceiveRefused:
			// Over fapp.MaxPendingPerSlot or MaxPending: declined.
			e.own("requests_refused")
		}
		if ans == nil {
			return nil
		}
		e.own("answers_sent")
		return []Out{{Peer: from, Data: ans, Kind: fapp.KindAnswer}}
	}
	if !e.cfg.Roles.Relay {
		e.drop("reserve", "role")
		return nil
	}
	if back, seen := e.reservePath.get(m.ReservationID, now); seen && back != from {
		// The same reservation by another way: a loop or a flood.
		e.drop("reserve", "duplicate")
		return nil
	}
	// Seen from the same neighbour: the patient's retransmission (the
	// first, or its answer, may have been lost); forwarded again, within
	// the neighbour's budget.
	fwd, err := fapp.Forward(data)
	if err != nil {
		e.drop("reserve", "hop_limit")
		return nil
	}
	if !e.forwards.allow(from, now) {
		// Not remembered: the patient's retransmission may pass later.
		e.drop("reserve", "forward_budget")
		return nil
	}
	e.reservePath.put(m.ReservationID, from, now.Add(e.cfg.ReservePathTTL), now)
	e.forwarded(fapp.KindReserve)
	if next, ok := e.towards(m.Therapist, now); ok && next != from {
		return []Out{{Peer: next, Data: fwd, Kind: fapp.KindReserve}}
	}
	return []Out{{All: true, Except: from, Data: fwd, Kind: fapp.KindReserve}}
}

func (e *Engine) onAnswer(from [16]byte, data []byte) []Out {
	m, err := fapp.DecodeSlotAnswer(data)
	if err != nil {
		e.drop("answer", "malformed")
		return nil
	}
	if r := e.reservations[m.ReservationID]; r != nil {
		before := r.Status
		if _, err := r.OpenAnswer(data); err != nil {
			e.drop("answer", "not_ours")
			return nil
		}
		e.own("answers_received")
		if r.Status != before {
			e.saveReservation(r)
		}
		if r.Status != fapp.Pending {
			e.dropRetry(r.ID)
		}
		return nil
	}
	if !e.cfg.Roles.Relay {
		e.drop("answer", "role")
		return nil
	}
	back, ok := e.reservePath.get(m.ReservationID, e.now())
	if !ok {
		e.drop("answer", "no_path")
		return nil
	}
	if back == from {
		e.drop("answer", "loop")
		return nil
	}
	fwd, err := fapp.Forward(data)
	if err != nil {
		e.drop("answer", "hop_limit")
		return nil
	}
	e.forwarded(fapp.KindAnswer)
	return []Out{{Peer: back, Data: fwd, Kind: fapp.KindAnswer}}
}

// PeerUp: a therapist gives a neighbour that just came up its current
// announce, so a relay that starts later learns it; a relay hands it the
// HandoffAnnounces announces of its store that expire last (one hop
// further), unless the neighbour is reached over constrained links only.
func (e *Engine) PeerUp(peer [16]byte) []Out {
	var out []Out
	if e.ownFrame != nil && e.ownExpires.After(e.now()) {
		e.own("announced")
		out = append(out, Out{Peer: peer, Data: e.ownFrame, Kind: fapp.KindAnnounce})
	}
	if !e.cfg.Roles.Relay || e.cfg.Store == nil || e.constrained(peer) {
		return out
	}
	for _, f := range e.cfg.Store.Frames(HandoffAnnounces + 1) {
		if len(out) > HandoffAnnounces || bytes.Equal(f, e.ownFrame) {
			continue
		}
		if fwd, err := fapp.Forward(f); err == nil {
			out = append(out, Out{Peer: peer, Data: fwd, Kind: fapp.KindAnnounce})
			e.forwarded(fapp.KindAnnounce)
		}
	}
	return out
}

// LinkUp records one link to peer (constrained: LoRa, the transports'
// constrained classes) and reports whether it is peer's first (then the
// caller hands the neighbour what PeerUp returns).
func (e *Engine) LinkUp(peer [16]byte, id uint64, constrained bool) (first bool) {
	if e.links[peer] == nil {
		e.links[peer] = map[uint64]bool{}
	}
	first = len(e.links[peer]) == 0
	e.links[peer][id] = constrained
	return first
}

// LinkDown forgets link id to peer; when it was peer's last link, the
// announce paths through peer go too (a reservation then floods rather
// than going to a neighbour that is gone).
func (e *Engine) LinkDown(peer [16]byte, id uint64) {
	delete(e.links[peer], id)
	if len(e.links[peer]) == 0 {
		delete(e.links, peer)
		e.PeerDown(peer)
	}
}

// constrained reports whether every link to peer is constrained (a
// neighbour with no recorded link is not).
func (e *Engine) constrained(peer [16]byte) bool {
	ls := e.links[peer]
	for _, c := range ls {
		if !c {
			return false
		}
	}
	return len(ls) > 0
}

// towards is the neighbour to send a reservation for therapist to: the
// one its newest announce came from, else the router's next hop to it.
func (e *Engine) towards(therapist crypto.Address, now time.Time) ([16]byte, bool) {
	if p, ok := e.announcePath.get(therapist, now); ok {
		return p, true
	}
	p, ok := e.routeNext[therapist]
	return p, ok
}

// SetRoutes takes a snapshot of the router's table (the actor asks for
// one every sweep): the next hops to nodes that announce the therapist
// capability.
func (e *Engine) SetRoutes(rs []messages.RouteInfo) {
	next := make(map[crypto.Address][16]byte)
	caps := make(map[[16]byte]messages.Capabilities)
	for _, r := range rs {
		if r.Capabilities&messages.CapFAPPTherapist != 0 && len(next) < e.cfg.MaxPaths {
			next[r.Address] = r.NextHop
		}
		if r.Address == r.NextHop && len(caps) < e.cfg.MaxPaths {
			caps[r.Address] = r.Capabilities
		}
	}
	e.routeNext, e.neighbourCaps = next, caps
}

// PeerDown forgets the announce paths through peer.
func (e *Engine) PeerDown(peer [16]byte) { e.announcePath.dropPeer(peer) }

// Sweep expires reverse paths and the relay store's sets, and applies the
// held sets whose therapist has a token again (what it returns is to be
// sent); the actor calls it on a timer.
func (e *Engine) Sweep() []Out {
	now := e.now()
	out := e.applyHeld(now)
	out = append(out, e.retransmit(now)...)
	e.announcePath.sweep(now)
	e.queryPath.sweep(now)
	e.reservePath.sweep(now)
	if e.cfg.Store != nil {
		_, _, _ = e.cfg.Store.Expire()
		e.storeGauges()
	}
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.Paths.Set(float64(e.queryPath.len() + e.reservePath.len()))
	}
	return out
}

// retryOut is where a reservation goes: the neighbour its slot was found
// through (while it is linked, when links are known), else every link.
func (e *Engine) retryOut(rt *retry) Out {
	if rt.via != ([16]byte{}) && (len(e.links) == 0 || len(e.links[rt.via]) > 0) {
		return Out{Peer: rt.via, Data: rt.frame, Kind: fapp.KindReserve}
	}
	return Out{All: true, Data: rt.frame, Kind: fapp.KindReserve}
}

// retransmit sends the pending reservations that are due again, with the
// next wait doubled (at most RetryMax); a reservation answered or whose
// slot has started is dropped from the schedule.
func (e *Engine) retransmit(now time.Time) []Out {
	var out []Out
	for id, rt := range e.retries {
		r := e.reservations[id]
		if r == nil || r.Status != fapp.Pending || !rt.until.After(now) {
			e.dropRetry(id)
			continue
		}
		if now.Before(rt.next) {
			continue
		}
		out = append(out, e.retryOut(rt))
		e.own("reservations_retransmitted")
		rt.backoff = min(2*rt.backoff, e.cfg.RetryMax)
		rt.next = now.Add(rt.backoff)
	}
	return out
}

func (e *Engine) dropRetry(id [16]byte) {
	if _, ok := e.retries[id]; !ok {
		return
	}
	delete(e.retries, id)
	if rs, ok := e.cfg.State.(RetryState); ok {
		if err := rs.DeleteRetry(id); err != nil && e.cfg.Log != nil {
			e.cfg.Log.Error("FAPP reservation frame not deleted", "err", err)
		}
	}
}

// savePractice writes the practice's state; a failure is logged (a
// restart would then carry on from the last state written, and might
// reuse a sequence number relays refuse as stale).
func (e *Engine) savePractice() error {
	if e.cfg.State == nil || e.cfg.Practice == nil {
		return nil
	}
	b, err := e.cfg.Practice.MarshalState()
	if err == nil {
		err = e.cfg.State.SavePractice(b)
	}
	if err != nil && e.cfg.Log != nil {
		e.cfg.Log.Error("FAPP practice state not written", "err", err)
	}
	return err
}

func (e *Engine) saveReservation(r *fapp.Reservation) {
	if e.cfg.State == nil {
		return
	}
	if err := e.cfg.State.SaveReservation(r); err != nil && e.cfg.Log != nil {
		e.cfg.Log.Error("FAPP reservation not written", "err", err)
	}
}

// publishOwn makes frame the therapist's current announce: into its own
// store (a relay too), to every neighbour.
func (e *Engine) publishOwn(frame []byte, expires time.Time) []Out {
	e.ownFrame, e.ownExpires, e.ownAnn = frame, expires, nil
	if a, err := fapp.DecodeSlotAnnounce(frame); err == nil {
		e.ownAnn = &a
	}
	if e.cfg.Roles.Relay && e.cfg.Store != nil {
		_, _ = e.cfg.Store.Insert(frame)
		e.storeGauges()
	}
	if !e.ownPace.Allow(e.now()) {
		// Relays would refuse it for the rate: it goes when a token is
		// back (FlushAnnounce), unless a newer one replaces it first.
		e.ownDue = true
		e.own("announce_paced")
		return nil
	}
	e.ownDue = false
	e.own("announced")
	return []Out{{All: true, Data: frame, Kind: fapp.KindAnnounce}}
}

// AnnounceDue is how long until a paced own announce may go (FlushAnnounce);
// zero: none waiting.
func (e *Engine) AnnounceDue() time.Duration {
	if !e.ownDue {
		return 0
	}
	now := e.now()
	if t := e.ownPace.Tokens(now); t < 1 && e.ownPace.Rate > 0 {
		return max(time.Duration((1-t)/e.ownPace.Rate*float64(time.Second))+time.Millisecond, time.Millisecond)
	}
	return time.Millisecond
}

// FlushAnnounce sends the newest own announce held back by the pace, when
// a token is back; nothing otherwise.
func (e *Engine) FlushAnnounce() []Out {
	if !e.ownDue || e.ownFrame == nil {
		return nil
	}
	now := e.now()
	if !e.ownExpires.After(now) {
		e.ownDue = false
		return nil
	}
	if !e.ownPace.Allow(now) {
		return nil
	}
	e.ownDue = false
	e.own("announced")
	return []Out{{All: true, Data: e.ownFrame, Kind: fapp.KindAnnounce}}
}

// Publish replaces the therapist's set with slots and announces it.
func (e *Engine) Publish(slots []fapp.Slot) (seq uint64, expires time.Time, outs []Out, err error) {
	if !e.cfg.Roles.Therapist || e.cfg.Practice == nil {
		return 0, time.Time{}, nil, fmt.Errorf("%w: this node is not a therapist", ErrRole)
	}
	expires = e.now().Add(e.cfg.AnnounceTTL).Truncate(time.Second)
	undo := e.cfg.Practice.Checkpoint()
	frame, err := e.cfg.Practice.Publish(slots, expires)
	if err != nil {
		return 0, time.Time{}, nil, err
	}
	if err := e.savePractice(); err != nil {
		// Not on disk: not in memory, not sent (a restart would reuse
		// the sequence with other content).
		undo()
		return 0, time.Time{}, nil, fmt.Errorf("fapp: publish: the practice state was not written: %w", err)
	}
	e.own("published")
	return e.cfg.Practice.Seq(), expires, e.publishOwn(frame, expires), nil
}

// Reannounce signs the therapist's set again with a fresh expiry (before
// the last one expires). Nothing before the first Publish.
func (e *Engine) Reannounce() []Out {
	p := e.cfg.Practice
	if p == nil || p.Seq() == 0 {
		return nil
	}
	expires := e.now().Add(e.cfg.AnnounceTTL).Truncate(time.Second)
	undo := p.Checkpoint()
	frame, err := p.Announce(expires)
	if err != nil {
		return nil
	}
	if e.savePractice() != nil {
		undo() // the last announce stays; the renewal comes again
		return nil
	}
	return e.publishOwn(frame, expires)
}

// ReannounceIn is how long until the own announce should be renewed
// (three quarters of its TTL after it was made); zero: nothing to renew.
func (e *Engine) ReannounceIn() time.Duration {
	if e.ownFrame == nil {
		return 0
	}
	d := e.ownExpires.Sub(e.now()) - e.cfg.AnnounceTTL/4
	return max(d, time.Second)
}

// Free is the therapist's announced set.
func (e *Engine) Free() []fapp.Slot {
	if e.cfg.Practice == nil {
		return nil
	}
	return e.cfg.Practice.Free()
}

// StartSearch sends a fresh anonymous query for f. A relay adds what its
// own store holds at once.
func (e *Engine) StartSearch(f fapp.Filter) ([16]byte, []Out, error) {
	if !e.cfg.Roles.Patient {
		return [16]byte{}, nil, fmt.Errorf("%w: this node is not a patient", ErrRole)
	}
	q, err := fapp.NewQuery(f, e.cfg.QueryHops, e.cfg.Rand)
	if err != nil {
		return [16]byte{}, nil, err
	}
	now := e.now()
	if len(e.searches) >= DefaultMaxSearches {
		var oldest [16]byte
		var t time.Time
		for k, s := range e.searches {
			if t.IsZero() || s.started.Before(t) {
				oldest, t = k, s.started
			}
		}
		delete(e.searches, oldest)
	}
	s := &search{q: q, via: map[crypto.Address][16]byte{}, started: now}
	e.searches[q.Query.QueryID] = s
	if e.cfg.Roles.Relay && e.cfg.Store != nil {
		s.lists = append(s.lists, e.cfg.Store.Query(f))
	}
	frame, err := fapp.EncodeSlotQuery(q.Query)
	if err != nil {
		delete(e.searches, q.Query.QueryID)
		return [16]byte{}, nil, err
	}
	e.own("searches")
	return q.Query.QueryID, []Out{{All: true, Data: frame, Kind: fapp.KindQuery}}, nil
}

// EndSearch ends search id and returns what it found, merged and sorted;
// the results are kept (bounded) for Reserve.
func (e *Engine) EndSearch(id [16]byte) ([]fapp.Result, error) {
	s := e.searches[id]
	if s == nil {
		return nil, ErrUnknownSearch
	}
	delete(e.searches, id)
	rs := fapp.MergeResults(s.q.Query.Filter().Limit(), s.lists...)
	for _, r := range rs {
		if _, ok := e.found[r.ID]; !ok {
			e.foundOrder = append(e.foundOrder, r.ID)
		}
		e.found[r.ID] = found{res: r, via: s.via[r.ID.Therapist]}
	}
	for len(e.foundOrder) > e.cfg.MaxFound {
		delete(e.found, e.foundOrder[0])
		e.foundOrder = e.foundOrder[1:]
	}
	return rs, nil
}

// Reserve reserves a slot an earlier search found and returns the
// reservation (pending) and the frame towards the therapist.
func (e *Engine) Reserve(id fapp.SlotID, note string) (*fapp.Reservation, []Out, error) {
	if !e.cfg.Roles.Patient {
		return nil, nil, fmt.Errorf("%w: this node is not a patient", ErrRole)
	}
	f, ok := e.found[id]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s was not found by a search of this node", fapp.ErrUnknownSlot, id)
	}
	r, frame, err := fapp.NewReservation(f.res.Announce, id.Slot, note, fapp.DefaultAnnounceHops, e.cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	e.reservations[r.ID] = r
	e.saveReservation(r)
	e.own("reservations")
	via := f.via
	now := e.now()
	if via == ([16]byte{}) {
		via, _ = e.towards(id.Therapist, now)
	}
	rt := &retry{frame: frame, via: via, next: now.Add(e.cfg.RetryFirst), backoff: e.cfg.RetryFirst,
		until: time.Unix(int64(f.res.Slot.Start), 0)}
	e.retries[r.ID] = rt
	if rs, ok := e.cfg.State.(RetryState); ok {
		if err := rs.SaveRetry(PendingReserve{ID: r.ID, Frame: frame, Until: rt.until}); err != nil && e.cfg.Log != nil {
			e.cfg.Log.Error("FAPP reservation frame not written", "err", err)
		}
	}
	return r, []Out{e.retryOut(rt)}, nil
}

// Reservation is the patient's reservation id.
func (e *Engine) Reservation(id [16]byte) (*fapp.Reservation, error) {
	r := e.reservations[id]
	if r == nil {
		return nil, fmt.Errorf("%w: %x", fapp.ErrUnknownReservation, id)
	}
	return r, nil
}

// Requests lists the therapist's received reservations.
func (e *Engine) Requests() ([]fapp.RequestInfo, error) {
	if !e.cfg.Roles.Therapist || e.cfg.Practice == nil {
		return nil, fmt.Errorf("%w: this node is not a therapist", ErrRole)
	}
	return e.cfg.Practice.Requests(), nil
}

// Answer confirms (confirm) or declines reservation id with text. It
// returns the request's new status and the frames: the answer back along
// the reservation's path, "taken" to the others pending on the slot, and
// the new announce.
func (e *Engine) Answer(id [16]byte, confirm bool, text string) (fapp.Status, []Out, error) {
	p := e.cfg.Practice
	if !e.cfg.Roles.Therapist || p == nil {
		return 0, nil, fmt.Errorf("%w: this node is not a therapist", ErrRole)
	}
	expires := e.now().Add(e.cfg.AnnounceTTL).Truncate(time.Second)
	var out []Out
	var ann []byte
	status := fapp.Declined
	undo := p.Checkpoint()
	if confirm {
		answer, announce, taken, err := p.Confirm(id, text, expires)
		if err != nil {
			return 0, nil, err
		}
		status, ann = fapp.Confirmed, announce
		out = append(out, e.answerOut(answer))
		for _, t := range taken {
			out = append(out, e.answerOut(t))
		}
	} else {
		answer, announce, err := p.Decline(id, text, expires)
		if err != nil {
			return 0, nil, err
		}
		ann = announce
		out = append(out, e.answerOut(answer))
	}
	if err := e.savePractice(); err != nil {
		// Nothing is sent: the patient would hold an answer the
		// therapist's disk does not.
		undo()
		return 0, nil, fmt.Errorf("fapp: answer: the practice state was not written: %w", err)
	}
	if ann != nil {
		out = append(out, e.publishOwn(ann, expires)...)
	}
	return status, out, nil
}

// answerOut sends an answer back the way its reservation came (or to
// every neighbour when that is not known any more).
func (e *Engine) answerOut(frame []byte) Out {
	e.own("answers_sent")
	if m, err := fapp.DecodeSlotAnswer(frame); err == nil {
		if back, ok := e.reservePath.get(m.ReservationID, e.now()); ok {
			return Out{Peer: back, Data: frame, Kind: fapp.KindAnswer}
		}
	}
	return Out{All: true, Data: frame, Kind: fapp.KindAnswer}
}
