// Package mailbox is qpc's outbound mailbox policy: a protoactor mailbox
// (PriorityShedding) that is bounded by message count and optionally by
// bytes, and that, when full, sheds the lowest-priority frame instead of
// blocking the sender (actor.Bounded) or dropping whatever is oldest
// (actor.BoundedDropping, which can even drop a PoisonPill).
//
// What it owns: the user-message queue of each actor spawned with
// actor.WithMailbox(mailbox.PriorityShedding(opts)), normally the outbound
// link actors. It receives whatever is sent to that actor and sends nothing;
// it reports sheds through Options.OnShed and its depth through
// UserMessageCount and Options.Depth.
//
// The policy, in one place:
//
//   - A message says how important it is by implementing
//     Prioritized (Priority() Priority): Control > Data > Bulk. It may say
//     how big it is by implementing Sized (Size() int); the byte bound uses
//     that. Messages wrapped in *actor.MessageEnvelope (Request, RequestFuture)
//     are classified by what they wrap.
//   - Dequeue order: highest priority first, first-in first-out within a
//     priority.
//   - When a message would take the queue past MaxMessages or MaxBytes,
//     queued messages of lower priority than it are shed, the newest of the
//     lowest priority first, as few as make room. If they could not make
//     room even all together (in particular when none is queued), the
//     incoming message is shed instead and the queue is left as it was.
//     See Queue for why "newest".
//   - A message without a priority (*actor.PoisonPill, the drain and
//     shutdown messages of messages/bus.go, anything a test sends) is never
//     shed and does not count against the bounds: it always gets in, and it
//     never makes another message be shed. It is delivered after everything
//     posted before it and before everything posted after it (an ordering
//     barrier), so PoisonPill keeps its meaning: "stop once you have
//     processed what was already sent". A control message that must
//     overtake queued data should implement Prioritized and return Control.
//   - System messages (Stop, Watch, Restart, Suspend/ResumeMailbox, ...) are
//     never counted, bounded or shed, and always run before user messages.
//
// The prioritized, bounded queue is the plain type Queue, tested without
// actors; mailbox.go wires it into protoactor's Mailbox contract (dispatcher
// scheduling, throughput, suspension, panics escalated to the supervisor).
package mailbox
