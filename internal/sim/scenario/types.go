package scenario

// Scenario is one scenario file, decoded, defaulted and validated. Fields
// are the file's keys (see the toml tags); docs/simulation.md lists every
// one with its default. After Parse returns it without error every value
// in it is valid: selectors match nodes, links name known nodes, numbers
// are in range.
type Scenario struct {
	// Name of the scenario, used in reports. Required.
	Name string `toml:"name"`
	// Duration is the simulated run time, > 0. Required.
	Duration Duration `toml:"duration"`
	// Seed drives every random choice (layout, traffic); default 1. The
	// runner's --seed flag overrides it by passing another seed to Expand.
	Seed uint64 `toml:"seed"`
	// Warmup is simulated time before any traffic starts (routes
	// converge); default 0, less than Duration. Traffic start times
	// default to it.
	Warmup Duration `toml:"warmup"`
	// LoRa is the radio channel every LoRa node shares.
	LoRa LoRa `toml:"lora"`
	// Nodes are explicit nodes; exactly one of Nodes and Topology.
	Nodes []Node `toml:"node"`
	// Topology generates the nodes and their links. Present reports
	// whether the file has a [topology] table.
	Topology Generator `toml:"topology"`
	// Links are explicit links, in addition to generated ones.
	Links []Link `toml:"link"`
	// Groups are named groups of nodes (MLS group chats).
	Groups []Group `toml:"group"`
	// Traffic is what the nodes send.
	Traffic []Traffic `toml:"traffic"`
	// Churn are events that change the mesh while it runs.
	Churn []Churn `toml:"churn"`

	// File is the file name used in error messages.
	File string `toml:"-"`
	// HasTopology is true when the file has a [topology] table.
	HasTopology bool `toml:"-"`

	lines *lineMap // key paths to lines, for errors found by Expand
}

// Medium names a kind of link. A node is on one or more media; a link
// joins two nodes on the same medium.
type Medium = string

// The media.
const (
	LoRaMedium Medium = "lora" // shared radio channel, airtime and duty cycle from [lora]
	TCP        Medium = "tcp"
	QUIC       Medium = "quic"
	Mem        Medium = "mem" // in-memory pipe, the transport the tests use
)

// Role is something a node does besides sending and receiving its own
// messages.
type Role = string

// The roles.
const (
	Relay     Role = "relay"     // forwards frames for other nodes
	Store     Role = "store"     // keeps messages for offline peers of others
	Therapist Role = "therapist" // FAPP: publishes free slots, answers reservations
	Patient   Role = "patient"   // FAPP: searches and reserves
)

var (
	allMedia = []string{LoRaMedium, TCP, QUIC, Mem}
	allRoles = []string{Relay, Store, Therapist, Patient}
)

// LoRa is the radio channel ([lora]), shared by all LoRa nodes.
type LoRa struct {
	SF         int     `toml:"sf"`         // spreading factor 7..12; default 9
	BW         int     `toml:"bw"`         // bandwidth in Hz: 125000, 250000 or 500000; default 125000
	CR         int     `toml:"cr"`         // coding rate denominator 5..8 (4/5..4/8); default 5
	DutyCycle  float64 `toml:"duty_cycle"` // share of airtime a radio may use, 0 < x <= 1; default 0.01 (EU868 1%)
	Collisions bool    `toml:"collisions"` // overlapping transmissions destroy each other; default true
	// Range is the distance in metres up to which two radios hear each
	// other; default 1000. Loss grows with distance up to it (EdgeLoss).
	Range float64 `toml:"range"`
	// EdgeLoss is the frame loss at Range: a LoRa link of length d has
	// loss EdgeLoss*(d/Range)^2; 0..1, default 0.2.
	EdgeLoss float64 `toml:"edge_loss"`
}

// Node is one explicit [[node]].
type Node struct {
	// Name is unique, 1..64 characters of A-Z a-z 0-9 _ . -. Required.
	Name string `toml:"name"`
	// Roles of the node: relay, store, therapist, patient.
	Roles []string `toml:"roles"`
	// Position is [x, y] in metres; optional. LoRa links without loss or
	// distance take their length from the two positions.
	Position []float64 `toml:"position"`
	// Media the node is on: lora, tcp, quic, mem. Default: the kinds of
	// the links that name it. A link's kind must be among both ends' media.
	Media []string `toml:"media"`
}

// Link is one explicit [[link]]. Links are bidirectional; at most one
// link of a kind per pair of nodes.
type Link struct {
	From string `toml:"from"` // a node name. Required.
	To   string `toml:"to"`   // a node name, not From. Required.
	Kind string `toml:"kind"` // lora, tcp, quic or mem. Required.
	// Loss is the probability a frame is lost, 0..1; default 0 (for lora:
	// from Distance or the positions, see Distance).
	Loss float64 `toml:"loss"`
	// Latency, Jitter and Bandwidth: tcp, quic and mem only (a LoRa
	// link's timing is its airtime). Defaults 0s, 0s, 0 (unlimited).
	// Jitter is the most a frame's delay deviates from Latency.
	Latency   Duration  `toml:"latency"`
	Jitter    Duration  `toml:"jitter"`
	Bandwidth Bandwidth `toml:"bandwidth"`
	// Distance in metres, lora only, <= lora.range: when Loss is not
	// given, loss = lora.edge_loss*(Distance/lora.range)^2. Without
	// Distance the two nodes' positions give it; without those the loss
	// is 0.
	Distance float64 `toml:"distance"`
}

// Group is a named group ([[group]]) of nodes.
type Group struct {
	Name    string    `toml:"name"`    // unique; same characters as node names. Required.
	Members Selectors `toml:"members"` // selectors; together at least two nodes. Required.
}

// Selectors is a list of node selectors (see Traffic); the file may give
// one string instead of a list.
type Selectors []string

// UnmarshalText reads a single selector.
func (s *Selectors) UnmarshalText(b []byte) error {
	*s = Selectors{string(b)}
	return nil
}

// Traffic kinds.
const (
	Messages  = "messages"
	FAPP      = "fapp"
	GroupChat = "group"
)

// Traffic is one [[traffic]] flow.
//
// Selectors (From, To, Therapists, Patients, Churn.Nodes, Group.Members)
// are lists of strings, or one string: a node name, "*" (every node),
// "role:NAME" (every node with that role), "on:MEDIUM" (every node on
// lora, tcp, quic or mem) or "group:NAME" (every member of the group;
// not inside a group's members). Each selector must match at least one node.
type Traffic struct {
	// Kind: messages, fapp or group. Required.
	Kind string `toml:"kind"`
	// messages: every node of From sends at Rate, each message to a node
	// of To picked uniformly at random (never itself). Required for
	// messages.
	From Selectors `toml:"from"`
	To   Selectors `toml:"to"`
	// Rate per sending node (messages: per From node; group: per member;
	// fapp: searches per patient). >= 0; required for messages and group,
	// default "1/h" for fapp.
	Rate Rate `toml:"rate"`
	// Size of a message's text in bytes, 1..65536; default 32 (messages,
	// group).
	Size int `toml:"size"`
	// Start and Stop bound the flow in simulated time; defaults warmup and
	// duration; Start < Stop <= duration.
	Start Duration `toml:"start"`
	Stop  Duration `toml:"stop"`

	// fapp: Therapists (default "role:therapist") each publish Slots
	// free slots at Start (1..1000, default 5); Patients (default
	// "role:patient") search at Rate, and ReserveShare (0..1, default
	// 0.5) of searches that find a slot reserve one.
	Therapists   Selectors `toml:"therapists"`
	Patients     Selectors `toml:"patients"`
	Slots        int       `toml:"slots"`
	ReserveShare float64   `toml:"reserve_share"`

	// group: the name of a [[group]]; each member sends at Rate to it.
	Group string `toml:"group"`
}

// Churn kinds.
const (
	Leave     = "leave"     // Nodes go offline (stay down until a join)
	Join      = "join"      // Nodes come (back) online
	Partition = "partition" // links between SideA and SideB stop carrying frames
	Heal      = "heal"      // every partition ends
	Restart   = "restart"   // Nodes stop, stay down for Down, start again with their state
)

// Churn is one [[churn]] event.
type Churn struct {
	At   Duration `toml:"at"`   // when, < duration. Required.
	Kind string   `toml:"kind"` // leave, join, partition, heal, restart. Required.
	// Nodes: selectors, for leave, join and restart. Required for those.
	Nodes Selectors `toml:"nodes"`
	// Count, when > 0, picks that many of the selected nodes at random
	// (deterministic from the seed); 0 takes all of them.
	Count int `toml:"count"`
	// SideA and SideB: partition only. SideA is required; SideB defaults
	// to every node not in SideA. The sides must not overlap.
	SideA Selectors `toml:"side_a"`
	SideB Selectors `toml:"side_b"`
	// Down: restart only, > 0. Required for restart.
	Down Duration `toml:"down"`
}

// Generator kinds.
const (
	Line            = "line"
	Grid            = "grid"
	RandomGeometric = "random_geometric"
	ScaleFree       = "scale_free"
)

// Generator is [topology]: it makes Count nodes named "n0".."nN-1", zero
// padded to the width of Count-1 (count 1000: "n000".."n999"), and their
// links. See docs/simulation.md for the rules.
type Generator struct {
	// Kind: line, grid, random_geometric or scale_free. Required.
	Kind string `toml:"kind"`
	// Count of nodes, 2..100000. Required.
	Count int `toml:"count"`
	// Spacing in metres between neighbours (line, grid); default
	// lora.range.
	Spacing float64 `toml:"spacing"`
	// Columns of a grid; default ceil(sqrt(count)).
	Columns int `toml:"columns"`
	// Area [width, height] in metres (random_geometric). Required there.
	Area []float64 `toml:"area"`
	// M is the number of links each new node makes (scale_free, >= 1,
	// < count); default 2.
	M int `toml:"m"`
	// Attempts at a connected layout before giving up, 1..10000; default
	// 100.
	Attempts int `toml:"attempts"`
	// LoRaShare and TCPShare (0..1) are the shares of nodes with a LoRa
	// radio and with a TCP (tcp.kind) link; nodes in both are bridges.
	// Defaults: lora_share 1 (0 for scale_free), tcp_share 1-lora_share.
	// Every node must get a medium: lora_share+tcp_share >= 1.
	LoRaShare *float64 `toml:"lora_share"`
	TCPShare  *float64 `toml:"tcp_share"`
	// Roles every generated node has; default ["relay"].
	Roles []string `toml:"roles"`
	// Assign gives further roles to some nodes.
	Assign []Assign `toml:"assign"`
	// TCP says how the TCP nodes are linked.
	TCP TCPRule `toml:"tcp"`
}

// Assign ([[topology.assign]]) gives Role to Count nodes (or Share of
// all nodes, rounded), picked at random among the nodes on Media ("any",
// "lora", "tcp"; default "any") that no earlier assign entry picked, so
// the entries are disjoint.
type Assign struct {
	Role  string  `toml:"role"`
	Count int     `toml:"count"`
	Share float64 `toml:"share"`
	Media string  `toml:"media"`
}

// TCP rules.
const (
	Nearest = "nearest"
	Hubs    = "hubs"
)

// TCPRule ([topology.tcp]) links the generated TCP nodes.
type TCPRule struct {
	// Kind of the links: tcp, quic or mem; default tcp.
	Kind string `toml:"kind"`
	// Rule: "nearest" (default): every TCP node links to its K nearest
	// TCP nodes; "hubs": Hubs TCP nodes picked at random become hubs
	// (role relay added), linked to each other in a full mesh, and every
	// other TCP node links to its K nearest hubs.
	Rule string `toml:"rule"`
	K    int    `toml:"k"`    // >= 1; default 2
	Hubs int    `toml:"hubs"` // rule hubs: >= 1, <= the TCP nodes
	// Link parameters, as in [[link]]; defaults latency 20ms, jitter 5ms,
	// loss 0, bandwidth 0 (unlimited).
	Latency   Duration  `toml:"latency"`
	Jitter    Duration  `toml:"jitter"`
	Loss      float64   `toml:"loss"`
	Bandwidth Bandwidth `toml:"bandwidth"`
}
