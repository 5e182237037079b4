package store

// Ack is what a receipt passing through lets go: the frame ID, if it is
// held for Dest, the node that signed the receipt. A receipt is signed by
// the destination of the messages it names, and any node can name an id
// it saw pass, so an ack for a frame held for another destination is
// skipped: no third node's receipt makes a relay drop a message.
type Ack struct {
	ID   [16]byte
	Dest [16]byte
}
