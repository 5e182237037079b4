// Package messages is the contract between the parts of a node and between
// nodes. It imports nothing else of qpc.
//
// It holds two kinds of types, kept apart:
//
//   - Actor messages (bus.go, ...): the typed messages actors send each
//     other inside one node, always as pointers. They never go on the wire.
//   - Wire formats: what goes between nodes, in CBOR. Every wire type has a
//     golden vector under testdata/, a round-trip test and a fuzz target.
//
// # Encoding rules for wire types
//
// All CBOR goes through cbor.go: Marshal uses RFC 8949 Core Deterministic
// Encoding (so equal values give equal bytes and encodings can be signed);
// Unmarshal is strict (duplicate map keys, indefinite lengths, tags, deep
// nesting, long arrays and inputs over MaxFrameSize are refused), and
// UnmarshalCanonical also refuses any encoding but the deterministic one.
// Structs are arrays (`cbor:",toarray"`) or use small integer keys, since
// every byte counts on LoRa. A decoder checks its type's size limit before
// decoding, then the tag, then the fields, then the signature; every
// failure is one of the typed errors in errors.go (ErrTooLarge,
// ErrUnknownType, ErrUnsupportedVersion, ErrMalformed, ErrBadSignature),
// wrapped with detail; peer input never causes a panic.
//
// Signatures cover a canonical to-be-signed byte string: a per-type domain
// prefix (such as BeaconDomain) followed by the deterministic encoding of the
// signed fields. Fields relays change (hop count) are left out, so
// forwarders never re-sign.
//
// # Frame tags
//
// The first field of every frame is a Tag: the frame type in the low
// nibble, the version of that type in the high nibble (0 is a type's first
// version). Version-0 tags are 0x01..0x0F and take one CBOR byte. A receiver
// reads it with FrameTag before decoding the rest and rejects an unknown
// type (ErrUnknownType) or version (ErrUnsupportedVersion).
//
// Frame type registry (change it only by adding rows):
//
//	type  name                 status
//	0x0   -                    never valid
//	0x1   envelope             FrameEnvelope, TagEnvelope (envelope.go)
//	0x2   announce             FrameAnnounce, TagAnnounce (announce.go)
//	0x3   fragment             reserved
//	0x4   KeyPackage request   reserved
//	0x5   KeyPackage response  reserved
//	0x6   FAPP                 FrameFAPP: fapp.TagFAPP (fapp/wire.go), all six
//	                           FAPP messages, the kind in element 1
//	0x7   compact envelope     FrameCompact, TagCompact (compact.go): sealed,
//	                           sender-authenticated by HPKE auth mode, unsigned
//	0x8   MLS-Lite             crypto/mlslite.FrameMLSLite, Tag (frame.go): a
//	                           group's message for one member on constrained
//	                           links, keys from the group's MLS exporter
//	0x9 … 0xE                  unassigned
//	0xF   beacon               FrameBeacon, TagBeacon (beacon.go); LAN UDP only
//
// Types that cross LoRa links get the low numbers, which stay one byte for
// longer as versions are added (tags up to 23 encode in one byte).
//
// # Beacon
//
// The LAN discovery beacon (beacon.go) is a signed UDP multicast datagram of
// at most MaxBeaconSize (256) bytes: tag, Ed25519 public key, unix time,
// up to MaxBeaconListeners (scheme, port, host) listeners, signature. A
// beacon with two listeners and empty hosts is 120 bytes.
package messages
