// Package discovery finds qpc peers on the local network: every node sends
// a small signed beacon (messages.Beacon) to a UDP multicast group, and
// listens on that group for the beacons of others.
//
// What it owns: one UDP socket joined to the group (DefaultGroup,
// 239.255.70.77:7779, site-local scope, TTL 1) on the chosen interfaces, a
// sender goroutine and a receiver goroutine. It is a plain type, Service;
// an actor wraps it (New, Start, Close) and turns each Discovered into a
// dial hint.
//
// What it sends: the node's public key, the time, and the listen URIs it
// can advertise (tcp and quic; a listener on 0.0.0.0 or :: goes out with an
// empty host, which receivers replace with the beacon's source address),
// signed with the node key. Every Interval (default 5 s), jittered by ±25 %
// so nodes that booted together spread out.
//
// What it reports: Discovered{Address, PublicKey, URIs, Source, Seen} to
// Options.OnDiscovered, at most once per DedupWindow per peer unless its URIs
// change. Before that, each datagram goes through, in order:
//
//  1. a size check (messages.MaxBeaconSize),
//  2. per-source-IP and total token buckets, so a flood costs no
//     signature checks,
//  3. messages.DecodeBeacon: strict decode and Ed25519 verification,
//  4. dropping the node's own beacons (multicast loopback is on, so several
//     nodes on one host see each other) and, if MaxSkew is set, stale ones.
//
// Every drop is counted in Stats. A beacon is a hint, not a proof: its
// signature binds the key to the listeners, but the source address is not
// signed and beacons can be replayed, so the transport handshake must
// still authenticate the peer's key before the link is trusted.
//
// The network is behind the Conn interface: ListenMulticast makes the real
// one (golang.org/x/net/ipv4); tests feed datagrams through an in-memory
// twin. Only IPv4 multicast is implemented; an IPv6 ff02:: link-local group
// would be a second Conn.
package discovery
