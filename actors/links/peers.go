package links

import (
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// peerEvent is a dialer's report of one step with its peer; the dialer
// sends it to the manager, which applies it to its Peers.
type peerEvent struct {
	uri  string
	kind peerEventKind
	at   time.Time
	err  string         // evFailed, evGaveUp
	next time.Time      // evFailed, evWaiting: when the next dial is due
	peer crypto.Address // evUp
	link uint64         // evUp: the link's id, to match its linkDown
}

type peerEventKind uint8

const (
	evDialling peerEventKind = iota + 1 // an attempt started
	evFailed                            // it failed; the next is due at next
	evUp                                // a link is up
	evWaiting                           // the link ended; re-dial due at next
	evGaveUp                            // no more dials (err says why)
)

// Peers is the state of the configured peers: for each URI, whether it is
// up, being dialled or waiting for its next attempt, how many attempts
// were made and the last error. It is plain state owned by the manager;
// dialers report to it with peerEvent messages and link ends arrive as
// LinkDown. URIs it was not built with (discovered peers) are ignored.
type Peers struct {
	order []string
	byURI map[string]*messages.PeerStatus
	links map[uint64]string // id of a configured peer's link → its URI
}

// NewPeers tracks uris (duplicates once), all pending since now.
func NewPeers(uris []string, now time.Time) *Peers {
	p := &Peers{byURI: make(map[string]*messages.PeerStatus), links: make(map[uint64]string)}
	for _, u := range uris {
		if _, ok := p.byURI[u]; ok {
			continue
		}
		p.order = append(p.order, u)
		p.byURI[u] = &messages.PeerStatus{URI: u, State: messages.PeerStatePending, Since: now}
	}
	return p
}

// Apply records a dialer's step.
func (p *Peers) Apply(e peerEvent) {
	st, ok := p.byURI[e.uri]
	if !ok {
		return
	}
	switch e.kind {
	case evDialling:
		st.Attempts++
		p.enter(st, messages.PeerStateDialling, e.at)
	case evFailed:
		st.Failures++
		st.LastError, st.LastErrorAt = e.err, e.at
		p.enter(st, messages.PeerStateBackoff, e.at)
		st.NextAttempt = e.next
	case evUp:
		st.Failures = 0
		st.Peer = e.peer
		p.links[e.link] = e.uri
		p.enter(st, messages.PeerStateUp, e.at)
	case evWaiting:
		p.enter(st, messages.PeerStateBackoff, e.at)
		st.NextAttempt = e.next
	case evGaveUp:
		st.LastError, st.LastErrorAt = e.err, e.at
		p.enter(st, messages.PeerStateGivenUp, e.at)
	}
}

// GaveUp records that uri is not dialled at all (a URI without a
// transport, say).
func (p *Peers) GaveUp(uri, reason string, now time.Time) {
	p.Apply(peerEvent{uri: uri, kind: evGaveUp, err: reason, at: now})
}

// LinkDown records that a link ended. If it was a configured peer's, the
// reason becomes that peer's last error, and a peer that was up is down
// until its dialer reports the re-dial it scheduled.
func (p *Peers) LinkDown(link uint64, reason string, now time.Time) {
	uri, ok := p.links[link]
	if !ok {
		return
	}
	delete(p.links, link)
	st := p.byURI[uri]
	st.LastError, st.LastErrorAt = "link down: "+reason, now
	if st.State == messages.PeerStateUp {
		p.enter(st, messages.PeerStateDown, now)
	}
}

// Stopped records that the node dials no more (draining): every peer that
// is not up and not given up is stopped.
func (p *Peers) Stopped(now time.Time) {
	for _, st := range p.byURI {
		if st.State != messages.PeerStateUp && st.State != messages.PeerStateGivenUp {
			p.enter(st, messages.PeerStateStopped, now)
		}
	}
}

// List is a copy of every peer's status, in configuration order.
func (p *Peers) List() []messages.PeerStatus {
	out := make([]messages.PeerStatus, 0, len(p.order))
	for _, u := range p.order {
		out = append(out, *p.byURI[u])
	}
	return out
}

func (p *Peers) enter(st *messages.PeerStatus, state string, at time.Time) {
	if st.State != state {
		st.State, st.Since = state, at
	}
	st.NextAttempt = time.Time{}
}
