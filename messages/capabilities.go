package messages

import "strings"

// Capabilities are the bits a node announces about itself.
type Capabilities uint16

// Capability bits, as carried in announces.
const (
	CapRelay         Capabilities = 0x0001 // forwards envelopes for others
	CapStore         Capabilities = 0x0002 // holds messages for offline peers
	CapGateway       Capabilities = 0x0004 // bridges LoRa and IP links
	CapConstrained   Capabilities = 0x0008 // low-resource device: send it little
	CapPQ            Capabilities = 0x0010 // opens 1:1 messages sealed with the post-quantum hybrid (X-Wing)
	CapFAPPTherapist Capabilities = 0x0100 // announces free therapy slots
	CapFAPPRelay     Capabilities = 0x0200 // caches and answers FAPP queries
	CapFAPPPatient   Capabilities = 0x0400 // searches and reserves slots
)

var capNames = []struct {
	c    Capabilities
	name string
}{
	{CapRelay, "relay"}, {CapStore, "store"}, {CapGateway, "gateway"}, {CapConstrained, "constrained"}, {CapPQ, "pq"},
	{CapFAPPTherapist, "fapp-therapist"}, {CapFAPPRelay, "fapp-relay"}, {CapFAPPPatient, "fapp-patient"},
}

// Has reports whether every bit of o is set.
func (c Capabilities) Has(o Capabilities) bool { return c&o == o }

// Names lists the set capabilities by name.
func (c Capabilities) Names() []string {
	var out []string
	for _, n := range capNames {
		if c.Has(n.c) {
			out = append(out, n.name)
		}
	}
	return out
}

func (c Capabilities) String() string {
	if c == 0 {
		return "none"
	}
	return strings.Join(c.Names(), ",")
}
