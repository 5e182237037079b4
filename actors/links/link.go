package links

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quicprochat/qpc/internal/metrics"
	"github.com/quicprochat/qpc/messages"
	"github.com/quicprochat/qpc/transports"
)

// linkUp and linkDown tell the manager about a link actor's life.
type linkUp struct {
	info  messages.LinkInfo
	pid   *actor.PID
	bcast transports.Broadcaster // the link's transport, when it broadcasts
}

type linkDown struct {
	info   messages.LinkInfo
	reason string
}

// priorityWriter is a Conn that queues frames by priority itself (LoRa).
type priorityWriter interface {
	WriteFramePriority(p []byte, prio messages.Priority) error
}

// readFailed is sent by a link's reader goroutine when the link ends.
type readFailed struct{ err error }

type linkActor struct {
	conn      transports.Conn
	info      messages.LinkInfo
	manager   *actor.PID
	ratelimit *actor.PID
	metrics   *metrics.Links
	log       *slog.Logger
	reason    string
	cancel    context.CancelFunc

	// This link's series, looked up once: the hot path must not hash labels.
	sentFrames, sentBytes, recvFrames, recvBytes prometheus.Counter
}

func (l *linkActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		t := l.info.Transport
		l.sentFrames, l.sentBytes = l.metrics.FramesSent.WithLabelValues(t), l.metrics.BytesSent.WithLabelValues(t)
		l.recvFrames, l.recvBytes = l.metrics.FramesReceived.WithLabelValues(t), l.metrics.BytesReceived.WithLabelValues(t)
		rctx, cancel := context.WithCancel(context.Background())
		l.cancel = cancel
		up := &linkUp{info: l.info, pid: ctx.Self()}
		if bc, ok := l.conn.(transports.BroadcastConn); ok && l.info.Broadcast {
			up.bcast = bc.Broadcaster()
		}
		ctx.Send(l.manager, up)
		l.log.Info("link up", "dir", direction(l.info.Outbound))
		go l.read(rctx, ctx.ActorSystem(), ctx.Self())
	case *messages.OutboundFrame:
		// WriteFrame may block while the peer reads slowly; that is the
		// backpressure: this actor's mailbox fills and sheds by priority.
		var err error
		if pw, ok := l.conn.(priorityWriter); ok {
			err = pw.WriteFramePriority(m.Data, m.Prio) // a radio queues by priority too
		} else {
			err = l.conn.WriteFrame(m.Data)
		}
		if err != nil {
			l.fail(ctx, "write", err)
			return
		}
		l.sentFrames.Inc()
		l.sentBytes.Add(float64(len(m.Data)))
	case *readFailed:
		switch {
		case errors.Is(m.err, io.EOF):
			l.reason = "closed by peer"
			ctx.Stop(ctx.Self())
		case errors.Is(m.err, transports.ErrFrameTooLarge):
			l.fail(ctx, "frame_too_large", m.err)
		case errors.Is(m.err, transports.ErrBadFrame):
			l.fail(ctx, "bad_frame", m.err)
		case errors.Is(m.err, transports.ErrFrameTimeout):
			l.fail(ctx, "frame_timeout", m.err) // the peer stalled inside a frame
		case errors.Is(m.err, net.ErrClosed):
			if l.reason == "" {
				l.reason = "closed"
			}
			ctx.Stop(ctx.Self())
		default:
			l.fail(ctx, "read", m.err)
		}
	case *actor.Stopping:
		l.cancel()
		l.conn.Close()
	case *actor.Stopped:
		if l.reason == "" {
			l.reason = "link stopped"
		}
		ctx.Send(l.manager, &linkDown{info: l.info, reason: l.reason})
		l.log.Info("link down", "reason", l.reason)
	}
}

// fail closes the link for a logged reason, counted by kind.
func (l *linkActor) fail(ctx actor.Context, kind string, err error) {
	if l.reason != "" {
		return
	}
	l.reason = fmt.Sprintf("%s: %v", kind, err)
	l.metrics.Errors.WithLabelValues(l.info.Transport, kind).Inc()
	l.log.Warn("closing link", "reason", kind, "err", err)
	ctx.Stop(ctx.Self())
}

// InboundCredit is how many frames of one flow-controlled link may be on
// their way through the node (admission, router) at once. A link that
// has used them up is not read until the router finished one: the peer's
// sender is slowed by TCP's or QUIC's flow control instead of its frames
// being dropped, and a flooding peer fills only its own share of the
// router's queue, so the others are served in turn.
const InboundCredit = 256

// read is the link's reader goroutine: it reads frames, checks the outer
// frame's tag, and hands them to ratelimit. It reports its end to the
// link actor and never touches the actor's state.
func (l *linkActor) read(ctx context.Context, sys *actor.ActorSystem, self *actor.PID) {
	name := l.info.Transport + ":" + l.info.Remote
	var credit chan struct{}
	var release func()
	if l.conn.Info().FlowControl {
		credit = make(chan struct{}, InboundCredit)
		release = func() {
			select {
			case <-credit:
			default:
			}
		}
	}
	waits := l.metrics.Backpressure.WithLabelValues(l.info.Transport)
	for {
		if credit != nil {
			// Take credit before reading the next frame, so a busy node
			// leaves the peer's frames in the socket.
			select {
			case credit <- struct{}{}:
			default:
				waits.Inc()
				select {
				case credit <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
		var f []byte
		var sig messages.Signal
		var err error
		if sr, ok := l.conn.(transports.SignalReader); ok {
			f, sig, err = sr.ReadFrameSignal() // a radio: with the frame's signal
		} else {
			f, err = l.conn.ReadFrame()
		}
		if err != nil {
			if ctx.Err() == nil {
				sys.Root.Send(self, &readFailed{err: err})
			}
			return
		}
		l.recvFrames.Inc()
		l.recvBytes.Add(float64(len(f)))
		if err := checkOuter(f); err != nil {
			l.metrics.Errors.WithLabelValues(l.info.Transport, "bad_tag").Inc()
			l.log.Debug("frame with a bad outer tag dropped", "err", err, "len", len(f))
			if release != nil {
				release()
			}
			continue
		}
		sys.Root.Send(l.ratelimit, &messages.InboundFrame{Link: name, From: l.info.Peer, Data: f, Release: release, Signal: sig})
	}
}

// checkOuter validates the outer frame: a type/version tag this build
// knows, and not a type that never travels on a link (the LAN beacon).
func checkOuter(f []byte) error {
	tag, err := messages.FrameTag(f)
	if err != nil {
		return err
	}
	if !tag.Type().OnLinks() {
		return fmt.Errorf("%w: %s does not travel on links", messages.ErrUnknownType, tag)
	}
	return nil
}

func direction(out bool) string {
	if out {
		return "outbound"
	}
	return "inbound"
}
