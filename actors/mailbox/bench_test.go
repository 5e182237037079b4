package mailbox

import (
	"sync/atomic"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// BenchmarkMailbox sends b.N frames to one actor and waits until it has
// received them all (ns/op is per message, end to end), with protoactor's
// default unbounded mailbox and with PriorityShedding (bound high enough
// that nothing is shed, and a small bound that sheds).
func BenchmarkMailbox(b *testing.B) {
	producers := []struct {
		name    string
		mailbox func() actor.MailboxProducer
	}{
		{"unbounded", func() actor.MailboxProducer { return actor.Unbounded() }},
		{"priority", func() actor.MailboxProducer { return PriorityShedding(Options{MaxMessages: 1 << 30}) }},
		{"priority-shedding-1024", func() actor.MailboxProducer { return PriorityShedding(Options{MaxMessages: 1024}) }},
	}
	for _, pr := range producers {
		for _, parallel := range []bool{false, true} {
			name := pr.name + "/1-sender"
			if parallel {
				name = pr.name + "/parallel-senders"
			}
			b.Run(name, func(b *testing.B) {
				sys := newSystem(b)
				var received atomic.Int64
				done := make(chan struct{})
				pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
					switch ctx.Message().(type) {
					case *frame:
						received.Add(1)
					case *marker:
						close(done)
					}
				}, actor.WithMailbox(pr.mailbox())))
				f := &frame{p: Data}
				b.ReportAllocs()
				b.ResetTimer()
				if parallel {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							sys.Root.Send(pid, f)
						}
					})
				} else {
					for range b.N {
						sys.Root.Send(pid, f)
					}
				}
				sys.Root.Send(pid, &marker{"end"}) // delivered after every frame
				<-done
				b.StopTimer()
				b.ReportMetric(float64(int64(b.N)-received.Load())/float64(b.N)*100, "%shed")
			})
		}
	}
}

// BenchmarkQueue is the plain queue: push and pop one frame, and push into
// a full queue (a shed every time).
func BenchmarkQueue(b *testing.B) {
	b.Run("push-pop", func(b *testing.B) {
		q := NewQueue(1024, 0)
		f := &frame{p: Data}
		b.ReportAllocs()
		for range b.N {
			q.Push(f, Data, 100)
			q.Pop()
		}
	})
	b.Run("push-full-shed-lower", func(b *testing.B) {
		q := NewQueue(1024, 0)
		f := &frame{}
		for range 1024 {
			q.Push(f, Bulk, 0)
		}
		b.ReportAllocs()
		for range b.N {
			q.Push(f, Data, 0) // sheds a bulk frame
			q.Pop()            // takes the data frame back out
			q.Push(f, Bulk, 0)
		}
	})
}
