// Package inbox is the node's inbox: the messages delivered to this node,
// opened, kept in the database in arrival order.
//
// It owns the bucket "inbox". Store is the plain logic: entries are
// encoded by Encode for the router's group-commit transaction, so a
// message's replay record and its inbox entry are one atomic write, and
// read by List (the admin API's GET /v1/inbox) from any goroutine.
//
// The actor owns what happens after a commit: it receives
// *messages.Delivered from the router once the transaction is durable and
// wakes the readers waiting for new messages: long polls (qpc inbox
// --follow) and the Feed behind the Go API's Deliveries channel. Both read
// the messages from the database; nothing delivered is kept in memory for
// a reader that may never come. It also applies retention on its clock.
package inbox
