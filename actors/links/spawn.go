package links

import (
	"log/slog"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quicprochat/qpc/actors/mailbox"
	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/clock"
	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// deps is what listener, dialer and link actors share; read-only after
// the manager builds it (linkIDs is atomic).
type deps struct {
	self      crypto.Address
	manager   *actor.PID
	ratelimit *actor.PID
	metrics   *metrics.Links
	log       *slog.Logger
	clock     clock.Clock
	backoff   Backoff
	mailboxes map[string]actor.MailboxProducer // by transport name
	linkIDs   *atomic.Uint64
	inbound   *inboundLimit // shared by the listeners (atomic)
}

// stopLinks is the supervision of link actors: a link that panics is
// stopped, never restarted, because its connection cannot be restarted;
// the dialer re-dials.
var stopLinks = actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective })

// mailboxFor builds the priority-shedding mailbox of one transport's links.
func mailboxFor(transport string, frames, bytes int, m *metrics.Links) actor.MailboxProducer {
	return mailbox.PriorityShedding(mailbox.Options{
		MaxMessages: frames,
		MaxBytes:    bytes,
		OnShed: func(_ any, p messages.Priority) {
			m.Shed.WithLabelValues(transport, p.String()).Inc()
		},
	})
}

// spawnLink starts the link actor for a connection under ctx (a listener
// or dialer actor) and returns it with the link's description.
func (d *deps) spawnLink(ctx actor.Context, conn transports.Conn, outbound bool) (*actor.PID, messages.LinkInfo) {
	info := conn.Info()
	li := messages.LinkInfo{
		ID:        d.linkIDs.Add(1),
		Peer:      conn.Peer(),
		Transport: info.Name,
		Local:     conn.LocalAddr(),
		Remote:    conn.RemoteAddr(),
		Outbound:  outbound,
		MTU:       info.MTU,
		MaxFrame:  info.Limit(),
		Bitrate:   info.Bitrate,
		Class:     transports.ClassOf(info).String(),
		Since:     d.clock.Now(),
	}
	if _, ok := conn.(transports.BroadcastConn); ok {
		li.Broadcast = true
	}
	mb, ok := d.mailboxes[info.Name]
	if !ok {
		mb = mailbox.PriorityShedding(mailbox.Options{})
	}
	la := &linkActor{
		conn: conn, info: li, manager: d.manager, ratelimit: d.ratelimit, metrics: d.metrics,
		log: d.log.With("peer", crypto.Address(li.Peer).Short(), "transport", li.Transport, "remote", li.Remote, "link", li.ID),
	}
	props := actor.PropsFromProducer(func() actor.Actor { return la }, actor.WithMailbox(mb))
	return ctx.Spawn(props), li
}
