// Package inbox is the node's inbox: the messages delivered to this node,
// opened, kept in the database in arrival order.
//
// It owns the bucket "inbox". Store is the plain logic: entries are
// encoded by Encode for the router's group-commit transaction, so a
// message's replay record and its inbox entry are one atomic write, and
// read by List (the admin API's GET /v1/inbox) from any goroutine.
//
// The actor owns what happens after a commit: it receives
// *messages.Delivered from the router once the transaction is durable,
// wakes readers waiting for new messages (qpc inbox --follow), and hands
// the messages to the Go API's Deliveries channel (never blocking: what
// the channel cannot take is counted, and stays in the inbox).
package inbox
