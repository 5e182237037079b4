package messages

import "fmt"

// Priority orders frames for sending and shedding: Control > Data > Bulk.
// The outbound link mailbox (actors/mailbox) sheds the lowest first. The
// zero value is Bulk, so a message that forgets to set one is the first to
// be shed, never the last.
type Priority uint8

// Priorities, lowest first.
const (
	// Bulk is traffic that can wait or be redone: store-and-forward drains,
	// FAPP catalogue sync, large transfers.
	Bulk Priority = iota
	// Data is user traffic: envelopes for or from this node's users.
	Data
	// Control keeps the mesh working: announces, routing, acknowledgements,
	// key material, link keepalives.
	Control
)

func (p Priority) String() string {
	switch p {
	case Bulk:
		return "bulk"
	case Data:
		return "data"
	case Control:
		return "control"
	}
	return fmt.Sprintf("priority(%d)", uint8(p))
}
